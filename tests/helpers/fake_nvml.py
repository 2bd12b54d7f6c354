"""pynvml's functions over recorded values, errors pynvml's own classes; with energy counters."""

from __future__ import annotations

from types import SimpleNamespace

import pynvml

GiB = 1024**3


class FakeNvml:
    """pynvml's functions over recorded values; errors are pynvml's own classes."""

    NVMLError = pynvml.NVMLError
    nvmlMemory_v2 = pynvml.nvmlMemory_v2

    def __init__(self, v2=True, init_error=None, utilization_error=None, processes=(), wddm=False, count=1):
        self.v2, self.init_error, self.utilization_error = v2, init_error, utilization_error
        self.processes, self.wddm, self.count = processes, wddm, count
        self.shutdown = False

    def nvmlInit(self):
        if self.init_error:
            raise self.init_error

    def nvmlShutdown(self):
        self.shutdown = True

    def nvmlDeviceGetCount(self):
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index):
        return f"handle{index}"

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA GeForce RTX 4060 Ti"  # older bindings return bytes

    def nvmlDeviceGetPciInfo(self, handle):
        return SimpleNamespace(busId=b"00000000:01:00.0")

    def nvmlDeviceGetMemoryInfo(self, handle, version=None):
        if version is not None:
            if not self.v2:
                raise pynvml.NVMLError_FunctionNotFound()
            return SimpleNamespace(total=16 * GiB, free=2 * GiB, used=13 * GiB, reserved=1 * GiB, version=version)
        return SimpleNamespace(total=16 * GiB, free=2 * GiB, used=14 * GiB)

    def nvmlDeviceGetUtilizationRates(self, handle):
        if self.utilization_error:
            raise self.utilization_error
        return SimpleNamespace(gpu=93, memory=60)

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        memory = None if self.wddm else None
        return [SimpleNamespace(pid=pid, usedGpuMemory=memory if self.wddm else used) for pid, used in self.processes]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle):
        raise pynvml.NVMLError_NotSupported()


class EnergyNvml(FakeNvml):
    """NVML with the energy and power calls: `energy_mj` and `power_mw` are set by the test; None
    makes the call unsupported, as on GPUs before Volta."""

    def __init__(self, energy_mj=0, power_mw=250_000, limit_mw=450_000, **kwargs):
        super().__init__(**kwargs)
        self.energy_mj, self.power_mw, self.limit_mw = energy_mj, power_mw, limit_mw
        self.lost = False

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if self.lost:
            raise pynvml.NVMLError_GpuIsLost()
        if self.energy_mj is None:
            raise pynvml.NVMLError_NotSupported()
        return self.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle):
        if self.lost:
            raise pynvml.NVMLError_GpuIsLost()
        if self.power_mw is None:
            raise pynvml.NVMLError_NotSupported()
        return self.power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return self.limit_mw
