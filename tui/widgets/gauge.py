"""A one-line memory gauge: bar, used / total, and the change since the baseline, or n/a and why."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.widget import Widget

from llmtop import units

BAR_WIDTH = 16


class Gauge(Widget):
    """Shows `label [#####.....] used / total  +delta` or `label n/a: reason`."""

    DEFAULT_CSS = """
    Gauge { height: 1; width: 1fr; }
    Gauge.-warning { color: $warning; }
    """

    def __init__(self, label: str, *, id: str | None = None, unit: Callable[[int], str] = units.human_bytes) -> None:
        super().__init__(id=id)
        self.label = label
        self.unit = unit
        self.used: int | None = None
        self.total: int | None = None
        self.delta: int | None = None
        self.reason: str | None = "waiting for the first sample"
        self.note = ""
        self._shown = self._line()

    def show_reading(self, used: int, total: int | None, delta: int | None = None, note: str = "") -> None:
        """Display a measured value (total None: no bar, just the value)."""
        self.used, self.total, self.delta, self.reason, self.note = used, total, delta, None, note
        self._repaint()

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
        """The gauge as plain text (what a test or a screen reader sees)."""
        return self._shown.plain

    def render(self) -> Text:
        return self._shown

    def _line(self) -> Text:
        line = Text(f"{self.label:<12}", style="bold")
        if self.used is None:
            line.append(f"n/a: {self.reason}", style="dim")
            return line
        if self.total:
            filled = round(BAR_WIDTH * min(max(self.used / self.total, 0.0), 1.0))
            line.append("█" * filled, style="green")
            line.append("░" * (BAR_WIDTH - filled), style="dim")
            line.append(f" {self.unit(self.used)} / {self.unit(self.total)}")
        else:
            line.append(self.unit(self.used))
        if self.delta is not None:
            line.append(f"  Δ {units.signed_bytes(self.delta)}", style="bold")
        if self.note:
            line.append(f"  {self.note}", style="dim")
        return line
