"""The Ollama server's process tree and its resident memory (RSS), found with psutil.

The server is `ollama serve` (`ollama.exe serve` on Windows, started by `ollama app.exe`). It
starts one runner per loaded model, whose name has changed across versions:
`ollama_llama_server` (up to 0.5), `ollama runner` (the ollama binary again, 0.6 on) and
`llama-server`. The model's weights live in the runner, so its RSS is shown apart, and so is the
tree's resident file-backed memory where the system's in-use figure leaves it out (mapped weights
on Linux: see process_memory.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from types import ModuleType
from typing import Any, TypeVar

import psutil as _psutil

from llmtop.collectors.process_memory import ProcessMemory, ProcessMemoryReader, default_proc_root
from llmtop.data_folder import guarded

RUNNER_NAMES = {"ollama_llama_server", "llama-server"}
RESCAN_SECONDS = 2.0  # while no runner is known: a model load starts one
SETTLED_RESCAN_SECONDS = 30.0  # with a runner known: a listing of every process costs milliseconds
EXPECT_RUNNER_S = 120.0  # after a load begins, list the processes at every reading for this long at most


@dataclass(frozen=True, slots=True)
class OllamaProcessSample:
    """RSS of the Ollama process tree; `rss_bytes` is None with a `reason` when it cannot be read.
    `file_rss_bytes` is the tree's resident file-backed memory (mapped weights and code) on
    platforms whose in-use figure leaves it out (Linux), else None."""

    t: float
    rss_bytes: int | None
    runner_rss_bytes: int | None
    server_pid: int | None
    runner_pids: tuple[int, ...]
    reason: str | None = None
    note: str | None = None
    file_rss_bytes: int | None = None
    runner_env: tuple[tuple[str, str], ...] = ()  # the runners' LLAMA_ARG_* settings, as their environment has them


def _base_name(name: str) -> str:
    name = name.lower()
    return name[:-4] if name.endswith(".exe") else name


_READER = "the Ollama processes reader"
T = TypeVar("T")


def _asked(call: Callable[..., T] | None, default: T, **kwargs: Any) -> T:
    """`call(**kwargs)` (a method of a process), or `default` where there is no such method, the process
    is another user's (AccessDenied, macOS) or has just exited (psutil.Error, OSError); anything else
    is written to errors.log, once."""
    if call is None:
        return default
    return guarded(_READER, partial(call, **kwargs), default, (_psutil.Error, OSError))


def _args(proc: Any) -> list[str] | None:
    cmdline = _asked(getattr(proc, "cmdline", None), None)
    return None if cmdline is None else [os.path.basename(a).lower() for a in cmdline[1:2]]


def _listens(proc: Any, port: int) -> bool:
    """The process listens on TCP `port` (False where its sockets cannot be read)."""
    read = getattr(proc, "net_connections", None) or getattr(proc, "connections", None)
    if read is None:
        return False
    connections = _asked(read, None, kind="tcp")
    if connections is None:
        return False
    return any(getattr(c, "status", "") == "LISTEN" and getattr(c.laddr, "port", None) == port for c in connections)


def runner_settings(runners: list[Any]) -> tuple[tuple[str, str], ...]:
    """The LLAMA_ARG_* variables in the runners' environments (llama-server reads its settings from
    them: LLAMA_ARG_CPU_MOE, LLAMA_ARG_N_CPU_MOE), sorted; () where none can be read."""
    found: dict[str, str] = {}
    for runner in runners:
        environment = _asked(getattr(runner, "environ", None), None)
        if environment is None:  # another user's process, one gone, a platform that cannot tell
            continue
        found.update({k: v for k, v in environment.items() if k.startswith("LLAMA_ARG_")})
    return tuple(sorted(found.items()))


def is_runner(name: str, args: list[str] | None) -> bool:
    """Whether a process with this name and first argument is a model runner."""
    base = _base_name(name)
    return base in RUNNER_NAMES or (base == "ollama" and args is not None and args[:1] == ["runner"])


def is_server(name: str, args: list[str] | None) -> bool:
    """Whether a process is `ollama serve` (with unreadable arguments, any `ollama` not a runner)."""
    if _base_name(name) != "ollama":
        return False
    return args is None or args[:1] == ["serve"]


class OllamaProcessReader:
    """Finds the Ollama server and runners and reads their resident memory.

    Listing every process costs milliseconds on a desktop with hundreds of them, so it is done
    every `rescan_seconds` while no runner is known, every `settled_rescan_seconds` once one is,
    and at once when a known process is gone; between listings only the known processes are read,
    which is cheap. A load is the moment a runner appears: after `look_for_runner()` (the session
    calls it when it sends a request, and when the log or `/api/ps` shows a load) every reading
    lists the processes until a runner is found, so a runner that lives one second is read as
    well as one that lives an hour. `local=False` (the server is on another host) gives samples
    with a reason and no numbers. `memory` reads one process (default: `/proc/PID/status` on
    Linux, psutil elsewhere).
    """

    def __init__(
        self,
        psutil_module: ModuleType = _psutil,
        local: bool = True,
        remote_host: str = "",
        port: int | None = None,
        rescan_seconds: float = RESCAN_SECONDS,
        settled_rescan_seconds: float = SETTLED_RESCAN_SECONDS,
        memory: Callable[[Any], ProcessMemory | None] | None = None,
    ) -> None:
        self._psutil = psutil_module
        self._local = local
        self._remote_host = remote_host
        self._port = port  # the server's port: with several servers running, the one listening on it is ours
        self._rescan_seconds = rescan_seconds
        self._settled_rescan_seconds = settled_rescan_seconds
        # The proc root describes the real process table, not a stand-in's.
        self._memory = memory or ProcessMemoryReader(default_proc_root() if psutil_module is _psutil else None)
        self.scans = 0  # how many times every process was listed
        self._last_scan = float("-inf")
        self._server: Any = None
        self._runners: list[Any] = []
        self._others: list[Any] = []
        self._scan_note: str | None = None
        self._runner_env: tuple[tuple[str, str], ...] = ()
        self._expecting = False  # a load has begun: list the processes at every reading
        self._expecting_since: float | None = None

    def look_for_runner(self, looking: bool = True) -> None:
        """A model load has begun: look for its runner at every reading until one is found (for
        at most EXPECT_RUNNER_S), or until called with False (the first token came: any runner
        has started by then). Safe to call from any thread."""
        self._expecting_since = None
        self._expecting = looking

    def _scan(self, now: float) -> None:
        self._last_scan = now
        self.scans += 1
        servers: list[Any] = []
        runners: list[Any] = []
        unsure: list[Any] = []
        for proc in self._psutil.process_iter(["name", "status"]):
            name = proc.info.get("name") or ""
            if _base_name(name) not in RUNNER_NAMES | {"ollama"} or proc.info.get("status") == "zombie":
                continue  # a zombie (an exited child not yet reaped) holds no memory
            args = _args(proc)
            if is_runner(name, args):
                runners.append(proc)
            elif is_server(name, args):
                (servers if args is not None else unsure).append(proc)
        # A candidate whose arguments were unreadable may be a runner: a runner's parent is the
        # server, so one whose parent is another candidate is a runner.
        candidate_pids = {p.pid for p in servers + unsure}
        for proc in unsure:
            parent = _asked(getattr(proc, "ppid", None), None)
            (runners if parent in candidate_pids else servers).append(proc)
        self._server, self._scan_note = self._ours(servers)
        server = self._server
        below: list[Any] = [] if server is None else list(_asked(server.children, [], recursive=True))
        if len(servers) > 1 and server is not None:  # another server's runners are not ours
            runners = [r for r in runners if r.pid in {child.pid for child in below}]
        runner_pids = {r.pid for r in runners}
        self._others = [child for child in below if child.pid not in runner_pids]
        self._runners = runners
        self._runner_env = runner_settings(runners)
        keep_only = getattr(self._memory, "keep_only", None)  # a reader passed by a test may not keep files
        if keep_only is not None:
            tracked = [self._server, *self._runners, *self._others]
            keep_only({p.pid for p in tracked if p is not None})

    def _ours(self, servers: list[Any]) -> tuple[Any, str | None]:
        """The server to measure, and a note where there was a choice: the one that listens on the
        port llmtop talks to, else the first found (said)."""
        if len(servers) <= 1:
            return (servers[0] if servers else None), None
        listening = next((s for s in servers if self._port is not None and _listens(s, self._port)), None)
        if listening is not None:
            return listening, (
                f"{len(servers)} Ollama servers are running; measuring pid {listening.pid}, the one listening "
                f"on port {self._port}"
            )
        return servers[0], (
            f"{len(servers)} Ollama servers are running; measuring pid {servers[0].pid} (none was seen listening "
            f"on port {self._port}: their sockets could not be read)"
        )

    def _due(self, now: float) -> bool:
        """Whether to list every process now."""
        if self._expecting and not self._runners:
            if self._expecting_since is None:
                self._expecting_since = now
            if now - self._expecting_since <= EXPECT_RUNNER_S:
                return True
            self._expecting = False
        every = self._settled_rescan_seconds if self._runners else self._rescan_seconds
        return now - self._last_scan >= every

    def __call__(self, now: float) -> OllamaProcessSample:
        if not self._local:
            return OllamaProcessSample(
                now, None, None, None, (), f"Ollama runs on {self._remote_host}, not on this machine"
            )
        if self._due(now):
            self._scan(now)
        if self._runners:
            self._expecting = False
        if self._server is None and not self._runners:
            return OllamaProcessSample(now, None, None, None, (), "no Ollama process on this machine (container?)")
        server = self._memory(self._server) if self._server is not None else ProcessMemory(0, 0)
        if server is None:
            # The server vanished or its memory is not readable: look again at the next tick.
            self._last_scan = float("-inf")
            return OllamaProcessSample(
                now, None, None, None, (), "cannot read the Ollama server's memory (another user's process?)"
            )
        runners = [m for m in (self._memory(p) for p in self._runners) if m is not None]
        if len(runners) < len(self._runners):
            self._last_scan = float("-inf")
        others = [m for m in (self._memory(p) for p in self._others) if m is not None]
        tree = [server, *runners, *others]
        files = [m.file_bytes for m in tree]
        return OllamaProcessSample(
            t=now,
            rss_bytes=sum(m.rss_bytes for m in tree),
            runner_rss_bytes=sum(m.rss_bytes for m in runners),
            server_pid=self._server.pid if self._server is not None else None,
            runner_pids=tuple(p.pid for p in self._runners),
            note=self._scan_note,
            file_rss_bytes=None if not files or None in files else sum(files),  # type: ignore[arg-type]
            runner_env=self._runner_env,
        )
