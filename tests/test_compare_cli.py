"""`llmtop MODEL --modes cpu,auto --repeat N` as a user runs it: the compared table, the chart, the
history after a restart, and the errors of the new options."""

import json
import statistics

import pytest

from helpers.cli import llmtop, no_traceback
from ollama_double import LLAMA33


def server_rates(double):
    """The eval rate of every generation the double finished, in order, as `ollama run --verbose` prints it."""
    return [f["eval_count"] / (f["eval_duration"] / 1e9) for f in double.finals]


def test_cpu_auto_repeat_2_writes_the_means_and_the_speed_up(double_factory, tmp_path):
    double = double_factory(token_rate=120, cpu_token_rate=60, tokens=40, vram_fraction=27 / 81)
    out = tmp_path / "out.md"
    result = llmtop(
        "llama3.3", "--host", double.url, "--modes", "cpu,auto", "--repeat", "2", "--headless", "--no-log",
        "--export", str(out),
    )  # fmt: skip
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    # Interleaved: cpu, auto, cpu, auto; each run asked for the same seed, and after the first for the
    # tokens the first generated (the same work).
    generates = [body for _, path, body in double.requests if path == "/api/generate" and body.get("prompt")]
    assert [body["options"] for body in generates] == [
        {"num_gpu": 0, "seed": 42},
        {"seed": 42, "num_predict": 40},
        {"num_gpu": 0, "seed": 42, "num_predict": 40},
        {"seed": 42, "num_predict": 40},
    ]
    assert len({body["prompt"] for body in generates}) == 1
    rates = server_rates(double)
    cpu, auto = statistics.fmean(rates[0::2]), statistics.fmean(rates[1::2])
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 8 and lines[4:7] == ["", "### Verdicts", ""]  # header, rule, the two means; verdicts
    assert lines[7].startswith("- auto: ") and " the speed of cpu (" in lines[7]
    assert lines[0].startswith("| model | params | quant | size | env | mode | ctx | GPU layers | tps | speed-up |")
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:4]]
    assert cells[0][:6] == ["llama3.3", "70.6B", "Q4_K_M", "42.5GB", "CPU", "cpu"]
    assert cells[1][:6] == ["llama3.3", "70.6B", "Q4_K_M", "42.5GB", "CPU+GPU", "auto"]
    assert cells[0][6] == cells[1][6] == "2048"  # ctx: the context Ollama loaded, from /api/ps
    assert cells[0][8] == f"{cpu:.2f} ± {statistics.stdev(rates[0::2]):.2f}"
    assert cells[1][8] == f"{auto:.2f} ± {statistics.stdev(rates[1::2]):.2f}"
    assert cells[0][9] == "1.00x" and cells[1][9].startswith(f"{auto / cpu:.2f}x (")  # with its 95% interval
    assert 1.5 < auto / cpu < 2.2  # the double generates twice as fast with the GPU
    assert cells[0][-1] == cells[1][-1] == "2"
    assert result.stdout.splitlines() == lines  # stdout carries the same table
    assert "[run 2 of 4: llama3.3 auto" in result.stderr and "left]" in result.stderr


def test_history_lists_the_runs_after_a_restart_and_compares_across_days(double_factory, tmp_path):
    double = double_factory(token_rate=150, cpu_token_rate=50, tokens=20)
    first = llmtop("llama3.3", "--host", double.url, "--modes", "cpu,auto", "--headless", "--no-log")
    assert first.returncode == 0, first.stderr
    rates = server_rates(double)

    listed = llmtop("history")  # a new process: only the file remembers
    no_traceback(listed)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("| date | model | params | quant | size | env | mode |")
    assert [line.split(" | ")[6] for line in lines[2:4]] == ["cpu", "auto"]
    assert f"| {rates[0]:.2f} |" in lines[2] and f"| {rates[1]:.2f} |" in lines[3]
    ratio = rates[1] / rates[0]
    verdict = f"- auto: {ratio:.2f}x the speed of cpu ({rates[1]:.2f} against {rates[0]:.2f} tps), one run"
    assert "### Verdicts" in listed.stdout and verdict in listed.stdout  # across days, as in a session

    export = tmp_path / "past.json"
    again = llmtop("history", "--model", "llama3.3:latest", "--export", str(export))
    assert again.returncode == 0, again.stderr
    runs = json.loads(export.read_text())["runs"]
    assert [r["mode"] for r in runs] == ["cpu", "auto"]
    assert [r["eval_rate_tps"] for r in runs] == pytest.approx(rates, rel=1e-9)
    assert llmtop("history", "--model", "qwen3").returncode == 1


def test_no_history_keeps_nothing(double):
    assert llmtop("llama3.3", "--host", double.url, "--headless", "--no-log", "--no-history").returncode == 0
    result = llmtop("history")
    assert result.returncode == 1 and "no runs kept yet" in result.stderr


def test_a_damaged_history_costs_no_run(double, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "history.sqlite3").write_bytes(b"garbage, not SQLite\n" * 400)
    out = tmp_path / "run.json"
    result = llmtop(
        "llama3.3", "--host", double.url, "--headless", "--no-log", "--export", str(out),
        env={"LLMTOP_DATA_DIR": str(data)},
    )  # fmt: skip
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "the history" in line]
    assert len(notes) == 1 and "file is not a database" in notes[0] and "the run is kept" in notes[0]
    assert json.loads(out.read_text())["runs"][0]["complete"] is True


def test_two_models_json_has_the_machine_and_the_chart_is_written(double_factory, tmp_path):
    double = double_factory(tokens=15)
    double.config.models["qwen3:8b"] = dict(LLAMA33, name="qwen3:8b", size=5_200_000_000, parameter_size="8.2B")
    out, chart = tmp_path / "runs.json", tmp_path / "tps.svg"
    result = llmtop(
        "llama3.3", "qwen3:8b", "--host", double.url, "--modes", "cpu,gpu=20", "--headless", "--no-log",
        "--seed", "7", "--temperature", "0.2", "--export", str(out), "--chart", str(chart),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text())
    assert [(r["model"], r["mode"]) for r in document["runs"]] == [
        ("llama3.3", "cpu"),
        ("llama3.3", "gpu=20"),
        ("qwen3:8b", "cpu"),
        ("qwen3:8b", "gpu=20"),
    ]
    assert {
        body["options"]["seed"] for _, p, body in double.requests if p == "/api/generate" and body.get("prompt")
    } == {7}
    machine = document["machine"]
    assert machine["ollama_version"] == "0.5.11" and machine["llmtop_version"]
    assert isinstance(machine["ram_total_bytes"], int) and machine["os"]
    assert [c["mode"] for c in document["comparison"]] == ["cpu", "gpu=20", "cpu", "gpu=20"]
    assert document["comparison"][0]["speedup_vs_cpu"] == 1.0
    assert chart.read_text().count("<rect") == 5  # the background and four bars
    assert f"wrote {chart}" in result.stderr


def test_the_articles_model_comparison_in_one_command_marks_the_moe_model(double_factory, tmp_path):
    """The article's last table: a dense 70B and an MoE model, each on the CPU and with the GPU, each mode's
    speed-up over the same model's CPU run, the MoE one marked with the experts it uses."""
    double = double_factory(tokens=15)
    info = {"general.architecture": "llama", "llama.block_count": 32, "llama.expert_count": 8,
            "llama.expert_used_count": 2}  # fmt: skip
    double.config.models["tanuki-8x8b:latest"] = dict(
        LLAMA33, name="tanuki-8x8b:latest", size=27_600_000_000, parameter_size="47.0B", model_info=info
    )
    out = tmp_path / "article.json"
    result = llmtop("llama3.3", "tanuki-8x8b", "--host", double.url, "--modes", "cpu,auto", "--headless",
                    "--no-log", "--lang", "ja", "--export", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("| モデル | パラ数 | 量子化 | サイズ | 環境 | モード |")
    assert [line.split(" | ")[0] for line in lines[2:6]] == [
        "| llama3.3",
        "| llama3.3",
        "| tanuki-8x8b (MoE, 2 of 8 experts)",
        "| tanuki-8x8b (MoE, 2 of 8 experts)",
    ]
    comparison = json.loads(out.read_text())["comparison"]
    assert [(c["model"], c["mode"], c["speedup_vs_cpu"] is not None) for c in comparison] == [
        ("llama3.3", "cpu", True),
        ("llama3.3", "auto", True),
        ("tanuki-8x8b", "cpu", True),
        ("tanuki-8x8b", "auto", True),
    ]
    runs = json.loads(out.read_text())["runs"]
    assert [r["experts"] for r in runs] == [None, None, "MoE, 2 of 8 experts", "MoE, 2 of 8 experts"]


def test_japanese_headers(double, tmp_path):
    result = llmtop("llama3.3", "--host", double.url, "--headless", "--no-log", "--lang", "ja")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("| モデル | パラ数 | 量子化 | サイズ | 環境 | モード |")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--modes", "cpu,fast"], "unknown mode 'fast': use cpu, auto or gpu=N"),
        (["--modes", "cpu,,auto"], "empty mode"),
        (["--modes", "cpu", "--cpu"], "not allowed with argument"),
        (["--repeat", "0"], "must be between 1 and 1000"),
        (["--temperature", "hot"], "not a number: 'hot'"),
        (["--chart", "tps.jpg"], "use .svg, .html or .png"),
        (["--lang", "fr"], "invalid choice: 'fr'"),
    ],
)
def test_bad_comparison_options_are_usage_errors(args, message):
    result = llmtop("llama3.3", "--host", "http://127.0.0.1:9", *args)
    no_traceback(result)
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.strip().splitlines()[-1].startswith("llmtop: error: ")
