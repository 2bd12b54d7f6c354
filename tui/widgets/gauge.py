"""A one-line memory gauge: bar, used / total, and the change since the baseline, or n/a and why."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from llmtop import units

BAR_WIDTH = 24


class Gauge(Widget):
    """Shows `label [#####.....] used / total  +delta` or `label n/a: reason`."""

    DEFAULT_CSS = """
    Gauge { height: 1; width: 1fr; }
    Gauge.-warning { color: $warning; }
    """

    def __init__(self, label: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.label = label
        self.used_bytes: int | None = None
        self.total_bytes: int | None = None
        self.delta_bytes: int | None = None
        self.reason: str | None = "waiting for the first sample"
        self.note = ""

    def show_reading(self, used: int, total: int | None, delta: int | None = None, note: str = "") -> None:
        """Display a measured value (total None: no bar, just the value)."""
        reading = (used, total, delta, None, note)
        if reading != (self.used_bytes, self.total_bytes, self.delta_bytes, self.reason, self.note):
            self.used_bytes, self.total_bytes, self.delta_bytes, self.reason, self.note = reading
            self.refresh()

    def show_unavailable(self, reason: str) -> None:
        """Display `n/a: reason`; never a number that was not read."""
        if (self.used_bytes, self.reason) != (None, reason):
            self.used_bytes = self.total_bytes = self.delta_bytes = None
            self.reason = reason
            self.note = ""
            self.refresh()

    @property
    def text(self) -> str:
        """The gauge as plain text (what a test or a screen reader sees)."""
        return self.render().plain

    def render(self) -> Text:
        line = Text(f"{self.label:<12}", style="bold")
        if self.used_bytes is None:
            line.append(f"n/a: {self.reason}", style="dim")
            return line
        if self.total_bytes:
            filled = round(BAR_WIDTH * min(max(self.used_bytes / self.total_bytes, 0.0), 1.0))
            line.append("█" * filled, style="green")
            line.append("░" * (BAR_WIDTH - filled), style="dim")
            line.append(f" {units.human_bytes(self.used_bytes)} / {units.human_bytes(self.total_bytes)}")
        else:
            line.append(units.human_bytes(self.used_bytes))
        if self.delta_bytes is not None:
            line.append(f"  Δ {units.signed_bytes(self.delta_bytes)}", style="bold")
        if self.note:
            line.append(f"  {self.note}", style="dim")
        return line
