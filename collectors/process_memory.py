"""A process's resident memory, and the part of it that the system's "in use" figure leaves out.

A model runner maps its weights file into memory (llama.cpp's `use_mmap`, on by default). How the
operating system counts those pages differs:

- Linux: mapped file pages are page cache. `MemAvailable` counts the file LRU lists as available
  (the kernel's `si_mem_available()`), so `total - available` leaves mapped weights out entirely,
  while the process's RSS includes them as `RssFile` (Documentation/filesystems/proc.rst: VmRSS =
  RssAnon + RssFile + RssShmem). Read from `/proc/PID/status`, one small file per process.
- Windows: a mapped page in a process's working set is in use; `ullAvailPhys` of
  GlobalMemoryStatusEx (psutil's `available`) is the standby, free and zero lists only. Nothing is
  left out, so no file-backed figure is needed (psutil's `rss` is the working set).
- macOS: psutil's `available` is free + inactive pages: mapped weights count as in use while their
  pages are active (read every token) and not once they age to the inactive queue; no per-process
  figure tells which, so none is added.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class ProcessMemory:
    """Resident bytes of one process; `file_bytes` is its resident file-backed memory where the
    platform's in-use figure leaves it out (Linux), else None."""

    rss_bytes: int
    file_bytes: int | None = None


def default_proc_root() -> Path | None:
    """`LLMTOP_PROC_ROOT` or `/proc` on Linux; None elsewhere (psutil is read instead)."""
    if not sys.platform.startswith("linux"):
        return None
    return Path(os.environ.get("LLMTOP_PROC_ROOT") or "/proc")


def parse_status(text: str) -> ProcessMemory | None:
    """VmRSS and RssFile of `/proc/PID/status` (kB); None without VmRSS (a zombie or a kernel
    thread has no memory), no file-backed figure on a kernel before 4.5 (no RssFile)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "RssFile:")):
            key, _, rest = line.partition(":")
            number = rest.split()
            if number and number[0].isdigit():
                values[key] = int(number[0]) * 1024
    if "VmRSS" not in values:
        return None
    return ProcessMemory(values["VmRSS"], values.get("RssFile"))


class ProcessMemoryReader:
    """Reads ProcessMemory for a psutil process: from `proc_root/PID/status` where a proc root is
    given (Linux), else psutil's `memory_info().rss`. None when the process is gone or unreadable."""

    def __init__(self, proc_root: Path | None) -> None:
        self.proc_root = proc_root

    def __call__(self, proc: Any) -> ProcessMemory | None:
        if self.proc_root is not None:
            try:
                with open(self.proc_root / str(proc.pid) / "status", encoding="ascii", errors="replace") as handle:
                    memory = parse_status(handle.read())
            except OSError:
                return None  # gone (or hidden): the caller looks again
            return memory
        try:
            return ProcessMemory(int(proc.memory_info().rss))
        except Exception:  # gone, or another user's process (AccessDenied)
            return None
