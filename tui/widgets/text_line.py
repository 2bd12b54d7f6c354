"""A one-row line of text that is redrawn only when its text changes, and fits its width."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from llmtop.tui.word_wrap import fit


class TextLine(Widget):
    """Plain text (no markup) on a row of fixed height. `show(text, *shorter)` gives the line and
    shorter ways to say it: the longest that fits the row is drawn, else the shortest cut at a
    word with `…`. A new text repaints the row and asks for no new layout, so a line updated ten
    times a second costs almost nothing when it is unchanged."""

    DEFAULT_CSS = """
    TextLine { height: 1; }
    """

    def __init__(self, text: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.variants: tuple[str, ...] = (text,)

    @property
    def text(self) -> str:
        """The full line (what a test or a screen reader sees), however much of it fits."""
        return self.variants[0]

    def show(self, text: str, *shorter: str) -> None:
        """Display `text`, or the first of `shorter` that fits (a no-op when nothing changed)."""
        variants = (text, *shorter)
        if variants != self.variants:
            self.variants = variants
            self.refresh()

    def fitted(self, width: int) -> str:
        """What the line shows at `width` cells."""
        return fit(list(self.variants), width)

    def render(self) -> Text:
        width = self.size.width
        return Text(self.fitted(width) if width > 0 else self.text, no_wrap=True, overflow="ellipsis")
