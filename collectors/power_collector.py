"""Finds the power sources that work on this machine and reads them all at each tick.

Per platform: Linux reads the CPU package from powercap and the GPUs from NVML and hwmon; Windows
the CPU package from EMI where a driver implements it and NVIDIA GPUs from NVML; macOS publishes
power only to root (`powermetrics`), so it has none. Every source not read has its reason, which
the screen and `llmtop doctor` show.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from llmtop.collectors.power_reading import PowerReading, PowerSample, PowerSource
from llmtop.data_folder import Failed, attempt, guarded

APPLE = (
    "macOS gives CPU and GPU power only to root, through powermetrics (sudo powermetrics --samplers "
    "cpu_power,gpu_power); llmtop does not run as root"
)


@dataclass(frozen=True)
class PowerReport:
    """What probing one power backend found: its sources, or why it cannot be used here."""

    backend: str
    kind: str  # "cpu" or "gpu": what it would measure
    available: bool
    detail: str
    sources: tuple[PowerReading, ...] = ()


class PowerCollector:
    """Reads every working source; a sampler calls it with the monotonic time, and so may the
    session (at the edges of a run's phases), hence the lock."""

    def __init__(self, sources: list[PowerSource], reports: list[PowerReport]) -> None:
        self.sources = sources
        self.reports = reports
        self._lock = threading.Lock()
        self._last_t = float("-inf")

    def unavailable(self, kind: str) -> str | None:
        """Why nothing of `kind` ("cpu", "gpu") is measured, one clause per backend tried; None when
        something of that kind is."""
        if any(r.available and r.kind == kind for r in self.reports):
            return None
        tried = [r for r in self.reports if r.kind == kind]
        return "; ".join(f"{r.backend}: {r.detail}" for r in tried) or "no source for it on this platform"

    def __call__(self, now: float) -> PowerSample:
        with self._lock:
            t = self._last_t = max(now, self._last_t)  # two threads: a meter never sees time go back
            readings: list[PowerReading] = []
            problems = []
            for source in self.sources:
                read = attempt(partial(source.read, t))  # one failing does not hide the others
                if isinstance(read, Failed):
                    problems.append(f"{source.name}: {read.text}")
                else:
                    readings.extend(read)
            return PowerSample(t, tuple(readings), tuple(problems))

    def close(self) -> None:
        for source in self.sources:  # one source failing to close does not keep the others open
            guarded(f"the power source {source.name}", source.close, None)


def power_unavailable(collector: PowerCollector) -> dict[str, str]:
    """Why each kind ("cpu", "gpu") that has no source is not measured."""
    return {kind: why for kind in ("cpu", "gpu") if (why := collector.unavailable(kind)) is not None}


Factory = Callable[[], PowerSource]


def _started(factory: Factory, now: float) -> tuple[PowerSource, list[PowerReading]]:
    """A backend's source and its first reading."""
    source = factory()
    return source, source.read(now)


def _factories(
    platform: str, sysfs: Path | None, nvml: ModuleType | None, emi: Callable[[], list[Any]] | None
) -> list[tuple[str, str, Factory]]:
    from llmtop.collectors import power_linux, power_nvidia, power_windows

    nvidia = ("nvml", "gpu", lambda: power_nvidia.NvmlPower(nvml))
    if platform == "win32":
        return [("windows-emi", "cpu", lambda: power_windows.EmiPackages(emi)), nvidia]
    if platform == "darwin":
        return []
    return [
        ("powercap", "cpu", lambda: power_linux.RaplPackages(sysfs)),
        nvidia,
        ("amd-hwmon", "gpu", lambda: power_linux.AmdHwmonPower(sysfs)),
        ("intel-hwmon", "gpu", lambda: power_linux.IntelHwmonEnergy(sysfs)),
    ]


def probe_power_sources(
    platform: str = sys.platform,
    sysfs: Path | None = None,
    nvml: ModuleType | None = None,
    emi: Callable[[], list[Any]] | None = None,
    clock: Callable[[], float] | None = None,
) -> PowerCollector:
    """Try every power backend of this platform; the collector reads those that work."""
    import time

    now = (clock or time.monotonic)()
    sources: list[PowerSource] = []
    reports = []
    if platform == "darwin":
        reports = [PowerReport("powermetrics", "cpu", False, APPLE), PowerReport("powermetrics", "gpu", False, APPLE)]
    for name, kind, factory in _factories(platform, sysfs, nvml, emi):
        started = attempt(partial(_started, factory, now))  # a backend's failure is a reason
        if isinstance(started, Failed):
            reports.append(PowerReport(name, kind, False, started.detail))
            continue
        source, first = started
        sources.append(source)
        names = ", ".join(r.name for r in first) or "nothing"
        reports.append(PowerReport(name, kind, True, f"reads {names}", tuple(first)))
    if platform == "win32" and not any(r.available and r.kind == "gpu" for r in reports):
        from llmtop.collectors.power_windows import OTHER_GPUS

        reports.append(PowerReport("windows", "gpu", False, OTHER_GPUS))
    return PowerCollector(sources, reports)
