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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from llmtop.collectors.log_sources import LogUnavailable
from llmtop.collectors.log_watch import LogWatcher
from llmtop.collectors.system_collectors import SystemCollectors
from llmtop.commands.headless import watch_printer
from llmtop.commands.instruments import Instruments, server_is_local
from llmtop.commands.options import (
    add_access_arguments,
    add_export_argument,
    add_host_argument,
    add_interval_argument,
    add_log_arguments,
    add_no_history_argument,
    add_record_arguments,
    address_argument,
    check_access,
    check_files,
)
from llmtop.commands.output import export_requests
from llmtop.commands.priority import add_priority_argument, running_at
from llmtop.exit_status import EXIT_OK, EXIT_USAGE
from llmtop.measure.settings import RunSettings
from llmtop.ollama.hosts import (
    HostError,
    exposure,
    is_loopback,
    ollama_base_url,
    redact_url,
)
from llmtop.store.history import History, HistoryError
from llmtop.store.recording import Recorder
from llmtop.units import NA
from llmtop.watch.metrics import MetricsEndpoint, MetricsError
from llmtop.watch.poller import PsPoller, SpillWarning
from llmtop.watch.proxy import OllamaProxy
from llmtop.watch.slots import SlotsPoller
from llmtop.watch.state import WatchedRequest, WatchState


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
        "rate; on Ollama 0.30 and later from the log's llama-server lines and, live, llama-server's own /slots on "
        "this machine's loopback; before 0.30 through --proxy), the memory and "
        "power gauges, and the warnings (a spill into shared GPU memory, layers on the CPU, a model evicted).",
    )
    add_host_argument(
        parser,
        several="repeat it to watch several side by side (the server log, and the machine's memory and power, "
        "are the first one's)",
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
    add_export_argument(parser, "the requests, at the end,")
    parser.add_argument(
        "--duration",
        metavar="SECONDS",
        type=_seconds,
        default=0.0,
        help="stop after this long (default: until q or Ctrl+C)",
    )
    add_interval_argument(parser)
    add_priority_argument(parser)
    add_access_arguments(parser)
    add_record_arguments(parser)
    add_no_history_argument(parser, "the requests (llmtop history --watched)")
    add_log_arguments(parser, serve=False)
    return parser


class HistoryKeeper:
    """Writes each request that ended to the history on a thread of its own (a slow disk never holds
    up the proxy or the log follower); a history that cannot be written is said once."""

    def __init__(self, history: History, err: TextIO) -> None:
        import queue

        self.history = history
        self.err = err
        self.queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self.problem: str | None = None
        self._thread = threading.Thread(target=self._write, name="llmtop-watch-history", daemon=True)
        self._thread.start()

    def keep(self, host: str) -> Callable[[WatchedRequest], None]:
        return lambda request: self.queue.put((host, request.to_dict()))

    def _write(self) -> None:
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


@dataclass
class WatchedServer:
    """One server watched: its URL, its state, its /api/ps poller and its proxy (if any)."""

    base_url: str
    state: WatchState
    poller: PsPoller
    headers: dict[str, str]
    proxy: OllamaProxy | None = None


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_files(parser, args)
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
    args.running_at = running_at(args.priority)  # before any thread starts: they inherit it
    return watch_servers(args, hosts)


def _host_tap(recorder: Recorder, host: str) -> Callable[[str, float, Mapping[str, Any]], None]:
    """A state's tap: each of its inputs into the recording, marked with the server it came from."""
    return lambda event, t, fields: recorder.event(event, t, {"host": host, **fields})


def _start_proxies(kit: Instruments, args: argparse.Namespace, watched: list[WatchedServer], err: TextIO) -> None:
    """The Nth --proxy in front of the Nth server; raises MetricsError for a port that cannot open."""
    for (address, port), one in zip(args.proxy or [], watched, strict=False):
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
            raise MetricsError(f"--proxy: port {port} on {address} cannot be opened ({exc.strerror or exc})") from None
        kit.stopping(one.proxy)
        one.state.proxied = True
        shared = "requests to the server, with your credentials" if one.headers else "requests to the server"
        warning = exposure("the proxy", address, port, f"it forwards {shared} ({one.base_url})")
        if warning:
            err.write(f"llmtop: {warning}\n")


def watch_servers(args: argparse.Namespace, hosts: list[tuple[str, dict[str, str]]]) -> int:
    """Watch every host; the server log and the machine's collectors are the first host's."""
    err = sys.stderr
    first_url = hosts[0][0]
    with Instruments(err) as kit:
        try:
            kit.open_log(args, first_url)
        except LogUnavailable as exc:
            err.write(f"llmtop: {exc}\n")
            return EXIT_USAGE
        watched = []
        for url, headers in hosts:
            state = WatchState()
            watched.append(
                WatchedServer(url, state, PsPoller(url, state, headers=headers, cacert=args.cacert), headers)
            )
        first = watched[0].state
        collectors = kit.sample_machine(first_url, args.interval)
        kit.probe_devices()
        if collectors.gpu is not None:
            collectors.gpu.listeners.append(SpillWarning(first))
        endpoint = None
        try:
            if args.metrics is not None:
                states = {w.base_url: w.state for w in watched}
                endpoint = MetricsEndpoint(states if len(states) > 1 else first, collectors, *args.metrics)
                kit.stopping(endpoint)
            _start_proxies(kit, args, watched, err)
            if args.metrics is not None:
                address, port = args.metrics
                warning = exposure("--metrics", address, port, "the models, requests, memory and power it serves")
                if warning:
                    err.write(f"llmtop: {warning}\n")
        except MetricsError as exc:
            err.write(f"llmtop: {exc}\n")
            return EXIT_USAGE
        log = kit.log
        recorder = kit.record(
            args,
            ["watch"],
            {
                "settings": RunSettings(),
                "priority": args.running_at,
                "watch": {
                    "hosts": [w.base_url for w in watched],
                    "proxied": [w.base_url for w in watched if w.state.proxied],
                },
            },
            unrecorded="watching goes on unrecorded",
        )
        if recorder is not None:
            for one in watched:
                one.state.taps.append(_host_tap(recorder, one.base_url))
        if log is not None:
            log.subscribe(lambda load: first.observe_load(time.monotonic(), load))
            if server_is_local(first_url)[0]:  # llama-server's /slots listens on this machine's loopback
                kit.stopping(SlotsPoller(first, log).start())
        kit.start_log()
        for one in watched if args.headless else ():  # the screen's server line says the same
            said = [f"watching {one.base_url}"]
            if one is watched[0]:
                said.append(
                    f"server log: {log.description}" if log is not None else f"no server log ({kit.log_reason})"
                )
            if one.proxy is not None:
                said.append(f"proxy: point apps at {one.proxy.url}")
            if (log is None or one is not watched[0]) and one.proxy is None:
                said.append(f"requests {NA}: without the log's timings or --proxy, no request can be measured")
            err.write(f"llmtop: {'; '.join(said)}\n")
        if endpoint is not None and args.headless:
            err.write(f"llmtop: metrics: {endpoint.url}\n")
        if not args.no_history:
            keeper = HistoryKeeper(History(), err)
            kit.stopping(keeper)
            for one in watched:
                one.state.finished_listeners.append(keeper.keep(one.base_url))
        kit.start_sampling()
        for one in watched:
            kit.stopping(one.poller.start())
        _show(args, watched, collectors, kit.log, endpoint)
    if args.export:
        return export_requests([r for w in watched for r in w.state.snapshot().requests], args.export)
    return EXIT_OK


def _show(
    args: argparse.Namespace,
    watched: list[WatchedServer],
    collectors: SystemCollectors,
    log: LogWatcher | None,
    endpoint: MetricsEndpoint | None,
) -> None:
    """Until --duration, q or a signal: the screen, or one line per event on stdout."""
    from llmtop.measure.stopping import SignalStop

    if not args.headless:
        from llmtop.tui.watch_app import WatchApp, WatchedScreen

        servers = [WatchedScreen(w.base_url, w.state, w.proxy.url if w.proxy else None) for w in watched]
        WatchApp(servers, collectors, log, endpoint.url if endpoint else None, duration=args.duration).run()
        return
    for one in watched:
        one.state.listeners.append(watch_printer(sys.stdout, one.base_url if len(watched) > 1 else None))
    signals = SignalStop()
    signals.install()
    deadline = time.monotonic() + args.duration if args.duration else None
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        signals.restore()
