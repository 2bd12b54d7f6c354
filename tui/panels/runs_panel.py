"""The runs panel: a row per run, the runs compared and the verdicts on them, their memory by part, and
in a sweep its table and conclusion.

Its parts lie on the screen itself, one under the other, each drawing its share of the one RunsState:
a table's height follows its rows, and the screen lays out a table of its own at once where one
inside a container of automatic height could be left at its old height for a frame or more."""

from __future__ import annotations

from textual.widgets import Static

from llmtop.measure.screen_states import RunsState
from llmtop.tables import SCREEN_COMPARISON_COLUMNS, SWEEP_COLUMNS
from llmtop.tui.widgets.summary_table import SummaryTable

SWEEP_TITLE = "sweep: one line per point, tps mean ± sd, memory Δ over each run's baseline (b: its chart)"


class RunsTable(SummaryTable):
    """A row per run; rows are added to those shown."""

    def __init__(self) -> None:
        super().__init__(id="summary")
        self.drawn: RunsState | None = None

    def on_mount(self) -> None:
        self.set_title("runs (Δ over the baseline of each run)")

    def show(self, state: RunsState) -> None:
        """Draw `state`'s rows (nothing when they are the ones drawn last)."""
        shown = self.drawn.rows if self.drawn else ()
        self.drawn = state
        if state.rows == shown:
            return
        if state.rows[: len(shown)] == shown:
            for row in state.rows[len(shown) :]:
                self.add_summary(row)
        else:
            self.replace_all(state.rows)


class ComparisonTable(SummaryTable):
    """The runs compared, shown from two runs on (not in a sweep, whose table says it)."""

    def __init__(self) -> None:
        super().__init__(id="comparison", columns=SCREEN_COMPARISON_COLUMNS)
        self.drawn: RunsState | None = None

    def on_mount(self) -> None:
        self.set_title("compared: tps mean ± sd, speed-up over cpu")

    def show(self, state: RunsState) -> None:
        """Draw `state`'s comparison (nothing when it is the one drawn last)."""
        drawn, self.drawn = self.drawn, state
        if drawn is None or state.comparisons != drawn.comparisons:
            self.replace_all(state.comparisons)
        self.display = state.compared


class SweepTable(SummaryTable):
    """A sweep's points, a line each."""

    def __init__(self) -> None:
        super().__init__(id="sweep-table", columns=SWEEP_COLUMNS)
        self.drawn: RunsState | None = None

    def on_mount(self) -> None:
        self.set_title(SWEEP_TITLE)

    def show(self, state: RunsState) -> None:
        """Draw `state`'s sweep (nothing when it is the one drawn last)."""
        drawn, self.drawn = self.drawn, state
        if state.sweep is not None and (drawn is None or state.sweep != drawn.sweep):
            self.replace_all(state.sweep.lines())


class SweepConclusion(Static):
    """What the sweep concludes so far, and the Modelfile that sets its best point."""

    def __init__(self) -> None:
        super().__init__(id="conclusion", markup=False)
        self.drawn = ""

    def show(self, state: RunsState) -> None:
        """Draw `state`'s conclusion (nothing when it is the one drawn last)."""
        if state.conclusion != self.drawn:
            self.drawn = state.conclusion
            self.update(state.conclusion)


class Verdicts(Static):
    """Each difference the comparison shows, in a sentence with its interval: `about the same` where the
    interval holds no difference, with the runs each that would tell one apart."""

    def __init__(self) -> None:
        super().__init__(id="verdicts", markup=False)
        self.drawn: tuple[str, ...] = ()

    def on_mount(self) -> None:
        self.display = bool(self.drawn)

    def show(self, state: RunsState) -> None:
        """Draw `state`'s verdicts (nothing when they are the ones drawn last)."""
        said = state.verdicts if state.compared else ()
        if said != self.drawn:
            self.drawn = said
            self.update("\n".join(said))
            self.display = bool(said)


class MemoryParts(Static):
    """Each run's memory by part (weights, KV cache, compute) and device, as stacked bars on one scale,
    with its settings: shown where a mode set the server or a part lay on a GPU."""

    def __init__(self) -> None:
        super().__init__(id="parts", markup=False)
        self.drawn: tuple[str, ...] = ()

    def on_mount(self) -> None:
        self.border_title = "memory by part (server log)"
        self.display = bool(self.drawn)

    def show(self, state: RunsState) -> None:
        """Draw `state`'s bars (nothing when they are the ones drawn last)."""
        if state.parts != self.drawn:
            self.drawn = state.parts
            self.update("\n".join(state.parts))
            self.display = bool(state.parts)


RunsPart = RunsTable | ComparisonTable | Verdicts | MemoryParts | SweepTable | SweepConclusion


def runs_panel(sweep: bool) -> tuple[RunsPart, ...]:
    """The runs panel's parts, top to bottom (`sweep`: the sweep's table and conclusion too)."""
    parts: tuple[RunsPart, ...] = (RunsTable(), ComparisonTable(), Verdicts(), MemoryParts())
    return (*parts, SweepTable(), SweepConclusion()) if sweep else parts
