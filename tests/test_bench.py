"""The benchmarks' own parts keep working: the stand-in Ollama's processes, and the long-run
recording (the benchmarks themselves print figures; they are not tests)."""

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import long_run  # noqa: E402
from stand_in import StandIn  # noqa: E402

LLMTOP = str(Path(sys.executable).parent / "llmtop")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the benchmarks run on Linux and macOS")


def test_the_stand_in_runs_as_ollama_serve_and_starts_a_runner_for_a_load(tmp_path):
    with StandIn(tmp_path, mode="cpu", tokens=80, work_ms=5) as ollama:  # a generation of several samples
        export = tmp_path / "run.json"
        done = subprocess.run(
            [LLMTOP, "llama3.3", "--host", ollama.url, "--headless", "--no-log", "--no-history", "--no-record"]
            + ["--interval", "0.05", "--export", str(export)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        run = json.loads(export.read_text())["runs"][0]
        assert run["complete"] and run["eval_rate_tps"] > 0
        server = psutil.Process(ollama.process.pid)
        assert server.name() == "ollama" and server.cmdline()[1:2] == ["serve"]
        # llmtop's process collector found the server: its RSS was read.
        assert run["ollama_rss_delta_bytes"] is not None


def test_the_long_run_recording_replays_to_its_token_count(tmp_path):
    path = tmp_path / "long.jsonl"
    events = long_run.write_recording(path, 60.0)
    assert events > 60 * long_run.RATE
    export = tmp_path / "replayed.json"
    done = subprocess.run(
        [LLMTOP, "replay", str(path), "--speed", "max", "--headless", "--export", str(export)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    run = json.loads(export.read_text())["runs"][0]
    assert run["eval_rate_tps"] == pytest.approx(long_run.RATE, rel=1e-6)
    assert run["client_rate_tps"] == pytest.approx(long_run.RATE, rel=1e-3)
