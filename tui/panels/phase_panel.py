"""The phase panel: where the plan is (run, phase, time left, what `r` adds), and the run's token
figures (count, live rate, time to first token, the server's own view, a stall)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical

from llmtop.measure.screen_states import PhaseState
from llmtop.tui.widgets.text_line import TextLine


class PhasePanel(Vertical):
    """Two lines, each fitted to the width from its shorter ways to say it."""

    DEFAULT_CSS = """
    PhasePanel { height: auto; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.drawn: PhaseState | None = None

    def compose(self) -> ComposeResult:
        yield TextLine(id="phase")
        yield TextLine(id="tokens")

    def show(self, state: PhaseState) -> None:
        """Draw `state` (nothing when it is the one drawn last)."""
        if state == self.drawn:
            return
        self.drawn = state
        self.query_one("#phase", TextLine).show(*state.phase)
        self.query_one("#tokens", TextLine).show(*state.tokens)
