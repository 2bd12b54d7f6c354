"""Every figure is defined once (core/figures.py): the tables, the exports, --help and docs/figures.md come from it."""

from dataclasses import fields
from pathlib import Path

from llmtop.commands.model_command import build_parser
from llmtop.figures import FIGURES, JAPANESE, STABLE_KEYS, help_text, readme_table
from llmtop.measure.summary_row import SummaryRow
from llmtop.store.exports import comparison_dict, to_markdown
from llmtop.tables import COMPARISON_COLUMNS, RUN_COLUMNS, SCREEN_COMPARISON_COLUMNS
from llmtop.tui.widgets.summary_table import SummaryTable
from summary_rows import row

FIGURES_PAGE = (Path(__file__).resolve().parent.parent / "docs" / "figures.md").read_text(encoding="utf-8")


def test_the_docs_measurement_table_is_the_figure_table():
    assert readme_table() in FIGURES_PAGE, "docs/figures.md differs from core/figures.py: paste readme_table() in"


def test_help_explains_every_figure_from_the_table():
    epilog = build_parser().epilog or ""
    assert help_text() in epilog
    for figure in FIGURES:
        assert f"  {figure.name:<11} " in epilog


def test_every_key_is_a_json_key_of_a_run_or_of_the_comparison():
    run_keys = {f.name for f in fields(SummaryRow)}
    comparison_keys = set(comparison_dict(next(iter(_comparisons()))))
    for figure in FIGURES:
        for key in figure.keys:
            assert key in run_keys | comparison_keys, (figure.name, key)
    assert set(STABLE_KEYS) <= run_keys
    assert STABLE_KEYS == tuple(f.name for f in fields(SummaryRow))[: len(STABLE_KEYS)]


def _comparisons():
    from llmtop.measure.comparison import compare

    return compare([row("m", "cpu"), row("m", "auto", tps=2.0)])


def test_the_tables_columns_are_the_figures_in_their_order():
    assert [c.header for c in RUN_COLUMNS] == [f.name for f in FIGURES if f.run]
    assert [c.header for c in COMPARISON_COLUMNS] == [f.name for f in FIGURES if f.compared]
    assert {c.header for c in SCREEN_COMPARISON_COLUMNS} < {c.header for c in COMPARISON_COLUMNS}
    header = to_markdown([row("m", "cpu"), row("m", "auto", tps=2.0)]).splitlines()[0]
    assert header == "| " + " | ".join(c.header for c in COMPARISON_COLUMNS) + " |"
    screen = [c.header for c in SummaryTable().table_columns]
    assert sorted(screen) == sorted(c.header for c in RUN_COLUMNS)  # every figure, the article's first
    assert screen[:8] == ["model", "params", "quant", "size", "env", "tps", "RAM", "VRAM"]


def test_the_mode_of_each_row_is_in_every_table():
    table = to_markdown([row("m", "cpu"), row("m", "auto", tps=2.0)]).splitlines()
    mode = table[0].split(" | ").index("mode")
    assert [line.split(" | ")[mode] for line in table[2:]] == ["cpu", "auto"]
    assert "mode" in [c.header for c in RUN_COLUMNS]


def test_the_articles_japanese_headers():
    assert [JAPANESE[h] for h in ("params", "quant", "size", "env", "tps", "RAM", "VRAM")] == [
        "パラ数",
        "量子化",
        "サイズ",
        "環境",
        "tps",
        "RAM",
        "VRAM",
    ]


def test_overflowing_layers_and_the_default_context_are_said_in_the_cells():
    import dataclasses

    from summary_rows import row

    cells = {c.header: c for c in RUN_COLUMNS}
    moe = dataclasses.replace(row("m", "auto"), layers_offloaded=41, layers_total=41, layers_overflowing=14)
    assert cells["GPU layers"].text(moe) == "41/41 (14 overflowing: their experts in system memory)"
    assert cells["GPU layers"].text(dataclasses.replace(moe, layers_overflowing=0)) == "41/41"
    default = dataclasses.replace(moe, context=32768, context_note="Ollama's VRAM-based default (/api/ps)")
    assert cells["ctx"].text(default) == "32768 (default)"
    assert cells["ctx"].text(dataclasses.replace(default, context_note="asked for (--num-ctx)")) == "32768"
    assert cells["ctx"].text(dataclasses.replace(default, context=None)) == "n/a"
