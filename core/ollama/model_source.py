"""Where a forecast reads a model's tensors: the Ollama server that has it (`/api/show` with its tensor
table, Ollama 0.6 on), the model's blob on this machine, or, for a model not pulled, its manifest and
GGUF header from the registry, read with range requests: the header's bytes, never the whole blob."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from llmtop.ollama.gguf_header import GgufHeader, HeaderIncomplete, read_header

REGISTRY = "https://registry.ollama.ai"
MODEL_LAYER = "application/vnd.ollama.image.model"
FIRST_READ = 4 * 2**20  # most headers are within it (a 262k-token vocabulary is about 5 MB)
MOST_READ = 256 * 2**20  # a header longer than this is not read


class SourceFailed(Exception):
    """The model's tensors could not be read from this source; the message says why, in one line."""


@dataclass(frozen=True)
class ModelName:
    """`namespace/model:tag` on a registry (`hf.co/user/repo:Q4_K_M` is on hf.co)."""

    registry: str
    namespace: str
    model: str
    tag: str

    @property
    def path(self) -> str:
        return f"{self.namespace}/{self.model}"


def parse_name(name: str, registry: str = REGISTRY) -> ModelName:
    """`llama3.3` -> library/llama3.3:latest on Ollama's registry; `ns/model:tag` -> ns/model:tag there;
    `hf.co/user/repo:Q4_K_M` -> user/repo:Q4_K_M on https://hf.co (a first part with a dot is a host)."""
    head, sep, tag = name.strip().rpartition(":")
    if not sep or "/" in tag:
        head, tag = name.strip(), "latest"
    parts = [p for p in head.split("/") if p]
    host = registry
    if len(parts) >= 2 and "." in parts[0]:
        host, parts = f"https://{parts[0]}", parts[1:]
    if len(parts) == 1:
        parts = ["library", parts[0]]
    if len(parts) != 2 or not tag:
        raise SourceFailed(f"not a model name: {name!r}")
    return ModelName(host.rstrip("/"), parts[0], parts[1], tag)


Fetch = Callable[[str, Mapping[str, str]], httpx.Response]


def registry_fetch(timeout_s: float = 30.0) -> Fetch:
    """GET through httpx, following the registry's redirects to its blob store (the Range goes with them)."""
    client = httpx.Client(follow_redirects=True, timeout=timeout_s)

    def get(url: str, headers: Mapping[str, str]) -> httpx.Response:
        return client.get(url, headers=dict(headers))

    return get


@dataclass
class RegistryRead:
    """A header read from a registry, and how many bytes of the blob it took."""

    header: GgufHeader
    blob_bytes: int | None
    read_bytes: int
    digest: str


def header_from_registry(name: ModelName, fetch: Fetch) -> RegistryRead:
    """The model's manifest, then its model layer's first bytes, more only as the header needs them."""
    manifest_url = f"{name.registry}/v2/{name.path}/manifests/{name.tag}"
    try:
        answer = fetch(manifest_url, {"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    except httpx.HTTPError as exc:
        raise SourceFailed(f"cannot reach {name.registry}: {exc}") from None
    if answer.status_code == 404:
        raise SourceFailed(f"{name.registry} has no model {name.path}:{name.tag}")
    if answer.status_code != 200:
        raise SourceFailed(f"{name.registry} answered the manifest with HTTP {answer.status_code}")
    try:
        layers = answer.json().get("layers") or []
        layer = next(item for item in layers if item.get("mediaType") == MODEL_LAYER)
    except (ValueError, AttributeError, StopIteration):
        raise SourceFailed(f"{name.path}:{name.tag}'s manifest names no model layer") from None
    digest, size = str(layer.get("digest")), layer.get("size")
    blob_url = f"{name.registry}/v2/{name.path}/blobs/{digest}"
    data, want = b"", FIRST_READ
    while True:
        if size is not None:
            want = min(want, int(size))
        try:
            answer = fetch(blob_url, {"Range": f"bytes={len(data)}-{want - 1}"})
        except httpx.HTTPError as exc:
            raise SourceFailed(f"cannot read the model's header from {name.registry}: {exc}") from None
        if answer.status_code != 206:
            raise SourceFailed(f"{name.registry} did not answer a range of the blob (HTTP {answer.status_code})")
        data += answer.content
        try:
            return RegistryRead(read_header(data), int(size) if size is not None else None, len(data), digest)
        except HeaderIncomplete as short:
            want = max(short.needed, len(data) * 2)
            if want > MOST_READ or (size is not None and len(data) >= int(size)):
                raise SourceFailed("the model's header is longer than llmtop reads (256 MiB)") from None


def header_from_file(path: Path) -> GgufHeader:
    """The header of a GGUF file on this machine (a model's blob), read a range at a time."""
    try:
        with path.open("rb") as handle:
            data = handle.read(FIRST_READ)
            while True:
                try:
                    return read_header(data)
                except HeaderIncomplete as short:
                    if short.needed > MOST_READ:
                        raise SourceFailed("the model's header is longer than llmtop reads (256 MiB)") from None
                    more = handle.read(short.needed - len(data))
                    if not more:
                        raise SourceFailed(f"{path} ends inside its header") from None
                    data += more
    except OSError as exc:
        raise SourceFailed(f"cannot read {path}: {exc.strerror or exc}") from None


def blob_of(show: Mapping[str, Any]) -> Path | None:
    """The model's blob on this machine, from /api/show's Modelfile (`FROM /path/to/blobs/sha256-...`)."""
    for line in str(show.get("modelfile") or "").splitlines():
        if line.startswith("FROM ") and "/blobs/" in line.replace("\\", "/"):
            path = Path(line[5:].strip())
            return path if path.is_file() else None
    return None
