"""The samplers that run for the whole session: system RAM, the Ollama process tree, the GPUs, power;
and the CPU's use, read at a run's edges."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmtop.collectors.cpu_load import CpuLoadReader, CpuReading
from llmtop.collectors.gpu_reading import GpuSample
from llmtop.collectors.ollama_processes import OllamaProcessReader, OllamaProcessSample
from llmtop.collectors.power_reading import PowerSample
from llmtop.collectors.sampler import Sampler, SharedTimer
from llmtop.collectors.system_memory import SystemMemoryReader, SystemMemorySample
from llmtop.data_folder import guarded

DEFAULT_INTERVAL_S = 0.25
POWER_INTERVAL_S = 0.5  # counters need no faster reading; integrated power is averaged by the card


class SystemCollectors:
    """Starts and stops the samplers of every source, on one shared timer (a slow reader gets a
    thread of its own); readers may be replaced for tests."""

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL_S,
        memory_reader: Callable[[float], SystemMemorySample] | None = None,
        process_reader: Callable[[float], OllamaProcessSample] | None = None,
        gpu_reader: Callable[[float], GpuSample] | None = None,
        gpu_unavailable: str = "GPUs not probed",
        cpu_reader: CpuLoadReader | None = None,
    ) -> None:
        """`cpu_reader`: read the CPU's use at a run's edges (cpu_load.py; default: psutil's)."""
        self.memory: Sampler[SystemMemorySample] = Sampler("ram", memory_reader or SystemMemoryReader(), interval)
        self._process_reader = process_reader or OllamaProcessReader()
        self.processes: Sampler[OllamaProcessSample] = Sampler("ollama-rss", self._process_reader, interval)
        self.gpu: Sampler[GpuSample] | None = Sampler("gpu", gpu_reader, interval) if gpu_reader else None
        self.gpu_unavailable = gpu_unavailable  # why `gpu` is None
        self.power: Sampler[PowerSample] | None = None
        self.power_unavailable: dict[str, str] = {"cpu": "power not probed", "gpu": "power not probed"}
        self._timer: SharedTimer | None = None
        self._cpu_reader = cpu_reader

    def use_gpus(self, reader: Callable[[float], GpuSample] | None, unavailable: str = "") -> None:
        """Sample the GPUs with `reader` (before start()); None keeps the reason why not."""
        self.gpu = Sampler("gpu", reader, self.memory.interval) if reader else None
        self.gpu_unavailable = unavailable

    def use_power(self, reader: Callable[[float], PowerSample] | None, unavailable: dict[str, str]) -> None:
        """Sample power with `reader` (before start()); `unavailable`: why a kind ("cpu", "gpu") is
        not measured, for each kind that is not."""
        interval = max(POWER_INTERVAL_S, self.memory.interval)
        self.power = Sampler("power", reader, interval) if reader else None
        self.power_unavailable = dict(unavailable)

    def sample_power(self) -> None:
        """One power reading now (the edges of a run's phases), so its energy is counted to the moment."""
        if self.power is not None:
            self.power.sample_now()

    def expect_load(self, loading: bool = True) -> None:
        """A model load is beginning: have the process reader find its runner at once (False: it
        is over, the first token came)."""
        look = getattr(self._process_reader, "look_for_runner", None)
        if look is not None:
            look(loading)

    def ollama_pids(self) -> frozenset[int]:
        """The Ollama server and runner PIDs in the latest process sample (for per-process GPU memory)."""
        sample = self.processes.latest()
        if sample is None or sample.server_pid is None and not sample.runner_pids:
            return frozenset()
        return frozenset(p for p in (sample.server_pid, *sample.runner_pids) if p is not None)

    def read_cpu(self, t: float) -> CpuReading | None:
        """The CPU's use so far (cpu_load.py), at a run's first token and end; None where unreadable."""
        if self._cpu_reader is None:  # psutil may not open this process (a sandbox)
            self._cpu_reader = guarded("the CPU load reader", CpuLoadReader, None)
            if self._cpu_reader is None:
                return None
        return self._cpu_reader.read(t, self.ollama_pids())

    def by_source(self) -> dict[str, Sampler[Any]]:
        """Each running sampler by the name its samples have in a recording: `ram`, `ollama-rss`,
        `gpu`, `power` (those not read are left out)."""
        named = (("ram", self.memory), ("ollama-rss", self.processes), ("gpu", self.gpu), ("power", self.power))
        return {name: sampler for name, sampler in named if sampler is not None}

    def _samplers(self) -> list[Sampler[Any]]:
        return list(self.by_source().values())

    def start(self) -> None:
        if self._timer is not None:
            raise RuntimeError("the collectors are already sampling")
        self._timer = SharedTimer(self._samplers())
        self._timer.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    @property
    def running(self) -> bool:
        """Whether the samplers are being read."""
        return self._timer is not None
