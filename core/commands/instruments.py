"""The one assembly of what a command measures with: the server log (and `ollama serve`, when asked),
the machine's collectors with their GPU and power readers, the recording, and whatever else the
command opens. Everything is registered as it is built and closed in reverse order on every way out
(an ExitStack), so no error path closes things by hand. `llmtop MODEL`, `watch`, `replay` and `demo`
build theirs here."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TextIO

from llmtop.collectors.log_sources import (
    LOG_HINT,
    CommandFollower,
    FileFollower,
    LogSource,
    LogUnavailable,
    ServeProcess,
    default_log_source,
    wait_for_port,
)
from llmtop.collectors.log_watch import LogWatcher
from llmtop.collectors.system_collectors import SystemCollectors
from llmtop.data_folder import Failed, attempt
from llmtop.ollama.hosts import is_local, redact_argv
from llmtop.store import recording

FOLLOW_WAIT_S = 5.0  # how long start_log() waits for the log to be followed (a slow `docker logs`)


class LogOptions(Protocol):
    """The log options every measuring command takes (commands/cli.py, watch_command.py)."""

    log: str | None
    docker: str | None
    no_log: bool


class RecordOptions(Protocol):
    """--record PATH / --no-record."""

    record: str | None
    no_record: bool


class Closable(Protocol):
    def close(self) -> object: ...


class Stoppable(Protocol):
    def stop(self) -> object: ...


@dataclass(frozen=True)
class LogChoice:
    """The log source chosen, or why there is none."""

    source: LogSource | None
    reason: str | None


Interfaces = Callable[[], Mapping[str, Iterable[Any]]]  # psutil.net_if_addrs's shape


def _psutil_interfaces() -> Mapping[str, Iterable[Any]]:
    import psutil

    return psutil.net_if_addrs()


def server_is_local(base_url: str, interfaces: Interfaces | None = None) -> tuple[bool, str | None]:
    """Whether the server at `base_url` is on this machine (reached by loopback or by one of this
    machine's interface addresses), and, where that could not be told, why: the addresses could
    not be read, so a server at a LAN address is taken to be another machine's."""
    if is_local(base_url):
        return True, None
    listed = attempt(interfaces or _psutil_interfaces)  # psutil's errors vary by platform: say which
    if isinstance(listed, Failed):  # and take the server to be remote
        return False, f"this machine's addresses could not be read ({listed.text})"
    addresses = frozenset(a.address.split("%")[0] for addrs in listed.values() for a in addrs)
    return is_local(base_url, addresses), None


def choose_log_source(
    options: LogOptions, base_url: str, err: TextIO, interfaces: Interfaces | None = None
) -> LogChoice:
    """The server log named by --log, --docker or --no-log, else the usual place for a server at
    `base_url` (none for a remote one, with the reason). Starts nothing; raises LogUnavailable."""
    if options.no_log:
        return LogChoice(None, "not read (--no-log)")
    if options.log:
        path = os.path.expanduser(options.log)
        if os.path.isdir(path):
            raise LogUnavailable(f"{options.log} is a folder: --log takes the server log file")
        if not os.path.exists(path):  # Ollama may start after llmtop: the file is followed once it appears
            err.write(
                f"llmtop: note: no log file at {options.log} yet: it is read from when it appears "
                "(Ollama writes it once it starts)\n"
            )
        elif not os.access(path, os.R_OK):
            raise LogUnavailable(f"cannot read {options.log}: permission denied")
        return LogChoice(FileFollower(path), None)
    if options.docker:
        if shutil.which("docker") is None:
            raise LogUnavailable("--docker needs the `docker` command on PATH")
        probe = subprocess.run(
            ["docker", "logs", "--tail", "0", options.docker], capture_output=True, text=True, timeout=20
        )
        if probe.returncode != 0:
            raise LogUnavailable(f"docker logs {options.docker}: {(probe.stderr or probe.stdout).strip() or 'failed'}")
        name = options.docker
        return LogChoice(CommandFollower(["docker", "logs", "-f", "--tail", "0", name], f"docker logs {name}"), None)
    local, unsure = server_is_local(base_url, interfaces)
    if unsure is not None:
        return LogChoice(None, f"{unsure}, so the server is taken to be another machine's: {LOG_HINT}")
    choice = default_log_source(local)
    return LogChoice(choice.source, choice.reason)


def _sample_writer(recorder: recording.Recorder, source: str) -> Callable[[Any], None]:
    return lambda sample: recorder.event("sample", sample.t, {"source": source, "sample": sample})


def _error_writer(recorder: recording.Recorder, source: str) -> Callable[[float, str], None]:
    return lambda t, error: recorder.event("error", t, {"source": source, "error": error})


def _drain(process: subprocess.Popen[bytes]) -> str:
    try:
        return process.stdout.read().decode("utf-8", errors="replace") if process.stdout else ""
    except (OSError, ValueError):
        return ""


SERVE_START_S = 60.0  # how long `ollama serve` may take to listen on its port


class Instruments:
    """What one command measures with, closed in reverse order of building when the `with` ends."""

    def __init__(self, err: TextIO | None = None) -> None:
        self.err = err or sys.stderr
        self.log: LogWatcher | None = None
        self.log_reason: str | None = None
        self.collectors: SystemCollectors | None = None
        self.recorder: recording.Recorder | None = None
        self._devices: list[Closable] = []
        self._stack = contextlib.ExitStack()
        self.serve: ServeProcess | None = None  # the `ollama serve` llmtop started (--serve)

    def __enter__(self) -> Instruments:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        try:
            self._stack.close()
        finally:  # last: every sampler, the log (and the server's last words) have stopped feeding it
            self._close_recording()

    def closing(self, thing: Closable) -> None:
        """Close `thing` when the instruments are closed."""
        self._stack.callback(thing.close)

    def stopping(self, thing: Stoppable) -> None:
        """Stop `thing` when the instruments are closed."""
        self._stack.callback(thing.stop)

    # -- the server log ------------------------------------------------------------------------
    def start_ollama_serve(self, env: Mapping[str, str] | None = None) -> str:
        """Start `ollama serve` on a free port (with `env`, default this process's), its output read as
        the server log; its base URL. The server is stopped when the instruments are closed. Raises
        LogUnavailable."""
        serve = ServeProcess(env=env)
        process = serve.start()
        self._stack.callback(serve.stop)
        self._wait_serving(serve, process, "did not start")
        self.serve = serve
        self._follow(serve, None)
        return serve.base_url

    def restart_ollama_serve(self, env: Mapping[str, str]) -> None:
        """Restart the `ollama serve` started above with `env`, on its port, and return once it answers.
        Raises LogUnavailable with the reason."""
        assert self.serve is not None, "start_ollama_serve() comes first"
        self._wait_serving(self.serve, self.serve.restart(env), "did not start again")

    @staticmethod
    def _wait_serving(serve: ServeProcess, process: subprocess.Popen[bytes], what: str) -> None:
        if not wait_for_port(serve.port, SERVE_START_S, lambda: process.poll() is None):
            serve.stop()
            tail = _drain(process)[-300:].strip().replace("\n", " | ")
            raise LogUnavailable(f"`ollama serve` {what} (exit status {process.poll()}): {tail or 'no output'}")

    def open_log(self, options: LogOptions, base_url: str) -> None:
        """Follow the server log the options name (see choose_log_source); not started yet."""
        choice = choose_log_source(options, base_url, self.err)
        self._follow(choice.source, choice.reason)

    def use_log(self, log: LogWatcher | None, reason: str | None = None) -> None:
        """A log watcher built elsewhere (a replay's, a recording script's); closed with the rest."""
        self.log, self.log_reason = log, reason
        if log is not None:
            self.stopping(log)

    def _follow(self, source: LogSource | None, reason: str | None) -> None:
        self.use_log(LogWatcher(source) if source is not None else None, reason)

    def start_log(self) -> None:
        """Start following the log, and return once it has taken its start (at most FOLLOW_WAIT_S):
        what the server prints from then on is read."""
        if self.log is not None:
            self.log.start()
            self.log.wait_until_following(FOLLOW_WAIT_S)

    # -- the machine ---------------------------------------------------------------------------
    def sample_machine(self, base_url: str, interval: float) -> SystemCollectors:
        """RAM and the Ollama processes of the server at `base_url` (where it is local); GPUs and
        power come with probe_devices(). Not started yet (see start_sampling)."""
        from llmtop.collectors.ollama_processes import OllamaProcessReader

        local, unsure = server_is_local(base_url)
        if unsure is not None:
            self.err.write(f"llmtop: note: {unsure}: the Ollama processes are not measured\n")
        address = urllib.parse.urlsplit(base_url)
        port = address.port or (443 if address.scheme == "https" else 80)
        collectors = SystemCollectors(
            interval=interval, process_reader=OllamaProcessReader(local=local, remote_host=base_url, port=port)
        )
        self.use_collectors(collectors)
        return collectors

    def probe_devices(self) -> None:
        """Every GPU and power reader this machine has, or why not, added to the collectors."""
        from llmtop.collectors.gpu_collector import probe_gpu_backends
        from llmtop.collectors.power_collector import power_unavailable, probe_power_sources

        collectors = self.collectors
        assert collectors is not None, "sample_machine() comes first"
        gpus = probe_gpu_backends(pids=collectors.ollama_pids)
        self._devices.append(gpus)
        collectors.use_gpus(gpus if gpus.readers else None, gpus.unavailable_reason)
        power = probe_power_sources()
        self._devices.append(power)
        collectors.use_power(power if power.sources else None, power_unavailable(power))

    def use_collectors(self, collectors: SystemCollectors) -> None:
        """Collectors built elsewhere (a replay's, the demo's stand-ins); stopped with the rest
        (the recording is closed after everything, its last samples and log lines in it)."""
        self.collectors = collectors
        self._stack.callback(self._close_devices)  # after the samplers that read them have stopped
        self.stopping(collectors)

    def _close_devices(self) -> None:
        while self._devices:
            self._devices.pop().close()

    def start_sampling(self) -> None:
        if self.collectors is not None:
            self.collectors.start()

    # -- the recording -------------------------------------------------------------------------
    def record(
        self,
        options: RecordOptions,
        name: Iterable[str],
        fields: Mapping[str, Any],
        unrecorded: str = "the run goes on unrecorded",
    ) -> recording.Recorder | None:
        """Open the recording (unless --no-record) at --record's path or in the data folder under a
        name made of `name`, write its header (the collectors' and the log's state, the command
        line, and `fields`), and hook it to every sample, sampler error and log line. None when
        there is none: a recording that cannot be opened costs no run (a note says `unrecorded`).
        On closing: the `closed` event, and where the recording is or why it stopped."""
        if options.no_record:
            return None
        collectors = self.collectors
        assert collectors is not None, "sample_machine() or use_collectors() comes first"
        path = (
            Path(options.record)
            if options.record
            else recording.default_folder() / recording.default_name(list(name), dt.datetime.now())
        )
        try:
            recorder = recording.Recorder(path, private=not options.record)
        except recording.RecordingError as exc:
            self.err.write(f"llmtop: note: {exc}; {unrecorded}\n")
            return None
        head = recording.header(
            interval=collectors.memory.interval,
            plan=list(fields.get("plan") or []),
            settings=fields["settings"],
            log={"description": self.log.description if self.log else None, "reason": self.log_reason},
            gpu={"available": collectors.gpu is not None, "reason": collectors.gpu_unavailable},
            power={"available": collectors.power is not None, "unavailable": collectors.power_unavailable},
            argv=redact_argv(sys.argv[1:]),
            demo=fields.get("demo"),
            sweep=fields.get("sweep"),
        )
        head.update({k: v for k, v in fields.items() if k not in head})
        recorder.event("recording", time.monotonic(), head)
        self.recorder = recorder
        self._record_inputs(recorder, collectors)
        return recorder

    def _record_inputs(self, recorder: recording.Recorder, collectors: SystemCollectors) -> None:
        for source, sampler in collectors.by_source().items():
            sampler.listeners.append(_sample_writer(recorder, source))
            sampler.error_listeners.append(_error_writer(recorder, source))
        if self.log is not None:
            self.log.taps.append(lambda line, t: recorder.event("log", t, {"line": line}))

    def _close_recording(self) -> None:
        recorder = self.recorder
        if recorder is None:
            return
        recorder.close(time.monotonic())
        if recorder.problem:  # what was recorded before it stopped still replays
            self.err.write(f"llmtop: note: {recorder.problem}; what was recorded before replays up to there\n")
        else:
            self.err.write(f"llmtop: recorded to {recorder.path} (llmtop replay {recorder.path})\n")

    def tap(self) -> Callable[[str, float, Mapping[str, Any]], None] | None:
        """The recording's event writer, for what the command feeds it itself (sessions, states)."""
        return self.recorder.event if self.recorder is not None else None
