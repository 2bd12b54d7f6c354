"""The runs panel: a row per run, the runs compared, and in a sweep its table and conclusion."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from llmtop.figures import SCREEN_COMPARISON_COLUMNS, SWEEP_COLUMNS
from llmtop.measure.screen_states import RunsState
from llmtop.tui.widgets.summary_table import SummaryTable

SWEEP_TITLE = "sweep: one line per point, tps mean ± sd, memory Δ over each run's baseline (b: its chart)"


class RunsPanel(Vertical):
    """The tables at the bottom of the run screen (`sweep`: the sweep's table and conclusion too)."""

    DEFAULT_CSS = """
    RunsPanel { height: auto; }
    """

    def __init__(self, sweep: bool = False) -> None:
        super().__init__()
        self.sweep = sweep
        self.drawn: RunsState | None = None

    def compose(self) -> ComposeResult:
        yield SummaryTable(id="summary")
        yield SummaryTable(id="comparison", columns=SCREEN_COMPARISON_COLUMNS)
        if self.sweep:
            yield SummaryTable(id="sweep-table", columns=SWEEP_COLUMNS)
            yield Static(id="conclusion", markup=False)

    def on_mount(self) -> None:
        self.table.set_title("runs (Δ over the baseline of each run)")
        self.comparison.set_title("compared: tps mean ± sd, speed-up over cpu")
        if self.sweep:
            self.query_one("#sweep-table", SummaryTable).set_title(SWEEP_TITLE)

    @property
    def table(self) -> SummaryTable:
        return self.query_one("#summary", SummaryTable)

    @property
    def comparison(self) -> SummaryTable:
        return self.query_one("#comparison", SummaryTable)

    def show(self, state: RunsState) -> None:
        """Draw `state` (nothing when it is the one drawn last); rows are added to those shown."""
        if state == self.drawn:
            return
        drawn, self.drawn = self.drawn, state
        shown = drawn.rows if drawn else ()
        if state.rows[: len(shown)] == shown:
            for row in state.rows[len(shown) :]:
                self.table.add_summary(row)
        else:
            self.table.replace_all(state.rows)
        comparison = self.comparison
        if comparison.display != state.compared:
            comparison.display = state.compared
            comparison.replace_all(state.comparisons)  # filled as it is shown, at the width it is given
        elif drawn is None or state.comparisons != drawn.comparisons:
            comparison.replace_all(state.comparisons)
        if self.sweep and state.sweep is not None:
            self.query_one("#sweep-table", SummaryTable).replace_all(state.sweep.lines())
            self.query_one("#conclusion", Static).update(state.conclusion)
