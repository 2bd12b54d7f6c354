"""A one-line gauge (memory, power): bar, used / total, and the change since the baseline, or n/a and
why, fitted to its width (a narrower bar, then a shorter note; a reason is cut at a word)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.widget import Widget

from llmtop import units
from llmtop.measure.screen_states import GaugeState
from llmtop.tui.word_wrap import shorten
from llmtop.units import NA

BAR_WIDTH = 16
LABEL_WIDTH = 12


class Gauge(Widget):
    """Shows `label [#####.....] used / total  +delta` or `label n/a: reason`."""

    DEFAULT_CSS = """
    Gauge { height: 1; width: 1fr; }
    Gauge.-warning { color: $warning; }
    """

    def __init__(
        self,
        label: str,
        *,
        id: str | None = None,
        unit: Callable[[Any], str] = units.human_bytes,
        delta_unit: Callable[[Any], str] = units.signed_bytes,
    ) -> None:
        super().__init__(id=id)
        self.label = label
        self.unit = unit
        self.delta_unit = delta_unit
        self.used: float | None = None
        self.total: float | None = None
        self.delta: float | None = None
        self.reason: str | None = "waiting for the first sample"
        self.note = ""
        self._shown = self._line()
        self._drawn: tuple[str, int] | None = None  # (full text, width) of the last render
        self._drawn_line = self._shown

    def show_reading(self, used: float, total: float | None, delta: float | None = None, note: str = "") -> None:
        """Display a measured value (total None: no bar, just the value)."""
        self.used, self.total, self.delta, self.reason, self.note = used, total, delta, None, note
        self._repaint()

    def show_state(self, state: GaugeState) -> None:
        """Display a gauge's state: its label, its reading or why it has none, the warning colour."""
        self.label = state.label
        if state.used is None:
            self.show_unavailable(state.reason)
        else:
            self.show_reading(state.used, state.total, state.delta, note=state.note)
        self.set_class(state.warning, "-warning")

    def show_unavailable(self, reason: str) -> None:
        """Display `n/a: reason`; never a number that was not read."""
        self.used = self.total = self.delta = None
        self.reason = reason
        self.note = ""
        self._repaint()

    def _repaint(self) -> None:
        """Redraw only when what the gauge shows has changed (readings change far more often
        than their rounded text)."""
        line = self._line()
        if line.plain != self._shown.plain:
            self._shown = line
            self.refresh()

    @property
    def text(self) -> str:
        """The gauge in full as plain text (what a test or a screen reader sees)."""
        return self._shown.plain

    def render(self) -> Text:
        width = self.size.width
        key = (self._shown.plain, width)
        if key != self._drawn:  # fitted once per change of text or width, not on every paint
            self._drawn = key
            self._drawn_line = self.fitted(width) if width > 0 else self._shown
        return self._drawn_line

    def fitted(self, width: int) -> Text:
        """The gauge as drawn at `width` cells: the full line where it fits; else the bar narrower,
        the note shorter, then neither; a reason is cut at a word with `…`."""
        if self.used is None:
            line = Text(f"{self.label:<{LABEL_WIDTH - 1}} ", style="bold")
            line.append(shorten(f"{NA}: {self.reason}", width - line.cell_len), style="dim")
            return line
        for bar in (BAR_WIDTH, 8):
            line = self._line(bar)
            if line.cell_len <= width:
                return line
        bare = self._line(8, note=False)
        room = width - bare.cell_len - 2
        if self.note and room >= 12:  # a useful part of the note still fits
            return self._line(8, note_text=shorten(self.note, room))
        for bar in (8, 0):
            line = self._line(bar, note=False)
            if line.cell_len <= width:
                return line
        line.truncate(width)
        return line

    def _line(self, bar: int = BAR_WIDTH, note: bool = True, note_text: str | None = None) -> Text:
        line = Text(f"{self.label:<{LABEL_WIDTH - 1}} ", style="bold")
        if self.used is None:
            line.append(f"{NA}: {self.reason}", style="dim")
            return line
        if self.total:
            if bar:
                filled = round(bar * min(max(self.used / self.total, 0.0), 1.0))
                line.append("█" * filled, style="green")
                line.append("░" * (bar - filled), style="dim")
                line.append(" ")
            line.append(f"{self.unit(self.used)} / {self.unit(self.total)}")
        else:
            line.append(self.unit(self.used))
        if self.delta is not None:
            line.append(f"  Δ {self.delta_unit(self.delta)}", style="bold")
        shown_note = note_text if note_text is not None else self.note
        if note and shown_note:
            line.append(f"  {shown_note}", style="dim")
        return line
