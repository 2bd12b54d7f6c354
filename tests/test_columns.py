"""`--columns`: the Markdown table as the article printed it (`article`), or a few columns by name, in the
export, the printed table and the report's Markdown; CSV and JSON keep every key."""

from __future__ import annotations

import json

import pytest

from helpers.cli import llmtop, no_traceback
from llmtop.store.exports import session_markdown
from llmtop.tables import COMPARISON_COLUMNS, chosen_columns, parse_columns
from summary_rows import row


def test_columns_are_named_in_english_or_japanese_in_any_case_and_kept_in_the_order_given():
    assert parse_columns("article") == ("article",) and parse_columns(" Article ") == ("article",)
    assert parse_columns("tps,ram, VRAM,shared,tps") == ("tps", "RAM", "VRAM", "shared")
    assert parse_columns("環境,tps") == ("env", "tps")
    with pytest.raises(ValueError, match=r"no column 'fast': use article, or some of model, params"):
        parse_columns("tps,fast")
    with pytest.raises(ValueError, match="empty column"):
        parse_columns("tps,,RAM")
    assert chosen_columns(None, 1) == COMPARISON_COLUMNS
    assert [c.header for c in chosen_columns(("article",), 1)] == [
        "params",
        "quant",
        "size",
        "env",
        "tps",
        "RAM",
        "VRAM",
    ]
    assert [c.header for c in chosen_columns(("article",), 2)][:2] == ["model", "params"]


def test_the_article_columns_leave_out_every_section_but_the_table():
    rows = [row("llama3.3", "cpu", 0.99), row("llama3.3", "auto", 1.34), row("qwen3", "auto", 9.0)]
    text = session_markdown(rows, "ja", columns=("article",))
    assert text.splitlines()[0] == "| モデル | パラ数 | 量子化 | サイズ | 環境 | tps | RAM | VRAM |"
    assert len(text.splitlines()) == 5 and "###" not in text


def test_the_demo_exports_the_articles_table_with_its_seven_columns(tmp_path):
    out, report = tmp_path / "t.md", tmp_path / "r.html"
    result = llmtop("demo", "--headless", "--speed", "max", "--export", str(out), "--lang", "ja", "--columns",
                    "article", "--report", str(report))  # fmt: skip
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    table = out.read_text(encoding="utf-8").splitlines()
    assert table[0] == "| パラ数 | 量子化 | サイズ | 環境 | tps | RAM | VRAM |"
    assert [line.count("|") - 1 for line in table] == [7] * 4  # the header, the rule, a row per mode
    assert result.stdout.splitlines()[0] == table[0]  # the printed table is the same
    assert "| パラ数 | 量子化 | サイズ | 環境 | tps | RAM | VRAM |" in report.read_text(encoding="utf-8")
    as_json = tmp_path / "t.json"
    llmtop("demo", "--headless", "--speed", "max", "--export", str(as_json), "--columns", "article")
    assert "client_rate_tps" in json.loads(as_json.read_text())["runs"][0]  # JSON keeps every key


def test_an_unknown_column_is_a_usage_error_that_lists_them():
    result = llmtop("demo", "--headless", "--columns", "tps,fast")
    no_traceback(result)
    assert result.returncode == 2 and "argument --columns: no column 'fast': use article, or some of" in result.stderr
