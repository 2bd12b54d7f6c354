"""`--metrics [ADDR:]PORT`: an OpenMetrics/Prometheus endpoint made with `prometheus_client`.

Names and units follow Prometheus' conventions (`_total` counters, `_bytes`, `_seconds`, `_joules`).
Every value is read at scrape time from what llmtop already holds (the watch state's totals, the
collectors' latest samples), so a scrape costs a few microseconds per series and never blocks a
collector. Bound to 127.0.0.1 unless an address is given.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from llmtop.collectors.system_collectors import SystemCollectors
from llmtop.measure.summary import ram_used
from llmtop.ollama.hosts import app_url
from llmtop.watch.state import WatchState


class MetricsError(Exception):
    """The endpoint cannot be served; the message says why, naming the flag."""


class EnergyTotals:
    """Joules per power source since llmtop started, carried over the sources' segments (a reset)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, float]] = {}
        self.totals: dict[str, float] = {}
        self._lock = threading.Lock()

    def update(self, key: str, segment: int, energy: float) -> float:
        with self._lock:
            last = self._seen.get(key)
            step = energy - last[1] if last is not None and last[0] == segment else (0.0 if last is None else energy)
            self._seen[key] = (segment, energy)
            self.totals[key] = self.totals.get(key, 0.0) + max(step, 0.0)
            return self.totals[key]


class LlmtopMetrics(Collector):
    """The series of one llmtop process: per model from the watch state (per host and model where
    several servers are watched), the machine's from the collectors."""

    def __init__(self, state: WatchState | Mapping[str, WatchState], collectors: SystemCollectors) -> None:
        self.states: Mapping[str, WatchState] = state if isinstance(state, Mapping) else {"": state}
        self.collectors = collectors
        self.energy = EnergyTotals()

    @property
    def _by_host(self) -> bool:
        return len(self.states) > 1

    def collect(self) -> Iterator[Metric]:
        keys = ["host", "model"] if self._by_host else ["model"]
        families: dict[str, Any] = {
            "requests": CounterMetricFamily(
                "llmtop_requests", "Requests to generating endpoints that ended, per model.", labels=keys
            ),
            "prompt": CounterMetricFamily("llmtop_prompt_tokens", "Prompt tokens evaluated, per model.", labels=keys),
            "eval": CounterMetricFamily("llmtop_eval_tokens", "Tokens generated, per model.", labels=keys),
            "tps": GaugeMetricFamily(
                "llmtop_eval_tokens_per_second",
                "The last request's eval rate (eval_count / eval_duration), per model.",
                labels=keys,
            ),
            "offloaded": GaugeMetricFamily(
                "llmtop_model_layers_offloaded", "Layers on the GPU at the model's last load (server log).", labels=keys
            ),
            "layers": GaugeMetricFamily("llmtop_model_layers", "The model's layers (server log).", labels=keys),
            "context": GaugeMetricFamily(
                "llmtop_model_context_tokens", "The context the model was loaded with, in tokens.", labels=keys
            ),
            "size": GaugeMetricFamily("llmtop_model_size_bytes", "A loaded model's size (/api/ps).", labels=keys),
            "vram": GaugeMetricFamily(
                "llmtop_model_vram_bytes", "The part of a loaded model in GPU memory (/api/ps size_vram).", labels=keys
            ),
            "up": GaugeMetricFamily(
                "llmtop_server_up",
                "1 while the Ollama server answers /api/ps.",
                labels=["host"] if self._by_host else [],
            ),
        }
        for host, state in self.states.items():
            _, loaded, totals = state.snapshot()
            label = [host] if self._by_host else []
            for model, total in sorted(totals.items()):
                names = [*label, model]
                families["requests"].add_metric(names, total.requests)
                families["prompt"].add_metric(names, total.prompt_tokens)
                families["eval"].add_metric(names, total.eval_tokens)
                if total.last_eval_tps is not None:
                    families["tps"].add_metric(names, total.last_eval_tps)
                if total.layers_offloaded is not None:
                    families["offloaded"].add_metric(names, total.layers_offloaded)
                if total.layers_total is not None:
                    families["layers"].add_metric(names, total.layers_total)
                context = loaded[model].context if model in loaded and loaded[model].context else total.context
                if context is not None:
                    families["context"].add_metric(names, context)
            for name, listed in sorted(loaded.items()):
                families["size"].add_metric([*label, name], listed.size_bytes)
                families["vram"].add_metric([*label, name], listed.size_vram_bytes)
            families["up"].add_metric(label, 0 if state.server_problem else 1)
        yield from families.values()
        yield from self._machine()

    def _machine(self) -> Iterator[Metric]:
        collectors = self.collectors
        memory = collectors.memory.latest()
        process = collectors.processes.latest()
        if memory is not None:
            ram = GaugeMetricFamily(
                "llmtop_ram_used_bytes",
                "System RAM in use, counted as llmtop's RAM column counts it (Linux: with the Ollama processes' "
                "mapped files).",
            )
            ram.add_metric([], ram_used(memory, process))
            yield ram
            total = GaugeMetricFamily("llmtop_ram_total_bytes", "System RAM.")
            total.add_metric([], memory.total_bytes)
            yield total
        if process is not None and process.rss_bytes is not None:
            rss = GaugeMetricFamily(
                "llmtop_ollama_resident_bytes", "Resident memory of `ollama serve` and its runners."
            )
            rss.add_metric([], process.rss_bytes)
            yield rss
        gpu = collectors.gpu.latest() if collectors.gpu is not None else None
        if gpu is not None and gpu.gpus:
            used = GaugeMetricFamily(
                "llmtop_gpu_memory_used_bytes",
                "GPU memory in use: kind=dedicated (VRAM) or shared (system RAM lent to the GPU).",
                labels=["gpu", "name", "kind"],
            )
            for index, card in enumerate(gpu.gpus):
                if card.dedicated_used is not None:
                    used.add_metric([str(index), card.name, "dedicated"], card.dedicated_used)
                if card.shared_used is not None:
                    used.add_metric([str(index), card.name, "shared"], card.shared_used)
            yield used
        power = collectors.power.latest() if collectors.power is not None else None
        if power is not None and power.sources:
            watts = GaugeMetricFamily("llmtop_power_watts", "Power drawn now.", labels=["source", "kind"])
            joules = CounterMetricFamily(
                "llmtop_energy_joules", "Energy used since llmtop started.", labels=["source", "kind"]
            )
            for source in power.sources:
                if source.watts is not None:
                    watts.add_metric([source.name, source.kind], source.watts)
                if source.energy_j is not None:
                    joules_so_far = self.energy.update(source.key, source.segment, source.energy_j)
                    joules.add_metric([source.name, source.kind], joules_so_far)
            yield watts
            yield joules


class MetricsEndpoint:
    """The HTTP endpoint: `/metrics` in Prometheus' text format, or OpenMetrics where asked for."""

    def __init__(
        self, state: WatchState | Mapping[str, WatchState], collectors: SystemCollectors, address: str, port: int
    ) -> None:
        from prometheus_client import start_http_server

        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(LlmtopMetrics(state, collectors))
        try:
            self.server, self.thread = start_http_server(port, address, self.registry)
        except OSError as exc:
            why = "is in use" if exc.errno in (98, 48, 10048) else f"cannot be opened ({exc.strerror or exc})"
            raise MetricsError(f"--metrics: port {port} on {address} {why}") from None
        self.address, self.port = address, self.server.server_port

    @property
    def url(self) -> str:
        """Where a scraper on this machine reads the metrics (0.0.0.0 is no address to connect to)."""
        return f"{app_url(self.address, self.port)}/metrics"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
