"""Real Ollama, built from the Go module proxy for the tests: the article's 0.5.11 (the llama.cpp
runner inside Ollama), 0.24.0 (the last release before llama-server: Ollama's Go engine beside the
runner) and the newest release the proxy serves (llama-server, the one tests/llama_server_build.py
builds, placed where Ollama looks for it: `../lib/ollama/` beside its binary).

`GOBIN=DIR go install -ldflags=-X=...version.Version=V github.com/ollama/ollama@vV` builds each one
(the version stamped as Ollama's release build stamps it, so `/api/version` answers V). Each build is
cached in `$LLMTOP_ENGINE_CACHE` (else `~/.cache/llmtop-engine`) under `ollama-V/`, with a stamp of
its inputs (the version, the machine's Go, the headers added): it is built again only when they
change. `python tests/ollama_build.py` builds the three up front and says each step and its time.

Go module zips leave out every `vendor/` folder, so 0.24.0's cgo build (llama.cpp's
`vendor/nlohmann`, `vendor/miniaudio`, `vendor/stb`) finds its third-party headers missing. They are
header-only libraries; the same ones come with the llama.cpp that llama-cpp-python's source
distribution vendors whole (PyPI), and are handed to the build through CGO_CPPFLAGS.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from llama_server_build import VISIBLE_DEVICES, BuildFailed, cache_root, llama_cpp_version, llama_server_binary

MODULE = "github.com/ollama/ollama"
ARTICLE = "0.5.11"  # the article's version: `llm_load_tensors: offloaded 27/81 layers to GPU`
LAST_GO_ENGINE = "0.24.0"  # the last release before llama-server
NEWEST_FLOOR = (0, 34, 4)  # the newest release seen served (December 2026); newer ones are looked for above it
PROXY = os.environ.get("GOPROXY", "https://proxy.golang.org").split(",")[0].split("|")[0]
BUILD_TIMEOUT_S = 1800
Say = Callable[[str], None]


@dataclass(frozen=True)
class OllamaBuild:
    """One real Ollama, ready to run: its version and binary; `why_not` when it could not be built."""

    version: str
    binary: Path | None
    why_not: str | None = None
    llama_server: Path | None = None  # 0.30 and later: the runner it starts

    @property
    def era(self) -> str:
        return era_of(self.version)


def era_of(version: str) -> str:
    """Which inference an Ollama version runs (../shared/real-ollama.md's table)."""
    key = _key(version)
    if key < (0, 6, 0):
        return "llama.cpp runner"
    if key < (0, 30, 0):
        return "Go engine beside the runner"
    return "llama-server"


def _key(version: str) -> tuple[int, int, int]:
    major, minor, patch = (int(part) for part in version.split("-")[0].split(".")[:3])
    return major, minor, patch


def _say_to(stream: object) -> Say:
    def say(text: str) -> None:
        write = getattr(stream, "write", None)
        if write is not None:
            write(f"ollama build: {text}\n")
            flush = getattr(stream, "flush", None)
            if flush is not None:
                flush()

    return say


# -- the newest release the proxy serves --------------------------------------------------------------
def _served(version: tuple[int, int, int], opener: Callable[[str], bool]) -> bool:
    return opener(f"{PROXY}/{MODULE}/@v/v{version[0]}.{version[1]}.{version[2]}.info")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=20) as answer:  # noqa: S310 - the Go module proxy
            return bool(answer.status == 200)
    except urllib.error.HTTPError:
        return False


def newest_release(
    floor: tuple[int, int, int] = NEWEST_FLOOR, served: Callable[[str], bool] = _http_ok
) -> tuple[int, int, int]:
    """The newest release the proxy serves, from `floor` up: the proxy's own list is partial, so each
    next patch is asked for, then the next minor's .0 and .1 (a .0 is sometimes never tagged).
    Raises OSError when the proxy cannot be reached."""
    if not _served(floor, served):
        raise BuildFailed(f"the Go module proxy ({PROXY}) does not serve {MODULE} v{'.'.join(map(str, floor))}")
    found = floor
    while True:
        major, minor, patch = found
        for candidate in ((major, minor, patch + 1), (major, minor + 1, 0), (major, minor + 1, 1)):
            if _served(candidate, served):
                found = candidate
                break
        else:
            return found


# -- building -------------------------------------------------------------------------------------------
def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildFailed("no `go` on PATH: Ollama is built with Go (1.26 or newer)")
    return go


def _go_version(go: str) -> str:
    result = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, timeout=60)
    return result.stdout.strip() or "unknown"


def vendored_headers(say: Say) -> Path:
    """llama.cpp's third-party headers (nlohmann/json, miniaudio, stb), from llama-cpp-python's
    source distribution, extracted once into the cache."""
    version = llama_cpp_version()
    folder = cache_root() / f"llama.cpp-vendor-{version}"
    if (folder / "nlohmann" / "json_fwd.hpp").is_file():
        return folder
    say(f"extracting llama.cpp's vendored headers from llama-cpp-python {version}'s source distribution")
    with tempfile.TemporaryDirectory(prefix="vendor-", dir=cache_root()) as temp:
        work = Path(temp)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
            + [f"llama-cpp-python=={version}", "-d", str(work)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise BuildFailed(f"pip download llama-cpp-python=={version} failed: {result.stderr.strip()[-300:]}")
        (archive,) = work.glob("llama_cpp_python-*.tar.gz")
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if "/vendor/llama.cpp/vendor/" in m.name]
            tar.extractall(work, members=members, filter="data")
        (source,) = work.glob("llama_cpp_python-*/vendor/llama.cpp/vendor")
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(source, folder)
    return folder


def _inputs(version: str, go_version: str, headers: Path | None) -> dict[str, str]:
    return {"version": version, "go": go_version, "headers": headers.name if headers else ""}


def _build(version: str, folder: Path, say: Say) -> Path:
    go = _go()
    go_version = _go_version(go)
    headers = vendored_headers(say) if era_of(version) == "Go engine beside the runner" else None
    inputs = _inputs(version, go_version, headers)
    binary = folder / "bin" / "ollama"
    stamp = folder / "inputs.json"
    kept = json.loads(stamp.read_text()) if stamp.is_file() else {}
    if binary.is_file() and kept.get("inputs") == inputs and _starts(binary):
        say(f"{version}: cached in {folder} (built with {go_version} in {kept.get('seconds', '?')} s)")
        return binary
    shutil.rmtree(folder / "bin", ignore_errors=True)
    env = dict(os.environ, GOBIN=str(folder / "bin"), CGO_ENABLED="1")
    if headers is not None:
        env["CGO_CPPFLAGS"] = f"{env.get('CGO_CPPFLAGS', '')} -I{headers}".strip()
    argv = [go, "install", f"-ldflags=-X={MODULE}/version.Version={version}", f"{MODULE}@v{version}"]
    extra = f", headers from {headers.name}" if headers else ""
    say(f"{version}: go install {MODULE}@v{version} ({go_version}{extra})")
    began = time.monotonic()
    try:
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BuildFailed(f"{version}: go install did not finish in {BUILD_TIMEOUT_S} s") from None
    if result.returncode != 0:
        output = result.stdout + result.stderr
        raise BuildFailed(f"{version}: go install failed: {_last_error(output)}\n{last_lines(output)}")
    if not _starts(binary):
        raise BuildFailed(f"{version}: the build finished but {binary} does not start")
    seconds = round(time.monotonic() - began)
    stamp.write_text(json.dumps({"inputs": inputs, "seconds": seconds}))
    say(f"{version}: built in {seconds} s")
    return binary


def _last_error(output: str) -> str:
    """The line of a failed build that says what went wrong (a compiler's `error:`, else the last)."""
    lines = [line.strip() for line in output.splitlines() if line.strip() and not line.startswith("go: downloading")]
    errors = [line for line in lines if re.search(r"\berror\b|cannot|not found|no such", line, re.IGNORECASE)]
    return (errors or lines or ["no output"])[0][:400]


def last_lines(output: str, count: int = 25) -> str:
    """The build's last lines, as CI shows a build that failed."""
    lines = [line for line in output.splitlines() if line.strip() and not line.startswith("go: downloading")]
    return "\n".join(f"    {line}" for line in lines[-count:])


def on_ci(environ: Mapping[str, str] | None = None) -> bool:
    """`CI=true`, as CI services set it (and .ci/run)."""
    environ = os.environ if environ is None else environ
    return environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def must_build_here(environ: Mapping[str, str] | None = None) -> bool:
    """On CI with Go installed, a real Ollama that could not be built fails the run: its tests are never
    skipped there. A contributor's machine without Go skips them."""
    return on_ci(environ) and shutil.which("go") is not None


def not_built(builds: Iterable[OllamaBuild]) -> str | None:
    """What to say where an Ollama of `builds` could not be built (each one's reason and the build's
    last lines); None where every one was."""
    failed = [b for b in builds if b.binary is None]
    if not failed:
        return None
    return "\n".join(f"real Ollama {b.version} could not be built: {b.why_not}" for b in failed)


def _starts(binary: Path) -> bool:
    if not binary.is_file():
        return False
    result = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    return result.returncode == 0 and "client version" in result.stdout + result.stderr


# -- llama-server beside the newest --------------------------------------------------------------------
FLAG = re.compile(r'"(-{1,2}[a-z][a-z0-9-]*)"')


def flags_ollama_passes(source: Iterable[str]) -> set[str]:
    """Every flag literal of llm/llama_server.go: what this Ollama can put on llama-server's line."""
    return {flag for text in source for flag in FLAG.findall(text)}


def unknown_flags(binary: Path, flags: set[str]) -> set[str]:
    """The flags `llama-server --help` does not list."""
    result = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=60)
    listed = set(re.findall(r"(?<![\w-])(-{1,2}[a-z][a-z0-9-]*)", result.stdout + result.stderr))
    return flags - listed


def _module_source(version: str, path: str) -> str:
    go = _go()
    result = subprocess.run(
        [go, "mod", "download", "-json", f"{MODULE}@v{version}"], capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        raise BuildFailed(f"{version}: go mod download failed: {_last_error(result.stdout + result.stderr)}")
    folder = Path(json.loads(result.stdout)["Dir"])
    return (folder / path).read_text(encoding="utf-8")


def place_llama_server(folder: Path, llama_server: Path) -> Path:
    """llama-server where Ollama 0.30+ looks on Linux: `../lib/ollama/` beside its binary (a link, so
    the build's own libraries are still found beside it)."""
    lib = folder / "lib" / "ollama"
    lib.mkdir(parents=True, exist_ok=True)
    target = lib / "llama-server"
    if target.is_symlink() or target.exists():
        target.unlink()
    target.symlink_to(llama_server)
    return target


# -- the three -----------------------------------------------------------------------------------------
class _SaidLines:
    """llama_server_build's log (`write(text)`), said the way these builds say their steps."""

    def __init__(self, say: Say) -> None:
        self.say = say

    def write(self, text: str) -> None:
        for line in text.splitlines():
            self.say(line)


def build(version: str, say: Say) -> OllamaBuild:
    """One version, built (or found in the cache); an OllamaBuild with why_not when it cannot be."""
    folder = cache_root() / f"ollama-{version}"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:  # one build of a version at a time on a machine
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            binary = _build(version, folder, say)
            if era_of(version) != "llama-server":
                return OllamaBuild(version, binary)
            began = time.monotonic()
            server = llama_server_binary(_SaidLines(say))
            say(f"llama-server for {version}: {server} ({time.monotonic() - began:.0f} s)")
            unknown = unknown_flags(server, flags_ollama_passes([_module_source(version, "llm/llama_server.go")]))
            if unknown:
                return OllamaBuild(
                    version, None, f"passes llama-server flags the tests' build does not know: {sorted(unknown)}"
                )
            return OllamaBuild(version, binary, llama_server=place_llama_server(folder, server))
        except BuildFailed as exc:
            return OllamaBuild(version, None, str(exc))


def newest(say: Say) -> OllamaBuild:
    """The newest release the proxy serves that builds here and whose llama-server flags the tests'
    llama-server knows (stepping back a release at a time, each one passed over said); recorded in
    the cache, so a machine without the proxy uses the last one found."""
    record = cache_root() / "ollama-newest.json"
    try:
        top = newest_release()
        say(f"newest release the proxy serves: {'.'.join(map(str, top))}")
    except (OSError, BuildFailed) as exc:
        if not record.is_file():
            return OllamaBuild("newest", None, f"cannot ask the Go module proxy for the newest release: {exc}")
        top = tuple(json.loads(record.read_text())["version"])  # type: ignore[assignment]
        say(f"the proxy cannot be asked ({exc}); the newest found before: {'.'.join(map(str, top))}")
    skipped: list[str] = []
    candidate: tuple[int, int, int] | None = top
    while candidate is not None and candidate >= (0, 30, 0):
        version = ".".join(map(str, candidate))
        found = build(version, say)
        if found.binary is not None:
            record.write_text(json.dumps({"version": list(candidate), "skipped": skipped}))
            return (
                found
                if not skipped
                else OllamaBuild(found.version, found.binary, "; ".join(skipped), found.llama_server)
            )
        skipped.append(f"{version}: {found.why_not}")  # flags llama-server lacks, a Go too old, a build error
        say(f"{version} {found.why_not}: trying the release before it")
        candidate = _previous(candidate)
    return OllamaBuild("newest", None, "; ".join(skipped) or "no release from 0.30 on could be built")


def _previous(version: tuple[int, int, int]) -> tuple[int, int, int] | None:
    major, minor, patch = version
    earlier = [(major, minor, p) for p in range(patch - 1, -1, -1)] + [(major, minor - 1, p) for p in range(40, -1, -1)]
    for candidate in earlier:
        if candidate[1] >= 0 and _served(candidate, _http_ok):
            return candidate
    return None


SOFTWARE_GPU_ENV = {
    **VISIBLE_DEVICES,  # ggml-vulkan uses lavapipe, a CPU-type device, only where it is named
    # The CPU backend's OpenMP threads spin while they wait, and on 2 cores fight lavapipe's own threads
    # (318 ms a token at 10 layers on the GPU; 118 ms with waiting threads that sleep).
    "OMP_WAIT_POLICY": "passive",
}


def with_software_gpu(newest: OllamaBuild, say: Say) -> OllamaBuild:
    """The newest Ollama with a llama-server built with llama.cpp's Vulkan backend, in a folder of its
    own (Ollama looks for llama-server beside its resolved binary, so the binary is copied there):
    with SOFTWARE_GPU_ENV in its environment, it runs models on Mesa's software Vulkan device."""
    if newest.binary is None:
        return OllamaBuild(newest.version, None, f"the newest Ollama was not built: {newest.why_not}")
    folder = cache_root() / f"ollama-{newest.version}-software-gpu"
    (folder / "bin").mkdir(parents=True, exist_ok=True)
    binary = folder / "bin" / "ollama"
    try:
        server = llama_server_binary(_SaidLines(say), vulkan=True)
        source = newest.binary.stat()
        if not binary.is_file() or (binary.stat().st_size, binary.stat().st_mtime) != (source.st_size, source.st_mtime):
            shutil.copy2(newest.binary, binary)
        say(f"{newest.version} on the software GPU: {binary} beside {server}")
        return OllamaBuild(newest.version, binary, newest.why_not, place_llama_server(folder, server))
    except (BuildFailed, OSError) as exc:
        return OllamaBuild(newest.version, None, f"llama-server with Vulkan: {exc}")


def all_builds(say: Say) -> list[OllamaBuild]:
    """The article's Ollama, the last Go-engine release and the newest, each built or said why not."""
    return [build(ARTICLE, say), build(LAST_GO_ENGINE, say), newest(say)]


if __name__ == "__main__":
    say = _say_to(sys.stderr)
    began = time.monotonic()
    builds = all_builds(say)
    for made in builds:
        print(f"{made.version}\t{made.binary or 'not built: ' + str(made.why_not)}")
    say(f"all done in {time.monotonic() - began:.0f} s")
    sys.exit(0 if all(b.binary for b in builds) else 1)
