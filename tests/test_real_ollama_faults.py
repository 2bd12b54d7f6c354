"""Faults from the real server, as users meet them: the runner (or llama-server) killed or stopped
mid-generation, `ollama serve` itself stopped mid-run, a model that does not exist, one whose file
is damaged, `--pull` with no way to the registry. Each: Ollama's own words in one line, the exit
status of the table, the run so far kept, and (where the server lives on) the next run working."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import OLLAMA_VERSIONS

from helpers.cli import command
from helpers.real_runs import exported, runner_pids
from llama_gguf import Shape, write_random_llama
from llmtop.units import one_line
from real_ollama import LONG_LLAMA, RANDOM_LLAMA, RealOllama
from waiting import eventually, give_up

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Ollama is built here for Linux")

STALL_S = 5  # a 2-core machine running other tests may pause a healthy runner for a second or two
TOKENS_BEFORE = 12  # tokens of the run before the fault: enough that a busy server's coalesced chunks still span time


def start_llmtop(server: RealOllama, folder: Path, *args: str) -> subprocess.Popen[str]:
    argv = command(
        *args, "--host", server.url, "--log", str(server.log_path), "--headless", "--no-history",
        "--export", str(folder / "run.json"), "--record", str(folder / "run.jsonl"),
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "OLLAMA_HOST"}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def recorded(folder: Path) -> list[dict]:
    path = folder / "run.jsonl"
    if not path.exists():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            pass  # the line being written
    return found


def tokens_in_first_run(folder: Path, llmtop: subprocess.Popen[str]) -> int:
    if llmtop.poll() is not None:
        give_up(f"llmtop ended first: {llmtop.communicate()[1]}")
    events = recorded(folder)
    if any(e["event"] == "end" for e in events):
        give_up("the first run ended before the fault")
    return sum(1 for e in events if e["event"] == "token")


def timed_tokens_in_first_run(folder: Path, llmtop: subprocess.Popen[str]) -> int:
    """The first run's tokens so far, counted only once they came one by one often enough for the
    client's clock to time them (TokenClock.in_bursts): a busy 2-core machine may hand over a dozen
    of them in two reads, and a fault then leaves a run with no client rate to keep."""
    from llmtop.collectors.token_timing import TokenClock

    count = tokens_in_first_run(folder, llmtop)
    times = [e["t"] for e in recorded(folder) if e["event"] == "token"]
    if not times:
        return 0
    clock = TokenClock(times[0])
    for t in times:
        clock.token(t)
    return 0 if clock.in_bursts() else count


def said_once(stderr: str, words: str) -> None:
    lines = [line for line in stderr.splitlines() if words in line]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("kind", OLLAMA_VERSIONS)
def test_the_runner_killed_mid_generation(real_ollama, tmp_path, kind):
    """SIGKILL to the runner (llama-server on 0.30+) while it generates: Ollama's answer in one line,
    the run kept as far as it got, and the next run (another model here) starts a new runner."""
    server = real_ollama(kind)
    llmtop = start_llmtop(server, tmp_path, LONG_LLAMA, RANDOM_LLAMA)
    try:
        eventually(lambda: timed_tokens_in_first_run(tmp_path, llmtop) >= TOKENS_BEFORE, 180, "timed tokens")
        (runner,) = runner_pids(server)
        os.kill(runner, signal.SIGKILL)
        _, stderr = llmtop.communicate(timeout=240)
    finally:
        if llmtop.poll() is None:
            llmtop.kill()
    assert llmtop.returncode == 1, stderr
    broken, after = exported(tmp_path)
    assert broken["model"] == LONG_LLAMA and broken["complete"] is False and broken["eval_count"] is None
    assert broken["client_rate_tps"] is not None and broken["ram_delta_bytes"] is not None  # what was measured is kept
    said_once(stderr, broken["error"].split(" (server log:")[0][:60])
    assert after["model"] == RANDOM_LLAMA and after["complete"] is True


@pytest.mark.parametrize("kind", OLLAMA_VERSIONS)
def test_the_runner_stopped_mid_generation_ends_the_run_within_the_stall_limit(real_ollama, tmp_path, kind):
    """SIGSTOP to the runner, as a hung driver leaves it: llmtop ends the run within --stall-timeout
    (the run kept), and once the runner goes on (SIGCONT) the next run works."""
    server = real_ollama(kind)
    llmtop = start_llmtop(server, tmp_path, LONG_LLAMA, RANDOM_LLAMA, "--stall-timeout", str(STALL_S))
    runner = None
    try:
        eventually(lambda: tokens_in_first_run(tmp_path, llmtop) >= TOKENS_BEFORE, 180, "tokens of the first run")
        (runner,) = runner_pids(server)
        os.kill(runner, signal.SIGSTOP)
        stopped = time.monotonic()
        eventually(lambda: any(e["event"] == "end" for e in recorded(tmp_path)), STALL_S + 10, "the run's end")
        ended = time.monotonic()
        os.kill(runner, signal.SIGCONT)
        runner = None
        _, stderr = llmtop.communicate(timeout=240)
    finally:
        if runner is not None:
            os.kill(runner, signal.SIGCONT)
        if llmtop.poll() is None:
            llmtop.kill()
    assert ended - stopped < STALL_S + 5
    assert llmtop.returncode == 1, stderr
    stalled, after = exported(tmp_path)
    assert stalled["complete"] is False and stalled["error"] == f"no token for {STALL_S} s (--stall-timeout)"
    said_once(stderr, stalled["error"])
    assert after["complete"] is True


@pytest.mark.parametrize("kind", OLLAMA_VERSIONS)
def test_ollama_serve_stopped_mid_run(real_ollama, tmp_path, kind):
    server = real_ollama(kind)
    llmtop = start_llmtop(server, tmp_path, LONG_LLAMA)
    try:
        eventually(lambda: timed_tokens_in_first_run(tmp_path, llmtop) >= TOKENS_BEFORE, 180, "timed tokens")
        stopped = time.monotonic()
        server.stop()
        _, stderr = llmtop.communicate(timeout=60)
    finally:
        if llmtop.poll() is None:
            llmtop.kill()
    assert time.monotonic() - stopped < 30
    assert llmtop.returncode == 1, stderr
    (run,) = exported(tmp_path)
    assert run["complete"] is False and run["client_rate_tps"] is not None
    said_once(stderr, run["error"][:60])


@pytest.mark.parametrize("kind", OLLAMA_VERSIONS)
def test_a_model_that_does_not_exist(real_ollama, tmp_path, kind):
    server = real_ollama(kind)
    llmtop = start_llmtop(server, tmp_path, "no-such-model")
    _, stderr = llmtop.communicate(timeout=60)
    assert llmtop.returncode == 2, stderr
    assert stderr.count("llmtop: ") >= 1 and "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if "no-such-model" in line]
    assert "not" in line and "--pull" in line  # what is wrong, and what to do


@pytest.mark.parametrize("kind", OLLAMA_VERSIONS)
def test_a_model_whose_file_is_damaged(real_ollama, tmp_path, kind):
    """A model whose blob was cut short after it was imported (a full disk, a copy that broke off):
    the load fails with Ollama's own words, in one line, exit 1, the failed run kept."""
    server = real_ollama(kind)
    small = write_random_llama(tmp_path / "small.gguf", Shape(layers=4, vocab=512), seed=7)
    server.create("damaged", small)
    blobs = sorted(server.models.joinpath("blobs").glob("sha256-*"), key=lambda p: p.stat().st_mtime)
    blob = next(p for p in reversed(blobs) if p.stat().st_size == small.stat().st_size)
    with blob.open("r+b") as handle:
        handle.truncate(small.stat().st_size // 2)
    llmtop = start_llmtop(server, tmp_path, "damaged")
    _, stderr = llmtop.communicate(timeout=120)
    assert llmtop.returncode == 1, stderr
    # Where Ollama reads the file (0.24 on, for /api/show too), it fails there; 0.5.11 fails the load.
    status, answer = server.api_error("/api/show", {"model": "damaged"})
    if status == 200:
        status, answer = server.api_error("/api/generate", {"model": "damaged", "prompt": "Hello"})
    assert status == 500, answer
    # Ollama's own words, on one line: their first line, as 0.5.11 adds the runner's last stderr
    # lines only where it has read them before the runner's exit (one request of two, on a busy machine).
    words = one_line(answer["error"]).split(" / ")[0]
    said_once(stderr, words)
    if (tmp_path / "run.json").exists():  # the load failed: the run is kept with them
        (run,) = exported(tmp_path)
        assert run["complete"] is False and words in run["error"] and "\n" not in run["error"]


@pytest.mark.parametrize("kind", ["article", "newest"])
def test_pull_with_no_way_to_the_registry(real_ollama, tmp_path, kind):
    """`--pull` of a model the server lacks, where the registry cannot be reached: Ollama's own
    error, in one line, and no run."""
    server = real_ollama(kind, HTTPS_PROXY="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    llmtop = start_llmtop(server, tmp_path, "no-such-model-here:latest", "--pull")
    _, stderr = llmtop.communicate(timeout=120)
    assert llmtop.returncode in (1, 2), stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if "pull" in line.lower()]
    assert lines and all(line.startswith("llmtop: ") for line in lines), stderr
    assert not (tmp_path / "run.json").exists() or exported(tmp_path) == []
