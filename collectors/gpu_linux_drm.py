"""AMD and Intel GPUs on Linux, from sysfs and /proc (no library needed), and AMD through amdsmi.

AMD (amdgpu driver), per card in `/sys/class/drm/cardN/device/`: `vendor` 0x1002,
`mem_info_vram_used|total`, `mem_info_vis_vram_used|total`, `mem_info_gtt_used|total` (GTT is the
system RAM the GPU maps: the shared GPU memory), `gpu_busy_percent`. Intel (i915/xe, vendor 0x8086)
publishes no device-wide memory use in sysfs: only the per-process figures from fdinfo.
Roots are parameters (and `LLMTOP_SYSFS_ROOT`, `LLMTOP_PROC_ROOT`) so tests read recorded trees
and containers can point at the host's /sys.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from llmtop.collectors.drm_fdinfo import process_gpu_memory
from llmtop.collectors.gpu_reading import GpuReading, Pids, no_pids
from llmtop.data_folder import Failed, attempt, guarded

AMD_VENDOR = "0x1002"
INTEL_VENDOR = "0x8086"
FDINFO_DENIED = (
    "the Ollama processes' /proc/PID/fdinfo is not readable by this user (run llmtop as the ollama "
    "user or with sudo); device-wide figures are still shown"
)


def sysfs_root() -> Path:
    return Path(os.environ.get("LLMTOP_SYSFS_ROOT") or "/sys")


def proc_root() -> Path:
    return Path(os.environ.get("LLMTOP_PROC_ROOT") or "/proc")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _number(path: Path) -> int | None:
    text = _read(path)
    return int(text) if text is not None and text.isdigit() else None


def _pci_slot(device: Path) -> str | None:
    for line in (_read(device / "uevent") or "").splitlines():
        if line.startswith("PCI_SLOT_NAME="):
            return line.split("=", 1)[1]
    return None


def ollama_share(
    proc: Path, pids: frozenset[int], drivers: tuple[str, ...], pdev: str | None
) -> tuple[int | None, int | None, str | None]:
    """(dedicated, shared, why not) for the Ollama processes on one device, from fdinfo."""
    if not pids:
        return None, None, "no Ollama process found on this machine"
    usage = process_gpu_memory(proc, pids, drivers, pdev)
    if usage.denied and usage.clients == 0:
        return None, None, FDINFO_DENIED
    return usage.dedicated or 0, usage.shared or 0, None


def drm_cards(root: Path, vendor: str) -> list[Path]:
    """`card0`, `card1`, ... (not connectors like card0-DP-1) whose PCI vendor matches."""
    folder = root / "class" / "drm"
    try:
        names = sorted(os.listdir(folder), key=lambda n: int(n[4:]) if re.fullmatch(r"card\d+", n) else -1)
    except OSError:
        return []
    return [
        folder / n for n in names if re.fullmatch(r"card\d+", n) and _read(folder / n / "device" / "vendor") == vendor
    ]


class AmdSysfsReader:
    """Every amdgpu card under `sysfs`, with the Ollama processes' share from fdinfo under `proc`."""

    name = "amd-sysfs"

    def __init__(self, sysfs: Path | None = None, proc: Path | None = None, pids: Pids = no_pids) -> None:
        self.sysfs = sysfs or sysfs_root()
        self.proc = proc or proc_root()
        self.pids = pids
        self.cards = [c for c in drm_cards(self.sysfs, AMD_VENDOR) if (c / "device" / "mem_info_vram_total").exists()]
        if not self.cards:
            raise LookupError(f"no AMD GPU with the amdgpu driver under {self.sysfs / 'class' / 'drm'}")

    def close(self) -> None:
        pass

    def _ollama(self, pids: frozenset[int], pdev: str | None) -> tuple[int | None, int | None, str | None]:
        """(dedicated, shared, why not) of the Ollama processes on the device at `pdev`."""
        return ollama_share(self.proc, pids, ("amdgpu",), pdev)

    def read(self) -> list[GpuReading]:
        readings = []
        pids = self.pids()
        for card in self.cards:
            device = card / "device"
            reasons: dict[str, str] = {}
            name = _read(device / "product_name") or f"AMD GPU {card.name} ({_read(device / 'device') or '?'})"
            busy = _number(device / "gpu_busy_percent")
            if busy is None:
                reasons["utilization"] = "gpu_busy_percent not readable"
            gtt_used, gtt_total = _number(device / "mem_info_gtt_used"), _number(device / "mem_info_gtt_total")
            if gtt_used is None:
                reasons["shared"] = "mem_info_gtt_used not readable"
            ollama_dedicated, ollama_shared, why = self._ollama(pids, _pci_slot(device))
            if why:
                reasons["ollama"] = why
            readings.append(
                GpuReading(
                    key=f"amd:{card.name}",
                    name=name,
                    backend=self.name,
                    dedicated_used=_number(device / "mem_info_vram_used"),
                    dedicated_total=_number(device / "mem_info_vram_total"),
                    shared_used=gtt_used,
                    shared_total=gtt_total,
                    utilization_pct=float(busy) if busy is not None else None,
                    ollama_dedicated=ollama_dedicated,
                    ollama_shared=ollama_shared,
                    bus_id=_pci_slot(device),
                    reasons=reasons,
                )
            )
        return readings


class IntelFdinfoReader:
    """Intel GPUs: the Ollama processes' memory from fdinfo (device-wide use is not published)."""

    name = "intel-fdinfo"

    def __init__(self, sysfs: Path | None = None, proc: Path | None = None, pids: Pids = no_pids) -> None:
        self.sysfs = sysfs or sysfs_root()
        self.proc = proc or proc_root()
        self.pids = pids
        self.cards = drm_cards(self.sysfs, INTEL_VENDOR)
        if not self.cards:
            raise LookupError(f"no Intel GPU under {self.sysfs / 'class' / 'drm'}")

    def close(self) -> None:
        pass

    def read(self) -> list[GpuReading]:
        readings = []
        pids = self.pids()
        for card in self.cards:
            device = card / "device"
            why = "the i915/xe drivers publish no device-wide memory use; the Ollama processes' share is shown"
            reasons = {"dedicated": why, "shared": why, "utilization": "not read for Intel GPUs"}
            ollama_dedicated, ollama_shared, share_why = ollama_share(
                self.proc, pids, ("i915", "xe"), _pci_slot(device)
            )
            if share_why:
                reasons["ollama"] = share_why
            readings.append(
                GpuReading(
                    key=f"intel:{card.name}",
                    name=_read(device / "product_name") or f"Intel GPU {card.name} ({_read(device / 'device') or '?'})",
                    backend=self.name,
                    ollama_dedicated=ollama_dedicated,
                    ollama_shared=ollama_shared,
                    bus_id=_pci_slot(device),
                    reasons=reasons,
                )
            )
        return readings


def load_amdsmi() -> ModuleType:
    """Import amdsmi quietly: without ROCm's libamd_smi it prints to stdout and raises KeyError."""
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            import amdsmi
    except BaseException as exc:  # KeyError, OSError, ImportError...: all mean "not usable here"
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        said = sink.getvalue().strip().splitlines()
        detail = said[-1] if said else f"{type(exc).__name__}: {exc}"
        raise LookupError(f"amdsmi is not usable (ROCm's libamd_smi not installed?): {detail}") from None
    return amdsmi


_AMDSMI = "the AMD GPU reader (amdsmi)"


class AmdSmiReader:
    """AMD GPUs through amdsmi (ROCm's library), when it is installed; names come from it too."""

    name = "amdsmi"

    def __init__(self, amdsmi: ModuleType | None = None) -> None:
        self.amdsmi = amdsmi or load_amdsmi()
        handles = attempt(self._start)  # amdsmi's own errors (AmdSmiException and kin) vary by release
        if isinstance(handles, Failed):
            raise LookupError(f"amdsmi failed to start: {handles.exc}")
        self.handles = handles
        if not self.handles:
            self.close()
            raise LookupError("amdsmi found no AMD GPU")
        self.names = [self._name(h, i) for i, h in enumerate(self.handles)]

    def _start(self) -> list[Any]:
        self.amdsmi.amdsmi_init()
        return list(self.amdsmi.amdsmi_get_processor_handles())

    def _name(self, handle: Any, index: int) -> str:
        market = guarded(_AMDSMI, lambda: self.amdsmi.amdsmi_get_gpu_asic_info(handle).get("market_name"), None)
        return str(market or f"AMD GPU {index}")

    def close(self) -> None:
        guarded(_AMDSMI, self.amdsmi.amdsmi_shut_down, None)

    def read(self) -> list[GpuReading]:
        amdsmi = self.amdsmi
        memory = amdsmi.AmdSmiMemoryType
        readings = []
        for index, (handle, name) in enumerate(zip(self.handles, self.names, strict=True)):
            reasons: dict[str, str] = {"ollama": "per-process figures come from fdinfo (amd-sysfs)"}
            utilization = None
            busy = attempt(lambda: amdsmi.amdsmi_get_gpu_activity(handle).get("gfx_activity"))  # noqa: B023
            if isinstance(busy, Failed):
                reasons["utilization"] = f"amdsmi: {busy.exc}"
            elif isinstance(busy, (int, float)):
                utilization = float(busy)
            readings.append(
                GpuReading(
                    key=f"amdsmi:{index}",
                    name=name,
                    backend=self.name,
                    dedicated_used=int(amdsmi.amdsmi_get_gpu_memory_usage(handle, memory.VRAM)),
                    dedicated_total=int(amdsmi.amdsmi_get_gpu_memory_total(handle, memory.VRAM)),
                    shared_used=int(amdsmi.amdsmi_get_gpu_memory_usage(handle, memory.GTT)),
                    shared_total=int(amdsmi.amdsmi_get_gpu_memory_total(handle, memory.GTT)),
                    utilization_pct=utilization,
                    bus_id=self._bus_id(handle),
                    reasons=reasons,
                )
            )
        return readings

    def _bus_id(self, handle: Any) -> str | None:
        bdf = guarded(_AMDSMI, partial(self.amdsmi.amdsmi_get_gpu_device_bdf, handle), None)
        return None if bdf is None else str(bdf)
