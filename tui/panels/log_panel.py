"""The log pane: the server log's lines about the model load (or why there are none), on `l`."""

from __future__ import annotations

from textual.widgets import Log


class LogPanel(Log):
    """A Log redrawn only when its lines change."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=300)
        self.drawn: tuple[str, ...] = ()

    def show(self, lines: tuple[str, ...]) -> None:
        """Draw `lines` (nothing when they are the ones drawn last)."""
        if lines == self.drawn:
            return
        self.drawn = lines
        self.clear()
        self.write_lines(lines)
