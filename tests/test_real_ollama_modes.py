"""The server's own settings as modes, on real Ollama: `--serve` starts `ollama serve`, restarts it
between runs whose settings differ (KV cache type, flash attention, MoE expert placement, slots),
and each run says what it ran with and where its memory went, as the server itself tells it."""

from __future__ import annotations

import html
import sys

import pytest

from helpers.real_runs import events, exported, run_llmtop, serve_env, server_processes
from real_ollama import MOE_LLAMA, RANDOM_LLAMA

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Ollama is built here for Linux")


def part(run: dict, name: str) -> int:
    (found,) = [p["bytes"] for p in run["memory_parts"] if p["part"] == name]
    return found


def test_kv_cache_type_and_moe_placement_each_run_on_a_restarted_server_and_say_so(real_ollama, tmp_path):
    """The issue's own command, on the newest Ollama and the tests' MoE model: three rows, each with the
    settings the server reports and its memory by part; q8_0's KV cache is about half of f16's."""
    server = real_ollama("newest", start=False)
    result = run_llmtop(server, tmp_path, MOE_LLAMA, "--serve", "--modes", "auto,auto:kv=q8_0,moe=all",
                        "--chart", str(tmp_path / "c.svg"), **serve_env(server))  # fmt: skip
    assert result.returncode == 0, result.stderr
    restarts = [line for line in result.stderr.splitlines() if "restarting the ollama serve" in line]
    assert restarts == [
        "llmtop: restarting the ollama serve llmtop started: OLLAMA_KV_CACHE_TYPE=q8_0 ollama serve",
        "llmtop: restarting the ollama serve llmtop started: LLAMA_ARG_CPU_MOE=1 ollama serve",
    ]
    f16, q8, moe = exported(tmp_path)
    assert [r["mode"] for r in (f16, q8, moe)] == ["auto", "auto:kv=q8_0", "auto:moe=all"]
    assert all(r["complete"] and r["ollama_version"] == server.version for r in (f16, q8, moe))
    assert f16["settings"]["kv_cache"] == "f16" and q8["settings"]["kv_cache"] == "q8_0"
    assert q8["settings"]["flash_attention"] == "on"  # llama.cpp turns it on for a quantized V cache
    assert moe["settings"]["cpu_moe"] == "all" and "cpu_moe" not in f16["settings"]  # from llama-server's environment
    assert 0.45 < part(q8, "kv_cache") / part(f16, "kv_cache") < 0.6  # q8_0: 8.5 bits a value against 16
    assert part(q8, "weights") == part(f16, "weights") == part(moe, "weights")
    assert {p["device"] for r in (f16, q8, moe) for p in r["memory_parts"]} == {"system memory"}  # no GPU here
    table = result.stdout
    assert "| auto, KV q8_0 |" in table and "| auto, all experts on CPU |" in table
    assert "### Settings and memory by part" in table and "█ weights  ▓ KV cache  ░ compute" in table
    chart = (tmp_path / "c.svg").read_text(encoding="utf-8")
    assert "r16-moe auto, KV q8_0" in chart and "r16-moe auto, all experts on CPU" in chart  # the bars' labels
    log_lines = [e["line"] for e in events(tmp_path, "log")]
    assert sum('msg="starting llama-server"' in line for line in log_lines) == 3
    assert sum("--cache-type-k q8_0" in line for line in log_lines) == 1
    assert server_processes(server) == []  # every server llmtop started, and its llama-server, is gone


def test_flash_attention_and_slots_reach_llama_servers_command_line(real_ollama, tmp_path):
    server = real_ollama("newest", start=False)
    result = run_llmtop(server, tmp_path, RANDOM_LLAMA, "--serve", "--modes", "auto:fa=off,auto:fa=on:np=2",
                        **serve_env(server))  # fmt: skip
    assert result.returncode == 0, result.stderr
    off, on = exported(tmp_path)
    assert off["settings"]["flash_attention"] == "off" and on["settings"]["flash_attention"] == "on"
    assert (off["settings"]["parallel"], on["settings"]["parallel"]) == ("1", "2")
    starts = [e["line"] for e in events(tmp_path, "log") if 'msg="starting llama-server"' in e["line"]]
    assert len(starts) == 2 and "--flash-attn off" in starts[0] and "--flash-attn on" in starts[1]
    assert " -np 2 " in starts[1]
    assert part(on, "kv_cache") == 2 * part(off, "kv_cache")  # each slot its own cache of the same context


def test_a_sweep_of_the_experts_place_runs_each_point_on_its_own_server_and_concludes(real_ollama, tmp_path):
    """`--serve --sweep moe=0,8`: Ollama's choice, then every layer asked for the GPU with the experts of 0
    and 8 layers in system memory, each on a server started with its LLAMA_ARG_N_CPU_MOE. Here, without a
    GPU, every point ran on the CPU, and the sweep says there is nothing to choose."""
    server = real_ollama("newest", start=False)
    report = tmp_path / "r.html"
    result = run_llmtop(server, tmp_path, MOE_LLAMA, "--serve", "--sweep", "moe=0,8", "--report", str(report),
                        **serve_env(server))  # fmt: skip
    assert result.returncode == 0, result.stderr
    runs = exported(tmp_path)
    assert [r["mode"] for r in runs] == ["auto", "gpu=17:moe=0", "gpu=17:moe=8"]
    assert [r["settings"].get("cpu_moe") for r in runs] == [None, None, "8"]  # 0 layers: no placement at all
    assert "there is no place for the experts to choose on this machine" in result.stdout
    assert "the experts sweep compares runs of the same thing" in result.stderr  # said before it starts
    page = html.unescape(report.read_text(encoding="utf-8"))
    assert "the experts' place (moe=N: the experts of N layers in system memory)" in page


def test_placing_experts_of_a_model_that_has_none_is_one_line_and_status_2(real_ollama, tmp_path):
    server = real_ollama("newest", start=False)
    result = run_llmtop(server, tmp_path, RANDOM_LLAMA, "--serve", "--modes", "auto,moe=all", **serve_env(server))
    assert result.returncode == 2
    assert f"llmtop: auto:moe=all places experts, and {RANDOM_LLAMA} has none (/api/show gives no expert_count)" in (
        result.stderr
    )
    assert not (tmp_path / "run.json").exists() and server_processes(server) == []


@pytest.mark.parametrize(
    ("modes", "why"),
    [
        ("auto,moe=all", "llmtop: moe=all needs Ollama 0.30 or later, which runs llama-server"),
        ("auto:kv=q8_0", "llmtop: kv=q8_0 needs flash attention on Ollama 0.5.11"),
    ],
)
def test_a_setting_the_articles_ollama_would_ignore_is_one_line_and_status_2_before_any_run(
    real_ollama, tmp_path, modes, why
):
    server = real_ollama("article", start=False)
    result = run_llmtop(server, tmp_path, RANDOM_LLAMA, "--serve", "--modes", modes, **serve_env(server))
    assert result.returncode == 2
    (said,) = [line for line in result.stderr.splitlines() if line.startswith("llmtop: ") and "server log" not in line]
    assert said.startswith(why), result.stderr
    assert not (tmp_path / "run.json").exists()
    recorded = (tmp_path / "run.jsonl").read_text(encoding="utf-8") if (tmp_path / "run.jsonl").exists() else ""
    assert '"event": "run"' not in recorded and server_processes(server) == []
