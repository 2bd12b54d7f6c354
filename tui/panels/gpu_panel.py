"""The GPU panel: each GPU's dedicated (or unified) and shared memory, and the spill warning, said
once a run when shared GPU memory grows over its baseline."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical

from llmtop import words
from llmtop.measure.screen_states import GpuState, spill_warning
from llmtop.tui.widgets.gauge import Gauge


class GpuPanel(Vertical):
    """A pair of gauges per GPU (one pair until the first reading says how many)."""

    DEFAULT_CSS = """
    GpuPanel { height: auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.drawn: GpuState | None = None
        self.pairs: list[tuple[Gauge, Gauge]] = []
        self.warned_run: float | None = None

    def compose(self) -> ComposeResult:
        pair = (Gauge(words.VRAM, id="vram-0"), Gauge(words.SHARED_GPU, id="shared-0"))
        self.pairs.append(pair)
        yield from pair

    def show(self, state: GpuState) -> None:
        """Draw `state` (nothing when it is the one drawn last); a spill is warned of once a run."""
        if state == self.drawn:
            return
        self.drawn = state
        while len(self.pairs) < len(state.gauges):
            pair = (Gauge(words.VRAM), Gauge(words.SHARED_GPU))
            self.mount(*pair)
            self.pairs.append(pair)
        for (vram, shared), (vram_state, shared_state) in zip(self.pairs, state.gauges, strict=False):
            vram.show_state(vram_state)
            shared.show_state(shared_state)
        if state.spill is not None and self.warned_run != state.run:
            self.warned_run = state.run
            self.notify(spill_warning(state.spill), severity="warning", timeout=10)
