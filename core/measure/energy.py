"""A run's energy from the power samples: per source and summed, over the whole run, over the
generation phase, and the idle power of the baseline. Pure: no I/O, no Textual.

The energy between two moments is the difference of a source's counted energy at them. Where a
sample was taken at the moment (the session reads power at each phase's edge) its count is used
as it is, so a counter's difference is exact; between samples the count is interpolated. Across
two segments (a counter that started over, integrated power with a gap) nothing is computed: the
figure is None with its reason, never a made-up value.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmtop.collectors.power_reading import PowerReading, PowerSample

EDGE_S = 0.1  # a sample this close to a moment is the reading at that moment
KINDS = {"cpu": "CPU", "gpu": "GPU"}
GPU_UNREAD = "the GPU did part of this run's work but its power was not read, so there is no total"


@dataclass(frozen=True)
class SourceEnergy:
    """One power source over one run (J: joules, W: watts)."""

    key: str
    name: str
    kind: str
    method: str
    energy_j: float | None  # from the request to the end of the run
    energy_generation_j: float | None  # from the first token to the last
    generation_w: float | None  # mean power while generating
    idle_w: float | None  # mean power over the baseline, before the request
    reason: str | None = None  # why a figure above is None


@dataclass(frozen=True)
class Window:
    start: float
    end: float


def _points(samples: Sequence[PowerSample], key: str) -> tuple[list[float], list[PowerReading]]:
    times, readings = [], []
    for sample in sorted(samples, key=lambda s: s.t):
        for reading in sample.sources:
            if reading.key == key and reading.energy_j is not None:
                times.append(sample.t)
                readings.append(reading)
    return times, readings


def energy_at(times: list[float], readings: list[PowerReading], x: float) -> tuple[float, int, float] | str:
    """(counted energy, segment, when) of a source at moment `x` (`when` is the time of the sample
    used, where one was taken at the moment), or why it cannot be told."""
    if not times:
        return "never read"
    i = bisect_left(times, x)
    near = [j for j in (i - 1, i) if 0 <= j < len(times) and abs(times[j] - x) <= EDGE_S]
    if near:
        j = min(near, key=lambda j: abs(times[j] - x))
        return readings[j].energy_j or 0.0, readings[j].segment, times[j]
    if i == 0 or i == len(times):
        return "not read at that moment"
    before, after = readings[i - 1], readings[i]
    if before.segment != after.segment:
        return "its count started over in between (a reset, or a gap in its readings)"
    share = (x - times[i - 1]) / (times[i] - times[i - 1])
    assert before.energy_j is not None and after.energy_j is not None
    return before.energy_j + share * (after.energy_j - before.energy_j), before.segment, x


def energy_span(samples: Sequence[PowerSample], key: str, start: float, end: float) -> tuple[float, float] | str:
    """(joules the source `key` used from `start` to `end`, the seconds they were counted over) or
    why not. The seconds are those between the readings used, for a mean power."""
    times, readings = _points(samples, key)
    first, last = energy_at(times, readings, start), energy_at(times, readings, end)
    if isinstance(first, str):
        return first
    if isinstance(last, str):
        return last
    if first[1] != last[1]:
        return "its count started over during the phase (a reset, or a gap in its readings)"
    return max(last[0] - first[0], 0.0), last[2] - first[2]


def energy_between(
    samples: Sequence[PowerSample], key: str, start: float, end: float
) -> tuple[float | None, str | None]:
    """(joules the source `key` used from `start` to `end`, None) or (None, why not)."""
    span = energy_span(samples, key, start, end)
    return (None, span) if isinstance(span, str) else (span[0], None)


def _last_reason(samples: Sequence[PowerSample], key: str) -> str | None:
    for sample in reversed(samples):
        for reading in sample.sources:
            if reading.key == key and reading.energy_j is None and reading.reason:
                return reading.reason
    return None


def source_energy(
    samples: Sequence[PowerSample],
    reading: PowerReading,
    run: Window,
    generation: Window | None,
    idle: Window | None,
) -> SourceEnergy:
    """One source's figures over a run's windows."""
    whole, why = energy_between(samples, reading.key, run.start, run.end)
    reasons = [] if why is None else [f"run: {why}"]
    gen = gen_w = idle_w = None
    if generation is not None and generation.end > generation.start:
        span = energy_span(samples, reading.key, generation.start, generation.end)
        if isinstance(span, str):
            reasons.append(f"generation: {span}")
        else:
            gen, gen_w = span[0], span[0] / span[1] if span[1] > 0 else None
    if idle is not None and idle.end > idle.start:
        span = energy_span(samples, reading.key, idle.start, idle.end)
        if isinstance(span, str):
            reasons.append(f"baseline: {span}")
        elif span[1] > 0:
            idle_w = span[0] / span[1]
    if reasons and (lost := _last_reason(samples, reading.key)):
        reasons.append(lost)
    return SourceEnergy(
        reading.key,
        reading.name,
        reading.kind,
        reading.method,
        whole,
        gen,
        gen_w,
        idle_w,
        "; ".join(reasons) or None,
    )


@dataclass(frozen=True)
class RunEnergy:
    """A run's energy: each source, and the sums over the sources measured."""

    sources: tuple[SourceEnergy, ...]
    energy_j: float | None
    energy_generation_j: float | None
    generation_w: float | None
    idle_w: float | None
    joules_per_token: float | None
    tokens_per_joule: float | None
    note: str | None  # what the sums leave out, or why there are none


def _sum(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if len(known) == len(values) and known else None


def run_energy(
    samples: Sequence[PowerSample],
    run: Window,
    generation: Window | None,
    idle: Window | None,
    tokens: int | None,
    unavailable: Mapping[str, str] | None = None,
    gpu_used: bool = False,
) -> RunEnergy:
    """Every source seen in `samples` over the run; `tokens` generated in the generation window
    (the tokens after the first: the first one's cost is the prompt's); `unavailable` says why a
    kind ("cpu", "gpu") has no source. A run that used the GPU (`gpu_used`) while no GPU's power
    was read has no totals: the CPU's alone would make its tokens look cheaper than they were."""
    seen: dict[str, PowerReading] = {}
    for sample in samples:
        for reading in sample.sources:
            seen.setdefault(reading.key, reading)
    sources = tuple(source_energy(samples, r, run, generation, idle) for r in seen.values())
    notes = [f"{KINDS.get(kind, kind)} not measured ({why})" for kind, why in (unavailable or {}).items()]
    missing = [s for s in sources if s.energy_generation_j is None or s.energy_j is None]
    notes.extend(f"{s.name}: {s.reason}" for s in missing if s.reason)
    if not sources:
        return RunEnergy((), None, None, None, None, None, None, "; ".join(notes) or "no power source read")
    if gpu_used and not any(s.kind == "gpu" for s in sources):
        notes.insert(0, GPU_UNREAD)
        return RunEnergy(sources, None, None, None, None, None, None, "; ".join(notes))
    energy = _sum([s.energy_j for s in sources])
    gen = _sum([s.energy_generation_j for s in sources])
    per_token = gen / tokens if gen is not None and tokens else None
    if gen is not None and not tokens:
        notes.append("fewer than two tokens: no energy per token")
    return RunEnergy(
        sources,
        energy,
        gen,
        _sum([s.generation_w for s in sources]),
        _sum([s.idle_w for s in sources]),
        per_token,
        tokens / gen if gen and tokens else None,
        "; ".join(notes) or None,
    )
