"""What a `--sweep` found (its plan is sweep_plan.py's): each point's runs as one figure with its
interval, the tokens/s the split allows at each layer count, and the conclusion: the fastest point,
those it cannot be told from, where memory spilled, and the setting to use.

Pure: no I/O, no Textual.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmtop import units
from llmtop.measure.comparison import Comparison
from llmtop.measure.intervals import Side, difference
from llmtop.measure.mode import Mode
from llmtop.measure.server_settings import ServerSettings, serve_line
from llmtop.measure.summary import is_spill
from llmtop.measure.summary_row import SummaryRow
from llmtop.measure.sweep_plan import (
    COARSE_PARTS,
    CONTEXT,
    LAYERS,
    MOE,
    SweepSpec,
    coarse_values,
    final_step,
    guess_run_s,
    point_mode,
    point_value,
)
from llmtop.units import NA


class SweepPlanner:
    """The points to run: `first_modes()` at the start, then `next_modes(rows)` each time the queue
    runs dry, until it returns nothing."""

    def __init__(self, spec: SweepSpec, layers_total: int | None) -> None:
        self.spec = spec
        self.layers_total = layers_total
        self.asked: list[str] = []  # every mode handed out (its name), in order

    def _hand_out(self, modes: Sequence[Mode]) -> list[Mode]:
        fresh = []
        for mode in modes:
            if mode.name not in self.asked:
                self.asked.append(mode.name)
                fresh.append(mode)
        return fresh

    def first_modes(self) -> list[Mode]:
        """Ollama's own choice first, then the grid from the fewest layers (or smallest context) up."""
        if self.spec.values is not None:
            values: list[int] = list(self.spec.values)
        else:
            assert self.layers_total is not None, "check_layers() first"
            values = coarse_values(self.layers_total)
        modes = [point_mode(self.spec, v, self.layers_total) for v in values]
        return self._hand_out([point_mode(self.spec, None)] + modes)

    def expected_runs(self) -> int:
        """How many points the sweep will run, as far as can be told before it starts: the grid and
        Ollama's choice, and for a chosen grid two points for each halving of its step."""
        first = (
            len(self.spec.values) + 1
            if self.spec.values is not None
            else len(coarse_values(self.layers_total or 0)) + 1
        )
        if self.spec.values is not None or not self.layers_total:
            return first
        step, halvings = self.layers_total / COARSE_PARTS, 0
        while step > final_step(self.layers_total):
            step /= 2
            halvings += 1
        return first + 2 * halvings

    @property
    def grows(self) -> bool:
        """Whether points are added around the fastest (not for a list given by hand)."""
        return self.spec.values is None and self.spec.parameter == LAYERS and bool(self.layers_total)

    def next_modes(self, rows: Sequence[SummaryRow]) -> list[Mode]:
        """Halfway between the fastest point and each neighbour further than one final step away;
        [] when the sweep is done (a list given by hand is done after its points)."""
        if not self.grows or self.layers_total is None:
            return []
        measured: dict[int, float] = {}
        for point in sweep_points(self.spec, rows):
            if point.x is None:
                continue
            speed = point.tps if point.tps is not None else -1.0  # a point that failed is never the best
            measured[point.x] = max(measured.get(point.x, -1.0), speed)
        if not measured or max(measured.values()) < 0:
            return []
        xs = sorted(measured)
        best = max(xs, key=lambda x: (measured[x], -x))
        i = xs.index(best)
        step = final_step(self.layers_total)
        candidates = []
        for neighbour in (xs[i - 1] if i > 0 else None, xs[i + 1] if i + 1 < len(xs) else None):
            if neighbour is not None and abs(neighbour - best) > step:
                candidates.append((neighbour + best) // 2 if neighbour < best else (neighbour + best + 1) // 2)
        return self._hand_out([point_mode(self.spec, x) for x in candidates])


def announce(spec: SweepSpec, model: str, planner: SweepPlanner, repeat: int, size_bytes: int | None) -> str:
    """The line said before a sweep starts: its points, its runs, and a time guessed from the size."""
    points = planner.expected_runs()
    runs = points * repeat
    what = {LAYERS: "GPU layers", CONTEXT: "the context", MOE: "the experts' place"}[spec.parameter]
    if spec.parameter == MOE and spec.values is not None:
        where = f"moe={','.join(map(str, spec.values))} with every layer asked for the GPU, and Ollama's own choice"
    elif spec.values is not None:
        where = f"{', '.join(map(str, spec.values))} and Ollama's own choice"
    else:
        where = f"0 to {planner.layers_total}, coarse then finer around the fastest, and Ollama's own choice"
    runs_text = f"{runs} runs" if spec.values is not None else f"about {runs} runs"
    per_run = guess_run_s(size_bytes)
    eta = f", about {units.duration(per_run * runs)} guessed from the model's size" if per_run else ""
    repeats = f" ({repeat} each)" if repeat > 1 else ""
    return f"sweep of {what} for {model}: {where}; {runs_text}{repeats}{eta}"


@dataclass(frozen=True)
class SweepPoint:
    """One point of the sweep: every run of one mode."""

    mode: str
    value: int | None  # num_gpu or num_ctx asked for; None: Ollama's choice
    x: int | None  # where the point sits: GPU layers (confirmed by the log, else asked) or the context
    layers: int | None
    layers_total: int | None
    context: int | None
    tps: float | None
    tps_sd: float | None
    vram_bytes: float | None
    shared_bytes: float | None
    runs: int
    incomplete: int
    error: str | None  # why no run of the point finished (out of memory, say)
    joules_per_token: float | None = None  # mean over the point's runs, where power was read

    @property
    def ollama_choice(self) -> bool:
        return self.value is None

    @property
    def failed(self) -> bool:
        return self.tps is None

    @property
    def spilled(self) -> bool | None:
        """Shared GPU memory grew during the run (None: not read here, or the point failed)."""
        if self.shared_bytes is None or self.failed:
            return None
        return is_spill(self.shared_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "value": self.value,
            "ollama_choice": self.ollama_choice,
            "layers_offloaded": self.layers,
            "layers_total": self.layers_total,
            "context": self.context,
            "avg_ts": self.tps,
            "stddev_ts": self.tps_sd,
            "vram_delta_bytes": self.vram_bytes,
            "shared_delta_bytes": self.shared_bytes,
            "joules_per_token": self.joules_per_token,
            "spilled": self.spilled,
            "runs": self.runs,
            "incomplete": self.incomplete,
            "error": self.error,
        }


def _point(spec: SweepSpec, group: Comparison) -> SweepPoint:
    value = point_value(spec, group.mode)
    layers = group.most_common(lambda r: r.layers_offloaded if r.complete else None)
    if layers is None:
        layers = group.most_common(lambda r: r.layers_offloaded)
    total = group.most_common(lambda r: r.layers_total)
    context = group.most_common(lambda r: r.context)
    if spec.parameter == LAYERS:
        asked = min(value, total) if value is not None and isinstance(total, int) else value
        x = layers if isinstance(layers, int) else asked
    elif spec.parameter == MOE:
        x = value
    else:
        x = context if isinstance(context, int) else value
    finished = [r for r in group.runs if r.eval_rate_tps is not None]
    complete = [r for r in group.runs if r.complete]
    error = None if complete else next((r.error for r in group.runs if r.error), None)
    return SweepPoint(
        mode=group.mode,
        value=value,
        x=x,
        layers=layers if isinstance(layers, int) else None,
        layers_total=total if isinstance(total, int) else None,
        context=context if isinstance(context, int) else None,
        tps=group.tps if finished else None,
        tps_sd=group.tps_stdev,
        vram_bytes=group.mean(lambda r: r.vram_delta_bytes),
        shared_bytes=group.mean(lambda r: r.shared_delta_bytes),
        runs=len(group.runs),
        incomplete=group.incomplete,
        error=error,
        joules_per_token=group.joules_per_token,
    )


def sweep_points(spec: SweepSpec, rows: Sequence[SummaryRow]) -> list[SweepPoint]:
    """The points measured so far, by where they sit (Ollama's choice among them)."""
    groups: dict[str, list[SummaryRow]] = {}
    for row in rows:  # one point per mode, cold or not (an unload that timed out leaves a warm run)
        groups.setdefault(row.mode, []).append(row)
    points = [_point(spec, Comparison(runs[0].model, mode, "cold", tuple(runs), None)) for mode, runs in groups.items()]
    return sorted(points, key=lambda p: (p.x is None, p.x if p.x is not None else 0, p.value is not None))


@dataclass(frozen=True)
class SweepResult:
    """What the sweep found and what it advises; every export carries it."""

    model: str
    spec: SweepSpec
    points: tuple[SweepPoint, ...]
    best: SweepPoint | None
    ollama_choice: SweepPoint | None
    recommended: SweepPoint | None
    within_noise: tuple[SweepPoint, ...]
    conclusion: str
    notes: tuple[str, ...]
    modelfile: str | None
    create_command: str | None
    finished: bool  # every planned point ran
    # A layer sweep's limit for each number of GPU layers, where it measured both ends (forecast_curve).
    forecast: tuple[tuple[int, float], ...] = ()

    def limit_at(self, x: int | None) -> float | None:
        """The forecast's tokens/s at `x` GPU layers (None: no forecast, or not a layer count)."""
        return next((tps for at, tps in self.forecast if at == x), None)

    def marks(self, point: SweepPoint) -> str:
        """What the sweep made of a point: `fastest`, `recommended`, `Ollama's choice`, `within noise`."""
        marks = []
        if point is self.best:
            marks.append("fastest")
        if point is self.recommended:
            marks.append("recommended")
        if point in self.within_noise:
            marks.append("within noise")
        if point.ollama_choice:
            marks.append("Ollama's choice")
        if point.failed:
            marks.append("failed")
        return ", ".join(marks)

    @property
    def concluded(self) -> bool:
        """The sweep ran every point and a point finished, so it concludes: a setting to keep, or
        that there is none to choose (failed points are results too)."""
        return self.finished and self.best is not None

    def lines(self) -> list[SweepLine]:
        return [SweepLine(p, self.marks(p), self.limit_at(p.x)) for p in self.points]

    def to_dict(self) -> dict[str, Any]:
        """The export's `sweep` key."""
        return {
            "parameter": self.spec.parameter,
            "values_by_hand": list(self.spec.values) if self.spec.values is not None else None,
            "finished": self.finished,
            "points": [p.to_dict() for p in self.points],
            "best": self.best.mode if self.best else None,
            "ollama_choice": self.ollama_choice.to_dict() if self.ollama_choice else None,
            "recommended": self.recommended.mode if self.recommended else None,
            "within_noise": [p.mode for p in self.within_noise],
            "conclusion": self.conclusion,
            "notes": list(self.notes),
            "modelfile": self.modelfile,
            "create_command": self.create_command,
            "forecast": [{"layers": x, "tps": round(tps, 4)} for x, tps in self.forecast],
        }


@dataclass(frozen=True)
class SweepLine:
    """A point as the sweep's table shows it, with what the sweep made of it."""

    point: SweepPoint
    marks: str  # `fastest`, `recommended`, `Ollama's choice`, joined
    limit: float | None = None  # the forecast's tokens/s at its layers (a layer sweep that measured both ends)


def forecast_curve(points: Sequence[SweepPoint]) -> tuple[tuple[int, float], ...]:
    """Each number of GPU layers' limit, from the sweep's own ends: a token reads every layer once, so with
    x of L layers on the GPU it takes (1 - x/L) of the CPU-only point's time a token and x/L of the
    all-GPU point's (that point without a spill: its layers read from VRAM). () where either end was not
    measured. A point well under the curve lost time elsewhere: the bus to shared memory, most often."""
    cpu = next((p for p in points if p.x == 0 and p.tps), None)
    total = next((p.layers_total for p in points if p.layers_total), None)
    full = next((p for p in points if total and p.x == total and p.tps and not p.spilled), None)
    if cpu is None or full is None or not total or not cpu.tps or not full.tps:
        return ()
    return tuple((x, 1.0 / ((1 - x / total) / cpu.tps + (x / total) / full.tps)) for x in range(total + 1))


def _overlaps(a: SweepPoint, b: SweepPoint) -> bool:
    """mean ± sd of the two points overlap (both repeated)."""
    if a.tps is None or b.tps is None or a.tps_sd is None or b.tps_sd is None:
        return False
    return a.tps - a.tps_sd <= b.tps + b.tps_sd and b.tps - b.tps_sd <= a.tps + a.tps_sd


def _change_interval(a: SweepPoint, b: SweepPoint) -> tuple[float, float] | None:
    """The 95% interval of a's tps over b's, less 1 (both repeated), as intervals.difference gives it."""
    if a.tps is None or b.tps is None or a.tps_sd is None or b.tps_sd is None:
        return None
    found = difference(Side(a.tps, a.tps_sd, a.runs), Side(b.tps, b.tps_sd, b.runs)).speedup_interval
    return (found[0] - 1, found[1] - 1) if found else None


def _describe(point: SweepPoint, spec: SweepSpec) -> str:
    """`27 layers, 2.1 GB spilled into shared memory` (layers) or `32768 tokens, 18/33 layers on the GPU`."""
    parts = []
    if spec.parameter == MOE:
        if point.value is not None:
            parts.append(f"experts of {point.value} layers in system memory")
        if point.layers is not None:
            parts.append(f"{point.layers}/{point.layers_total or '?'} layers on the GPU")
    elif spec.parameter == CONTEXT:
        parts.append(f"{point.context} tokens" if point.context is not None else f"context {NA}")
        if point.layers is not None:
            total = f"/{point.layers_total}" if point.layers_total else ""
            parts.append(f"{point.layers}{total} layers on the GPU")
    else:
        parts.append(f"{point.layers} layers" if point.layers is not None else f"layers {NA}: no server log")
    if point.spilled:
        parts.append(f"{units.gb(int(point.shared_bytes or 0))} spilled into shared memory")
    elif point.spilled is False:
        parts.append("no spill")
    return ", ".join(parts)


def _setting(point: SweepPoint, spec: SweepSpec) -> str:
    if spec.parameter == MOE:
        return f"moe={point.value}"
    if spec.parameter == CONTEXT:
        return f"num_ctx {point.value}"
    return f"num_gpu {point.value}" + (" (CPU only)" if point.value == 0 else "")


def _model_tag(model: str, point: SweepPoint, spec: SweepSpec) -> str:
    """A name for the model with the setting built in: `llama3.3-gpu24`, `qwen3-8b-ctx8192`."""
    base = model.rsplit("/", 1)[-1]
    name, _, tag = base.partition(":")
    stem = name if tag in ("", "latest") else f"{name}-{tag}"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).lower()
    suffix = {CONTEXT: f"ctx{point.value}", MOE: f"moe{point.value}"}.get(spec.parameter, f"gpu{point.value}")
    return f"{stem}-{suffix}"


def _choose(spec: SweepSpec, best: SweepPoint, measured: Sequence[SweepPoint]) -> tuple[SweepPoint, list[SweepPoint]]:
    """(the point to recommend, the points within the noise of the best): among points whose mean ± sd
    overlaps the best's, the one without spill and with the fewest layers (for a context: the largest
    context, since it costs nothing more at that speed)."""
    close = [p for p in measured if p is not best and _overlaps(p, best)]
    if not close:
        return best, []
    group = [best, *close]
    if spec.parameter == CONTEXT:
        key = lambda p: (bool(p.spilled), -(p.x or 0))  # noqa: E731
    else:
        key = lambda p: (bool(p.spilled), p.x if p.x is not None else math.inf)  # noqa: E731
    return min(group, key=key), close


def conclude(model: str, spec: SweepSpec, rows: Sequence[SummaryRow], finished: bool = True,
             num_ctx: int | None = None) -> SweepResult:  # fmt: skip
    """The sweep's points, best, Ollama's choice and the one sentence a user can act on, with the
    Modelfile that sets it (`num_ctx`: the context the points ran at, kept in the Modelfile)."""
    points = sweep_points(spec, [r for r in rows if r.mode and _belongs(spec, r.mode)])
    measured = [p for p in points if p.tps is not None and p.value is not None]
    auto = next((p for p in points if p.ollama_choice), None)
    candidates = measured + ([auto] if auto is not None and auto.tps is not None else [])
    notes: list[str] = []
    if not finished:
        notes.append(f"the sweep was stopped after {len(points)} points: this is as far as it went")
    if not candidates:
        failed = next((p.error for p in points if p.error), None)
        conclusion = "no point of the sweep finished: nothing to conclude" + (f" ({failed})" if failed else "")
        return SweepResult(model, spec, tuple(points), None, auto, None, (), conclusion, tuple(notes), None, None,
                           finished)  # fmt: skip
    best = max(candidates, key=lambda p: (p.tps or 0.0, p.value is None))
    if spec.parameter in (LAYERS, MOE) and all(p.layers == 0 for p in candidates):
        # No point put a layer on a GPU (there is none, or Ollama would not use it): the points are
        # the same run, and a "fastest num_gpu" would be noise dressed as advice.
        what = "place for the experts" if spec.parameter == MOE else "layer setting"
        conclusion = (
            f"every point ran on the CPU alone (0 of {best.layers_total or '?'} layers on a GPU): there is no "
            f"{what} to choose on this machine"
        )
        return SweepResult(model, spec, tuple(points), best, auto, None, (), conclusion, tuple(notes), None, None,
                           finished)  # fmt: skip
    recommended, close = _choose(spec, best, candidates)
    if any(p.tps_sd is None for p in candidates):
        notes.append("one run per point: differences of a few percent may be noise (--repeat 3 tells them apart)")
    if close:
        rule = "the largest context" if spec.parameter == CONTEXT else "the fewest layers"
        notes.append(
            f"{len(close)} other point(s) are within the noise of the fastest (mean ± sd overlap): "
            f"recommended is the one without spill and with {rule}"
        )
    failures: dict[str, list[str]] = {}
    for point in points:
        if point.failed and point.error:
            failures.setdefault(point.error, []).append(point.mode)
    notes.extend(f"{', '.join(modes)} failed: {error}" for error, modes in failures.items())
    conclusion, modelfile, create = _sentence(model, spec, recommended, auto, num_ctx)
    if spec.parameter == CONTEXT:
        full = [p for p in points if p.layers is not None and p.layers_total and p.layers >= p.layers_total
                and not p.spilled and p.value is not None]  # fmt: skip
        if full:
            largest = max(full, key=lambda p: p.x or 0)
            conclusion += f"; the largest context here with every layer on the GPU and no spill: {largest.value}"
    curve = forecast_curve(points) if spec.parameter == LAYERS else ()
    if curve:
        under = [p for p in measured if p.x is not None and p.tps and p.tps < 0.8 * curve[p.x][1]]
        notes.append(
            "the limit (the table's `limit tps`): each split's layers read at the CPU-only and all-GPU points' rates"
            + (f"; well under it: {', '.join(f'{p.mode} ({p.tps / curve[p.x][1]:.0%})' for p in under)}"  # type: ignore[index,operator]
               if under else "")
        )  # fmt: skip
    return SweepResult(model, spec, tuple(points), best, auto, recommended, tuple(close), conclusion, tuple(notes),
                       modelfile, create, finished, curve)  # fmt: skip


def _belongs(spec: SweepSpec, mode: str) -> bool:
    """Whether a run's mode is a point of this kind of sweep."""
    parts = Mode.of(mode)
    if parts.unread is not None:
        return False
    layers, context, server = parts.layers, parts.context, parts.server
    if spec.parameter == MOE:
        return (
            context is None
            and (server == ServerSettings(cpu_moe=server.cpu_moe))
            and (server.cpu_moe is not None or layers is None)
        )
    if not server.empty:
        return False
    return context is None if spec.parameter == LAYERS else layers is None


def _sentence(
    model: str, spec: SweepSpec, chosen: SweepPoint, auto: SweepPoint | None, num_ctx: int | None
) -> tuple[str, str | None, str | None]:
    """(the conclusion, the Modelfile, the `ollama create` command); no Modelfile when Ollama's choice is it."""
    rate = f"{chosen.tps:.2f} tps"
    if chosen.ollama_choice or (auto is not None and auto.x is not None and auto.x == chosen.x and auto.tps):
        point = auto or chosen
        return (
            f"Ollama's own choice ({_describe(point, spec)}) is the fastest here at {point.tps or chosen.tps:.2f} tps: "
            "nothing to set",
            None,
            None,
        )
    head = f"{_setting(chosen, spec)} gives {rate}"
    if auto is None:
        versus = "; Ollama's own choice was not measured"
    elif auto.tps is None:
        versus = f"; Ollama's own choice failed ({auto.error or 'no rate'})"
    else:
        change = (chosen.tps or 0.0) / auto.tps - 1
        interval = _change_interval(chosen, auto)
        if _overlaps(chosen, auto) or (interval is not None and interval[0] <= 0 <= interval[1]):
            how = f"as fast as Ollama's choice within the noise ({auto.tps:.2f} tps"
        else:
            within = f" ({abs(interval[0]) * 100:.0f}-{abs(interval[1]) * 100:.0f}%)" if interval else ""
            if interval is not None and change < 0:
                within = f" ({abs(interval[1]) * 100:.0f}-{abs(interval[0]) * 100:.0f}%)"
            how = f"{abs(change) * 100:.0f}%{within} {'faster' if change >= 0 else 'slower'} than Ollama's choice ("
        versus = f", {how}{'' if how.endswith('(') else ', '}{_describe(auto, spec)})"
    conclusion = head + versus
    if spec.parameter == LAYERS and chosen.value == 0:  # a GPU that slows the model down (a software one, say)
        conclusion = f"the CPU alone is the fastest here, every layer on this GPU made it slower: {conclusion}"
    if spec.parameter == MOE:  # a setting of the server: its environment, and every layer on the GPU
        server = ServerSettings(cpu_moe=str(chosen.value))
        name, value = next(iter(server.env().items()))
        conclusion += f". Start the server with {name}={value} (`{serve_line(server)}`)"
        if chosen.layers_total:
            conclusion += f" and set num_gpu {chosen.layers_total} (the Modelfile below)"
            lines = [f"FROM {model}", f"PARAMETER num_gpu {chosen.layers_total}"]
            tag = _model_tag(model, chosen, spec)
            return conclusion, "\n".join(lines) + "\n", f"ollama create {tag} -f Modelfile && ollama run {tag}"
        return conclusion, None, None
    lines = [f"FROM {model}", f"PARAMETER {spec.parameter} {chosen.value}"]
    if num_ctx is not None and spec.parameter == LAYERS:
        lines.append(f"PARAMETER num_ctx {num_ctx}")
    tag = _model_tag(model, chosen, spec)
    return conclusion, "\n".join(lines) + "\n", f"ollama create {tag} -f Modelfile && ollama run {tag}"
