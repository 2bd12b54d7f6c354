"""A one-row line of text that is redrawn only when its text changes."""

from __future__ import annotations

from textual.widgets import Static


class TextLine(Static):
    """Plain text (no markup) on a row of fixed height: a new text repaints the row and asks for
    no new layout, so a line updated ten times a second costs almost nothing when it is unchanged."""

    DEFAULT_CSS = """
    TextLine { height: 1; }
    """

    def __init__(self, text: str = "", *, id: str | None = None) -> None:
        super().__init__(text, id=id, markup=False)
        self.text = text

    def show(self, text: str) -> None:
        """Display `text` (a no-op when it is what is shown)."""
        if text != self.text:
            self.text = text
            self.update(text, layout=False)
