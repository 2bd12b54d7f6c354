"""Recorded power sources: a powercap tree in the layout the kernel's intel_rapl driver makes (a
package zone, its core sub-zone, psys, and the MMIO copy of the package), amdgpu's and i915's hwmon
files, and counters that advance in real time (a writer thread), wrapping as RAPL's do."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from gpu_trees import AMD_CARD, write_tree

RAPL_RANGE_UJ = 262143328850  # max_energy_range_uj of a desktop Intel package (2^32 units of 61 uJ)


def rapl_tree(root: Path, energy_uj: int = 1_000_000, max_range: int = RAPL_RANGE_UJ) -> Path:
    """/sys/class/powercap as a desktop Intel machine has it."""
    zones = "class/powercap"
    write_tree(
        root,
        {
            f"{zones}/intel-rapl/enabled": "1\n",
            f"{zones}/intel-rapl:0/name": "package-0\n",
            f"{zones}/intel-rapl:0/energy_uj": f"{energy_uj}\n",
            f"{zones}/intel-rapl:0/max_energy_range_uj": f"{max_range}\n",
            f"{zones}/intel-rapl:0/constraint_0_name": "long_term\n",
            f"{zones}/intel-rapl:0/constraint_0_power_limit_uw": "125000000\n",
            f"{zones}/intel-rapl:0:0/name": "core\n",
            f"{zones}/intel-rapl:0:0/energy_uj": "5000\n",
            f"{zones}/intel-rapl:0:0/max_energy_range_uj": f"{max_range}\n",
            f"{zones}/intel-rapl:1/name": "psys\n",
            f"{zones}/intel-rapl:1/energy_uj": "99000000\n",
            f"{zones}/intel-rapl:1/max_energy_range_uj": f"{max_range}\n",
            f"{zones}/intel-rapl-mmio:0/name": "package-0\n",
            f"{zones}/intel-rapl-mmio:0/energy_uj": f"{energy_uj}\n",
        },
    )
    return root


def amd_hwmon_tree(root: Path, power_uw: int = 154_000_000, file: str = "power1_average") -> Path:
    """The Radeon of gpu_trees with its hwmon folder (amdgpu: microwatts)."""
    device = "class/drm/card1/device"
    files = {f"{device}/{k}": v for k, v in AMD_CARD.items()}
    files.update(
        {
            f"{device}/hwmon/hwmon3/name": "amdgpu\n",
            f"{device}/hwmon/hwmon3/{file}": f"{power_uw}\n",
            f"{device}/hwmon/hwmon3/power1_cap": "190000000\n",
        }
    )
    write_tree(root, files)
    return root


def intel_hwmon_tree(root: Path, energy_uj: int = 7_000_000) -> Path:
    """A discrete Intel Arc card with i915's hwmon energy counter."""
    device = "class/drm/card0/device"
    write_tree(
        root,
        {
            f"{device}/vendor": "0x8086\n",
            f"{device}/device": "0x56a0\n",
            f"{device}/uevent": "DRIVER=i915\nPCI_SLOT_NAME=0000:03:00.0\n",
            f"{device}/hwmon/hwmon5/name": "i915\n",
            f"{device}/hwmon/hwmon5/energy1_input": f"{energy_uj}\n",
            f"{device}/hwmon/hwmon5/power1_max": "190000000\n",
        },
    )
    return root


def write_value(path: Path, value: int) -> None:
    """Replace a sysfs file's number the way a reader sees it: whole (write, then rename)."""
    temporary = path.with_name(path.name + ".new")
    temporary.write_text(f"{value}\n")
    temporary.replace(path)


class RunningCounter:
    """A thread that keeps a counter file at `start + watts * elapsed` (microjoules), wrapping at
    `wrap`; `energy_uj(t)` is what it wrote for time t, unwrapped."""

    def __init__(self, path: Path, watts: float, wrap: int | None = None, start: int = 0, step_s: float = 0.005):
        self.path, self.watts, self.wrap, self.start, self.step_s = path, watts, wrap, start, step_s
        self._stop = threading.Event()
        self.t0 = time.monotonic()
        self.max_gap_s = 0.0  # the longest time between two writes: what a read may lag behind
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def energy_uj(self, t: float) -> int:
        return self.start + int(self.watts * 1e6 * (t - self.t0))

    def _loop(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            self.max_gap_s = max(self.max_gap_s, now - last)
            last = now
            value = self.energy_uj(now)
            write_value(self.path, value % self.wrap if self.wrap else value)
            self._stop.wait(self.step_s)

    def __enter__(self) -> RunningCounter:
        write_value(self.path, self.start)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
