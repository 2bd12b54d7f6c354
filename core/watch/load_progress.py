"""Another app's model load, as `llmtop watch` sees it go: the bytes the Ollama processes and the GPUs
took since the log showed the load begin, against the weights its buffers were allocated for, and
the time left at the rate so far (time_left.load_left_s). Pure: the samples are handed in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmtop import units
from llmtop.collectors.gpu_reading import GpuSample
from llmtop.collectors.ollama_log import LoadRecord
from llmtop.collectors.ollama_processes import OllamaProcessSample
from llmtop.measure.time_left import load_left_s


@dataclass(frozen=True)
class LoadProgress:
    """A load under way: its model (None until /api/ps names it), bytes loaded of the weights, time left."""

    model: str | None
    loaded_bytes: int
    weights_bytes: int
    left_s: float | None

    @property
    def text(self) -> str:
        """`loading qwen3:8b: 2.1 GB of 5.2 GB, about 0:03 left`."""
        what = f"loading {self.model}" if self.model else "loading a model"
        left = f", about {units.clock(self.left_s)} left" if self.left_s is not None else ""
        return f"{what}: {units.human_bytes(self.loaded_bytes)} of {units.human_bytes(self.weights_bytes)}{left}"


def _gpu_bytes(sample: GpuSample) -> int:
    return sum((g.dedicated_used or 0) + (g.shared_used or 0) for g in sample.gpus)


def _before(times: Sequence[float], t: float) -> int | None:
    """The index of the last of `times` at or before `t` (else the first after it), None for none."""
    if not times:
        return None
    earlier = [i for i, at in enumerate(times) if at <= t]
    return earlier[-1] if earlier else 0


def load_progress(
    load: LoadRecord,
    model: str | None,
    processes: Sequence[OllamaProcessSample],
    gpus: Sequence[GpuSample],
    now: float,
) -> LoadProgress | None:
    """How far `load` has come at `now` (the caller's clock, as the log's `first_seen`), from the
    samples since a little before it began; None where it is over, its weights are not logged yet,
    or nothing of it is read."""
    weights = load.weights_bytes
    if load.closed or load.errors or not weights:
        return None
    parts: list[int] = []
    rss = [s for s in processes if s.rss_bytes is not None]
    start = _before([s.t for s in rss], load.first_seen)
    if start is not None:
        parts.append(max((rss[-1].rss_bytes or 0) - (rss[start].rss_bytes or 0), 0))
    start = _before([s.t for s in gpus], load.first_seen)
    if start is not None and gpus[start].gpus:
        parts.append(max(_gpu_bytes(gpus[-1]) - _gpu_bytes(gpus[start]), 0))
    if not parts:
        return None
    loaded = sum(parts)
    return LoadProgress(model, loaded, weights, load_left_s(weights, loaded, now - load.first_seen))
