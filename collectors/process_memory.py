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
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil as _psutil

from llmtop.collectors.kept_file import KeptFile
from llmtop.data_folder import guarded


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


_STATUS_FIELDS = re.compile(r"^(VmRSS|RssFile):\s+(\d+)", re.MULTILINE)


def parse_status(text: str) -> ProcessMemory | None:
    """VmRSS and RssFile of `/proc/PID/status` (kB); None without VmRSS (a zombie or a kernel
    thread has no memory), no file-backed figure on a kernel before 4.5 (no RssFile)."""
    values = {key: int(kb) * 1024 for key, kb in _STATUS_FIELDS.findall(text)}
    if "VmRSS" not in values:
        return None
    return ProcessMemory(values["VmRSS"], values.get("RssFile"))


class ProcessMemoryReader:
    """Reads ProcessMemory for a psutil process: from `proc_root/PID/status` where a proc root is
    given (Linux), else psutil's `memory_info().rss`. None when the process is gone or unreadable."""

    def __init__(self, proc_root: Path | None) -> None:
        self.proc_root = proc_root
        self._files: dict[int, KeptFile] = {}  # each process's status file, kept open while it is read

    def keep_only(self, pids: set[int]) -> None:
        """Close the files of the processes no longer read."""
        for pid in [p for p in self._files if p not in pids]:
            self._files.pop(pid).close()

    def __call__(self, proc: Any) -> ProcessMemory | None:
        if self.proc_root is not None:
            status = self._files.get(proc.pid)
            if status is None:
                status = self._files[proc.pid] = KeptFile(self.proc_root / str(proc.pid) / "status", reopen=False)
            try:
                return parse_status(status.read().decode("ascii", errors="replace"))
            except OSError:
                self._files.pop(proc.pid, None)  # gone (or hidden): the caller looks again
                return None
        # gone, or another user's process (AccessDenied): no figure
        rss = guarded("the process memory reader", lambda: int(proc.memory_info().rss), None, (_psutil.Error, OSError))
        return None if rss is None else ProcessMemory(rss)
