"""The model's answer as it streams, wrapped to the width of the pane.

Only the rows that change are wrapped and redrawn: text arriving re-wraps the last row alone, so
an append costs the same after two hours as after two seconds. The newest MAX_CHARS characters
are kept (the recording holds every token). A new row does not ask for a new layout of the
screen (which repaints every widget, the chart included): while the view follows the end it
draws the newest rows itself, and the scrollable height catches up every SIZE_EVERY_S.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.segment import Segment
from textual.events import Resize
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from llmtop.tui.word_wrap import printable, wrap

MAX_CHARS = 64_000
SIZE_EVERY_S = 5.0


class StreamedText(ScrollView):
    """Accumulates streamed text and follows its end (unless scrolled up); `append` is batched by
    the caller (once a second)."""

    DEFAULT_CSS = """
    StreamedText { height: 1fr; border: round $primary-darken-2; padding: 0 1;
        overflow-x: hidden; scrollbar-gutter: stable; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.text = ""
        self._rows: list[str] = [""]  # wrapped rows; the last one is still growing
        self._width = 0
        self._size_due = False
        self._shown_top = 0

    @property
    def rows(self) -> list[str]:
        """The text as it is wrapped on screen, one string per row."""
        return list(self._rows)

    def clear(self) -> None:
        """Start again, empty (a new run)."""
        self.text = ""
        self._rows = [""]
        self.virtual_size = Size(self._width, 1)
        self.scroll_home(animate=False, immediate=True)
        self.refresh()

    def append(self, text: str) -> None:
        """Add text at the end (control characters made harmless, see `printable`)."""
        if not text:
            return
        text = printable(text)
        self.text += text
        if len(self.text) > 2 * MAX_CHARS:  # trimmed now and then, so appending stays cheap
            self.text = self._newest(self.text)
            self._rewrap()
            return
        if self._width_changed():  # the whole text, new piece included, wrapped to the pane's width
            return
        first = len(self._rows) - 1
        for index, piece in enumerate(text.split("\n")):
            if index:
                self._rows.append("")
            self._rows.extend(wrap(self._rows.pop() + piece, self._width or 1))
        self._show_rows(first)

    @staticmethod
    def _newest(text: str) -> str:
        """The last MAX_CHARS characters, from a line start where there is one."""
        tail = text[-MAX_CHARS:]
        newline = tail.find("\n")
        return tail[newline + 1 :] if 0 <= newline < len(tail) // 2 else tail

    def _rewrap(self) -> None:
        self._rows = [row for line in self.text.split("\n") for row in wrap(line, self._width or 1)]
        self._show_rows(0)

    @property
    def following(self) -> bool:
        """Whether the view shows the end of the text (it stops following when scrolled up)."""
        return self.scroll_offset.y >= self.max_scroll_y

    def _top(self) -> int:
        """The row shown at the top of the view."""
        if self.following:
            return max(0, len(self._rows) - self.scrollable_content_region.height)
        return self.scroll_offset.y

    def _show_rows(self, first: int) -> None:
        """Redraw from row `first` on; the scrollable height is updated later, in one go."""
        top = self._top()
        if top != self._shown_top:
            self.refresh()  # the rows moved up
        else:
            view = self.scrollable_content_region
            y = max(first - top, 0)
            self.refresh(Region(0, y, view.width, max(min(len(self._rows) - top, view.height) - y, 0)))
        self._shown_top = top
        if not self._size_due:
            self._size_due = True
            self.set_timer(SIZE_EVERY_S, self._update_size)

    def _update_size(self) -> None:
        self._size_due = False
        following = self.following
        self.virtual_size = Size(self._width, len(self._rows))
        if following:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def _width_changed(self) -> bool:
        """Re-wrap everything if the pane's width is not the one the rows were wrapped to (a Resize
        event can come before the layout has settled the scrollable region's width)."""
        width = self.scrollable_content_region.width
        if width == self._width:
            return False
        self._width = width
        self._rewrap()
        return True

    def on_resize(self, event: Resize) -> None:
        self._width_changed()

    def render_line(self, y: int) -> Strip:
        if y == 0 and self._width_changed():
            self.refresh()  # drawn again with the rows wrapped to this width
        row = self._top() + y
        style = self.rich_style
        width = self.scrollable_content_region.width
        if row >= len(self._rows):
            return Strip.blank(width, style)
        text = self._rows[row]
        return Strip([Segment(text, style)], cell_len(text)).crop_extend(0, width, style)
