"""The streamed-text pane: wrapping, following the end, and a bounded history."""

from textual.app import App, ComposeResult

from llmtop.tui.widgets import streamed_text
from llmtop.tui.widgets.streamed_text import StreamedText


class Pane(App[None]):
    def compose(self) -> ComposeResult:
        yield StreamedText(id="text")


def shown(pane: StreamedText) -> list[str]:
    """The rows on screen, as text."""
    return [pane.render_line(y).text.rstrip() for y in range(pane.scrollable_content_region.height)]


async def test_text_wraps_to_the_pane_and_the_newest_rows_are_shown():
    app = Pane()
    async with app.run_test(size=(24, 8)) as pilot:  # 6 rows of 19 cells inside the border, padding and gutter
        pane = app.query_one(StreamedText)
        words = [f"word{i} " for i in range(40)]
        for word in words:
            pane.append(word)
        await pilot.pause()
        assert pane.text == "".join(words)
        assert all(len(row.rstrip()) <= pane.scrollable_content_region.width for row in pane.rows)
        assert " ".join(r.strip() for r in pane.rows).split() == [w.strip() for w in words]
        assert shown(pane) == [row.rstrip() for row in pane.rows[-6:]]  # it follows the end
        pane.append("\nlast line")
        await pilot.pause()
        assert shown(pane)[-1] == "last line"
        pane.clear()
        await pilot.pause()
        assert pane.text == "" and shown(pane) == [""] * 6


async def test_a_resize_wraps_again():
    app = Pane()
    async with app.run_test(size=(24, 8)) as pilot:
        pane = app.query_one(StreamedText)
        pane.append("alpha beta gamma delta epsilon zeta eta theta")
        await pilot.pause()
        narrow = pane.rows
        await pilot.resize_terminal(60, 8)
        await pilot.pause()
        assert len(pane.rows) < len(narrow)
        assert "".join(pane.rows) == "".join(narrow) == pane.text


async def test_only_the_newest_text_is_kept(monkeypatch):
    monkeypatch.setattr(streamed_text, "MAX_CHARS", 1000)
    app = Pane()
    async with app.run_test(size=(40, 8)) as pilot:
        pane = app.query_one(StreamedText)
        for i in range(500):
            pane.append(f"line {i}\n")
        await pilot.pause()
        assert len(pane.text) <= 2000
        assert pane.text.endswith("line 499\n") and pane.text.startswith("line ")
        assert shown(pane)[-2:] == ["line 499", ""]
