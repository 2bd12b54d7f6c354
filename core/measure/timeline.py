"""The memory timeline of a run: RAM, the Ollama processes' resident memory, dedicated VRAM and shared
GPU memory on one time axis, with the run's phases and its baseline (pure: no Textual, no I/O)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from llmtop import words
from llmtop.collectors.gpu_reading import GpuSample
from llmtop.collectors.ollama_processes import OllamaProcessSample
from llmtop.collectors.system_memory import SystemMemorySample
from llmtop.measure.summary import (
    RunRecord,
    counts_mapped_apart,
    dedicated_total,
    ram_used,
    ram_with_mapped,
    shared_total,
)

# The phases a timeline marks, and the short word each mark carries on the chart.
PHASE_MARKS = {"baseline": "base", "loading": "load", "prompt": "prompt", "generating": "gen"}


class _Timed(Protocol):
    @property
    def t(self) -> float: ...


T = TypeVar("T", bound=_Timed)


@dataclass(frozen=True)
class Series:
    """One figure over time: (seconds since the timeline's start, bytes), and its baseline reading."""

    name: str
    points: tuple[tuple[float, int], ...]
    baseline: int | None

    @property
    def peak(self) -> int | None:
        return max((v for _, v in self.points), default=None)


@dataclass(frozen=True)
class Timeline:
    """The series that could be read (a figure that was never read is left out, with its reason in
    `missing`), and the phase marks as (seconds, word)."""

    series: tuple[Series, ...]
    marks: tuple[tuple[float, str], ...]
    missing: tuple[str, ...] = ()

    @property
    def end(self) -> float:
        return max([x for s in self.series for x, _ in s.points[-1:]] + [x for x, _ in self.marks], default=0.0)


def downsample(points: Sequence[tuple[float, int]], most: int) -> list[tuple[float, int]]:
    """At most `most` points, each bucket of the time range keeping its highest reading (a peak
    never disappears from a chart made narrow), in time order."""
    if len(points) <= most or most < 2:
        return list(points)
    start, end = points[0][0], points[-1][0]
    span = (end - start) or 1.0
    buckets: dict[int, tuple[float, int]] = {}
    for x, v in points:
        key = min(int((x - start) / span * most), most - 1)
        if key not in buckets or v > buckets[key][1]:
            buckets[key] = (x, v)
    return [buckets[k] for k in sorted(buckets)]


def _series(
    memory: Sequence[SystemMemorySample],
    processes: Sequence[OllamaProcessSample],
    gpu: Sequence[GpuSample],
    start: float,
    until: float,
    points: int,
    base_mem: SystemMemorySample | None,
    base_proc: OllamaProcessSample | None,
    base_gpu: GpuSample | None,
) -> tuple[list[Series], list[str]]:
    """RAM, Ollama RSS, VRAM and shared GPU memory from `start` to `until`, each against its
    baseline sample where there is one (None: no dots)."""

    def within(samples: Sequence[T]) -> list[T]:
        return [s for s in samples if start <= s.t <= until]

    memory, processes, gpu = within(memory), within(processes), within(gpu)
    series: list[Series] = []
    missing: list[str] = []

    def add(name: str, timed: Sequence[tuple[float, int | None]], baseline: int | None, why: str) -> None:
        read = [(t - start, v) for t, v in timed if v is not None]
        if read:
            series.append(Series(name, tuple(downsample(read, points)), baseline))
        else:
            missing.append(f"{name}: {why}")

    combined = ram_with_mapped(memory, processes)
    if combined and counts_mapped_apart(base_proc) and base_mem is not None:
        add(words.RAM, combined, ram_used(base_mem, base_proc), "not read")
    elif combined and base_mem is None:
        add(words.RAM, combined, None, "not read")
    else:
        add(words.RAM, [(s.t, s.used_bytes) for s in memory], base_mem.used_bytes if base_mem else None, "not read")
    add(
        words.OLLAMA_RSS,
        [(s.t, s.rss_bytes) for s in processes],
        base_proc.rss_bytes if base_proc else None,
        "no Ollama process read",
    )

    def gpu_figure(name: str, figure: Callable[[GpuSample], int | None], why: str) -> None:
        add(name, [(s.t, figure(s)) for s in gpu], figure(base_gpu) if base_gpu else None, why)

    gpu_figure(words.VRAM, dedicated_total, words.NO_GPU_READ if not gpu else words.NOT_READ_ON_THIS_GPU)
    gpu_figure(words.SHARED, shared_total, words.NO_GPU_READ if not gpu else words.NOT_READ_ON_THIS_GPU)
    return series, missing


def recent_timeline(
    memory: Sequence[SystemMemorySample],
    processes: Sequence[OllamaProcessSample],
    gpu: Sequence[GpuSample],
    start: float,
    until: float,
    marks: Sequence[tuple[float, str]] = (),
    points: int = 120,
) -> Timeline:
    """Memory from `start` to `until` with no run to set a baseline (`llmtop watch`); `marks` are
    (time, word) of what happened meanwhile (a load)."""
    series, missing = _series(memory, processes, gpu, start, until, points, None, None, None)
    kept = sorted((t - start, word) for t, word in marks if start <= t <= until)
    return Timeline(tuple(series), tuple(kept), tuple(missing))


def run_start(record: RunRecord) -> float:
    """Where a run's timeline starts: its baseline, else its request."""
    for t, phase in record.phases:
        if phase == "baseline":
            return t
    return record.clock.request_at


def memory_timeline(
    record: RunRecord,
    memory: Sequence[SystemMemorySample],
    processes: Sequence[OllamaProcessSample],
    gpu: Sequence[GpuSample],
    until: float,
    points: int = 120,
) -> Timeline:
    """The run's timeline from its baseline to `until` (its end, or now), from the collectors'
    samples (any that fall outside are left out). RAM is counted as the summary row counts it: in use
    plus the Ollama processes' mapped files where the platform keeps them apart (Linux)."""
    start = run_start(record)
    series, missing = _series(
        memory,
        processes,
        gpu,
        start,
        until,
        points,
        record.baseline_memory,
        record.baseline_process,
        record.baseline_gpu,
    )
    marks = [(t - start, PHASE_MARKS[p]) for t, p in record.phases if p in PHASE_MARKS and start <= t <= until]
    first = record.clock.first_at
    if first is not None and first <= until and not any(word == "gen" for _, word in marks):
        marks.append((first - start, "gen"))
    if record.ended_at is not None and record.ended_at <= until:
        marks.append((record.ended_at - start, "end"))
    return Timeline(tuple(series), tuple(sorted(marks)), tuple(missing))


RATE_WINDOW_TOKENS = 10  # a report's tokens/s is over a window that holds about this many tokens


@dataclass(frozen=True)
class RunCurves:
    """What a run's report draws over time: its memory timeline, and its tokens/s as (seconds since
    the timeline's start, tok/s) over a window of `rate_window_s`, on the same axis."""

    timeline: Timeline
    rate: tuple[tuple[float, float], ...]
    rate_window_s: float = 2.0


def run_curves(
    record: RunRecord,
    memory: Sequence[SystemMemorySample],
    processes: Sequence[OllamaProcessSample],
    gpu: Sequence[GpuSample],
    end: float,
    points: int = 240,
) -> RunCurves:
    """A finished run's curves, from its baseline to `end`. Its tokens/s is over the live chart's
    window, or one holding about RATE_WINDOW_TOKENS tokens where the run was slower (at 1 token/s
    a 2 s window can only say 0, 0.5 or 1)."""
    start, clock = run_start(record), record.clock
    shift = clock.request_at - start
    mean = clock.client_rate_tps
    window = max(clock.window_s, RATE_WINDOW_TOKENS / mean) if mean else clock.window_s
    rate = clock.series(end, points, window) if clock.first_at is not None else []
    return RunCurves(
        memory_timeline(record, memory, processes, gpu, end, points),
        tuple((shift + x, y) for x, y in rate),
        window,
    )
