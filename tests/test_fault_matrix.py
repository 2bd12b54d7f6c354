"""Every fault from the states users are in: the model already loaded when llmtop starts (so every
run unloads first), the second run of a plan and a sweep's third point; read by llmtop's own stream
reader and by the official client (behind a proxy from the environment); headless and on screen.

Each case runs `llmtop` as a user does, against the double, and checks what the user is left with:
the exit status, the failure said in one line (stderr; on the screen, what the terminal keeps once
the app has left it), no traceback in anything it wrote, every run before and after the fault
complete and the faulted one kept (export, history, recording), the time it took to end (the process
itself, within a bound per fault), and the state's own promise (the loaded model unloaded first; the
lean reader never through the proxy). docs/reliability.md's table is this matrix.
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

from helpers.cli import command
from helpers.pty_screen import drain
from terminal import spawn_on_pty
from waiting import eventually, give_up

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pseudo terminals")

STALL_S = 2  # --stall-timeout of every case
LOAD_TIMEOUT = "1s"  # OLLAMA_LOAD_TIMEOUT of a silent load: given up after 2 s (the timeout and as long again)
END_MARGIN_S = 5.0  # a stall's run ends within the stall limit plus this; a signal ends llmtop within it
EXIT_S = 5.0  # the process ends within this of its last run's end (or of `q` on the screen)
RUN_LIMIT_S = 60.0  # a whole case, start to exit
ALT_SCREEN_OFF = b"\x1b[?1049l"  # what a Textual app writes as it leaves the screen


@dataclass(frozen=True)
class Fault:
    """One fault: how the double shows it, what llmtop must end with, and what the run's error says;
    `exit_s`: how soon after its last run (a signal: after the signal) the process must be gone."""

    config: dict[str, Any]
    status: int
    error: str | None  # None: the run completes
    signum: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    exit_s: float = EXIT_S


FAULTS = {
    "drop": Fault({"fault": "drop"}, 1, "the connection dropped mid-stream"),
    "reset": Fault({"fault": "reset"}, 1, "the connection dropped mid-stream"),
    "stall": Fault({"fault": "stall"}, 1, f"no token for {STALL_S} s (--stall-timeout)"),
    "silent": Fault(
        {"fault": "silent"}, 1, "the server sent nothing for 2 s", env={"OLLAMA_LOAD_TIMEOUT": LOAD_TIMEOUT}
    ),
    "slow first byte": Fault({"fault": "slow_first_byte"}, 0, None, env={"OLLAMA_LOAD_TIMEOUT": LOAD_TIMEOUT}),
    "malformed line": Fault({"fault": "malformed"}, 1, "not JSON"),
    "5 MB line": Fault({"fault": "huge_line"}, 0, None),
    "out of memory": Fault({"fault": "oom"}, 1, "requires more system memory"),
    "not found": Fault({"fault": "404"}, 1, "is not on the server"),
    "HTML 502": Fault({"fault": "proxy_502"}, 1, "HTTP 502 Bad Gateway"),
    "/api/ps 500": Fault({"fault": "ps_500"}, 0, None),
    "SIGINT": Fault({"fault": "long"}, 130, "interrupted (Ctrl+C)", signal.SIGINT, exit_s=END_MARGIN_S),
    "SIGTERM": Fault({"fault": "long"}, 143, "terminated (SIGTERM)", signal.SIGTERM, exit_s=END_MARGIN_S),
    "SIGHUP": Fault({"fault": "long"}, 129, "hung up (SIGHUP", signal.SIGHUP, exit_s=END_MARGIN_S),
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


def _summaries(path: Path) -> list[float]:
    """The times (CLOCK_MONOTONIC, the same clock as this process's time.monotonic()) at which
    llmtop recorded each run's summary so far."""
    times = []
    for line in _recorded(path).splitlines():
        if '"event": "summary"' in line:
            try:
                times.append(float(json.loads(line)["t"]))
            except (ValueError, KeyError):
                pass  # a line being written
    return times


@dataclass
class Ended:
    """How a case's process ended: its status, what it said (stderr headless; on the screen, what
    the terminal kept after the app left it), the whole terminal output, and when it exited."""

    status: int
    said: str
    output: str
    exited_at: float


class _Process:
    """llmtop running; `finish` waits for its exit, failing a case whose process outlives its runs."""

    def __init__(self, record: Path) -> None:
        self.record = record
        self.quit_at: float | None = None  # when `q` was pressed (the screen)

    def running(self) -> bool:
        raise NotImplementedError

    def signal(self, signum: int) -> None:
        raise NotImplementedError

    def ended(self) -> Ended:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    def leave(self) -> None:
        """What a user does once the plan is over (the screen: `q`)."""

    def finish(self, runs: int, fault: Fault, signalled_at: float | None) -> Ended:
        """Wait until the process exits; fail if it is still there `fault.exit_s` after its last
        run ended (or after `q`, or after the signal), or RUN_LIMIT_S after it began."""
        began = time.monotonic()
        while self.running():
            now = time.monotonic()
            done = _summaries(self.record)
            if signalled_at is not None:
                since, what = signalled_at, "the signal"
            elif len(done) >= runs:
                self.leave()
                since, what = self.quit_at or done[-1], "`q`" if self.quit_at else "its last run ended"
            else:
                since, what = began, None
            late = now - since > (fault.exit_s if what else RUN_LIMIT_S + 30)
            if late:
                self.kill()
                pytest.fail(f"llmtop was still running {now - since:.1f} s after {what or 'it began'}")
            time.sleep(0.02)
        return self.ended()


class _Headless(_Process):
    def __init__(self, argv: list[str], env: dict[str, str], record: Path) -> None:
        super().__init__(record)
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its group is killed whole: nothing it started holds the pipes
        )
        self.stderr = ""
        self.exited_at: float | None = None

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def running(self) -> bool:
        try:  # read as it comes (a full pipe would hold the process), and note the moment it exits
            _, self.stderr = self.process.communicate(timeout=0.02)
        except subprocess.TimeoutExpired:
            return True
        self.exited_at = self.exited_at or time.monotonic()
        return False

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.communicate()

    def ended(self) -> Ended:
        assert self.exited_at is not None
        return Ended(self.process.returncode, self.stderr, self.stderr, self.exited_at)


class _OnScreen(_Process):
    """llmtop's screen on a pseudo terminal; `q` once the plan is over, as a user leaves it."""

    def __init__(self, argv: list[str], env: dict[str, str], record: Path) -> None:
        super().__init__(record)
        self.pid, self.fd = spawn_on_pty(argv, env)
        self.status: int | None = None
        self.output = b""
        self.exited_at: float | None = None

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def leave(self) -> None:
        if self.quit_at is None:
            os.write(self.fd, b"q")
            self.quit_at = time.monotonic()

    def running(self) -> bool:
        self.output += drain(self.fd)
        if self.status is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.exited_at = time.monotonic()
                self.status = os.waitstatus_to_exitcode(status)
        return self.status is None

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)

    def ended(self) -> Ended:
        while chunk := drain(self.fd):  # what it wrote last
            self.output += chunk
        os.close(self.fd)
        assert self.status is not None and self.exited_at is not None
        text = self.output.decode("utf-8", errors="replace")
        after = self.output.rsplit(ALT_SCREEN_OFF, 1)[-1].decode("utf-8", errors="replace")
        return Ended(self.status, after.replace("\r\n", "\n"), text, self.exited_at)


def _unloaded_first(double) -> bool:
    """The double was asked to unload (keep_alive 0) before its first generation."""
    for _, path, body in double.requests:
        if path == "/api/generate" and body.get("prompt"):
            return False
        if body.get("keep_alive") in (0, "0", "0s") and not body.get("prompt"):
            return True
    return False


def run_case(
    double_factory,
    tmp_path,
    fault_name: str,
    state: str,
    reader: str,
    screen: str,
    double_extra: dict[str, Any] | None = None,
    wrap: list[str] | None = None,
) -> None:
    """One case; `double_extra` and `wrap` (a command put before llmtop's) break it on purpose, to
    show that the checks bite."""
    fault = FAULTS[fault_name]
    extra, hit, runs = STATES[state]
    config = {"token_rate": 200, "tokens": 40, "fault_after": 5, "fault_from": hit, "fault_once": True}
    config.update(fault.config)
    config.update(double_extra or {})
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
    process = (_Headless if screen == "headless" else _OnScreen)([*(wrap or []), *argv], env, record)
    signalled_at = None
    try:
        if fault.signum is not None:

            def tokens_in_the_run() -> bool:
                if not process.running():
                    give_up("llmtop ended before the signal")
                return _tokens_of_run(record, hit) >= 5

            eventually(tokens_in_the_run, 60, "tokens in the run to stop")
            signalled_at = time.monotonic()
            process.signal(fault.signum)
        ended = process.finish(hit if fault.signum is not None else runs, fault, signalled_at)
    except BaseException:
        if process.running():
            process.kill()
        raise
    check_case(fault_name, state, reader, double, out, record, ended, signalled_at)


def check_case(fault_name, state, reader, double, out, record, ended: Ended, signalled_at: float | None) -> None:
    """What the user is left with, for every case: docs/reliability.md says the same in words."""
    fault = FAULTS[fault_name]
    _, hit, runs = STATES[state]
    # The exit status. In a sweep, a point that failed before its first token is a result (exit 0),
    # as one that failed to load.
    before_first_token = fault_name in ("silent", "out of memory", "not found", "HTML 502")
    expected = 0 if state.startswith("sweep") and before_first_token else fault.status
    assert ended.status == expected, ended.said
    assert "Traceback" not in ended.output  # anywhere: on the screen, anything the terminal got
    # Every run: the ones before the fault complete, the faulted one kept with its reason, every
    # run after it complete (the point of the plan and sweep states: the next run works).
    rows = json.loads(out.read_text())["runs"]
    assert len(rows) == (hit if fault.signum is not None else runs), [r["error"] for r in rows]
    faulted = rows[hit - 1]
    if fault.error is None:
        assert faulted["complete"] is True and faulted["error"] is None, faulted["error"]
    else:
        assert faulted["complete"] is False and fault.error in faulted["error"], faulted["error"]
    others = rows[: hit - 1] + rows[hit:]
    assert [(r["complete"], r["error"]) for r in others] == [(True, None)] * len(others)
    if fault.error is not None:  # the failure said in one line
        assert sum(fault.error in line for line in ended.said.splitlines()) == 1, ended.said
    # Kept in the history and the recording, which ends with `closed`.
    assert _history_errors() == [r["error"] for r in rows]
    events = [json.loads(line) for line in record.read_text().splitlines()]
    assert events[-1]["event"] == "closed"
    assert [e["row"]["error"] for e in events if e["event"] == "summary"] == [r["error"] for r in rows]
    # The time to end: a stall or a silent load within the stall limit plus the margin, from the
    # recording; the process itself within fault.exit_s of its last run or the signal (finish()).
    if signalled_at is not None:
        assert ended.exited_at - signalled_at < fault.exit_s
    elif fault_name in ("stall", "silent"):
        faulted_end = [e["t"] for e in events if e["event"] == "end"][hit - 1]
        last = max(
            (e["t"] for e in events if e["event"] in ("token", "request") and e["t"] < faulted_end), default=None
        )
        assert last is not None and faulted_end - last < STALL_S * (2 if fault_name == "silent" else 1) + END_MARGIN_S
    # The state's own promise: the loaded model unloaded before the baseline; the reader the case
    # names read the stream (the official client through the proxy, llmtop's own never through it).
    if state == "loaded":
        assert _unloaded_first(double) and rows[0]["load_kind"] == "cold", rows[0]["load_kind"]
    if reader == "official client":
        assert double.proxied > 0, "the official client did not go through the proxy"
    else:
        assert double.proxied == 0, "llmtop's own reader went through the proxy"
    # /api/ps failing: the run completes, a note says the split is n/a, and it is.
    if fault_name == "/api/ps 500":
        notes = [e["message"] for e in events if e["event"] == "note"]
        assert any(n.startswith("/api/ps failed") and "split is n/a" in n for n in notes), notes
        assert faulted["env"] is None and faulted["ps_size_bytes"] is None


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


def test_the_matrix_fails_a_later_run_that_breaks(double_factory, tmp_path):
    """The plan's runs after the fault must work: a double that fails every run from the 2nd on
    (not the 2nd alone) fails the case."""
    with pytest.raises(AssertionError, match=r"At index 1 diff: \(False, 'the connection dropped mid-stream"):
        run_case(double_factory, tmp_path, "drop", "plan, 2nd run", "lean reader", "headless", {"fault_once": False})


def test_the_matrix_fails_a_process_that_outlives_its_runs(double_factory, tmp_path):
    """llmtop whose process stays 30 s after its last run (here: a shell that waits after it) fails
    the case within seconds, not at a 90 s timeout."""
    began = time.monotonic()
    wrap = ["sh", "-c", '"$@"; status=$?; sleep 30; exit $status', "sh"]
    with pytest.raises(pytest.fail.Exception, match="still running .* after its last run ended"):
        run_case(double_factory, tmp_path, "drop", "loaded", "lean reader", "headless", wrap=wrap)
    assert time.monotonic() - began < 25


def test_the_reliability_page_lists_the_matrix():
    root = Path(__file__).resolve().parent.parent
    assert "(docs/reliability.md)" in (root / "README.md").read_text(encoding="utf-8")
    page = (root / "docs" / "reliability.md").read_text(encoding="utf-8")
    table = next(part for part in page.split("\n\n") if part.startswith("| fault (the double"))
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
        process = (_Headless if screen == "headless" else _OnScreen)(argv, env, record)
        ended = process.finish(1, FAULTS["stall"], None)
    finally:
        proxy.close()
    assert ended.status == 1 and "Traceback" not in ended.output
    run = json.loads(out.read_text())["runs"][0]
    assert run["complete"] is False and run["error"] == "no token for 10 s (--stall-timeout)"
    assert run["load_kind"] == "cold" and run["client_rate_tps"] is not None  # unloaded first, then streamed
    events = [json.loads(line) for line in record.read_text().splitlines()]
    last_token = max(e["t"] for e in events if e["event"] == "token")
    end = next(e["t"] for e in events if e["event"] == "end")
    assert end - last_token < 15
