"""Apple Silicon: one pool of unified memory, read from the GPU driver's IOAccelerator statistics.

`ioreg -r -d 1 -w 0 -c IOAccelerator -a` prints a plist whose PerformanceStatistics hold
"In use system memory" (bytes the GPU has wired), "Alloc system memory" and "Device Utilization %".
The GPU may wire at most `sysctl iogpu.wired_limit_mb` MB when that is set (0 means macOS's
default, which macOS does not publish).
"""

from __future__ import annotations

import plistlib
import subprocess
import time
from collections.abc import Callable
from typing import Any

from llmtop.collectors.gpu_reading import GpuReading

Runner = Callable[..., subprocess.CompletedProcess[bytes]]
IOREG = ["ioreg", "-r", "-d", "1", "-w", "0", "-c", "IOAccelerator", "-a"]
REFRESH_S = 1.0  # ioreg is a process start: read at most once a second


def _sysctl(run: Runner, name: str) -> str | None:
    try:
        done = run(["sysctl", "-n", name], capture_output=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = done.stdout.decode(errors="replace").strip() if done.returncode == 0 else ""
    return text or None


def parse_ioreg(plist: bytes) -> list[dict[str, Any]]:
    """The IOAccelerator entries' PerformanceStatistics (one per GPU)."""
    entries = plistlib.loads(plist)
    if isinstance(entries, dict):
        entries = [entries]
    return [e.get("PerformanceStatistics") or {} for e in entries if isinstance(e, dict)]


class AppleIoregReader:
    """Reads the unified-memory GPU through `ioreg` (the runner is a parameter for tests)."""

    name = "apple-ioreg"

    def __init__(self, run: Runner = subprocess.run, clock: Callable[[], float] = time.monotonic) -> None:
        self.run = run
        self.clock = clock
        chip = _sysctl(run, "machdep.cpu.brand_string") or "Apple GPU"
        self.gpu_name = f"{chip} GPU" if chip.startswith("Apple") else chip
        memsize = _sysctl(run, "hw.memsize")
        self.memory_bytes = int(memsize) if memsize and memsize.isdigit() else None
        limit = _sysctl(run, "iogpu.wired_limit_mb")
        self.wired_limit = int(limit) * 1024 * 1024 if limit and limit.isdigit() and int(limit) > 0 else None
        self._cache: tuple[float, list[GpuReading]] | None = None
        if not self._stats():
            raise LookupError("ioreg lists no IOAccelerator with performance statistics (not Apple Silicon?)")

    def close(self) -> None:
        pass

    def _stats(self) -> list[dict[str, Any]]:
        try:
            done = self.run(IOREG, capture_output=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LookupError(f"cannot run ioreg: {exc}") from None
        if done.returncode != 0:
            raise LookupError(f"ioreg failed: {done.stderr.decode(errors='replace').strip()}")
        return parse_ioreg(done.stdout)

    def read(self) -> list[GpuReading]:
        now = self.clock()
        if self._cache is not None and now - self._cache[0] < REFRESH_S:
            return self._cache[1]
        readings = []
        for index, stats in enumerate(self._stats()):
            in_use = stats.get("In use system memory")
            utilization = stats.get("Device Utilization %")
            reasons = {
                "shared": "not applicable: unified memory (GPU and CPU share one pool)",
                "ollama": "macOS does not report GPU memory per process",
            }
            total = self.wired_limit or self.memory_bytes
            if self.wired_limit is None:
                reasons["total"] = (
                    "the GPU limit is macOS's default (iogpu.wired_limit_mb unset): total shown is all RAM"
                )
            readings.append(
                GpuReading(
                    key=f"apple:{index}",
                    name=self.gpu_name,
                    backend=self.name,
                    dedicated_used=int(in_use) if isinstance(in_use, int) else None,
                    dedicated_total=total,
                    utilization_pct=float(utilization) if isinstance(utilization, (int, float)) else None,
                    unified=True,
                    reasons=reasons,
                )
            )
        self._cache = (now, readings)
        return readings
