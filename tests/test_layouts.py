"""The screen at the sizes people use: every line fits its widget whole or cut at a word with `…`,
the tables show whole columns (the article's first), the memory timeline and the help are one key away."""

import asyncio
import dataclasses

import pytest
from rich.cells import cell_len

from llmtop.tui.help_screen import HelpScreen, HelpText
from llmtop.tui.help_text import LIVE_FIGURES
from llmtop.tui.widgets.gauge import Gauge
from llmtop.tui.widgets.memory_chart import MemoryTimelineChart
from llmtop.tui.widgets.paragraph import Paragraph
from llmtop.tui.widgets.summary_table import CELL_PADDING, SCROLLBAR, SummaryTable
from llmtop.tui.widgets.text_line import TextLine
from scenes import SCENES
from waiting import on_screen

SIZED = [s for s in SCENES if s.size in ((80, 24), (120, 40)) and not s.name.startswith("help")]


def at_scene(scene, check, size=None) -> None:
    """Replay `scene` in the app (at `size`, else its own), then `await check(app, pilot)`."""

    async def run():
        app, world = scene.app()
        try:
            async with app.run_test(size=size or scene.size) as pilot:
                await scene.settle(app, world, pilot)
                await check(app, pilot)
        finally:
            world.player.stop()

    asyncio.run(run())


def assert_nothing_is_cut(app) -> None:
    for gauge in app.query(Gauge):
        if not gauge.display or not gauge.size.width:
            continue
        shown = gauge.fitted(gauge.size.width).plain
        assert cell_len(shown) <= gauge.size.width, shown
        assert shown == gauge.text or shown.endswith("…") or len(shown) < len(gauge.text), shown
        if shown.endswith("…"):  # cut at the end of a word: the last word kept is a whole word of the text
            assert shown[:-1].split()[-1] in gauge.text.split(), shown
    for line in app.query(TextLine):
        if line.display and line.size.width:
            shown = line.fitted(line.size.width)
            assert cell_len(shown) <= line.size.width, shown
            assert shown in line.variants or shown.endswith("…"), shown
    for paragraph in app.query(Paragraph):
        if paragraph.display and paragraph.size.width:
            assert all(cell_len(row) <= paragraph.size.width for row in paragraph.rows(paragraph.size.width))
    for table in app.query(SummaryTable):
        if table.display and table.summaries:
            widths = table.column_widths()
            shown = sum(widths[i] for i in table.pages[table.page])
            assert shown <= table.size.width - SCROLLBAR or len(table.pages[table.page]) <= 2, table.id
            headers = [c.header for c in table.shown_columns]
            assert headers[0] == "model" or table.id == "sweep-table"


@pytest.mark.parametrize("scene", SIZED, ids=lambda scene: scene.name)
def test_every_line_fits_its_width(scene):
    async def check(app, pilot):
        assert_nothing_is_cut(app)
        if scene.size == (120, 40) and scene.name.startswith("run"):
            # The article's columns fit at 120: params, quant, size, env, tps, RAM, VRAM.
            shown = [c.header for c in app.runs_table.shown_columns]
            assert shown[:8] == ["model", "params", "quant", "size", "env", "tps", "RAM", "VRAM"]

    at_scene(scene, check)


def test_t_shows_the_columns_that_did_not_fit():
    scene = next(s for s in SCENES if s.name == "run-end-80x24")

    async def check(app, pilot):
        table = app.runs_table
        assert len(table.pages) > 1 and "t: more columns (1/" in str(table.border_title)
        first = [c.header for c in table.shown_columns]
        await pilot.press("t")
        second = [c.header for c in table.shown_columns]
        assert second[0] == "model" and not set(second[1:]) & set(first[1:])
        assert table.get_row_at(0)[0].plain == "llama3.3"
        for _ in range(len(table.pages) - 1):
            await pilot.press("t")
        assert [c.header for c in table.shown_columns] == first  # back to the first page

    at_scene(scene, check)


def test_a_gauge_narrows_its_bar_then_its_note_and_cuts_a_reason_at_a_word():
    gauge = Gauge("VRAM")
    gauge.show_reading(16_500_000_000, 17_200_000_000, 15_600_000_000, note="AMD Radeon RX 7600 XT · 90% busy")
    full = gauge.fitted(200).plain
    assert full == gauge.text and "████" in full
    assert gauge.fitted(len(full) - 8).plain.count("█") + gauge.fitted(len(full) - 8).plain.count("░") == 8
    narrow = gauge.fitted(70).plain
    assert cell_len(narrow) <= 70 and narrow.endswith("RX…") and "Δ +15.6 GB" in narrow
    tight = gauge.fitted(45).plain
    assert "16.5 GB / 17.2 GB" in tight and "Δ +15.6 GB" in tight and "AMD" not in tight
    gauge.show_unavailable("no GPU read (nvml: no NVIDIA driver: the NVML library is not found)")
    assert gauge.fitted(50).plain == "VRAM        n/a: no GPU read (nvml: no NVIDIA…"
    assert gauge.text.endswith("is not found)")  # the full reason stays for the help screen


def test_m_shows_the_memory_timeline_of_the_demo_and_the_help_names_every_key_and_figure():
    scene = next(s for s in SCENES if s.name == "memory-120x40")
    scene = dataclasses.replace(scene, keys=())

    async def check(app, pilot):
        memory = app.query_one(MemoryTimelineChart)
        assert not memory.display and app.live.chart.display
        await pilot.press("m")
        await on_screen(pilot, lambda: memory.display and memory.drawn is not None)
        assert not app.live.chart.display
        drawn = {s.name: s for s in memory.drawn.series}
        assert list(drawn) == ["RAM", "Ollama RSS", "VRAM", "shared"]
        # The demo's load: RAM from its baseline of 14 GB to the model's CPU part, VRAM filled,
        # shared memory grown: the spill, as the gauges and the row say it.
        assert drawn["RAM"].baseline == 14 * 10**9 and drawn["RAM"].peak > 40 * 10**9
        assert drawn["shared"].peak - drawn["shared"].baseline > 10**9
        assert [word for _, word in memory.drawn.marks] == ["base", "load", "prompt", "gen"]
        assert "RAM" in str(memory.border_title) and "shared" in str(memory.border_title)
        await pilot.press("m")
        assert app.live.chart.display and not memory.display
        await pilot.press("question_mark")
        await on_screen(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = "\n".join(t for t, _ in app.screen.query_one(HelpText).lines)
        for binding in app.BINDINGS:
            if binding.show and binding.action not in ("run_again", "toggle_cpu"):  # a replay runs nothing
                assert f"  {binding.key_display or binding.key} " in text, binding
        for name, _ in LIVE_FIGURES:
            assert f"  {name}: " in text
        assert "  tps: the server's `eval_count / eval_duration`" in text
        assert "  mapped: counted apart on Linux only (see docs/measurement.md)" in text  # in full
        await pilot.press("escape")
        await on_screen(pilot, lambda: not isinstance(app.screen, HelpScreen))

    at_scene(scene, check)


def test_a_wide_terminal_shows_the_tps_chart_and_the_memory_timeline_side_by_side():
    scene = next(s for s in SCENES if s.name == "spillover")

    async def check(app, pilot):
        assert app.live.chart.display and app.query_one(MemoryTimelineChart).display
        await pilot.resize_terminal(120, 40)
        await on_screen(pilot, lambda: not app.query_one(MemoryTimelineChart).display)  # at the next refresh
        assert app.live.chart.display

    at_scene(scene, check, size=(170, 50))


def test_cell_padding_is_what_the_table_draws():
    table = SummaryTable()
    assert table.cell_padding * 2 == CELL_PADDING


def test_the_phase_marks_under_the_memory_chart_fit_its_width():
    from llmtop.tui.widgets.memory_chart import marks_line

    marks = ((0.0, "base"), (0.25, "load"), (3.29, "prompt"), (6.0, "gen"), (13.3, "end"))
    assert marks_line(marks, 120) == "s since the baseline: base 0.0 · load 0.2 · prompt 3.3 · gen 6.0 · end 13.3"
    assert marks_line(marks, 40) == "s: base 0 load 0 prompt 3 gen 6 end 13"
    assert len(marks_line(marks, 20)) <= 20 and marks_line(marks, 20).endswith("…")
