"""Where Ollama's server log comes from, and how it is followed.

- a file (`--log PATH`, macOS `~/.ollama/logs/server.log`, Windows `%LOCALAPPDATA%\\Ollama\\server.log`):
  followed from its end, through rotation and truncation, in bounded chunks;
- a command's output: `journalctl -u ollama -f -o cat` (Linux with systemd), `docker logs -f NAME`;
- `ollama serve` started by llmtop itself (`--serve`): its own output, the most reliable source.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from llmtop.collectors.ollama_log import MAX_LINE, split_lines

READ_SIZE = 64 * 1024
LOG_HINT = "use --serve (recommended), --log PATH or --docker NAME"  # what to do when no log is found
JOURNAL_GROUPS = "systemd-journal (or adm)"


class LogUnavailable(Exception):
    """The log cannot be read; the message says why and what to do."""


class LogSource:
    """A stream of log lines; `lines()` blocks until stopped or the source ends."""

    description = "log"
    waiting: str | None = None  # what the source waits for before it has lines to give (a file to appear)

    @property
    def following(self) -> threading.Event:
        """Set once the source has taken its start: a file opened at its end (or found missing: it is
        then read from its start when it appears), a command started. Whatever the log gets after
        this is read; tests and scripts wait for it before they write."""
        event: threading.Event | None = self.__dict__.get("_following")
        if event is None:
            event = self.__dict__.setdefault("_following", threading.Event())
        return event

    def wait_until_following(self, timeout: float = 10.0) -> bool:
        """Block until `following` is set (True) or `timeout` seconds pass (False)."""
        return self.following.wait(timeout)

    def lines(self) -> Iterator[str]:
        raise NotImplementedError

    def stop(self) -> None:
        """Make `lines()` return soon."""


class FileFollower(LogSource):
    """Follows a file like `tail -F`: from the end (never re-reading what is there), reopening it
    when it is rotated (a new file at the path) and reading from the start when it is truncated.
    Memory stays bounded whatever the file's size: it is read in chunks, and a line longer than
    MAX_LINE is cut."""

    def __init__(self, path: str | Path, from_start: bool = False, poll_s: float = 0.2) -> None:
        self.path = Path(path)
        self.from_start = from_start
        self.poll_s = poll_s
        self.description = f"file {self.path}"
        self._stop = threading.Event()
        self.offset = 0

    def stop(self) -> None:
        self._stop.set()

    def _open(self, at_end: bool) -> io.BufferedReader | None:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - held open while following
        except FileNotFoundError:
            self.waiting = f"waiting for {self.path} to appear"
            self.following.set()
            return None
        except OSError as exc:
            raise LogUnavailable(f"cannot read {self.path}: {exc.strerror or exc}") from None
        handle.seek(0, os.SEEK_END if at_end else os.SEEK_SET)
        self.offset = handle.tell()
        self.waiting = None
        self.following.set()
        return handle

    def _chunks(self) -> Iterator[bytes]:
        handle = self._open(at_end=not self.from_start)
        while not self._stop.is_set():
            if handle is None:
                if self._stop.wait(self.poll_s):
                    return
                handle = self._open(at_end=False)  # the file appeared: all of it is new
                continue
            chunk = handle.read(READ_SIZE)
            if chunk:
                self.offset += len(chunk)
                yield chunk
                continue
            try:
                on_disk = os.stat(self.path)
            except FileNotFoundError:
                on_disk = None
            current = os.fstat(handle.fileno())
            if on_disk is None or (on_disk.st_ino, on_disk.st_dev) != (current.st_ino, current.st_dev):
                handle.close()  # rotated: follow the new file from its start
                handle = self._open(at_end=False) if on_disk is not None else None
                continue
            if on_disk.st_size < self.offset:  # truncated in place
                handle.seek(0)
                self.offset = 0
                continue
            if self._stop.wait(self.poll_s):
                break
        if handle is not None:
            with handle:  # stopped: what the file got since the last read is read, not dropped
                while chunk := handle.read(READ_SIZE):
                    self.offset += len(chunk)
                    yield chunk

    def lines(self) -> Iterator[str]:
        yield from split_lines(self._chunks(), MAX_LINE)


class CommandFollower(LogSource):
    """Lines of a command's output (stdout and stderr together), e.g. journalctl or docker logs."""

    def __init__(self, argv: list[str], description: str, env: Mapping[str, str] | None = None) -> None:
        self.argv = argv
        self.description = description
        self.env = dict(env) if env is not None else None
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        try:
            self.process = subprocess.Popen(  # type: ignore[call-overload]  # the group keywords vary by platform
                self.argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                **_new_process_group(),
            )
        except OSError as exc:
            raise LogUnavailable(f"cannot run {self.argv[0]}: {exc.strerror or exc}") from None
        self.following.set()
        return self.process

    def lines(self) -> Iterator[str]:
        process = self.process or self.start()
        stdout = process.stdout
        assert isinstance(stdout, io.BufferedReader)  # a pipe opened in binary mode
        yield from split_lines(iter(lambda: stdout.read1(READ_SIZE), b""), MAX_LINE)

    def stop(self) -> None:
        _terminate(self.process)


def _new_process_group() -> dict[str, object]:
    """Children get their own process group, so Ctrl+C in the terminal reaches llmtop, which then
    stops them in order, rather than killing them mid-run."""
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore[attr-defined]
    return {"start_new_session": True}


def _terminate(process: subprocess.Popen[bytes] | None, wait_s: float = 5.0) -> None:
    if process is None or process.poll() is not None:
        return
    try:
        if sys.platform == "win32":
            process.terminate()
        else:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(wait_s)
    except (OSError, subprocess.TimeoutExpired):
        try:
            process.kill()
            process.wait(wait_s)
        except (OSError, subprocess.TimeoutExpired):
            pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServeProcess(CommandFollower):
    """`ollama serve` started by llmtop on a free port with the user's OLLAMA_* settings; its own
    output is the log, through restarts (restart() with another environment, on the same port).
    Stopped when llmtop exits."""

    def __init__(self, executable: str = "ollama", env: Mapping[str, str] | None = None, port: int | None = None):
        path = shutil.which(executable)
        if path is None:
            raise LogUnavailable(f"--serve needs the `{executable}` command on PATH: install Ollama from ollama.com")
        self.port = port or free_port()
        super().__init__([path, "serve"], f"`ollama serve` started by llmtop on port {self.port}", self._env(env))
        self._changed = threading.Condition()
        self._restarting = False
        self._stopped = False

    def _env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        environment = dict(os.environ if env is None else env)
        environment["OLLAMA_HOST"] = f"127.0.0.1:{self.port}"
        return environment

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def restart(self, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        """Stop the server and start it again on the same port with `env` (OLLAMA_HOST aside); the
        log goes on with the new server's output. Raises LogUnavailable if it cannot be started."""
        with self._changed:
            self._restarting = True
        try:
            _terminate(self.process)
            self.env = self._env(env)
            return self.start()
        finally:
            with self._changed:
                self._restarting = False
                self._changed.notify_all()

    def lines(self) -> Iterator[str]:
        yield from split_lines(self._chunks(), MAX_LINE)

    def _chunks(self) -> Iterator[bytes]:
        while True:
            process = self.process or self.start()
            stdout = process.stdout
            assert isinstance(stdout, io.BufferedReader)  # a pipe opened in binary mode
            yield from iter(functools.partial(stdout.read1, READ_SIZE), b"")
            with self._changed:  # the output ended: a restart's new server goes on with it
                self._changed.wait_for(lambda: not self._restarting or self._stopped)
                if self._stopped or self.process is process:
                    return

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        super().stop()


@dataclass(frozen=True)
class LogChoice:
    """The source chosen for this machine, or None with the reason and what the user can do."""

    source: LogSource | None
    reason: str | None = None


Runner = Callable[..., subprocess.CompletedProcess[str]]


def journal_source(run: Runner = subprocess.run) -> LogChoice:
    """`journalctl -u ollama -f -o cat`, after checking that this user may read the unit's log."""
    if shutil.which("journalctl") is None:
        return LogChoice(None, "journalctl is not installed")
    try:
        probe = run(
            ["journalctl", "-u", "ollama", "-n", "1", "-o", "cat", "--no-pager"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return LogChoice(None, f"journalctl failed: {exc}")
    said = (probe.stderr or "") + (probe.stdout or "")
    if (
        "insufficient permissions" in said
        or "not seeing messages from other users" in said
        or (probe.returncode != 0 and "ermission" in said)
    ):
        return LogChoice(
            None,
            f"this user may not read the ollama service's journal: join the {JOURNAL_GROUPS} group "
            "(sudo usermod -aG systemd-journal $USER, then log in again), or use --serve",
        )
    if not (probe.stdout or "").strip():
        return LogChoice(None, "the journal has no entries for the ollama unit (is Ollama a systemd service here?)")
    return LogChoice(
        CommandFollower(
            ["journalctl", "-u", "ollama", "-f", "-o", "cat", "-n", "0", "--no-pager"], "journalctl -u ollama"
        )
    )


def default_log_source(
    local: bool,
    platform: str = sys.platform,
    environ: Mapping[str, str] = os.environ,
    home: Path | None = None,
    run: Runner = subprocess.run,
) -> LogChoice:
    """The server log where Ollama's installers put it on this platform."""
    hint = LOG_HINT
    if not local:
        return LogChoice(None, f"the server runs on another machine, so its log is there: {hint}")
    home = home or Path.home()
    path: Path | None
    if platform == "darwin":
        path = home / ".ollama" / "logs" / "server.log"
    elif platform == "win32":
        local_app_data = environ.get("LOCALAPPDATA")
        path = Path(local_app_data) / "Ollama" / "server.log" if local_app_data else None
    else:
        choice = journal_source(run)
        if choice.source is not None or "may not read" in (choice.reason or ""):
            return choice
        return LogChoice(None, f"{choice.reason}: {hint}")
    if path is None or not path.exists():
        return LogChoice(None, f"no server log at {path}: {hint}")
    return LogChoice(FileFollower(path))


def wait_for_port(port: int, timeout_s: float, alive: Callable[[], bool]) -> bool:
    """Wait until something accepts connections on 127.0.0.1:port (False on timeout or exit)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False
