"""Runs compared the way the article does: grouped by model, mode and load, tps mean and standard
deviation, each mode's speed-up over `cpu` for the same model (with its 95% interval where both
sides were repeated), and its energy per token against `cpu`'s. Pure."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmtop.measure.intervals import Side, difference
from llmtop.measure.mode import CPU, Mode
from llmtop.measure.summary_row import SummaryRow
from llmtop.units import NA


@dataclass(frozen=True)
class Comparison:
    """One (model, mode, load kind) group of runs."""

    model: str
    mode: str
    load_kind: str
    runs: tuple[SummaryRow, ...]
    speedup: float | None  # mean tps over the mean tps of `cpu` for the same model and load kind
    energy_vs_cpu: float | None = None  # mean joules per token over that of `cpu`, the same way
    speedup_interval: tuple[float, float] | None = None  # its 95% interval (both sides repeated)
    alike: Placement | None = None  # every run of it and of its `cpu` ran with this placement: no speed-up to name

    @property
    def first(self) -> SummaryRow:
        return self.runs[0]

    @property
    def incomplete(self) -> int:
        return sum(1 for r in self.runs if not r.complete)

    @property
    def shared(self) -> int:
        """Runs during which the server also worked for another app: left out of the figures."""
        return sum(1 for r in self.runs if r.concurrent_requests)

    def _values(self, get: Callable[[SummaryRow], float | int | None]) -> list[float]:
        clean = [r for r in self.runs if not r.concurrent_requests]
        return [float(v) for v in (get(r) for r in clean) if v is not None]

    def mean(self, get: Callable[[SummaryRow], float | int | None]) -> float | None:
        values = self._values(get)
        return statistics.fmean(values) if values else None

    def stdev(self, get: Callable[[SummaryRow], float | int | None]) -> float | None:
        """Sample standard deviation; None with fewer than two values."""
        values = self._values(get)
        return statistics.stdev(values) if len(values) >= 2 else None

    @property
    def tps(self) -> float | None:
        return self.mean(lambda r: r.eval_rate_tps)

    @property
    def shared_tps(self) -> float | None:
        """The mean tps of the runs that shared the server (what a group of only those can show, marked)."""
        values = [r.eval_rate_tps for r in self.runs if r.concurrent_requests and r.eval_rate_tps is not None]
        return statistics.fmean(values) if values else None

    @property
    def tps_stdev(self) -> float | None:
        return self.stdev(lambda r: r.eval_rate_tps)

    @property
    def side(self) -> Side | None:
        """Its tokens/s as one side of a difference (intervals.difference)."""
        return Side.of(self._values(lambda r: r.eval_rate_tps))

    @property
    def joules_per_token(self) -> float | None:
        return self.mean(lambda r: r.joules_per_token)

    def most_common(self, get: Callable[[SummaryRow], object]) -> object:
        values = [v for v in (get(r) for r in self.runs) if v is not None]
        return Counter(values).most_common(1)[0][0] if values else None


Placement = tuple[str | None, int, int, int]
"""Where a run's layers were: (env, layers on a GPU, layers in all, of them overflowing)."""


def placement(row: SummaryRow) -> Placement | None:
    """Where the run's layers were, as the log (or Ollama's plan) said; None where it did not say."""
    if row.layers_offloaded is None or not row.layers_total:
        return None
    return row.env, row.layers_offloaded, row.layers_total, row.layers_overflowing or 0


def same_placement(rows: Sequence[SummaryRow]) -> Placement | None:
    """The one placement every run of `rows` had (the same env, the same layers on each device); None
    where one differs or was not read."""
    found = {placement(row) for row in rows}
    if len(found) != 1:
        return None
    return next(iter(found))


def placement_text(where: Placement) -> str:
    """`0 of 81 layers on a GPU, env CPU`."""
    env, offloaded, total, overflowing = where
    experts = f" ({overflowing} with their experts in system memory)" if overflowing else ""
    return f"{offloaded} of {total} layers on a GPU{experts}, env {env or NA}"


def compare(rows: Sequence[SummaryRow]) -> list[Comparison]:
    """Groups in the order they first appear; speed-up against `cpu` where the plan had it (a mode
    with a context, `auto:ctx=8192`, only against `cpu:ctx=8192`)."""
    groups: dict[tuple[str, str, str], list[SummaryRow]] = {}
    for row in rows:
        groups.setdefault((row.model, row.mode, row.load_kind or "cold"), []).append(row)
    plain = [Comparison(m, mode, kind, tuple(runs), None) for (m, mode, kind), runs in groups.items()]
    cpu = {(c.model, c.load_kind, Mode.of(c.mode).variant): c for c in plain if Mode.of(c.mode).placement == CPU}
    result = []
    for c in plain:  # against cpu at the same context: a context changes the speed too
        base = cpu.get((c.model, c.load_kind, Mode.of(c.mode).variant))
        speedup = c.tps / base.tps if base is not None and c.tps is not None and base.tps else None
        energy = c.joules_per_token
        base_energy = base.joules_per_token if base is not None else None
        ratio = energy / base_energy if energy is not None and base_energy else None
        interval = None
        if speedup is not None and base is not None and (a := c.side) and (b := base.side) and base is not c:
            interval = difference(a, b).speedup_interval
        alike = same_placement(c.runs + base.runs) if base is not None and base is not c else None
        result.append(Comparison(c.model, c.mode, c.load_kind, c.runs, speedup, ratio, interval, alike))
    return result
