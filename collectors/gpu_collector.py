"""Finds the GPU backends that work on this machine and reads them all at each tick.

Order matters where two backends see the same GPU: the first one's figures win, the next one
fills what it lacks (NVML's exact VRAM with the Windows counters' shared memory; amdsmi's device
figures with fdinfo's per-process share from sysfs).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from llmtop.collectors.gpu_reading import GpuReader, GpuReading, GpuSample, Pids, no_pids, same_gpu
from llmtop.data_folder import Failed, attempt, guarded

Factory = Callable[[], GpuReader]


@dataclass(frozen=True)
class BackendReport:
    """What probing one backend found: the GPUs it reads, or why it cannot be used here."""

    backend: str
    available: bool
    detail: str
    gpus: tuple[GpuReading, ...] = ()


def merge_readings(readings: list[GpuReading]) -> list[GpuReading]:
    """One reading per GPU: a later backend's reading of a GPU already seen fills its gaps."""
    merged: list[GpuReading] = []
    for reading in readings:
        for i, seen in enumerate(merged):
            if reading.backend not in seen.backend.split("+") and same_gpu(seen, reading):
                merged[i] = seen.merged_with(reading)
                break
        else:
            merged.append(reading)
    return merged


class GpuCollector:
    """Reads every working backend; a sampler calls it with the monotonic time."""

    def __init__(self, readers: list[GpuReader], reports: list[BackendReport]) -> None:
        self.readers = readers
        self.reports = reports

    @property
    def unavailable_reason(self) -> str:
        """Why no GPU can be read, one clause per backend tried."""
        return "; ".join(f"{r.backend}: {r.detail}" for r in self.reports if not r.available) or "no backend"

    def __call__(self, now: float) -> GpuSample:
        readings: list[GpuReading] = []
        problems = []
        for reader in self.readers:
            read = attempt(reader.read)  # one backend failing this tick does not hide the others
            if isinstance(read, Failed):
                problems.append(f"{reader.name}: {read.text}")
            else:
                readings.extend(read)
        return GpuSample(now, tuple(merge_readings(readings)), tuple(problems))

    def close(self) -> None:
        for reader in self.readers:  # one reader failing to close does not keep the others open
            guarded(f"the GPU reader {reader.name}", reader.close, None)


def _started(factory: Callable[[], GpuReader]) -> tuple[GpuReader, list[GpuReading]]:
    """A backend's reader and its first reading."""
    reader = factory()
    return reader, reader.read()


def _factories(
    platform: str,
    pids: Pids,
    sysfs: Path | None,
    proc: Path | None,
    nvml: ModuleType | None,
    amdsmi: ModuleType | None,
    pdh_read: Callable[[], Any] | None,
    dxgi: Callable[[], list[Any]] | None,
    run: Callable[..., Any],
) -> list[tuple[str, Factory]]:
    from llmtop.collectors import gpu_apple, gpu_linux_drm, gpu_nvidia, gpu_windows

    def nvidia() -> GpuReader:
        try:
            return gpu_nvidia.NvmlReader(nvml, pids, platform)
        except gpu_nvidia.NvmlUnavailable as exc:
            raise LookupError(str(exc)) from None

    def windows() -> GpuReader:
        adapters = (dxgi or gpu_windows.dxgi_adapters)()
        return gpu_windows.WindowsCountersReader(pdh_read or gpu_windows.Win32PdhQuery(), adapters, pids)

    if platform == "win32":
        return [("nvml", nvidia), ("windows-pdh", windows)]
    if platform == "darwin":
        return [("apple-ioreg", lambda: gpu_apple.AppleIoregReader(run))]
    return [
        ("nvml", nvidia),
        ("amdsmi", lambda: gpu_linux_drm.AmdSmiReader(amdsmi)),
        ("amd-sysfs", lambda: gpu_linux_drm.AmdSysfsReader(sysfs, proc, pids)),
        ("intel-fdinfo", lambda: gpu_linux_drm.IntelFdinfoReader(sysfs, proc, pids)),
    ]


def probe_gpu_backends(
    platform: str = sys.platform,
    pids: Pids = no_pids,
    sysfs: Path | None = None,
    proc: Path | None = None,
    nvml: ModuleType | None = None,
    amdsmi: ModuleType | None = None,
    pdh_read: Callable[[], Any] | None = None,
    dxgi: Callable[[], list[Any]] | None = None,
    run: Callable[..., Any] = subprocess.run,
) -> GpuCollector:
    """Try every backend of this platform; the collector reads those that work."""
    readers: list[GpuReader] = []
    reports = []
    for name, factory in _factories(platform, pids, sysfs, proc, nvml, amdsmi, pdh_read, dxgi, run):
        started = attempt(partial(_started, factory))  # a backend's failure is a reason
        if isinstance(started, Failed):
            reports.append(BackendReport(name, False, started.detail))
            continue
        reader, first = started
        readers.append(reader)
        names = ", ".join(g.name for g in first) or "no GPU"
        reports.append(BackendReport(name, True, f"reads {names}", tuple(first)))
    return GpuCollector(readers, reports)
