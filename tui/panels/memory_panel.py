"""The memory panel: RAM (the mapped weights counted once), the mapped part, swap, and the Ollama
processes' resident memory; each with its Δ over the run's baseline where there is one."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical

from llmtop import words
from llmtop.measure.screen_states import MemoryState
from llmtop.tui.widgets.gauge import Gauge


class MemoryPanel(Vertical):
    """Four gauges, on the run screen and the watch screen alike."""

    DEFAULT_CSS = """
    MemoryPanel { height: auto; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.drawn: MemoryState | None = None

    def compose(self) -> ComposeResult:
        yield Gauge(words.RAM, id="ram")
        yield Gauge("  mapped", id="mapped")
        yield Gauge("Swap", id="swap")
        yield Gauge(words.OLLAMA_RSS, id="rss")

    def show(self, state: MemoryState) -> None:
        """Draw `state` (nothing when it is the one drawn last)."""
        if state == self.drawn:
            return
        self.drawn = state
        for name, gauge in (("ram", state.ram), ("mapped", state.mapped), ("swap", state.swap), ("rss", state.rss)):
            self.query_one(f"#{name}", Gauge).show_state(gauge)
