"""The samplers that run for the whole session: system RAM and the Ollama process tree."""

from __future__ import annotations

from collections.abc import Callable

from llmtop.collectors.ollama_processes import OllamaProcessReader, OllamaProcessSample
from llmtop.collectors.sampler import Sampler
from llmtop.collectors.system_memory import SystemMemoryReader, SystemMemorySample

DEFAULT_INTERVAL_S = 0.25


class SystemCollectors:
    """Starts and stops one sampler thread per source; readers may be replaced for tests."""

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL_S,
        memory_reader: Callable[[float], SystemMemorySample] | None = None,
        process_reader: Callable[[float], OllamaProcessSample] | None = None,
    ) -> None:
        self.memory: Sampler[SystemMemorySample] = Sampler("ram", memory_reader or SystemMemoryReader(), interval)
        self.processes: Sampler[OllamaProcessSample] = Sampler(
            "ollama-rss", process_reader or OllamaProcessReader(), interval
        )

    def start(self) -> None:
        self.memory.start()
        self.processes.start()

    def stop(self) -> None:
        self.memory.stop()
        self.processes.stop()
