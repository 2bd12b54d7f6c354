"""System RAM and swap, read with psutil."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import psutil as _psutil


@dataclass(frozen=True, slots=True)
class SystemMemorySample:
    """One reading of system memory, in bytes.

    `used_bytes` is total - available: what Task Manager calls "In use" and what `free` shows as
    total minus available. psutil's own `used` is defined differently on each platform, so it is
    not used here.
    """

    t: float
    total_bytes: int
    available_bytes: int
    swap_used_bytes: int
    swap_total_bytes: int

    @property
    def used_bytes(self) -> int:
        return self.total_bytes - self.available_bytes


class SystemMemoryReader:
    """Reads SystemMemorySample from psutil (a stand-in module may be passed for tests)."""

    def __init__(self, psutil_module: ModuleType = _psutil) -> None:
        self._psutil = psutil_module

    def __call__(self, now: float) -> SystemMemorySample:
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
