"""A few rows of text wrapped at words, ending in `…` where they cannot hold it all."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from llmtop.tui.word_wrap import fit_rows


class Paragraph(Widget):
    """Plain text wrapped to its width in at most `max_rows` rows (the last one cut at a word with `…`);
    as tall as what it shows."""

    DEFAULT_CSS = """
    Paragraph { height: auto; }
    """

    def __init__(self, text: str = "", *, id: str | None = None, max_rows: int = 4) -> None:
        super().__init__(id=id)
        self.text = text
        self.max_rows = max_rows

    def show(self, text: str) -> None:
        """Display `text` (a no-op when it is what is shown)."""
        if text != self.text:
            self.text = text
            self.refresh(layout=True)

    def set_max_rows(self, rows: int) -> None:
        if rows != self.max_rows:
            self.max_rows = rows
            self.refresh(layout=True)

    def rows(self, width: int) -> list[str]:
        """The rows shown at `width` cells."""
        return fit_rows(self.text, width, self.max_rows) if self.text else []

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self.rows(width))

    def render(self) -> Text:
        return Text("\n".join(self.rows(self.size.width)), no_wrap=True)
