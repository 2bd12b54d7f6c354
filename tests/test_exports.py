"""Exports: Markdown in the article's layout, CSV and JSON."""

import csv
import io
import json

import pytest

from llmtop.exports import export_format, to_csv, to_json, to_markdown, write_export
from llmtop.summary import STABLE_KEYS, SummaryRow

GB = 10**9


def row(**changes):
    values = dict(
        model="llama3.3",
        parameter_size="70.6B",
        quantization="Q4_K_M",
        size_bytes=42_520_413_916,
        env="CPU",
        eval_rate_tps=0.9912,
        client_rate_tps=0.9875,
        prompt_rate_tps=4.21,
        ttft_s=61.234,
        load_s=48.5,
        ram_delta_bytes=42_000_000_000,
        ram_peak_bytes=43_210_000_000,
        vram_delta_bytes=None,
        shared_delta_bytes=None,
        layers_offloaded=None,
        layers_total=81,
        ollama_version="0.5.11",
        complete=True,
    )
    values.update(changes)
    return SummaryRow(**values)


def test_markdown_matches_the_article_layout():
    text = to_markdown(
        [
            row(),
            row(
                env="CPU+GPU",
                eval_rate_tps=1.34,
                ram_delta_bytes=41_600_000_000,
                vram_delta_bytes=15_200_000_000,
                layers_offloaded=27,
            ),
        ]
    )
    lines = text.splitlines()
    assert lines[0] == (
        "| model | params | quant | size | env | GPU layers | tps | RAM | VRAM | shared | TTFT | prompt tps "
        "| client tps | load | peak RAM | run |"
    )
    assert lines[1] == "|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    assert lines[2] == (
        "| llama3.3 | 70.6B | Q4_K_M | 42.5GB | CPU | n/a | 0.99 | 42.0GB | n/a | n/a | 61.23s | 4.21 | 0.99 "
        "| 48.50s | 43.2GB | complete |"
    )
    assert "| CPU+GPU | 27/81 | 1.34 | 41.6GB | 15.2GB | n/a |" in lines[3]


def test_markdown_marks_incomplete_runs_and_escapes_pipes():
    text = to_markdown([row(complete=False, error="server said a|b", eval_rate_tps=None)])
    assert "| n/a | 42.0GB |" in text
    assert "incomplete: server said a\\|b |" in text


def test_csv_has_the_json_keys_and_raw_values():
    parsed = list(csv.DictReader(io.StringIO(to_csv([row()]))))
    assert tuple(parsed[0])[: len(STABLE_KEYS)] == STABLE_KEYS
    assert parsed[0]["size_bytes"] == "42520413916"
    assert float(parsed[0]["eval_rate_tps"]) == pytest.approx(0.9912)
    assert parsed[0]["vram_delta_bytes"] == ""


def test_json_has_one_object_per_run_with_nulls_for_unknowns():
    document = json.loads(to_json([row(), row(complete=False)]))
    assert document["llmtop_version"]
    runs = document["runs"]
    assert len(runs) == 2
    assert set(STABLE_KEYS) <= set(runs[0])
    assert runs[0]["vram_delta_bytes"] is None
    assert runs[1]["complete"] is False


@pytest.mark.parametrize(("name", "fmt"), [("a.md", "md"), ("b.MARKDOWN", "md"), ("c.csv", "csv"), ("d.json", "json")])
def test_format_by_suffix(name, fmt):
    assert export_format(name) == fmt


@pytest.mark.parametrize("name", ["out.txt", "out", "out.jsonl"])
def test_unknown_suffix_is_refused(name):
    with pytest.raises(ValueError, match=r"\.md, \.csv or \.json"):
        export_format(name)


def test_write_export_writes_utf8(tmp_path):
    path = write_export([row(model="hf.co/org/日本語:Q2_K")], tmp_path / "runs.json")
    assert json.loads(path.read_text(encoding="utf-8"))["runs"][0]["model"] == "hf.co/org/日本語:Q2_K"
