"""System RAM and swap: `/proc/meminfo` and `/proc/zoneinfo` on Linux, psutil elsewhere."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import psutil as _psutil

from llmtop.collectors.kept_file import KeptFile
from llmtop.collectors.process_memory import default_proc_root

PAGE_SIZE = 4096  # /proc/zoneinfo counts pages of the base page size (4 KiB on the platforms llmtop runs on)
_PCP_COUNT = re.compile(rb"^\s+count:\s+(\d+)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class SystemMemorySample:
    """One reading of system memory, in bytes.

    `used_bytes` is total - available - percpu_free: what Task Manager calls "In use" and what
    `free` shows as total minus available, except that on Linux the free pages parked on the
    kernel's per-CPU lists are counted as free too (`MemAvailable` leaves them out). psutil's own
    `used` is defined differently on each platform, so it is not used here.
    """

    t: float
    total_bytes: int
    available_bytes: int
    swap_used_bytes: int
    swap_total_bytes: int
    percpu_free_bytes: int = 0

    @property
    def used_bytes(self) -> int:
        return self.total_bytes - self.available_bytes - self.percpu_free_bytes


_MEMINFO_FIELDS = re.compile(rb"^(MemTotal|MemAvailable|SwapTotal|SwapFree):\s+(\d+) kB", re.MULTILINE)


def parse_meminfo(text: str) -> dict[str, int]:
    """`/proc/meminfo` as bytes per field (the file counts kB)."""
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        number = rest.split()
        if number and number[0].isdigit():
            values[key] = int(number[0]) * (1024 if number[1:] == ["kB"] else 1)
    return values


def percpu_free_bytes(zoneinfo: bytes) -> int:
    """Free pages held on the per-CPU page lists (each pageset's `count:` in /proc/zoneinfo).

    The kernel counts them neither in MemFree nor in MemAvailable. Since Linux 6.7 tunes the
    lists' size to the load, they can hold hundreds of MB: a process that frees memory gives pages
    to them and the next allocation takes them back, so without them `total - available` misses
    allocations (seen here: a child touching 307 MB moved it by 110-197 MB; with them, by 307).
    """
    return sum(int(n) for n in _PCP_COUNT.findall(zoneinfo)) * PAGE_SIZE


class SystemMemoryReader:
    """Reads SystemMemorySample: from `proc_root` (meminfo, zoneinfo) on Linux, else from psutil
    (a stand-in module may be passed for tests)."""

    def __init__(self, psutil_module: ModuleType = _psutil, proc_root: Path | None = None) -> None:
        self._psutil = psutil_module
        self._proc = proc_root if proc_root is not None else default_proc_root() if psutil_module is _psutil else None
        if self._proc is not None:
            self._meminfo, self._zoneinfo = KeptFile(self._proc / "meminfo"), KeptFile(self._proc / "zoneinfo")
        self._zoneinfo_missing = False

    def __call__(self, now: float) -> SystemMemorySample:
        if self._proc is not None:
            return self._from_proc(now, self._proc)
        vm = self._psutil.virtual_memory()
        try:
            swap = self._psutil.swap_memory()
            swap_used, swap_total = int(swap.used), int(swap.total)
        except (OSError, RuntimeError):  # no swap accounting (some containers)
            swap_used = swap_total = 0
        return SystemMemorySample(
            t=now,
            total_bytes=int(vm.total),
            available_bytes=int(vm.available),
            swap_used_bytes=swap_used,
            swap_total_bytes=swap_total,
        )

    def _from_proc(self, now: float, proc: Path) -> SystemMemorySample:
        # The four fields needed, in kB: a full parse of the file costs four times as much.
        meminfo = {key.decode(): int(kb) * 1024 for key, kb in _MEMINFO_FIELDS.findall(self._meminfo.read())}
        if "MemTotal" not in meminfo or "MemAvailable" not in meminfo:
            raise ValueError(f"{proc / 'meminfo'} has no MemTotal or MemAvailable")
        percpu = 0
        if not self._zoneinfo_missing:
            try:
                percpu = percpu_free_bytes(self._zoneinfo.read())
            except OSError:  # not exposed (some containers): MemAvailable alone
                self._zoneinfo_missing = True
        swap_total = meminfo.get("SwapTotal", 0)
        return SystemMemorySample(
            t=now,
            total_bytes=meminfo["MemTotal"],
            available_bytes=meminfo["MemAvailable"],
            swap_used_bytes=swap_total - meminfo.get("SwapFree", swap_total),
            swap_total_bytes=swap_total,
            percpu_free_bytes=percpu,
        )
