"""`llmtop watch`: what Ollama does for every app, without a request of llmtop's own.

Polls `/api/ps` for the loaded models, follows the server log for each load (layers and why) and,
from Ollama 0.30 on, each request's timings; with `--proxy PORT`, measures every answer that goes
through it; samples the machine (RAM, GPU memory, the Ollama processes, power) for the memory
gauges and the warnings; serves it all to Prometheus with `--metrics`. On screen, or one line per
event with `--headless`.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from llmtop.hosts import (
    HostError,
    add_access_arguments,
    address_argument,
    check_access,
    exposure,
    is_loopback,
    ollama_base_url,
    redact_url,
)
from llmtop.metrics import MetricsError
from llmtop.options import add_interval_argument
from llmtop.output import unwritable
from llmtop.watch import WatchEvent, WatchState

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
PS_INTERVAL_S = 1.0
SPILL_BYTES = 64 * 1000 * 1000


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("cannot be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmtop watch",
        description="Watch what Ollama does for every app that uses it, without sending a request: the loaded "
        "models (/api/ps: size, share in VRAM, context, time to unload), each load from the server log (layers on "
        "the GPU and why), each request as it happens (prompt tokens and rate, progress, generated tokens and "
        "rate; from the log's llama-server timings on Ollama 0.30 and later, or through --proxy), the memory and "
        "power gauges, and the warnings (a spill into shared GPU memory, layers on the CPU, a model evicted).",
    )
    parser.add_argument(
        "--host",
        metavar="URL",
        action="append",
        help="the server (default $OLLAMA_HOST, else 127.0.0.1:11434); repeat it to watch several side by side "
        "(the server log, and the machine's memory and power, are the first one's)",
    )
    parser.add_argument("--headless", action="store_true", help="no screen: one line per event on stdout")
    parser.add_argument(
        "--metrics",
        metavar="[ADDR:]PORT",
        type=address_argument,
        help="serve Prometheus/OpenMetrics metrics at http://ADDR:PORT/metrics (ADDR default 127.0.0.1)",
    )
    parser.add_argument(
        "--proxy",
        metavar="[ADDR:]PORT",
        type=address_argument,
        action="append",
        help="listen on PORT and forward everything to the server, measuring each answer: point apps at it "
        "where the log has no request timings (Ollama before 0.30, a remote server); with several --host, "
        "the Nth --proxy forwards to the Nth host",
    )
    parser.add_argument(
        "--proxy-shares-credentials",
        action="store_true",
        help="add the --header and URL credentials also to requests that other machines send through a --proxy "
        "that listens beyond loopback (without it such a proxy is refused where there are credentials)",
    )
    parser.add_argument("--export", metavar="PATH", help="at the end, write the requests to PATH: .md, .csv or .json")
    parser.add_argument(
        "--duration",
        metavar="SECONDS",
        type=_seconds,
        default=0.0,
        help="stop after this long (default: until q or Ctrl+C)",
    )
    add_interval_argument(parser)
    add_access_arguments(parser)
    recording = parser.add_mutually_exclusive_group()
    recording.add_argument(
        "--record", metavar="PATH", help="write the session's recording to PATH (default: the user data folder)"
    )
    recording.add_argument("--no-record", action="store_true", help="do not record the session")
    parser.add_argument(
        "--no-history",
        action="store_true",
        help="do not keep the requests in the local history (llmtop history --watched)",
    )
    log = parser.add_mutually_exclusive_group()
    log.add_argument("--log", metavar="PATH", help="follow this server log file")
    log.add_argument("--docker", metavar="NAME", help="follow `docker logs` of this container")
    log.add_argument("--no-log", action="store_true", help="do not read the server log")
    return parser


class Watcher:
    """One watched server: the state, and the threads that feed it."""

    def __init__(
        self,
        base_url: str,
        state: WatchState | None = None,
        clock: Callable[[], float] = time.monotonic,
        headers: dict[str, str] | None = None,
        cacert: str | None = None,
    ) -> None:
        from llmtop.ollama_api import OllamaServer

        self.base_url = base_url
        self.state = state or WatchState()
        self.server = OllamaServer(base_url, headers=headers, cacert=cacert)
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.version: str | None = None

    def start(self) -> Watcher:
        self._thread = threading.Thread(target=self._poll, name="llmtop-watch-ps", daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        from llmtop.ollama_api import OllamaError

        while not self._stop.is_set():
            now = self.clock()
            try:
                if self.version is None:
                    self.version = self.server.version()
                self.state.observe_ps(now, self.server.ps().get("models") or [])
            except OllamaError as exc:
                self.state.server_down(now, str(exc))
            except Exception as exc:  # the poller must outlive anything the server answers
                self.state.server_down(now, f"{type(exc).__name__}: {exc}")
            self._stop.wait(PS_INTERVAL_S)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(3.0)
        self.server.close()


class SpillWatch:
    """Warns once when shared GPU memory grows by SPILL_BYTES over its level while no model was loaded."""

    def __init__(self, state: WatchState) -> None:
        self.state = state
        self.base: int | None = None
        self.warned = False

    def __call__(self, sample) -> None:
        shared = sum(g.shared_used for g in sample.gpus if g.shared_used is not None)
        if not self.state.loaded:
            self.base, self.warned = shared, False
            return
        if self.base is not None and not self.warned and shared - self.base > SPILL_BYTES:
            self.warned = True
            grown = (shared - self.base) / 1e9
            self.state.warn(
                sample.t, "spill", f"shared GPU memory grew {grown:.1f} GB over its level before the load: the model "
                "is spilling out of VRAM into system RAM"
            )  # fmt: skip


class HistoryKeeper:
    """Writes each request that ended to the history on a thread of its own (a slow disk never holds
    up the proxy or the log follower); a history that cannot be written is said once."""

    def __init__(self, history: Any, err: TextIO) -> None:
        import queue

        self.history = history
        self.err = err
        self.queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self.problem: str | None = None
        self._thread = threading.Thread(target=self._write, name="llmtop-watch-history", daemon=True)
        self._thread.start()

    def keep(self, host: str) -> Callable[[Any], None]:
        return lambda request: self.queue.put((host, request.to_dict()))

    def _write(self) -> None:
        from llmtop.history import HistoryError

        while (item := self.queue.get()) is not None:
            try:
                self.history.add_request(*item)
            except HistoryError as exc:
                if self.problem is None:
                    self.err.write(f"llmtop: note: {exc}; the requests are kept in this session and its export\n")
                self.problem = str(exc)

    def stop(self) -> None:
        self.queue.put(None)
        self._thread.join(5.0)


def start_recording(args: argparse.Namespace, watched: list[Watched], collectors: Any, log: Any, log_reason: Any):
    """The session's recording (None with --no-record, or where it cannot be opened): every input
    of every watched server, so `llmtop replay` shows the session again."""
    import datetime as dt

    from llmtop import recording
    from llmtop.hosts import redact_argv
    from llmtop.model_command import record_collectors
    from llmtop.session_settings import RunSettings

    if args.no_record:
        return None
    path = (
        Path(args.record)
        if args.record
        else recording.default_folder() / recording.default_name(["watch"], dt.datetime.now())
    )
    try:
        recorder = recording.Recorder(path, private=not args.record)
    except recording.RecordingError as exc:
        sys.stderr.write(f"llmtop: note: {exc}; watching goes on unrecorded\n")
        return None
    head = recording.header(
        interval=collectors.memory.interval,
        plan=[],
        settings=RunSettings(),
        log={"description": log.description if log else None, "reason": log_reason},
        gpu={"available": collectors.gpu is not None, "reason": collectors.gpu_unavailable},
        power={"available": collectors.power is not None, "unavailable": collectors.power_unavailable},
        argv=redact_argv(sys.argv[1:]),
    )
    head["watch"] = {
        "hosts": [w.base_url for w in watched],
        "proxied": [w.base_url for w in watched if w.state.proxied],
    }
    recorder.event("recording", time.monotonic(), head)
    for one in watched:
        one.state.taps.append(
            lambda event, t, fields, host=one.base_url: recorder.event(event, t, {"host": host, **fields})
        )
    record_collectors(recorder, collectors, log)
    return recorder


def live_wall(t: float) -> float:
    """The time of day (epoch seconds) of monotonic time `t`, in this process."""
    return time.time() - (time.monotonic() - t)


def headless_printer(
    stream: TextIO, host: str | None = None, wall: Callable[[float], float] = live_wall
) -> Callable[[WatchEvent], None]:
    """One line per event, stamped with the time it happened (`wall`: a replay gives its own)."""
    prefix = f"[{host}] " if host else ""

    def print_event(event: WatchEvent) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(wall(event.t)))
        try:
            stream.write(f"llmtop watch: {stamp} {prefix}{event.text}\n")
            stream.flush()
        except (OSError, ValueError):
            pass

    return print_event


@dataclass
class Watched:
    """One server watched: its URL, its state, its poller and its proxy (if any)."""

    base_url: str
    state: WatchState
    watcher: Watcher
    headers: dict[str, str]
    proxy: Any = None


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.export:
        from llmtop.exports import export_format

        try:
            export_format(args.export)
        except ValueError as exc:
            parser.error(f"argument --export: {exc}")
    for option, path in (("--export", args.export), ("--record", args.record)):
        problem = unwritable(path, option) if path else None
        if problem:
            parser.error(problem)
    settings = args.host or [os.environ.get("OLLAMA_HOST")]
    if len(args.proxy or []) > len(settings):
        parser.error("argument --proxy: one per --host at most (the Nth proxy forwards to the Nth host)")
    hosts = []
    for setting in settings:
        try:
            base_url = ollama_base_url(setting)
        except HostError as exc:
            parser.error(redact_url(f"argument --host: {exc}"))
        hosts.append((base_url, check_access(parser, args, setting)))
    if len({url for url, _ in hosts}) < len(hosts):
        parser.error("argument --host: a server is given twice")
    for (address, port), (_, headers) in zip(args.proxy or [], hosts, strict=False):
        if headers and not is_loopback(address) and not args.proxy_shares_credentials:
            parser.error(
                f"argument --proxy: {address}:{port} is reachable from other machines, and the proxy would add "
                "your credentials (--header, user:password@) to whatever they send: listen on 127.0.0.1, "
                "or add --proxy-shares-credentials to mean it"
            )
    return watch(args, hosts)


def _close(*things: Any) -> None:
    for thing in things:
        if thing is not None:
            try:
                (getattr(thing, "stop", None) or thing.close)()
            except Exception:
                pass


def watch(args: argparse.Namespace, hosts: list[tuple[str, dict[str, str]]]) -> int:
    """Watch every host; the server log and the machine's collectors are the first host's."""
    from llmtop.collectors.gpu_collector import probe_gpu_backends
    from llmtop.collectors.log_sources import LogUnavailable
    from llmtop.collectors.log_watch import LogWatcher
    from llmtop.collectors.ollama_processes import OllamaProcessReader
    from llmtop.collectors.power_collector import power_unavailable, probe_power_sources
    from llmtop.collectors.system_collectors import SystemCollectors
    from llmtop.hosts import is_local
    from llmtop.model_command import choose_log, own_addresses
    from llmtop.stopping import SignalStop

    err = sys.stderr
    first_url = hosts[0][0]
    args.serve = False
    try:
        _, source, log_reason, _ = choose_log(args, first_url)
    except LogUnavailable as exc:
        err.write(f"llmtop: {exc}\n")
        return EXIT_USAGE
    watched = []
    for url, headers in hosts:
        state = WatchState()
        watched.append(Watched(url, state, Watcher(url, state, headers=headers, cacert=args.cacert), headers))
    first = watched[0].state
    collectors = SystemCollectors(
        interval=args.interval,
        process_reader=OllamaProcessReader(local=is_local(first_url, own_addresses()), remote_host=first_url),
    )
    gpus = probe_gpu_backends(pids=collectors.ollama_pids)
    collectors.use_gpus(gpus if gpus.readers else None, gpus.unavailable_reason)
    power = probe_power_sources()
    collectors.use_power(power if power.sources else None, power_unavailable(power))
    if collectors.gpu is not None:
        collectors.gpu.listeners.append(SpillWatch(first))
    endpoint = None
    try:
        if args.metrics is not None:
            from llmtop.metrics import MetricsEndpoint

            states = {w.base_url: w.state for w in watched}
            endpoint = MetricsEndpoint(states if len(states) > 1 else first, collectors, *args.metrics)
        for (address, port), one in zip(args.proxy or [], watched, strict=False):
            from llmtop.collectors.ollama_proxy import OllamaProxy

            try:
                one.proxy = OllamaProxy(
                    one.base_url,
                    port,
                    one.state,
                    address,
                    headers=one.headers,
                    cacert=args.cacert,
                    share_credentials=args.proxy_shares_credentials,
                ).start()
            except OSError as exc:
                raise MetricsError(
                    f"--proxy: port {port} on {address} cannot be opened ({exc.strerror or exc})"
                ) from None
            one.state.proxied = True
            shared = "requests to the server, with your credentials" if one.headers else "requests to the server"
            warning = exposure("the proxy", address, port, f"it forwards {shared} ({one.base_url})")
            if warning:
                err.write(f"llmtop: {warning}\n")
        if args.metrics is not None:
            address, port = args.metrics
            warning = exposure("--metrics", address, port, "the models, requests, memory and power it serves")
            if warning:
                err.write(f"llmtop: {warning}\n")
    except MetricsError as exc:
        err.write(f"llmtop: {exc}\n")
        _close(endpoint, *(w.proxy for w in watched), *(w.watcher for w in watched), gpus, power)
        return EXIT_USAGE
    log = LogWatcher(source) if source is not None else None
    recorder = start_recording(args, watched, collectors, log, log_reason)
    if log is not None:
        log.subscribe(lambda load: first.observe_load(time.monotonic(), load))
        log.start()
    for one in watched:
        said = [f"watching {one.base_url}"]
        if one is watched[0]:
            said.append(f"server log: {log.description}" if log is not None else f"no server log ({log_reason})")
        if one.proxy is not None:
            said.append(f"proxy: point apps at {one.proxy.url}")
        if (log is None or one is not watched[0]) and one.proxy is None:
            said.append("requests n/a: without the log's timings or --proxy, no request can be measured")
        err.write(f"llmtop: {'; '.join(said)}\n")
    if endpoint is not None:
        err.write(f"llmtop: metrics: {endpoint.url}\n")
    keeper = None
    if not args.no_history:
        from llmtop.history import History

        keeper = HistoryKeeper(History(), err)
        for one in watched:
            one.state.finished_listeners.append(keeper.keep(one.base_url))
    signals = SignalStop()
    collectors.start()
    for one in watched:
        one.watcher.start()
    try:
        if args.headless:
            for one in watched:
                one.state.listeners.append(headless_printer(sys.stdout, one.base_url if len(watched) > 1 else None))
            signals.install()
            deadline = time.monotonic() + args.duration if args.duration else None
            try:
                while deadline is None or time.monotonic() < deadline:
                    time.sleep(0.2)
            except KeyboardInterrupt:
                pass
        else:
            from llmtop.tui.watch_app import WatchApp

            servers = [(w.base_url, w.state, w.proxy) for w in watched]
            WatchApp(servers, collectors, log, endpoint, duration=args.duration).run()
    finally:
        signals.restore()
        _close(
            *(w.watcher for w in watched), log, *(w.proxy for w in watched), endpoint, collectors, gpus, power, keeper
        )
        if recorder is not None:
            recorder.close(time.monotonic())
            if recorder.problem:
                err.write(f"llmtop: note: {recorder.problem}; what was recorded before replays up to there\n")
            else:
                err.write(f"llmtop: recorded to {recorder.path} (llmtop replay {recorder.path})\n")
    if args.export:
        from llmtop.exports import write_requests

        requests = [r for w in watched for r in w.state.snapshot()[0]]
        try:
            path = write_requests(requests, Path(args.export))
        except OSError as exc:
            err.write(f"llmtop: cannot write {args.export}: {exc.strerror or exc}\n")
            return EXIT_FAILED
        err.write(f"llmtop: wrote {path}\n")
    return EXIT_OK
