"""NVIDIA GPUs' power through NVML (Linux and Windows alike).

Energy: `nvmlDeviceGetTotalEnergyConsumption`, millijoules since the driver was loaded (Volta and
newer), a counter; where a GPU does not support it, `nvmlDeviceGetPowerUsage` (milliwatts)
integrated over time. Watts: the power usage where supported, else from the counter's steps.
Limit: `nvmlDeviceGetEnforcedPowerLimit` (milliwatts).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from llmtop.collectors.gpu_nvidia import NvmlUnavailable, _error_name, _text, load_nvml, start_nvml
from llmtop.collectors.power_reading import FIRST_READING, CounterMeter, PowerMeter, PowerReading
from llmtop.data_folder import reader_failed

MILLI = 1e-3
ENERGY_COUNTER = "NVML total energy (counter)"
POWER_INTEGRATED = "NVML power usage (integrated)"


class NvmlPower:
    """Every NVIDIA GPU's power and energy. `nvml` is pynvml or a stand-in with its functions."""

    name = "nvml"

    def __init__(self, nvml: ModuleType | None = None) -> None:
        try:
            self.nvml = nvml or load_nvml()
            start_nvml(self.nvml)
        except NvmlUnavailable as exc:
            raise LookupError(str(exc)) from None
        nvml = self.nvml
        try:
            self.handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
            self.names = [_text(nvml.nvmlDeviceGetName(h)) for h in self.handles]
        except nvml.NVMLError as exc:
            self.close()
            raise LookupError(f"NVML cannot list the GPUs: {exc}") from None
        if not self.handles:
            self.close()
            raise LookupError("NVML found no NVIDIA GPU")
        self.counters: list[CounterMeter | None] = []
        self.meters: list[PowerMeter | None] = []
        self.why_not: list[str | None] = []
        for handle in self.handles:
            counter = self._supported(nvml.nvmlDeviceGetTotalEnergyConsumption, handle)
            power = self._supported(nvml.nvmlDeviceGetPowerUsage, handle)
            self.counters.append(CounterMeter(MILLI) if counter is None else None)
            self.meters.append(PowerMeter() if counter is not None and power is None else None)
            self.why_not.append(
                None
                if counter is None or power is None
                else f"NVML reads neither its energy ({counter}) nor its power ({power})"
            )
        self.limits = [self._limit(h) for h in self.handles]  # read once: it changes only by an admin's hand
        if all(self.why_not):
            why = self.why_not[0]
            self.close()
            raise LookupError(why)

    def _supported(self, call: Any, handle: Any) -> str | None:
        """None where the call works on this GPU, else the NVML error's name."""
        try:
            call(handle)
            return None
        except self.nvml.NVMLError as exc:
            return _error_name(self.nvml, exc)

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except self.nvml.NVMLError as exc:
            reader_failed("the NVIDIA power reader (NVML)", exc)

    def _watts(self, handle: Any) -> float | None:
        try:
            return int(self.nvml.nvmlDeviceGetPowerUsage(handle)) * MILLI
        except self.nvml.NVMLError:
            return None

    def _limit(self, handle: Any) -> float | None:
        try:
            return int(self.nvml.nvmlDeviceGetEnforcedPowerLimit(handle)) * MILLI
        except self.nvml.NVMLError:
            return None

    def read(self, t: float) -> list[PowerReading]:
        nvml = self.nvml
        readings = []
        for index, handle in enumerate(self.handles):
            counter, meter = self.counters[index], self.meters[index]
            base: dict[str, Any] = {"key": f"nvml:{index}", "name": self.names[index], "kind": "gpu"}
            if counter is None and meter is None:
                readings.append(PowerReading(**base, method="NVML", reason=self.why_not[index]))
                continue
            method = ENERGY_COUNTER if counter is not None else POWER_INTEGRATED
            try:
                if counter is not None:
                    energy, stepped, segment = counter.update(t, int(nvml.nvmlDeviceGetTotalEnergyConsumption(handle)))
                    watts = self._watts(handle)
                    watts = stepped if watts is None else watts
                else:
                    assert meter is not None
                    watts = int(nvml.nvmlDeviceGetPowerUsage(handle)) * MILLI
                    energy, segment = meter.update(t, watts)
            except nvml.NVMLError as exc:  # a GPU lost mid-run: this tick has no figure, the run goes on
                if meter is not None:
                    meter.lost()
                readings.append(PowerReading(**base, method=method, reason=f"NVML: {_error_name(nvml, exc)}"))
                continue
            readings.append(
                PowerReading(
                    **base,
                    method=method,
                    watts=watts,
                    energy_j=energy,
                    segment=segment,
                    limit_w=self.limits[index],
                    reason=None if watts is not None else FIRST_READING,
                )
            )
        return readings
