"""The model's answer as it streams, wrapped to the width of the pane."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.widgets import Static


class StreamedText(VerticalScroll):
    """Accumulates streamed text; `append` is batched by the caller (at most ~10 times a second)."""

    DEFAULT_CSS = """
    StreamedText { height: 1fr; border: round $primary-darken-2; padding: 0 1; }
    StreamedText > Static { width: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.text = ""
        self._body = Static("", markup=False)

    def compose(self):
        yield self._body

    def clear(self, heading: str = "") -> None:
        self.text = heading
        self._body.update(self.text)

    def append(self, text: str) -> None:
        if not text:
            return
        self.text += text
        self._body.update(self.text)
        self.scroll_end(animate=False)
