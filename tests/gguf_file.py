"""What Ollama's API says about a GGUF file, read from the file itself: the header's key/value
metadata and the tensors' shapes (for the parameter count), as Ollama's `/api/show` does.

Format (GGUF v2/v3, ggml's docs/gguf.md): magic `GGUF`, u32 version, u64 tensor count, u64 metadata
count, then each key (u64 length + UTF-8) with a u32 type and its value, then each tensor's name,
u32 dimension count, u64 dimensions, u32 type and u64 offset. Little-endian throughout.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_MAX_ARRAY_KEPT = 16  # token lists hold 262k strings: keep only their length

# llama.cpp's `general.file_type` (enum llama_ftype) for the quantizations Ollama names.
FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
              11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
              17: "Q5_K_M", 18: "Q6_K", 32: "BF16"}  # fmt: skip


def _read(handle: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = handle.read(size)
    if len(data) != size:
        raise ValueError("the GGUF file ends inside its header")
    return struct.unpack(fmt, data)[0]


def _string(handle: BinaryIO) -> str:
    return handle.read(_read(handle, "<Q")).decode("utf-8", errors="replace")


def _value(handle: BinaryIO, kind: int) -> Any:
    if kind in _SCALARS:
        return _read(handle, _SCALARS[kind])
    if kind == _STRING:
        return _string(handle)
    if kind == _ARRAY:
        item_kind, count = _read(handle, "<I"), _read(handle, "<Q")
        items = [_value(handle, item_kind) for _ in range(count)]
        return items if count <= _MAX_ARRAY_KEPT else count
    raise ValueError(f"unknown GGUF value type {kind}")


@dataclass(frozen=True)
class GgufFacts:
    """The facts of one GGUF file that Ollama's API reports."""

    path: Path
    size_bytes: int
    metadata: dict[str, Any]
    parameter_count: int

    @property
    def architecture(self) -> str:
        return str(self.metadata["general.architecture"])

    @property
    def block_count(self) -> int:
        return int(self.metadata[f"{self.architecture}.block_count"])

    @property
    def quantization(self) -> str:
        kind = self.metadata.get("general.file_type")
        return FILE_TYPES.get(kind, f"file type {kind}") if isinstance(kind, int) else "unknown"

    @property
    def parameter_size(self) -> str:
        """As Ollama prints it (format.HumanNumber): `70.6B`, `268.10M`, `8B`, `500K`."""
        count = self.parameter_count
        for unit, scale, decimals in (("B", 10**9, 1), ("M", 10**6, 2)):
            if count >= scale:
                value = count / scale
                return f"{value:.{0 if value.is_integer() else decimals}f}{unit}"
        return f"{count / 1000:.0f}K" if count >= 1000 else str(count)

    def digest(self) -> str:
        """sha256 of the file, as Ollama names its blobs."""
        sha = hashlib.sha256()
        with open(self.path, "rb") as handle:
            while block := handle.read(1 << 22):
                sha.update(block)
        return sha.hexdigest()

    def model_info(self) -> dict[str, Any]:
        """`/api/show`'s `model_info`: the scalar metadata, with the parameter count Ollama adds."""
        info = {k: v for k, v in self.metadata.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
        info["general.parameter_count"] = self.parameter_count
        return info


def read_gguf(path: str | Path) -> GgufFacts:
    """The metadata and parameter count of a GGUF file; ValueError when it is not one."""
    path = Path(path)
    with open(path, "rb") as handle:
        if handle.read(4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        version = _read(handle, "<I")
        if version not in (2, 3):
            raise ValueError(f"{path}: GGUF version {version} is not read here")
        tensors, keys = _read(handle, "<Q"), _read(handle, "<Q")
        metadata = {}
        for _ in range(keys):
            key = _string(handle)
            metadata[key] = _value(handle, _read(handle, "<I"))
        parameters = 0
        for _ in range(tensors):
            _string(handle)
            dims = [_read(handle, "<Q") for _ in range(_read(handle, "<I"))]
            _read(handle, "<I")
            _read(handle, "<Q")
            parameters += math.prod(dims)
    return GgufFacts(path, path.stat().st_size, metadata, parameters)
