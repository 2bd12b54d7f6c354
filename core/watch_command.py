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
from pathlib import Path
from typing import TextIO

from llmtop.hosts import HostError, add_access_arguments, check_access, ollama_base_url, redact_url
from llmtop.metrics import MetricsError, parse_address
from llmtop.output import unwritable
from llmtop.watch import WatchEvent, WatchState

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
PS_INTERVAL_S = 1.0
SPILL_BYTES = 64 * 1000 * 1000


def _address(text: str) -> tuple[str, int]:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    parser.add_argument("--host", metavar="URL", help="the server (default $OLLAMA_HOST, else 127.0.0.1:11434)")
    parser.add_argument("--headless", action="store_true", help="no screen: one line per event on stdout")
    parser.add_argument(
        "--metrics",
        metavar="[ADDR:]PORT",
        type=_address,
        help="serve Prometheus/OpenMetrics metrics at http://ADDR:PORT/metrics (ADDR default 127.0.0.1)",
    )
    parser.add_argument(
        "--proxy",
        metavar="[ADDR:]PORT",
        type=_address,
        help="listen on PORT and forward everything to the server, measuring each answer: point apps at it "
        "where the log has no request timings (Ollama before 0.30, a remote server)",
    )
    parser.add_argument("--export", metavar="PATH", help="at the end, write the requests to PATH: .md, .csv or .json")
    parser.add_argument(
        "--duration",
        metavar="SECONDS",
        type=_seconds,
        default=0.0,
        help="stop after this long (default: until q or Ctrl+C)",
    )
    parser.add_argument(
        "--interval",
        metavar="SECONDS",
        type=_seconds,
        default=0.5,
        help="sampling interval of RAM and GPU memory (0.5)",
    )
    add_access_arguments(parser)
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


def headless_printer(stream: TextIO, host: str | None = None) -> Callable[[WatchEvent], None]:
    prefix = f"[{host}] " if host else ""

    def print_event(event: WatchEvent) -> None:
        stamp = time.strftime("%H:%M:%S")
        try:
            stream.write(f"llmtop watch: {stamp} {prefix}{event.text}\n")
            stream.flush()
        except (OSError, ValueError):
            pass

    return print_event


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.export:
        from llmtop.exports import export_format

        try:
            export_format(args.export)
        except ValueError as exc:
            parser.error(f"argument --export: {exc}")
        problem = unwritable(args.export, "--export")
        if problem:
            parser.error(problem)
    setting = args.host if args.host is not None else os.environ.get("OLLAMA_HOST")
    try:
        base_url = ollama_base_url(setting)
    except HostError as exc:
        parser.error(redact_url(f"argument --host: {exc}"))
    args.access_headers = check_access(parser, args, setting)
    return watch(args, base_url)


def watch(args: argparse.Namespace, base_url: str) -> int:
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
    state = WatchState()
    args.serve = False
    try:
        _, source, log_reason, _ = choose_log(args, base_url)
    except LogUnavailable as exc:
        err.write(f"llmtop: {exc}\n")
        return EXIT_USAGE
    collectors = SystemCollectors(
        interval=max(args.interval, 0.05),
        process_reader=OllamaProcessReader(local=is_local(base_url, own_addresses()), remote_host=base_url),
    )
    gpus = probe_gpu_backends(pids=collectors.ollama_pids)
    collectors.use_gpus(gpus if gpus.readers else None, gpus.unavailable_reason)
    power = probe_power_sources()
    collectors.use_power(power if power.sources else None, power_unavailable(power))
    if collectors.gpu is not None:
        collectors.gpu.listeners.append(SpillWatch(state))
    endpoint = proxy = None
    try:
        if args.metrics is not None:
            from llmtop.metrics import MetricsEndpoint

            endpoint = MetricsEndpoint(state, collectors, *args.metrics)
        if args.proxy is not None:
            from llmtop.collectors.ollama_proxy import OllamaProxy

            address, port = args.proxy
            try:
                proxy = OllamaProxy(
                    base_url, port, state, address, headers=args.access_headers, cacert=args.cacert
                ).start()
            except OSError as exc:
                raise MetricsError(
                    f"--proxy: port {port} on {address} cannot be opened ({exc.strerror or exc})"
                ) from None
            state.proxied = True
    except MetricsError as exc:
        err.write(f"llmtop: {exc}\n")
        if endpoint is not None:
            endpoint.stop()
        gpus.close()
        power.close()
        return EXIT_USAGE
    log = LogWatcher(source) if source is not None else None
    if log is not None:
        log.subscribe(lambda load: state.observe_load(time.monotonic(), load))
        log.start()
    watcher = Watcher(base_url, state, headers=args.access_headers, cacert=args.cacert)
    said = [f"watching {base_url}"]
    said.append(f"server log: {log.description}" if log is not None else f"no server log ({log_reason})")
    if proxy is not None:
        said.append(f"proxy: point apps at {proxy.url}")
    if endpoint is not None:
        said.append(f"metrics: {endpoint.url}")
    if log is None and proxy is None:
        said.append("requests n/a: without the log's timings or --proxy, no request can be measured")
    err.write(f"llmtop: {'; '.join(said)}\n")
    signals = SignalStop()
    collectors.start()
    watcher.start()
    try:
        if args.headless:
            state.listeners.append(headless_printer(sys.stdout))
            signals.install()
            deadline = time.monotonic() + args.duration if args.duration else None
            try:
                while deadline is None or time.monotonic() < deadline:
                    time.sleep(0.2)
            except KeyboardInterrupt:
                pass
        else:
            from llmtop.tui.watch_app import WatchApp

            WatchApp(state, collectors, base_url, log, proxy, endpoint, duration=args.duration).run()
    finally:
        signals.restore()
        watcher.stop()
        if log is not None:
            log.stop()
        if proxy is not None:
            proxy.stop()
        if endpoint is not None:
            endpoint.stop()
        collectors.stop()
        gpus.close()
        power.close()
    if args.export:
        from llmtop.exports import write_requests

        requests, _, _ = state.snapshot()
        try:
            path = write_requests(requests, Path(args.export))
        except OSError as exc:
            err.write(f"llmtop: cannot write {args.export}: {exc.strerror or exc}\n")
            return EXIT_FAILED
        err.write(f"llmtop: wrote {path}\n")
    return EXIT_OK
