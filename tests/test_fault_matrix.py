"""Every fault from the states users are in: the model already loaded when llmtop starts (so every
run unloads first), the second run of a plan and a sweep's third point; read by llmtop's own stream
reader and by the official client (behind a proxy from the environment); headless and on screen.

Each case runs `llmtop` as a user does, against the double, and checks what the user is left with:
the exit status, the failure said in one line on stderr, no traceback, the run so far in the export,
the history and the recording, and the time it took to end: within the stall limit plus 5 s.
docs/reliability.md's table is this matrix.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from test_cli import command
from test_ways_out import _drain
from waiting import eventually

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pseudo terminals")

STALL_S = 2  # --stall-timeout of every case
LOAD_TIMEOUT = "1s"  # OLLAMA_LOAD_TIMEOUT: a silent load is given up after 2 s (the timeout and as long again)
END_MARGIN_S = 5.0  # the time to end, past the stall limit, that a case may take


@dataclass(frozen=True)
class Fault:
    """One fault: how the double shows it, what llmtop must end with, and what the run's error says."""

    config: dict[str, Any]
    status: int
    error: str | None  # None: the run completes
    signum: int | None = None
    env: dict[str, str] = field(default_factory=dict)


FAULTS = {
    "drop": Fault({"fault": "drop"}, 1, "the connection dropped mid-stream"),
    "reset": Fault({"fault": "reset"}, 1, "the connection dropped mid-stream"),
    "stall": Fault({"fault": "stall"}, 1, f"no token for {STALL_S} s (--stall-timeout)"),
    "silent": Fault({"fault": "silent"}, 1, "the server sent nothing for 2 s", env={"OLLAMA_LOAD_TIMEOUT": "1s"}),
    "slow first byte": Fault({"fault": "slow_first_byte"}, 0, None, env={"OLLAMA_LOAD_TIMEOUT": "1s"}),
    "malformed line": Fault({"fault": "malformed"}, 1, "not JSON"),
    "5 MB line": Fault({"fault": "huge_line"}, 0, None),
    "out of memory": Fault({"fault": "oom"}, 1, "requires more system memory"),
    "not found": Fault({"fault": "404"}, 1, "is not on the server"),
    "HTML 502": Fault({"fault": "proxy_502"}, 1, "HTTP 502 Bad Gateway"),
    "/api/ps 500": Fault({"fault": "ps_500"}, 0, None),
    "SIGINT": Fault({"fault": "long"}, 130, "interrupted (Ctrl+C)", signal.SIGINT),
    "SIGTERM": Fault({"fault": "long"}, 143, "terminated (SIGTERM)", signal.SIGTERM),
    "SIGHUP": Fault({"fault": "long"}, 129, "hung up (SIGHUP", signal.SIGHUP),
}

# state -> (the arguments after the model, the generation the fault hits, the runs a complete plan has)
STATES = {
    "loaded": ([], 1, 1),
    "plan, 2nd run": (["--modes", "cpu,auto", "--repeat", "2"], 2, 4),
    "sweep, 3rd point": (["--sweep", "0,10,20"], 3, 4),
}


def _environment(reader: str, double_url: str, fault: Fault) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in ("OLLAMA_HOST", "NO_PROXY", "HTTP_PROXY")}
    if reader == "official client":  # the double is its own HTTP proxy: the official client reads the stream
        env["HTTP_PROXY"] = double_url
    env.update(fault.env)
    return env


def _history_errors() -> list[str | None]:
    path = Path(os.environ["LLMTOP_DATA_DIR"]) / "history.sqlite3"
    with sqlite3.connect(path) as db:
        return [json.loads(text)["error"] for (text,) in db.execute("SELECT row_json FROM runs ORDER BY id")]


def _recorded(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def _tokens_of_run(path: Path, run: int) -> int:
    """Tokens recorded so far in the `run`th run (from 1)."""
    text = _recorded(path)
    parts = text.split('"event": "run"')
    return parts[run].count('"event": "token"') if len(parts) > run else 0


class _Headless:
    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL
        )

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def finish(self, record: Path, timeout: float, runs: int) -> tuple[int, str]:
        try:
            _, stderr = self.process.communicate(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.communicate()
        return self.process.returncode, stderr

    def running(self) -> bool:
        return self.process.poll() is None


class _OnScreen:
    """llmtop's screen on a pseudo terminal; `q` once the plan is over, as a user leaves it."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        env = dict(env, TERM="xterm-256color", COLUMNS="120", LINES="40")
        self.pid, self.fd = os.forkpty()
        if self.pid == 0:
            try:
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        self.status: int | None = None

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def running(self) -> bool:
        _drain(self.fd)
        if self.status is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status is None

    def finish(self, record: Path, timeout: float, runs: int) -> tuple[int, str]:
        deadline = time.monotonic() + timeout
        quit_sent = False
        try:
            while self.running():
                if not quit_sent and _recorded(record).count('"event": "summary"') >= runs:
                    os.write(self.fd, b"q")
                    quit_sent = True
                if time.monotonic() > deadline:
                    os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
                    pytest.fail("llmtop's screen did not end in time")
        finally:
            os.close(self.fd)
        assert self.status is not None
        return self.status, ""


def run_case(double_factory, tmp_path, fault_name: str, state: str, reader: str, screen: str) -> None:
    fault = FAULTS[fault_name]
    extra, hit, runs = STATES[state]
    config = {"token_rate": 200, "tokens": 40, "fault_after": 5, "fault_from": hit, "fault_once": True}
    config.update(fault.config)
    if state == "loaded":
        config["preloaded"] = ("llama3.3:latest",)
    double = double_factory(**config)
    out, record = tmp_path / "out.json", tmp_path / "run.jsonl"
    argv = command(
        "llama3.3", *extra, "--host", double.url, "--no-log", "--stall-timeout", str(STALL_S),
        "--export", str(out), "--record", str(record),
        *(["--headless"] if screen == "headless" else []),
    )  # fmt: skip
    env = _environment(reader, double.url, fault)
    began = time.monotonic()
    process = _Headless(argv, env) if screen == "headless" else _OnScreen(argv, env)
    sent = None
    try:
        if fault.signum is not None:

            def tokens_in_the_run() -> bool:
                assert process.running(), "llmtop ended before the signal"
                return _tokens_of_run(record, hit) >= 5

            eventually(tokens_in_the_run, 60, "tokens in the run to stop")
            sent = time.monotonic()
            process.signal(fault.signum)
    finally:
        status, stderr = process.finish(
            record, 90 if sent is not None or fault.signum is None else 1, hit if fault.signum is not None else runs
        )
    ended = time.monotonic()

    # The exit status, and no traceback anywhere. In a sweep, a point that failed before its first
    # token is a result (exit 0), as one that failed to load.
    before_first_token = fault_name in ("silent", "out of memory", "not found", "HTML 502")
    expected = 0 if state.startswith("sweep") and before_first_token else fault.status
    assert status == expected, stderr
    assert "Traceback" not in stderr
    # The run that met the fault, kept: in the export, the history and the recording.
    rows = json.loads(out.read_text())["runs"]
    faulted = rows[hit - 1]
    if fault.error is None:
        assert len(rows) == runs and all(r["complete"] for r in rows)
    else:
        assert faulted["complete"] is False and fault.error in faulted["error"], faulted["error"]
        assert [r["complete"] for r in rows[: hit - 1]] == [True] * (hit - 1)
        assert len(rows) == (hit if fault.signum is not None else runs)
        if screen == "headless":  # said in one line
            assert sum(fault.error in line for line in stderr.splitlines()) == 1, stderr
    assert _history_errors() == [r["error"] for r in rows]
    events = [json.loads(line) for line in record.read_text().splitlines()]
    assert events[-1]["event"] == "closed"
    assert [e["row"]["error"] for e in events if e["event"] == "summary"] == [r["error"] for r in rows]
    if reader == "official client":
        assert double.proxied > 0, "the official client did not go through the proxy"
    # The time to end: a stall or a silent load within the stall limit plus the margin; a signal at once.
    if sent is not None:
        assert ended - sent < END_MARGIN_S
    elif fault_name in ("stall", "silent"):
        faulted_end = next(e["t"] for e in events if e["event"] == "end" and not e["complete"])
        last = max(
            (e["t"] for e in events if e["event"] in ("token", "request") and e["t"] < faulted_end), default=None
        )
        assert last is not None and faulted_end - last < STALL_S * (2 if fault_name == "silent" else 1) + END_MARGIN_S
    assert ended - began < 60


# Each reader headless, and the screen with llmtop's own reader: the reader is the stream's part and
# the screen the app's, so the official client on the screen would test nothing the others do not.
CASES = [
    (fault, state, reader, screen)
    for fault in FAULTS
    for state in STATES
    for reader, screen in (("lean reader", "headless"), ("official client", "headless"), ("lean reader", "screen"))
]


@pytest.mark.parametrize(("fault_name", "state", "reader", "screen"), CASES, ids=["-".join(c) for c in CASES])
def test_fault_matrix(double_factory, tmp_path, fault_name, state, reader, screen):
    run_case(double_factory, tmp_path, fault_name, state, reader, screen)


def test_the_reliability_page_lists_the_matrix():
    root = Path(__file__).resolve().parent.parent
    assert "(docs/reliability.md)" in (root / "README.md").read_text(encoding="utf-8")
    page = (root / "docs" / "reliability.md").read_text(encoding="utf-8")
    table = page.split("# Reliability: every fault, from the states users are in", 1)[1].split("\n\n")[2]
    assert f"{len(CASES)} cases" in page
    for name, fault in FAULTS.items():
        label = "SIGINT / SIGTERM / SIGHUP" if fault.signum is not None else name
        line = next(line for line in table.splitlines() if line.replace("`", "").startswith(f"| {label}"))
        status = line.rsplit("|", 2)[1]
        shown = str(fault.status) if fault.signum is None else "130 / 143 / 129"
        assert shown in status, (name, line)
        if fault.error is not None and fault.signum is None:
            assert fault.error.split(" (")[0].split(":")[0] in line or name in ("out of memory", "not found"), line


class _SilencingProxy:
    """A TCP proxy in front of the double that goes silent in the middle of a generation: once
    `after` bytes of a streamed answer have passed, it forwards nothing more and keeps both
    connections open (a stuck runner, seen from the client)."""

    def __init__(self, upstream_port: int, after: int = 1500) -> None:
        import socket
        import threading

        self.upstream_port, self.after = upstream_port, after
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held: list[object] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.held += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, self.after), daemon=True).start()

    @staticmethod
    def _pipe(source, target, limit: int | None) -> None:
        passed, streaming = 0, False
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            streaming = streaming or b"application/x-ndjson" in data
            if streaming and limit is not None and passed + len(data) > limit:
                return  # silent from here on: nothing more forwarded, nothing closed
            passed += len(data) if streaming else 0
            try:
                target.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()
        for sock in self.held:
            sock.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("screen", ["headless", "screen"])
def test_done_when_a_server_going_silent_after_an_unload_ends_the_run_within_15_s(double_factory, tmp_path, screen):
    """The issue's own case: the model loaded when llmtop starts, a proxy in front of Ollama that goes
    silent mid-stream, `--stall-timeout 10`: the run ends within 15 s of the silence, exit 1, the
    partial run exported."""
    double = double_factory(token_rate=50, tokens=400, preloaded=("llama3.3:latest",))
    proxy = _SilencingProxy(double.port)
    out, record = tmp_path / "s.json", tmp_path / "run.jsonl"
    argv = command(
        "llama3.3", "--host", f"http://127.0.0.1:{proxy.port}", "--no-log", "--stall-timeout", "10",
        "--export", str(out), "--record", str(record), *(["--headless"] if screen == "headless" else []),
    )  # fmt: skip
    env = _environment("lean reader", double.url, FAULTS["stall"])
    try:
        process = _Headless(argv, env) if screen == "headless" else _OnScreen(argv, env)
        status, stderr = process.finish(record, 60, 1)
    finally:
        proxy.close()
    assert status == 1 and "Traceback" not in stderr
    run = json.loads(out.read_text())["runs"][0]
    assert run["complete"] is False and run["error"] == "no token for 10 s (--stall-timeout)"
    assert run["load_kind"] == "cold" and run["client_rate_tps"] is not None  # unloaded first, then streamed
    events = [json.loads(line) for line in record.read_text().splitlines()]
    last_token = max(e["t"] for e in events if e["event"] == "token")
    end = next(e["t"] for e in events if e["event"] == "end")
    assert end - last_token < 15
