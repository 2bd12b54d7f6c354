"""How fast this machine's memory reads, where no history says: a short probe of system memory (every
core reading a buffer of its own at once), kept with the machine's identity, and the GPUs' figures from
their vendors (NVML's memory bus width and clock, the PCIe link from NVML or sysfs). Never run during a
measurement: `llmtop fit` asks for them. The figures are raw; measure/bandwidth.py makes rates of them."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

PROBE_BYTES = 256 * 2**20  # each process's buffer: far beyond any cache
PROBE_PASSES = 4
NVML_CLOCK_MEM = 2  # nvmlClockType_t's NVML_CLOCK_MEM
LINK_SPEEDS = {"2.5": 1, "5.0": 2, "8.0": 3, "16.0": 4, "32.0": 5, "64.0": 6}  # GT/s a lane -> PCIe generation


def _scan(size: int, passes: int, start: Any, out: Any) -> None:  # pragma: no cover - runs in a child
    buffer = bytearray(b"\x00") * size  # written, so every page is real memory, not the shared zero page
    start.wait()
    began = time.perf_counter()
    for _ in range(passes):
        buffer.find(b"\x01")  # memchr over the buffer: a read of every byte, vectorised
    out.put((size * passes, time.perf_counter() - began))


def probe_cpu(processes: int | None = None, size: int = PROBE_BYTES, passes: int = PROBE_PASSES) -> float:
    """System memory's read rate in bytes a second: `processes` (one a core) each scan a buffer of
    their own `passes` times, all at once; the bytes read over the slowest one's time."""
    count = processes or os.cpu_count() or 1
    context: Any = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    start, out = context.Barrier(count), context.Queue()
    workers = [context.Process(target=_scan, args=(size, passes, start, out), daemon=True) for _ in range(count)]
    for worker in workers:
        worker.start()
    try:
        results = [out.get(timeout=120) for _ in workers]
    finally:
        for worker in workers:
            worker.join(10)
    slowest = max(seconds for _, seconds in results)
    return sum(read for read, _ in results) / slowest if slowest > 0 else 0.0


@dataclass(frozen=True)
class ProbeCache:
    """The probe's figure kept in a file, with the machine it was measured on and the day."""

    path: Path

    def read(self, machine: str) -> tuple[float, str] | None:
        """(bytes a second, the day measured) for this machine; None where none is kept."""
        try:
            kept = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(kept, dict) or kept.get("machine") != machine or not kept.get("bytes_per_s"):
            return None
        return float(kept["bytes_per_s"]), str(kept.get("measured_at"))

    def write(self, machine: str, bytes_per_s: float, when: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"machine": machine, "bytes_per_s": bytes_per_s, "measured_at": when}))


@dataclass(frozen=True)
class VendorFigures:
    """What a GPU's vendor says of it: its memory bus's width and clock, its PCIe link (None: not said)."""

    name: str
    bus_bits: int | None = None
    memory_clock_mhz: float | None = None
    link_generation: int | None = None
    link_width: int | None = None


def nvidia_figures(nvml: ModuleType) -> list[VendorFigures]:
    """Each NVIDIA GPU's memory bus width, its memory's highest clock and its PCIe link now (a figure
    NVML does not give is None); NVML's own errors are the caller's."""

    def ask(handle: Any, function: str, *args: Any) -> Any:
        try:
            return getattr(nvml, function)(handle, *args)
        except (nvml.NVMLError, AttributeError):
            return None

    found = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = nvml.nvmlDeviceGetName(handle)
        found.append(
            VendorFigures(
                name.decode() if isinstance(name, bytes) else str(name),
                ask(handle, "nvmlDeviceGetMemoryBusWidth"),
                ask(handle, "nvmlDeviceGetMaxClockInfo", NVML_CLOCK_MEM),
                ask(handle, "nvmlDeviceGetCurrPcieLinkGeneration"),
                ask(handle, "nvmlDeviceGetCurrPcieLinkWidth"),
            )
        )
    return found


def sysfs_link(device: Path) -> tuple[int, int] | None:
    """A PCI device's link from sysfs (`current_link_speed` "16.0 GT/s PCIe", `current_link_width` "8"):
    (PCIe generation, lanes); an AMD or Intel GPU's way to system memory. None where not readable."""
    try:
        speed = (device / "current_link_speed").read_text().split()[0]
        width = int((device / "current_link_width").read_text().strip())
    except (OSError, ValueError, IndexError):
        return None
    generation = LINK_SPEEDS.get(speed)
    return (generation, width) if generation else None


def pci_device(sysfs: Path, bus_id: str) -> Path | None:
    """A PCI device's sysfs folder from its address (`0000:03:00.0`): /sys/bus/pci/devices/ADDRESS, else
    the DRM card whose device has that slot."""
    direct = sysfs / "bus" / "pci" / "devices" / bus_id
    if direct.is_dir():
        return direct
    for device in sorted((sysfs / "class" / "drm").glob("card*/device")):
        try:
            if f"PCI_SLOT_NAME={bus_id}" in (device / "uevent").read_text().split():
                return device
        except OSError:
            continue
    return None
