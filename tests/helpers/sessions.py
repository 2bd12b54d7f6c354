"""Collectors that follow the Ollama double's loaded model (memory, processes)."""

from __future__ import annotations

from llmtop.collectors.ollama_processes import OllamaProcessSample
from llmtop.collectors.system_collectors import SystemCollectors
from llmtop.collectors.system_memory import SystemMemorySample

GB = 10**9


def collectors_watching(double):
    """Memory that follows the double: 20 GB in use, plus 44 GB while it has the model loaded."""

    def memory(now):
        used = 20 * GB + (44 * GB if double.loaded else 0)
        return SystemMemorySample(now, 64 * GB, 64 * GB - used, 0, 0)

    def processes(now):
        return OllamaProcessSample(now, 1 * GB + (43 * GB if double.loaded else 0), 0, 10, ())

    return SystemCollectors(interval=0.02, memory_reader=memory, process_reader=processes)
