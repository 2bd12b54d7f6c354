"""llmtop against a real engine: llama.cpp loading Gemma 3 270M (Q4_K_M) in an `ollama runner` child of
an `ollama serve` process (tests/engine_double.py), run as a user runs llmtop.

These tests are the proof that the figures are right when real memory is allocated and real tokens
are computed. They need the `engine` extra; on Linux a missing engine fails them, with what to
install, rather than skipping them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine_double import MODEL, EngineOllama
from helpers.cli import command, no_traceback, user_env
from waiting import eventually

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the engine double's processes are read through /proc (Linux)"
)


def engine(folder: Path, **settings) -> EngineOllama:
    """`ollama serve` with real runners in `folder/ollama`."""
    (folder / "ollama").mkdir()
    return EngineOllama(folder / "ollama", **settings)


def resident_bytes(pid: int) -> int:
    """The process's resident memory as /proc/PID/smaps_rollup sums it."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no Rss in /proc/{pid}/smaps_rollup")


def llmtop_argv(ollama: EngineOllama, folder: Path) -> list[str]:
    args = [MODEL, "--host", ollama.url, "--log", str(ollama.log_path), "--headless", "--no-history"]
    return command(*args, "--export", str(folder / "run.json"), "--record", str(folder / "run.jsonl"))


def events(folder: Path, kind: str) -> list[dict]:
    lines = (folder / "run.jsonl").read_text(encoding="utf-8").splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == kind]


@pytest.mark.parametrize("use_mmap", [True, False], ids=["weights mapped", "weights copied"])
def test_ram_is_the_runners_resident_memory_whether_weights_are_mapped_or_copied(engine_ready, tmp_path, use_mmap):
    with engine(tmp_path, use_mmap=use_mmap) as ollama:
        result = subprocess.run(
            llmtop_argv(ollama, tmp_path), capture_output=True, text=True, timeout=180, env=user_env()
        )
        no_traceback(result)
        assert result.returncode == 0, result.stderr
        (runner,) = ollama.runner_pids()  # still loaded (keep_alive): as it was while it generated
        resident = resident_bytes(runner)
        log = ollama.log_text()
    run = json.loads((tmp_path / "run.json").read_text())["runs"][0]
    weights = ollama.blob.stat().st_size
    assert ("--no-mmap" in log) is (not use_mmap)
    assert ("CPU_Mapped model buffer size" in log) is use_mmap
    # RAM is the model's resident footprint, within 10% of the runner's, mapped or not ...
    assert run["ram_delta_bytes"] == pytest.approx(resident, rel=0.10)
    # ... so it holds the weights, which `total - available` alone leaves out when they are mapped.
    assert run["ram_delta_bytes"] > weights
    mapped, in_use = run["ram_mapped_delta_bytes"], run["ram_in_use_delta_bytes"]
    assert run["ram_delta_bytes"] == pytest.approx(mapped + in_use, rel=0.05)
    if use_mmap:  # the weights are in the runner's file-backed memory, not in `total - available`
        assert mapped > 0.9 * weights and in_use < weights
    else:  # read into private memory: in use
        assert in_use > 0.9 * weights and mapped < weights / 4
    # The runner lived for about two seconds and was found and read.
    assert run["ollama_rss_delta_bytes"] == pytest.approx(resident, rel=0.10)
    # tps is the engine's own eval_count / eval_duration, as sent in its final chunk.
    (final,) = events(tmp_path, "final")
    chunk = final["chunk"]
    assert chunk["eval_count"] > 1 and chunk["done_reason"] in ("stop", "length")
    assert run["eval_rate_tps"] == pytest.approx(chunk["eval_count"] / (chunk["eval_duration"] / 1e9), rel=1e-9)
    assert run["eval_count"] == chunk["eval_count"]
    # The layers and the backend, from llama.cpp's own lines: a CPU-only build prints no
    # "offloaded" line, its buffers are all in CPU memory, and it names 18 repeating layers.
    assert "offloaded" not in log and "print_info: n_layer               = 18" in log
    assert (run["layers_offloaded"], run["layers_total"]) == (0, 19)
    assert (run["env"], run["env_source"], run["library"]) == ("CPU", "server log", "cpu")
    assert (run["parameter_size"], run["quantization"], run["size_bytes"]) == ("268.10M", "Q4_K_M", weights)


def _recorded(folder: Path) -> str:
    """The recording so far ("" before it exists)."""
    path = folder / "run.jsonl"
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def kill_the_runner_when(ollama: EngineOllama, folder: Path, ready, what: str) -> tuple[int, str, str, dict]:
    """Run llmtop; once `ready()`, SIGKILL the runner. llmtop's exit status, stdout, stderr and row."""
    llmtop = subprocess.Popen(
        llmtop_argv(ollama, folder), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=user_env()
    )
    try:
        eventually(ready, 120, what)
        (runner,) = ollama.runner_pids()
        os.kill(runner, signal.SIGKILL)
        out, err = llmtop.communicate(timeout=60)
    finally:
        if llmtop.poll() is None:
            llmtop.kill()
    assert "Traceback" not in err
    return llmtop.returncode, out, err, json.loads((folder / "run.json").read_text())["runs"][0]


def test_a_runner_killed_mid_stream_ends_the_run_incomplete_with_what_was_measured(engine_ready, tmp_path):
    with engine(tmp_path, max_tokens=5000) as ollama:
        status, out, err, run = kill_the_runner_when(
            ollama, tmp_path, lambda: _recorded(tmp_path).count('"event": "token"') >= 60, "60 tokens"
        )
    assert status == 1, err
    assert run["complete"] is False
    assert "unexpected EOF" in run["error"] and "llama runner terminated: signal: killed" in run["error"]
    assert run["client_rate_tps"] > 0 and run["ttft_s"] > 0
    assert run["ram_delta_bytes"] > ollama.blob.stat().st_size  # the loaded model, measured before the kill
    assert (run["layers_offloaded"], run["layers_total"]) == (0, 19)
    assert "| gemma3:270m |" in out


def test_a_runner_killed_mid_load_ends_the_run_incomplete_with_the_servers_error(engine_ready, tmp_path):
    hold = tmp_path / "hold-load"
    hold.touch()  # the runner stops halfway through reading the weights while this exists
    with engine(tmp_path, hold_load=hold) as ollama:

        def held_in_the_load() -> bool:
            if "load_tensors:" not in ollama.log_text() or not ollama.runner_pids():
                return False
            time.sleep(0.5)  # elapsed time is what is tested: the runner held in its load, the weights half read
            return True

        status, _, err, run = kill_the_runner_when(ollama, tmp_path, held_in_the_load, "the load")
    assert status == 1, err
    assert run["complete"] is False
    assert "llama runner process has terminated: signal: killed" in run["error"]
    assert run["eval_rate_tps"] is None and run["ttft_s"] is None
    assert isinstance(run["ram_peak_bytes"], int)  # sampled while it loaded
    assert '"event": "end"' in _recorded(tmp_path)
