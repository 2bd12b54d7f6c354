"""The figures the screens show while a run (or a watch) goes on, computed here once, by the same
rules as the summary row: RAM with the mapped weights, each gauge's increase over the baseline, the
spill, the idle power and the energy so far. Pure: the apps only format and lay them out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmtop.collectors.gpu_reading import GpuReading
from llmtop.collectors.ollama_processes import OllamaProcessSample
from llmtop.collectors.power_reading import PowerSample
from llmtop.collectors.system_memory import SystemMemorySample
from llmtop.measure.energy import RunEnergy, Window, energy_span, run_energy
from llmtop.measure.summary import RunRecord, baseline_start, counts_mapped_apart, is_spill, ram_used


@dataclass(frozen=True)
class RamNow:
    """RAM as the RAM gauge shows it. `used` is the system's in-use memory plus, where the platform
    counts mapped files apart (Linux), the Ollama processes' file-backed memory (the mapped
    weights); `in_use` is the first part alone where the two differ."""

    used: int
    total: int
    delta: int | None  # over the run's baseline
    in_use: int | None  # set where `used` includes mapped weights


def _minus(value: float | None, base: float | None) -> float | None:
    return value - base if value is not None and base is not None else None


def ram_now(
    memory: SystemMemorySample,
    process: OllamaProcessSample | None,
    base_memory: SystemMemorySample | None,
    base_process: OllamaProcessSample | None,
) -> RamNow:
    """RAM now and its increase over the baseline, the mapped weights counted once (as the summary
    row's RAM figure is)."""
    if not counts_mapped_apart(process) or (base_memory is not None and not counts_mapped_apart(base_process)):
        delta = _minus(memory.used_bytes, base_memory.used_bytes if base_memory else None)
        return RamNow(memory.used_bytes, memory.total_bytes, None if delta is None else int(delta), None)
    used = ram_used(memory, process)
    delta = _minus(used, ram_used(base_memory, base_process) if base_memory is not None else None)
    return RamNow(used, memory.total_bytes, None if delta is None else int(delta), memory.used_bytes)


def process_deltas(process: OllamaProcessSample, base: OllamaProcessSample | None) -> tuple[int | None, int | None]:
    """(resident memory, file-backed memory) of the Ollama processes over the baseline's."""
    rss = _minus(process.rss_bytes, base.rss_bytes if base else None)
    mapped = _minus(process.file_rss_bytes, base.file_rss_bytes if base else None)
    return (None if rss is None else int(rss), None if mapped is None else int(mapped))


@dataclass(frozen=True)
class GpuNow:
    """One GPU's memory over the baseline, and whether it spills while a run goes on."""

    dedicated_delta: int | None
    shared_delta: int | None
    spilling: bool


def gpu_now(gpu: GpuReading, base: GpuReading | None, running: bool) -> GpuNow:
    """`running`: a run is in progress (a spill is said only then), by the summary's is_spill."""
    dedicated = _minus(gpu.dedicated_used, base.dedicated_used if base else None)
    shared = _minus(gpu.shared_used, base.shared_used if base else None)
    return GpuNow(
        None if dedicated is None else int(dedicated),
        None if shared is None else int(shared),
        running and is_spill(shared),
    )


def idle_power(run: RunRecord | None, samples: Sequence[PowerSample]) -> dict[str, float]:
    """Each power source's mean watts over the run's baseline (before the request), once the
    request has gone; the figure the summary's idle power is made of."""
    if run is None or not run.clock.request_at:
        return {}
    since = baseline_start(run)
    if since is None or run.clock.request_at <= since:
        return {}
    idle = {}
    for key in {r.key for s in samples for r in s.sources}:
        span = energy_span(samples, key, since, run.clock.request_at)
        if not isinstance(span, str) and span[1] > 0:
            idle[key] = span[0] / span[1]
    return idle


def watts_over_idle(watts: float, key: str, idle: Mapping[str, float]) -> float | None:
    base = idle.get(key)
    return watts - base if base is not None else None


def energy_so_far(run: RunRecord, samples: Sequence[PowerSample], now: float, gpu_used: bool) -> RunEnergy | None:
    """The run's energy from the request to `now` (or its end), and per token while generating, by
    the summary's rules (energy.run_energy: a run whose GPU worked while its power was not read has
    no total); None before the request or without a sample since."""
    clock = run.clock
    end = run.ended_at if run.ended_at is not None else now
    if not samples:
        return None
    end = min(end, samples[-1].t)
    if end <= clock.request_at:
        return None
    generation = None
    tokens = None
    if clock.first_at is not None and clock.count >= 2 and end > clock.first_at:
        generation = Window(clock.first_at, end)
        tokens = clock.count_until(end) - 1 or None
    return run_energy(samples, Window(clock.request_at, end), generation, None, tokens, None, gpu_used)
