"""Exports: Markdown in the article's layout, CSV and JSON."""

import csv
import io
import json

import pytest

from llmtop.figures import STABLE_KEYS
from llmtop.measure.summary_row import SummaryRow
from llmtop.store.exports import export_format, runs_markdown, to_csv, to_json, to_markdown, write_export

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


def test_markdown_compares_cpu_and_auto_in_the_article_layout():
    energy = {"idle_power_w": 41.0}
    cpu = [
        row(mode="cpu", eval_rate_tps=0.99, joules_per_token=96.0, energy_j=10_400.0, **energy),
        row(mode="cpu", eval_rate_tps=1.01, joules_per_token=94.0, energy_j=10_200.0, **energy),
    ]
    auto = [
        row(
            mode="auto",
            env="CPU+GPU",
            eval_rate_tps=tps,
            ram_delta_bytes=41_600_000_000,
            vram_delta_bytes=15_200_000_000,
            shared_delta_bytes=2_100_000_000,
            layers_offloaded=27,
            joules_per_token=j,
            energy_j=9_000.0,
            **energy,
        )
        for tps, j in ((1.32, 120.0), (1.36, 118.0))
    ]
    lines = to_markdown([cpu[0], auto[0], cpu[1], auto[1]]).splitlines()
    assert lines[0] == (
        "| model | params | quant | size | env | mode | ctx | GPU layers | tps | speed-up | RAM | VRAM | shared | TTFT "
        "| prompt tps | client tps | load | peak RAM | J/token | energy vs cpu | energy | idle W | limit | GPU | runs |"
    )
    assert lines[1] == "|---|---:|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + (
        "---:|" * 5 + "---|---:|"
    )
    assert lines[2] == (
        "| llama3.3 | 70.6B | Q4_K_M | 42.5GB | CPU | cpu | n/a | n/a | 1.00 ± 0.01 | 1.00x | 42.0GB | n/a | n/a "
        "| 61.23s | 4.21 | 0.99 | 48.50s | 43.2GB | 95 | 1.00x | 10.3 kJ | 41.0 W | n/a | n/a | 2 |"
    )
    assert lines[3].startswith(
        "| llama3.3 | 70.6B | Q4_K_M | 42.5GB | CPU+GPU | auto | n/a | 27/81 | 1.34 ± 0.03 | 1.34x (1.24-1.44x) "
        "| 41.6GB | 15.2GB | 2.1GB |"
    )
    assert lines[3].endswith("| 119 | 1.25x | 9.00 kJ | 41.0 W | n/a | n/a | 2 |")  # GPU tokens cost more here
    assert len(lines) == 4


def test_japanese_headers_are_the_articles():
    header = to_markdown([row()], lang="ja").splitlines()[0]
    assert header.startswith(
        "| モデル | パラ数 | 量子化 | サイズ | 環境 | モード | コンテキスト | GPU層 | tps | 速度比 | RAM | VRAM |"
    )


def test_no_cpu_run_means_no_speed_up_and_warm_runs_stand_apart():
    lines = to_markdown([row(mode="auto"), row(mode="auto", load_kind="warm", load_s=0.02)]).splitlines()
    assert "| n/a | 42.0GB |" in lines[2]  # speed-up unknown without a cpu run
    assert "| 0.02s (warm) |" in lines[3]


def test_incomplete_runs_are_counted_and_pipes_escaped():
    text = to_markdown([row(complete=False, error="server said a|b", eval_rate_tps=None)])
    assert "| n/a | n/a | 42.0GB |" in text and text.rstrip().endswith("| 1 (1 incomplete) |")
    per_run = runs_markdown([row(complete=False, error="server said a|b", started_at="2026-11-24T10:00:00+00:00")])
    assert per_run.splitlines()[2].startswith("| 2026-11-24 10:00 | llama3.3 |")
    assert "incomplete: server said a\\|b |" in per_run


def test_csv_has_the_json_keys_and_raw_values():
    parsed = list(csv.DictReader(io.StringIO(to_csv([row()]))))
    assert tuple(parsed[0])[: len(STABLE_KEYS)] == STABLE_KEYS
    assert parsed[0]["size_bytes"] == "42520413916"
    assert float(parsed[0]["eval_rate_tps"]) == pytest.approx(0.9912)
    assert parsed[0]["vram_delta_bytes"] == ""


def test_json_has_one_object_per_run_the_comparison_and_the_machine():
    machine = {"cpu_info": "AMD Ryzen 7 7700", "gpu_info": "AMD Radeon RX 7600 XT"}
    document = json.loads(to_json([row(mode="cpu"), row(complete=False), row(eval_rate_tps=1.98)], machine))
    assert document["llmtop_version"] and document["machine"] == machine
    cpu, auto = document["comparison"]
    assert (cpu["mode"], cpu["avg_ts"], cpu["stddev_ts"], cpu["speedup_vs_cpu"]) == ("cpu", 0.9912, None, 1.0)
    assert auto["runs"] == 2 and auto["incomplete"] == 1
    assert auto["avg_ts"] == pytest.approx((0.9912 + 1.98) / 2)
    runs = document["runs"]
    assert len(runs) == 3
    assert set(STABLE_KEYS) <= set(runs[0])
    assert runs[0]["vram_delta_bytes"] is None
    assert runs[1]["complete"] is False and runs[0]["mode"] == "cpu"


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


def test_a_change_too_small_to_show_has_no_sign():
    from llmtop import units

    assert [units.gb(v) for v in (-4_000, -49_000_000, -60_000_000, 0, None)] == [
        "0.0GB",
        "0.0GB",
        "-0.1GB",
        "0.0GB",
        "",
    ]
    assert "| 0.0GB |" in to_markdown([row(ram_delta_bytes=-4_000)]).splitlines()[2]
