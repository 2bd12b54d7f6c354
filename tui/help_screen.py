"""The help screen (`?` or F1): every key, every figure and where it is read from, and the full reason
of each figure that is n/a now."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget

from llmtop.tui.help_text import help_lines
from llmtop.tui.widgets.gauge import Gauge
from llmtop.tui.word_wrap import hanging


class HelpText(Widget):
    """The help's lines, wrapped to the width with their continuation rows indented."""

    DEFAULT_CSS = """
    HelpText { height: auto; }
    """

    def __init__(self, lines: Sequence[tuple[str, int]]) -> None:
        super().__init__(id="help-text")
        self.lines = list(lines)

    def rows(self, width: int) -> list[str]:
        return [row for text, indent in self.lines for row in (hanging(text, width, indent) if text else [""])]

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self.rows(width))

    def render(self) -> Text:
        return Text("\n".join(self.rows(self.size.width)), no_wrap=True)


class HelpScreen(ModalScreen[None]):
    """Scrollable text over the live screen; Esc, ? or q closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90%; height: 90%; border: round $primary; background: $surface;
        padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("question_mark", "close", "Close", show=False),
        Binding("f1", "close", "Close", show=False),
        Binding("q", "close", "Close", show=False),
    ]

    def __init__(
        self,
        keys: Sequence[tuple[str, str]],
        unavailable: Sequence[tuple[str, str]],
        figures: Sequence[tuple[str, str]] | None = None,
    ) -> None:
        """`figures`: the screen's own (name, how it is read), the run screen's and its tables' when None."""
        super().__init__()
        self.lines = help_lines(keys, unavailable) if figures is None else help_lines(keys, unavailable, figures, False)

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "llmtop help  ·  Esc closes"
            yield HelpText(self.lines)

    def action_close(self) -> None:
        self.dismiss()


def unavailable_gauges(app: App) -> list[tuple[str, str]]:
    """(gauge, its full reason) for each gauge on the app's screen that is n/a now."""
    return [(g.label.strip(), g.reason) for g in app.screen.query(Gauge) if g.used is None and g.reason]
