"""Every way out keeps the run: SIGTERM and SIGHUP, headless and on screen, a server that stops
sending, a failing /api/ps, a proxy's error page. Each case: the exit status, one line on stderr, no
traceback, and the partial run in the export, the history and the recording."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.cli import command, llmtop, no_traceback
from helpers.pty_screen import drain
from waiting import eventually

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def data_dir() -> Path:
    return Path(os.environ["LLMTOP_DATA_DIR"])


def history_rows() -> list[dict]:
    with sqlite3.connect(data_dir() / "history.sqlite3") as db:
        return [json.loads(text) for (text,) in db.execute("SELECT row_json FROM runs ORDER BY id")]


def recorded(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "OLLAMA_HOST"}


@pytest.mark.parametrize(
    ("signum", "status", "reason"),
    [(signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGHUP, 129, "hung up (SIGHUP")],
    ids=["SIGTERM", "SIGHUP"],
)
def test_a_signal_keeps_the_run_headless(double_factory, tmp_path, signum, status, reason):
    double = double_factory(token_rate=40, tokens=4000)
    out, record = tmp_path / "out.json", tmp_path / "run.jsonl"
    args = ["llama3.3", "--host", double.url, "--headless", "--no-log", "--export", str(out), "--record", str(record)]
    process = subprocess.Popen(
        command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment()
    )
    try:
        eventually(lambda: recorded(record).count('"event": "token"') >= 10, 30, "tokens")
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert "Traceback" not in stderr
    assert process.returncode == status, stderr
    run = json.loads(out.read_text())["runs"][0]
    assert run["complete"] is False and run["error"].startswith(reason)
    assert run["client_rate_tps"] > 0 and "| llama3.3 |" in stdout
    assert [r["error"] for r in history_rows()] == [run["error"]]
    events = [json.loads(line) for line in record.read_text().splitlines()]
    assert events[-1]["event"] == "closed"  # the recording was closed, with the run's summary in it
    assert [e["row"]["error"] for e in events if e["event"] == "summary"] == [run["error"]]


def test_a_signal_keeps_the_run_on_screen(double_factory, tmp_path):
    double = double_factory(token_rate=40, tokens=4000)
    out, record = tmp_path / "out.json", tmp_path / "run.jsonl"
    argv = command("llama3.3", "--host", double.url, "--no-log", "--export", str(out), "--record", str(record))
    env = dict(environment(), TERM="xterm-256color", COLUMNS="120", LINES="40")
    pid, fd = os.forkpty()
    if pid == 0:  # the child: llmtop's screen on a pseudo terminal
        os.execve(argv[0], argv, env)
    screen = bytearray()
    try:
        deadline = time.monotonic() + 30
        while recorded(record).count('"event": "token"') < 10:
            assert time.monotonic() < deadline, "no tokens on screen"
            screen += drain(fd)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while True:
            screen += drain(fd)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            assert time.monotonic() < deadline, "llmtop did not stop"
        screen += drain(fd)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 143
    # The terminal is given back: the alternate screen left, the cursor shown, mouse tracking off.
    after = bytes(screen[screen.rfind(b"\x1b[?1049h") :])
    assert b"\x1b[?1049l" in after and b"\x1b[?25h" in after and b"\x1b[?1000l" in after
    run = json.loads(out.read_text())["runs"][0]
    assert run["complete"] is False and run["error"] == "terminated (SIGTERM)"
    assert [r["error"] for r in history_rows()] == ["terminated (SIGTERM)"]


def test_a_second_signal_ends_llmtop_at_once(tmp_path):
    script = (
        "import sys, time\n"
        "from llmtop.measure.stopping import SignalStop\n"
        "SignalStop(on_stop=lambda stop: print(stop.reason, stop.status, flush=True)).install()\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    child.send_signal(signal.SIGTERM)
    assert child.stdout.readline() == "terminated (SIGTERM) 143\n"  # the first: a stop, kept
    child.send_signal(signal.SIGTERM)
    assert child.wait(10) == -signal.SIGTERM  # the second: as if nothing handled it


def test_a_server_that_stops_sending_ends_the_run_after_the_stall_timeout(double_factory, tmp_path):
    double = double_factory(token_rate=100, tokens=100, fault="stall", fault_after=10)
    out = tmp_path / "out.json"
    began = time.monotonic()
    result = llmtop(
        "llama3.3", "--host", double.url, "--headless", "--no-log", "--stall-timeout", "2", "--export", str(out)
    )
    no_traceback(result)
    assert result.returncode == 1 and time.monotonic() - began < 20
    run = json.loads(out.read_text())["runs"][0]
    assert run["complete"] is False and run["error"] == "no token for 2 s (--stall-timeout)"
    assert "run incomplete: no token for 2 s" in result.stderr
    assert history_rows()[0]["error"] == run["error"]


def test_a_failing_api_ps_does_not_stop_the_run(double_factory, tmp_path):
    double = double_factory(fault="ps_500", token_rate=200)
    out = tmp_path / "out.json"
    result = llmtop("llama3.3", "--host", double.url, "--headless", "--no-log", "--export", str(out))
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert "/api/ps failed (internal error)" in result.stderr
    run = json.loads(out.read_text())["runs"][0]
    assert run["complete"] is True and run["ps_size_bytes"] is None and run["eval_rate_tps"] > 0


def test_a_proxys_error_page_is_one_line_that_says_so(double_factory, tmp_path):
    double = double_factory(fault="proxy_502")
    out = tmp_path / "out.json"
    result = llmtop("llama3.3", "--host", double.url, "--headless", "--no-log", "--export", str(out))
    no_traceback(result)
    assert result.returncode == 1
    expected = f"HTTP 502 Bad Gateway from {double.url}: not Ollama's JSON (a proxy in between?)"
    assert f"run incomplete: {expected}" in result.stderr and "<html>" not in result.stderr
    assert json.loads(out.read_text())["runs"][0]["error"] == expected


def test_a_data_folder_that_cannot_be_written_costs_no_run(double_factory, tmp_path):
    """The history and the default recording cannot be kept (the data folder's path runs through a
    file, which even root cannot write into): the run goes on, and a line says what was not kept."""
    double = double_factory(token_rate=200, tokens=20)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = tmp_path / "out.json"
    env = dict(environment(), LLMTOP_DATA_DIR=str(blocker / "llmtop"))
    result = subprocess.run(
        command("llama3.3", "--host", double.url, "--headless", "--no-log", "--export", str(out)),
        capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["runs"][0]["complete"] is True
    said = [line for line in result.stderr.splitlines() if str(blocker) in line]
    assert any("history" in line and "the run is kept in this session and its exports" in line for line in said)
    assert any("unrecorded" in line for line in said), said
    assert "recorded to" not in result.stderr


def test_a_disk_that_fills_during_the_recording_costs_no_run(double_factory, tmp_path):
    """The recording's file may grow to 150 kB and no further (RLIMIT_FSIZE: writes past it fail as on
    a full disk): the run goes on to its end, the export is written, and "recorded to" is not said."""
    import resource

    double = double_factory(token_rate=400, tokens=3000)
    out, record = tmp_path / "out.json", tmp_path / "run.jsonl"

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))

    result = subprocess.run(
        command("llama3.3", "--host", double.url, "--headless", "--no-log", "--no-history",
                "--export", str(out), "--record", str(record)),
        capture_output=True, text=True, env=environment(), timeout=90, stdin=subprocess.DEVNULL,
        preexec_fn=small_files,
    )  # fmt: skip
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stderr
    run = json.loads(out.read_text())["runs"][0]
    assert run["complete"] is True and run["eval_count"] == 3000
    assert f"recording to {record} stopped: File too large" in result.stderr
    assert "recorded to" not in result.stderr
    assert 0 < record.stat().st_size <= 150_000
