"""Upstream llama.cpp's `llama-server`, the runner of Ollama 0.30 and later, built from the llama.cpp
that the source distribution of llama-cpp-python vendors whole.

The build takes about 8 minutes on 2 cores, so it is cached outside the clone
(`$LLMTOP_ENGINE_CACHE`, else `~/.cache/llmtop-engine`), one folder per llama-cpp-python version:
only the first run on a machine pays. `python tests/llama_server_build.py` builds it up front.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

# As the engine extra builds llama-cpp-python: portable code, and nothing that reaches the network.
CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_UI=OFF",
]


class BuildFailed(Exception):
    """llama-server could not be built; the text says which step failed and its last output."""


def cache_root() -> Path:
    return Path(os.environ.get("LLMTOP_ENGINE_CACHE") or Path.home() / ".cache" / "llmtop-engine")


def llama_cpp_version() -> str:
    from importlib.metadata import version

    return version("llama_cpp_python")


def _run(step: str, argv: list[str], cwd: Path | None = None) -> None:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
        raise BuildFailed(f"{step} failed (exit {result.returncode}): " + " / ".join(tail))


def works(binary: Path) -> bool:
    """The binary exists and starts (its shared libraries are where it expects them)."""
    if not binary.is_file():
        return False
    result = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    return result.returncode == 0


def llama_server_binary(log: object = None) -> Path:
    """The path of a working `llama-server`, built on the first call on this machine; BuildFailed."""
    version = llama_cpp_version()
    folder = cache_root() / f"llama-server-{version}"
    binary = folder / "build" / "bin" / "llama-server"
    if works(binary):
        return binary
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:  # one build at a time on a machine
        fcntl.flock(lock, fcntl.LOCK_EX)
        if works(binary):
            return binary
        _build(version, folder, log)
    if not works(binary):
        raise BuildFailed(f"the build finished but {binary} does not start")
    return binary


def _say(log: object, text: str) -> None:
    write = getattr(log, "write", None)
    if write is not None:
        write(f"llama-server build: {text}\n")


def _build(version: str, folder: Path, log: object) -> None:
    if shutil.which("cmake") is None:
        raise BuildFailed("cmake is not installed (it builds llama-server from llama.cpp's source)")
    shutil.rmtree(folder / "build", ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="llama-server-src-", dir=folder) as temp:
        work = Path(temp)
        _say(log, f"downloading llama-cpp-python {version}'s source distribution")
        _run(
            "pip download",
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
            + [f"llama-cpp-python=={version}", "-d", str(work)],
        )
        (archive,) = work.glob("llama_cpp_python-*.tar.gz")
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in f"{m.name}/"]
            tar.extractall(work, members=members, filter="data")
        (source,) = work.glob("llama_cpp_python-*/vendor/llama.cpp")
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        _say(log, "configuring")
        _run("cmake configure", ["cmake", "-S", str(source), "-B", str(folder / "build"), *generator, *CMAKE_FLAGS])
        _say(log, f"building (about 8 minutes on 2 cores; cached in {folder})")
        jobs = str(os.cpu_count() or 2)
        _run("cmake build", ["cmake", "--build", str(folder / "build"), "--target", "llama-server", "-j", jobs])


if __name__ == "__main__":
    try:
        print(llama_server_binary(sys.stderr))
    except BuildFailed as exc:
        sys.exit(f"llama-server: {exc}")
