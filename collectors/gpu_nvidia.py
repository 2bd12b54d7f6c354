"""NVIDIA GPUs through NVML (the `nvidia-ml-py` distribution, imported as `pynvml`).

Memory: `nvmlDeviceGetMemoryInfo` version 2 where the driver has it (`nvmlDeviceGetMemoryInfo_v2`,
which also reports the driver's reserved memory), else version 1. Used is shown as total - free,
and reserved apart. Per process: compute and graphics processes' `usedGpuMemory`, which NVML
cannot give under Windows' WDDM driver model (it is None there). NVML has no shared-memory figure.
Clock: what holds it down now (`nvmlDeviceGetCurrentClocksEventReasons`: a power cap, a thermal or
hardware slowdown), for "slow for this machine".
"""

from __future__ import annotations

import importlib
import sys
from functools import partial
from types import ModuleType
from typing import Any

from llmtop.collectors.gpu_reading import GpuReading, Pids, no_pids
from llmtop.data_folder import Failed, attempt, reader_failed


class NvmlUnavailable(Exception):
    """NVML cannot be used here; the message says why."""


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _error_name(nvml: ModuleType, exc: Exception) -> str:
    """The NVMLError subclass name without its prefix, e.g. `FunctionNotFound`."""
    return type(exc).__name__.removeprefix("NVMLError_") if isinstance(exc, nvml.NVMLError) else type(exc).__name__


def load_nvml() -> ModuleType:
    """Import pynvml (from nvidia-ml-py); NvmlUnavailable when it is not installed."""
    pynvml = attempt(partial(importlib.import_module, "pynvml"))  # an old `pynvml` may fail in its own ways
    if isinstance(pynvml, Failed):
        raise NvmlUnavailable(f"cannot import pynvml (install nvidia-ml-py): {pynvml.exc}")
    return pynvml


def start_nvml(nvml: ModuleType) -> None:
    """`nvmlInit`, with NvmlUnavailable saying why it failed in a user's words."""
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        kind = _error_name(nvml, exc)
        if kind == "LibraryNotFound":
            raise NvmlUnavailable("no NVIDIA driver: the NVML library (libnvidia-ml / nvml.dll) is not found") from None
        if kind == "DriverNotLoaded":
            raise NvmlUnavailable("the NVIDIA driver is installed but not loaded") from None
        raise NvmlUnavailable(f"NVML failed to start: {exc}") from None


# NVML's clock event reasons (formerly "throttle reasons") that mean the clock is held below what the
# work asks for: a cap or the card protecting itself. Idle, application clocks, sync boost and the
# display's are not limits on a generation.
CLOCK_LIMITS = (
    (0x4, "power cap"),  # SwPowerCap
    (0x8, "hardware slowdown"),  # HwSlowdown
    (0x20, "thermal slowdown"),  # SwThermalSlowdown
    (0x40, "thermal slowdown"),  # HwThermalSlowdown
    (0x80, "power brake"),  # HwPowerBrakeSlowdown
)


def clock_limits(mask: int) -> tuple[str, ...]:
    """The CLOCK_LIMITS named in NVML's reasons bitmask, each once, in CLOCK_LIMITS' order."""
    named: list[str] = []
    for bit, name in CLOCK_LIMITS:
        if mask & bit and name not in named:
            named.append(name)
    return tuple(named)


class NvmlReader:
    """Reads every NVIDIA GPU. `nvml` is the pynvml module or a stand-in with the same functions."""

    name = "nvml"

    def __init__(self, nvml: ModuleType | None = None, pids: Pids = no_pids, platform: str = sys.platform) -> None:
        self.nvml = nvml or load_nvml()
        self.pids = pids
        self.platform = platform
        nvml = self.nvml
        start_nvml(nvml)
        try:
            count = nvml.nvmlDeviceGetCount()
            self.handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self.names = [_text(nvml.nvmlDeviceGetName(h)) for h in self.handles]
            self.bus_ids = [self._bus_id(h) for h in self.handles]
        except nvml.NVMLError as exc:
            self.close()
            raise NvmlUnavailable(f"NVML cannot list the GPUs: {exc}") from None
        if not self.handles:
            self.close()
            raise NvmlUnavailable("NVML found no NVIDIA GPU")
        self.memory_v2 = self._has_memory_v2()

    def _bus_id(self, handle: Any) -> str | None:
        try:
            return _text(self.nvml.nvmlDeviceGetPciInfo(handle).busId)
        except self.nvml.NVMLError:  # a GPU or driver that does not say: the reading goes without it
            return None

    def _has_memory_v2(self) -> bool:
        nvml = self.nvml
        version = getattr(nvml, "nvmlMemory_v2", None)
        if version is None:
            return False
        try:
            nvml.nvmlDeviceGetMemoryInfo(self.handles[0], version=version)
            return True
        except TypeError:  # an old binding without the version argument
            return False
        except nvml.NVMLError as exc:
            if _error_name(nvml, exc) in ("FunctionNotFound", "NotSupported"):
                return False
            raise

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except self.nvml.NVMLError as exc:
            reader_failed("the NVIDIA GPU reader (NVML)", exc)

    def _memory(self, handle: Any) -> tuple[int, int, int | None]:
        """(total, free, reserved or None)."""
        if self.memory_v2:
            info = self.nvml.nvmlDeviceGetMemoryInfo(handle, version=self.nvml.nvmlMemory_v2)
            return int(info.total), int(info.free), int(info.reserved)
        info = self.nvml.nvmlDeviceGetMemoryInfo(handle)
        return int(info.total), int(info.free), None

    def _ollama_memory(self, handle: Any) -> tuple[int | None, str | None]:
        nvml = self.nvml
        pids = self.pids()
        if not pids:
            return None, "no Ollama process found on this machine"
        processes = []
        for query in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            try:
                processes.extend(getattr(nvml, query)(handle))
            except nvml.NVMLError as exc:
                if _error_name(nvml, exc) not in ("NotSupported", "FunctionNotFound", "NotFound"):
                    return None, f"NVML cannot list processes: {exc}"
        ours = {p.pid: p for p in processes if p.pid in pids}  # compute and graphics may list one twice
        if not ours:
            return 0, None
        if any(p.usedGpuMemory is None for p in ours.values()):
            return None, "NVML cannot tell a process's memory under Windows' WDDM driver model"
        return sum(int(p.usedGpuMemory) for p in ours.values()), None

    def _clock_limits(self, handle: Any) -> tuple[tuple[str, ...], str | None]:
        """What holds the clock down now, and why it cannot be read (drivers before 535 name the
        query ...ThrottleReasons; some boards support neither)."""
        for query in ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"):
            read = getattr(self.nvml, query, None)
            if read is None:
                continue
            try:
                return clock_limits(int(read(handle))), None
            except self.nvml.NVMLError as exc:
                if _error_name(self.nvml, exc) == "FunctionNotFound":
                    continue
                return (), f"NVML: {_error_name(self.nvml, exc)}"
        return (), "this NVML has no clock event reasons"

    def read(self) -> list[GpuReading]:
        nvml = self.nvml
        readings = []
        for index, (handle, name, bus_id) in enumerate(zip(self.handles, self.names, self.bus_ids, strict=True)):
            reasons = {}
            total, free, reserved = self._memory(handle)
            if reserved is None:
                reasons["reserved"] = "this driver has no nvmlDeviceGetMemoryInfo_v2"
            try:
                utilization: float | None = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except nvml.NVMLError as exc:
                utilization = None
                reasons["utilization"] = f"NVML: {_error_name(nvml, exc)}"
            ollama, why = self._ollama_memory(handle)
            if why:
                reasons["ollama"] = why
            limits, why = self._clock_limits(handle)
            if why:
                reasons["clock_limits"] = why
            try:
                temperature: float | None = float(nvml.nvmlDeviceGetTemperature(handle, 0))  # NVML_TEMPERATURE_GPU
            except (nvml.NVMLError, AttributeError) as exc:  # AttributeError: a binding without the query
                temperature = None
                reasons["temperature"] = f"NVML: {_error_name(nvml, exc) if isinstance(exc, nvml.NVMLError) else exc}"
            reasons["shared"] = (
                "read from Windows performance counters"
                if self.platform == "win32"
                else "not applicable: NVIDIA on Linux does not lend system RAM as GPU memory"
            )
            readings.append(
                GpuReading(
                    key=f"nvml:{index}",
                    name=name,
                    backend=self.name,
                    dedicated_used=total - free,
                    dedicated_total=total,
                    reserved=reserved,
                    utilization_pct=utilization,
                    ollama_dedicated=ollama,
                    bus_id=bus_id,
                    clock_limits=limits,
                    temperature_c=temperature,
                    reasons=reasons,
                )
            )
        return readings
