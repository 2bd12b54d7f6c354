"""A log line as users paste it, made readable: prefixes, colour codes and CR gone, Go's `key=value`
pairs read, sizes (`16.2 GiB`) in bytes, a device's name (`CUDA0`, `Vulkan_Host`) to its backend."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from llmtop.units import switch

MAX_LINE = 64 * 1024  # longer lines are cut before matching: no pattern needs more

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_PAIR = re.compile(r'([A-Za-z_][\w.\-]*)=("(?:[^"\\]|\\.)*"|\S*)')
_PREFIXES = re.compile(r"^(?:>+ ?)+")
_SIZE = re.compile(r"\s*([\d.]+)\s*([KMGT]i?B|B)\s*")
_UNITS = {
    "B": 1,
    "KB": 1000,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
}
_DEVICE_LIBRARIES = (
    ("cuda", "cuda"),
    ("rocm", "rocm"),
    ("metal", "metal"),
    ("vulkan", "vulkan"),
    ("sycl", "oneapi"),
    ("cpu", "cpu"),
)


def size_bytes(text: str | None) -> int | None:
    """`"16.2 GiB"` -> bytes; None when it is not a size."""
    match = _SIZE.fullmatch(text or "")
    if not match:
        return None
    try:
        return int(float(match.group(1)) * _UNITS[match.group(2)])
    except (ValueError, KeyError):
        return None


def logfmt(text: str) -> dict[str, str]:
    """`key=value key2="quoted value"` pairs (Go's slog text format), quotes removed."""
    pairs = {}
    for key, value in _PAIR.findall(text):
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        pairs[key] = value
    return pairs


def clean_line(raw: str) -> str:
    """Drop colour codes, CR, and quoting (`>>> `, `> `) from one log line."""
    line = _ANSI.sub("", raw[:MAX_LINE]).replace("\r", "").rstrip("\n")
    return _PREFIXES.sub("", line)


def library_from_device(device: str) -> str | None:
    """The backend a device's name belongs to (`ROCm0` -> rocm, `SYCL0` -> oneapi); None: not one."""
    name = device.lower()
    return next((library for prefix, library in _DEVICE_LIBRARIES if name.startswith(prefix)), None)


def is_host_memory(device: str) -> bool:
    """CPU, CPU_Mapped, CPU_REPACK and CUDA_Host are system RAM, not GPU memory."""
    return device.upper().startswith("CPU") or device.endswith("_Host")


def on_off(value: str) -> str:
    """`on`, `off` or `auto` for the ways the log writes flash attention (1, enabled, true, ...)."""
    state = switch(value)
    return value.strip().lower() if state is None else "on" if state else "off"


def split_lines(chunks: Iterable[bytes], max_line: int = MAX_LINE) -> Iterator[str]:
    """Bytes (any chunking) to text lines: invalid UTF-8 replaced, over-long lines cut into pieces
    of `max_line` bytes, a last line without newline still given."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        while True:
            cut = pending.find(b"\n")
            if cut < 0:
                break
            line, pending = pending[:cut], pending[cut + 1 :]
            for start in range(0, max(len(line), 1), max_line):
                yield line[start : start + max_line].decode("utf-8", errors="replace")
        while len(pending) > max_line:
            yield pending[:max_line].decode("utf-8", errors="replace")
            pending = pending[max_line:]
    if pending:
        yield pending.decode("utf-8", errors="replace")
