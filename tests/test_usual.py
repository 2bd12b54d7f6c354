""" "Slow for this machine" (core/measure/usual.py): what a model usually gives in a mode here, from the
history, and a run well below it said in one line with the likely causes llmtop can see."""

from __future__ import annotations

import json
from dataclasses import replace

from helpers.cli import llmtop, no_traceback
from llmtop.measure.usual import likely_causes, slow_note, usual_for
from summary_rows import row


def past(tps: float, **fields) -> object:
    return replace(row("llama3.3", "auto", tps), layers_offloaded=27, shared_delta_bytes=0, generation_power_w=150.0,
                   ollama_version="0.34.4", other_cpu_cores=0.1, cpu_clock_mhz=3400.0, **fields)  # fmt: skip


HISTORY = [past(t) for t in (98.0, 100.0, 102.0, 99.0)]


def test_a_run_well_below_the_usual_is_slow_and_the_noise_is_not():
    assert slow_note(past(95.0), HISTORY) is None  # within the usual spread and a tenth
    assert slow_note(past(40.0), HISTORY[:2]) is None  # two past runs: no usual yet
    assert slow_note(replace(past(40.0), mode="cpu"), HISTORY) is None  # another mode: not alike
    note = slow_note(past(40.0), HISTORY)
    assert note == (
        "slow for this machine: 40.00 tokens/s where llama3.3 auto usually gives 99.75 here (99.75 ± 1.71 over 4 "
        "runs); llmtop sees no cause in what it measures"
    )
    assert usual_for(past(40.0), [*HISTORY, replace(past(20.0), complete=False)]).runs == tuple(HISTORY)


def test_the_likely_causes_are_what_differs_from_the_usual_runs():
    slow = replace(past(40.0), layers_offloaded=20, shared_delta_bytes=2_300_000_000, generation_power_w=90.0,
                   ollama_version="0.35.0", concurrent_requests=2, other_models=("qwen3:8b",),
                   swap_delta_bytes=1_200_000_000, other_cpu_cores=1.8, cpu_clock_mhz=1200.0,
                   gpu_clock_limits=("power cap", "thermal slowdown"))  # fmt: skip
    usual = usual_for(slow, HISTORY)
    assert likely_causes(slow, usual) == [
        "another model was loaded beside it (qwen3:8b)",
        "swap in use: 1.2 GB more than before the run",
        "the server also worked for another app (2 requests)",
        "20 layers on the GPU where usually 27",
        "shared GPU memory grown: 2.3 GB spilled where usually 0 B",
        "other processes kept 1.8 CPU cores busy where usually 0.1",
        "the CPU at 1.20 GHz where usually 3.40 GHz (its clock capped or throttled)",
        "the GPU's clock held down (power cap, thermal slowdown)",
        "90 W drawn where usually 150 W (a power cap, or the CPU or GPU throttled)",
        "Ollama 0.35.0 where the usual runs had 0.34.4",
    ]


def test_a_little_more_cpu_elsewhere_or_a_clock_a_little_lower_is_no_cause():
    near = replace(past(40.0), other_cpu_cores=0.5, cpu_clock_mhz=3000.0)  # 0.4 cores more, 88% of the clock
    assert likely_causes(near, usual_for(near, HISTORY)) == []
    unread = replace(past(40.0), other_cpu_cores=None, cpu_clock_mhz=None)  # a platform that tells neither
    assert likely_causes(unread, usual_for(unread, HISTORY)) == []
    capped = [replace(r, gpu_clock_limits=("power cap",)) for r in HISTORY]  # a card always at its cap
    assert likely_causes(replace(past(40.0), gpu_clock_limits=("power cap",)), usual_for(past(40.0), capped)) == []


def test_a_run_slower_than_this_machines_history_is_said_with_the_run(double_factory, tmp_path):
    double = double_factory(token_rate=100, tokens=30, vram_fraction=0.5)
    for _ in range(3):
        usual = llmtop("llama3.3", "--host", double.url, "--no-log", "--headless")
        assert usual.returncode == 0 and "slow for this machine" not in usual.stderr, usual.stderr
    double.config.token_rate = 30  # something else is running: a third of the speed
    out = tmp_path / "slow.json"
    slow = llmtop("llama3.3", "--host", double.url, "--no-log", "--headless", "--export", str(out))
    no_traceback(slow)
    assert slow.returncode == 0, slow.stderr
    (run,) = json.loads(out.read_text(encoding="utf-8"))["runs"]
    assert run["slow_note"].startswith("slow for this machine: ") and " usually gives " in run["slow_note"]
    assert "over 3 runs)" in run["slow_note"]
    assert f"llmtop: note: {run['slow_note']}" in slow.stderr
    assert f"- run 1 (llama3.3 auto): {run['slow_note']}" in slow.stdout  # under the table, with the verdicts


def test_a_process_busy_on_the_cpu_during_a_slow_run_is_named_as_its_likely_cause(double_factory, tmp_path):
    """Three usual runs, then one while two other processes burn both CPUs (and the double slows to a
    third): the slow note names the other processes and how many cores they kept busy."""
    import subprocess
    import sys

    double = double_factory(token_rate=100, tokens=60, vram_fraction=0.5)
    for _ in range(3):
        usual = llmtop("llama3.3", "--host", double.url, "--no-log", "--headless")
        assert usual.returncode == 0 and "slow for this machine" not in usual.stderr, usual.stderr
    double.config.token_rate = 30
    burn = "import time\nend = time.time() + 20\nwhile time.time() < end: pass"
    burners = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(2)]
    try:
        out = tmp_path / "slow.json"
        slow = llmtop("llama3.3", "--host", double.url, "--no-log", "--headless", "--export", str(out))
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert slow.returncode == 0, slow.stderr
    (run,) = json.loads(out.read_text(encoding="utf-8"))["runs"]
    # two burners on a machine of 2 or more, sharing it with llmtop and the double: at least half a core
    # between them, even where the hypervisor steals much of it (steal is no process's busy time; CI read 0.69)
    assert run["other_cpu_cores"] >= 0.5, run["other_cpu_cores"]
    assert "likely: other processes kept " in run["slow_note"] and " CPU cores busy where usually " in run["slow_note"]


def test_a_run_notes_the_other_models_ollama_had_loaded(double_factory, tmp_path):
    from ollama_double import LLAMA33

    models = {"llama3.3:latest": dict(LLAMA33), "qwen3:8b": dict(LLAMA33, name="qwen3:8b")}
    double = double_factory(models=models, preloaded=("qwen3:8b",), token_rate=200, tokens=10, vram_fraction=0.5)
    out = tmp_path / "r.json"
    result = llmtop("llama3.3", "--host", double.url, "--no-log", "--headless", "--export", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["runs"][0]["other_models"] == ["qwen3:8b"]
