"""Upstream llama.cpp's `llama-server`, the runner of Ollama 0.30 and later, built from the llama.cpp
that the source distribution of llama-cpp-python vendors whole: for the CPU, and with llama.cpp's
Vulkan backend, which runs on Mesa's software Vulkan driver (lavapipe): a GPU of a kind on a machine
without one (../shared/vulkan-gpu.md).

Each build takes about 8 minutes on 2 cores, so it is cached outside the clone
(`$LLMTOP_ENGINE_CACHE`, else `~/.cache/llmtop-engine`), one folder per llama-cpp-python version and
backend: only the first run on a machine pays. `python tests/llama_server_build.py [--vulkan]` builds
it up front.
"""

from __future__ import annotations

import ctypes.util
import fcntl
import glob
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


# Debian 12's Vulkan headers (1.3.239) lack VK_EXT_layer_settings, which ggml-vulkan uses: Debian 13's
# (1.4.309) are fetched with apt into the build's folder, nothing installed; the loader stays the machine's.
NEWER_HEADERS_SUITE = "trixie"
LAVAPIPE_ICD = "/usr/share/vulkan/icd.d/lvp_icd.*.json"
# ggml-vulkan skips a CPU-type device (lavapipe) unless it is named in this variable.
VISIBLE_DEVICES = {"GGML_VK_VISIBLE_DEVICES": "0"}


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


def llama_server_binary(log: object = None, vulkan: bool = False) -> Path:
    """The path of a working `llama-server` (`vulkan`: with llama.cpp's Vulkan backend), built on the
    first call on this machine; BuildFailed."""
    version = llama_cpp_version()
    folder = cache_root() / (f"llama-server-vulkan-{version}" if vulkan else f"llama-server-{version}")
    binary = folder / "build" / "bin" / "llama-server"
    if works(binary):
        return binary
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:  # one build at a time on a machine
        fcntl.flock(lock, fcntl.LOCK_EX)
        if works(binary):
            return binary
        _build(version, folder, log, _vulkan_flags(folder, log) if vulkan else [])
    if not works(binary):
        raise BuildFailed(f"the build finished but {binary} does not start")
    return binary


def vulkan_missing() -> str | None:
    """Why llama.cpp's Vulkan backend cannot run on a software GPU here; None when it can."""
    if not sys.platform.startswith("linux"):
        return "the software GPU (Mesa's lavapipe) is set up for Linux only"
    if ctypes.util.find_library("vulkan") is None:
        return "no Vulkan loader (apt-get install libvulkan1 mesa-vulkan-drivers)"
    if not glob.glob(LAVAPIPE_ICD):
        return "no software Vulkan driver (apt-get install mesa-vulkan-drivers: Mesa's lavapipe)"
    if shutil.which("glslc") is None:
        return "no glslc to compile ggml-vulkan's shaders (apt-get install glslc)"
    return None


def _vulkan_loader() -> str:
    for folder in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"):
        if Path(folder, "libvulkan.so.1").is_file():
            return str(Path(folder, "libvulkan.so.1"))
    raise BuildFailed("no libvulkan.so.1 found (apt-get install libvulkan1)")


def _vulkan_flags(folder: Path, log: object) -> list[str]:
    """CMake's flags for the Vulkan backend: the machine's loader; the Vulkan and SPIR-V headers of the
    machine where they are new enough, else Debian 13's, fetched."""
    problem = vulkan_missing()
    if problem:
        raise BuildFailed(problem)
    flags = ["-DGGML_VULKAN=ON", f"-DVulkan_LIBRARY={_vulkan_loader()}"]
    system = Path("/usr/include/vulkan/vulkan_core.h")
    new_enough = system.is_file() and "VK_EXT_layer_settings" in system.read_text(encoding="utf-8", errors="replace")
    if new_enough and glob.glob("/usr/*/cmake/SPIRV-Headers/SPIRV-HeadersConfig.cmake"):
        return flags
    prefix = _newer_vulkan_headers(folder, log)
    return [
        *flags,
        f"-DVulkan_INCLUDE_DIR={prefix / 'include'}",
        f"-DSPIRV-Headers_DIR={prefix / 'share' / 'cmake' / 'SPIRV-Headers'}",
    ]


def _newer_vulkan_headers(folder: Path, log: object) -> Path:
    """Debian 13's libvulkan-dev and spirv-headers unpacked under `folder` (apt's own download, through a
    private configuration that names only that suite on the mirror the machine's apt uses): their
    prefix (`.../usr`)."""
    prefix = folder / "vulkan-headers" / "usr"
    if (prefix / "include" / "vulkan" / "vulkan_core.h").is_file() and (prefix / "share" / "cmake").is_dir():
        return prefix
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise BuildFailed("ggml-vulkan needs Vulkan headers 1.3.260 or newer and SPIR-V headers; apt is not here")
    apt = folder / "apt"
    for part in ("lists/partial", "cache/archives/partial", "deb"):
        (apt / part).mkdir(parents=True, exist_ok=True)
    (apt / "sources.list").write_text(f"deb {_debian_mirror()} {NEWER_HEADERS_SUITE} main\n", encoding="utf-8")
    options = [
        f"-oDir::Etc::SourceList={apt / 'sources.list'}", "-oDir::Etc::SourceParts=/dev/null",
        f"-oDir::State::Lists={apt / 'lists'}", f"-oDir::Cache={apt / 'cache'}", "-oAPT::Sandbox::User=root",
    ]  # fmt: skip
    packages = ["libvulkan-dev", "spirv-headers"]
    _say(log, f"fetching Debian {NEWER_HEADERS_SUITE}'s {' and '.join(packages)} for their headers")
    _run("apt-get update (private)", ["apt-get", *options, "update"])
    _run("apt-get download", ["apt-get", *options, "download", *packages], cwd=apt / "deb")
    for deb in sorted((apt / "deb").glob("*.deb")):
        _run("dpkg -x", ["dpkg", "-x", str(deb), str(folder / "vulkan-headers")])
    return prefix


def _debian_mirror() -> str:
    """The Debian mirror the machine's apt uses (deb.debian.org where none is named)."""
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if words[:1] == ["deb"] and len(words) >= 3 and "/debian" in words[1] and "security" not in words[1]:
                return words[1] if not words[1].startswith("[") else words[2]
            if line.startswith("URIs:") and "/debian" in line and "security" not in line:
                return line.split()[1]
    return "http://deb.debian.org/debian"


def _say(log: object, text: str) -> None:
    write = getattr(log, "write", None)
    if write is not None:
        write(f"llama-server build: {text}\n")


def _build(version: str, folder: Path, log: object, extra_flags: list[str]) -> None:
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
        flags = [*CMAKE_FLAGS, *extra_flags]
        _run("cmake configure", ["cmake", "-S", str(source), "-B", str(folder / "build"), *generator, *flags])
        _say(log, f"building (about 8 minutes on 2 cores; cached in {folder})")
        jobs = str(os.cpu_count() or 2)
        _run("cmake build", ["cmake", "--build", str(folder / "build"), "--target", "llama-server", "-j", jobs])


if __name__ == "__main__":
    try:
        print(llama_server_binary(sys.stderr, vulkan="--vulkan" in sys.argv[1:]))
    except BuildFailed as exc:
        sys.exit(f"llama-server: {exc}")
