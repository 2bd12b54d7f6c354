"""The machine's temperatures, for a cool-down between runs: psutil.sensors_temperatures() (Linux and
FreeBSD: the hwmon chips, CPU packages such as coretemp and k10temp, amdgpu's edge; none on Windows
and macOS), and each NVIDIA GPU's core temperature from the GPU readings (NVML)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import psutil as _psutil

from llmtop.data_folder import guarded


def hottest_by_chip(sensors: dict[str, Any]) -> dict[str, float]:
    """Each chip's hottest reading in °C (`coretemp`: the package or its hottest core), leaving out
    readings of 0 or less and above 150 (a sensor not wired, or a driver's placeholder)."""
    hottest: dict[str, float] = {}
    for chip, readings in sensors.items():
        values = [float(r.current) for r in readings if r.current is not None and 0 < float(r.current) <= 150]
        if values:
            hottest[chip] = max(values)
    return hottest


class TemperatureReader:
    """Reads the chips' temperatures with `psutil` (a module or a stand-in with sensors_temperatures)."""

    def __init__(self, psutil: ModuleType | Any = _psutil) -> None:
        self._psutil = psutil

    def read(self) -> dict[str, float]:
        """Each chip's hottest temperature now; {} where the platform reads none."""
        read = getattr(self._psutil, "sensors_temperatures", None)
        if read is None:
            return {}
        # OSError: a sysfs file that vanished mid-read, a driver that errs
        return guarded("the temperature reader", lambda: hottest_by_chip(read() or {}), {}, (OSError,))
