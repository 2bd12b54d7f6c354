"""The layers panel: how many layers the server log says are on the GPU, Ollama's split as
`/api/ps` gives it, and why the split is what it is (the log's reason, in a few rows)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical

from llmtop.measure.screen_states import LayersState
from llmtop.tui.widgets.gauge import Gauge
from llmtop.tui.widgets.paragraph import Paragraph
from llmtop.tui.widgets.text_line import TextLine


class LayersPanel(Vertical):
    """A gauge, a line and a paragraph (as tall as its reason, at most `max_rows`)."""

    DEFAULT_CSS = """
    LayersPanel { height: auto; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.drawn: LayersState | None = None

    def compose(self) -> ComposeResult:
        yield Gauge("GPU layers", id="layers", unit=str)
        yield TextLine(id="split")
        yield Paragraph(id="why")

    @property
    def why(self) -> Paragraph:
        return self.query_one("#why", Paragraph)

    def set_max_rows(self, rows: int) -> None:
        """How many rows the reason may take (fewer on a short terminal)."""
        self.why.set_max_rows(rows)

    def show(self, state: LayersState) -> None:
        """Draw `state` (nothing when it is the one drawn last)."""
        if state == self.drawn:
            return
        self.drawn = state
        self.query_one("#layers", Gauge).show_state(state.layers)
        self.query_one("#split", TextLine).show(*state.split)
        self.why.show(state.why)  # a sentence that changes once a load: it may take a new layout
