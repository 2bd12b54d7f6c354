"""`llmtop MODEL ...` after the command line is read: choose the log, connect, sample, run the plan
on the screen or headless, then export. Every failure ends in one line and an exit status."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from llmtop.charts import terminal_chart, write_chart
from llmtop.collectors.log_sources import (
    CommandFollower,
    FileFollower,
    LogSource,
    LogUnavailable,
    ServeProcess,
    default_log_source,
    wait_for_port,
)
from llmtop.collectors.log_watch import LogWatcher
from llmtop.exports import session_markdown, write_export
from llmtop.hosts import exposure, is_local, redact_argv
from llmtop.output import print_out
from llmtop.session_settings import RunSettings, ollama_load_timeout, silence_limit
from llmtop.stopping import SignalStop, StopRequested, stop_for
from llmtop.summary import SummaryRow
from llmtop.sweep import SweepResult

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2


def _import_ollama_client() -> None:
    """Import the `ollama` package with OLLAMA_HOST hidden: importing it builds a default client
    from OLLAMA_HOST and raises on a value it cannot read. llmtop has already read the setting
    (and passes the host explicitly), so a bad value gets our one-line error instead."""
    saved = os.environ.pop("OLLAMA_HOST", None)
    try:
        import ollama  # noqa: F401
    finally:
        if saved is not None:
            os.environ["OLLAMA_HOST"] = saved


def own_addresses() -> frozenset[str]:
    """This machine's interface addresses (a server reached by its LAN address is still local)."""
    try:
        import psutil

        return frozenset(a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs)
    except Exception:
        return frozenset()


def _drain(process: subprocess.Popen[bytes]) -> str:
    try:
        return process.stdout.read().decode("utf-8", errors="replace") if process.stdout else ""
    except (OSError, ValueError):
        return ""


def choose_log(
    args: argparse.Namespace, base_url: str
) -> tuple[ServeProcess | None, LogSource | None, str | None, str]:
    """(serve process, log source, why there is none, base URL) for the log options given."""
    if args.no_log:
        return None, None, "not read (--no-log)", base_url
    if args.serve:
        serve = ServeProcess()
        process = serve.start()
        if not wait_for_port(serve.port, 60, lambda: process.poll() is None):
            serve.stop()
            tail = _drain(process)[-300:].strip().replace("\n", " | ")
            raise LogUnavailable(f"`ollama serve` did not start (exit status {process.poll()}): {tail or 'no output'}")
        return serve, serve, None, serve.base_url
    if args.log:
        path = os.path.expanduser(args.log)
        if os.path.isdir(path):
            raise LogUnavailable(f"{args.log} is a folder: --log takes the server log file")
        if not os.path.exists(path):  # Ollama may start after llmtop: the file is followed once it appears
            sys.stderr.write(
                f"llmtop: note: no log file at {args.log} yet: it is read from when it appears "
                "(Ollama writes it once it starts)\n"
            )
            return None, FileFollower(path), None, base_url
        if not os.access(path, os.R_OK):
            raise LogUnavailable(f"cannot read {args.log}: permission denied")
        return None, FileFollower(path), None, base_url
    if args.docker:
        if shutil.which("docker") is None:
            raise LogUnavailable("--docker needs the `docker` command on PATH")
        probe = subprocess.run(
            ["docker", "logs", "--tail", "0", args.docker], capture_output=True, text=True, timeout=20
        )
        if probe.returncode != 0:
            raise LogUnavailable(f"docker logs {args.docker}: {(probe.stderr or probe.stdout).strip() or 'failed'}")
        follower = CommandFollower(["docker", "logs", "-f", "--tail", "0", args.docker], f"docker logs {args.docker}")
        return None, follower, None, base_url
    choice = default_log_source(is_local(base_url, own_addresses()))
    return None, choice.source, choice.reason, base_url


def _pull(server, model: str, stream: TextIO) -> None:
    """Pull with a progress line on stderr."""
    last = ""
    for progress in server.pull(model):
        status = progress.get("status") or ""
        total, completed = progress.get("total"), progress.get("completed")
        line = status
        if isinstance(total, int) and total > 0 and isinstance(completed, int):
            line = f"{status}: {100 * completed / total:5.1f}% of {total / 1e9:.1f} GB"
        if line != last:
            end = "\r" if stream.isatty() and total else "\n"
            stream.write(f"llmtop: {line}{' ' * 8}{end}")
            stream.flush()
            last = line
    stream.write("\n" if stream.isatty() else "")


def write_outputs(
    rows: Sequence[SummaryRow], args: argparse.Namespace, machine, err: TextIO, sweep: SweepResult | None = None
) -> bool:
    """--export and --chart (and a sweep's section in the export); False when a file could not be
    written (said on err)."""
    ok = True
    for path, write in (
        (args.export, lambda p: write_export(rows, p, args.lang, machine, sweep)),
        (args.chart, lambda p: write_chart(rows, p)),
    ):
        if not path or not rows:
            continue
        try:
            written = write(path)
        except OSError as exc:
            err.write(f"llmtop: cannot write {path}: {exc.strerror or exc}\n")
            ok = False
            continue
        err.write(f"llmtop: wrote {written}\n")
    return ok


def all_measured(rows: Sequence[SummaryRow], sweep: SweepResult | None) -> bool:
    """Every run complete; for a sweep, that it concluded: a point that failed before its first token
    (out of memory while loading, say) is a result, one that broke off mid-stream is not."""
    if sweep is not None:
        return sweep.concluded and all(r.complete or r.ttft_s is None for r in rows)
    return all(r.complete for r in rows)


def measure(
    args: argparse.Namespace, base_url: str, settings: RunSettings, modes: Sequence[str], signals: SignalStop
) -> int:
    """Run the plan: every model in every mode, `args.repeat` times; `signals` turns Ctrl+C, SIGTERM
    and SIGHUP into a stop that keeps the run in progress."""
    _import_ollama_client()
    err = sys.stderr
    try:
        serve, source, log_reason, base_url = choose_log(args, base_url)
    except LogUnavailable as exc:
        err.write(f"llmtop: {exc}\n")
        return EXIT_USAGE
    log = LogWatcher(source) if source is not None else None
    if log is not None:
        log.start()
    try:
        return _measure(args, base_url, settings, modes, log, log_reason, signals)
    finally:
        if log is not None:
            log.stop()
        if serve is not None:
            serve.stop()


def _measure(args, base_url, settings, modes, log, log_reason, signals: SignalStop) -> int:
    from llmtop.collectors.gpu_collector import probe_gpu_backends
    from llmtop.collectors.ollama_processes import OllamaProcessReader
    from llmtop.collectors.power_collector import power_unavailable, probe_power_sources
    from llmtop.collectors.system_collectors import SystemCollectors
    from llmtop.history import History
    from llmtop.machine import describe_machine
    from llmtop.ollama_api import ModelNotFound, OllamaError, OllamaServer, ServerUnreachable
    from llmtop.plan import PlanRunner, SweepPlan, build_plan
    from llmtop.session import Session
    from llmtop.sweep import SweepError, announce, check_layers

    err = sys.stderr
    load_timeout = ollama_load_timeout(os.environ.get("OLLAMA_LOAD_TIMEOUT"))
    server = OllamaServer(
        base_url,
        silence_limit_s=silence_limit(args.stall_timeout, load_timeout),
        headers=getattr(args, "access_headers", None),
        cacert=getattr(args, "cacert", None),
    )
    collectors = SystemCollectors(
        interval=args.interval,
        process_reader=OllamaProcessReader(local=is_local(base_url, own_addresses()), remote_host=base_url),
    )
    sessions = {}
    try:
        for model in dict.fromkeys(args.models):
            session = Session(
                server, model, collectors, log=log, log_reason=log_reason, stall_timeout_s=args.stall_timeout
            )
            try:
                session.connect()
            except ModelNotFound:
                if not args.pull:
                    raise
                _pull(server, model, err)
                session.connect()
            sessions[model] = session
    except (ServerUnreachable, ModelNotFound) as exc:
        err.write(f"llmtop: {exc}\n")
        server.close()
        return EXIT_USAGE
    except OllamaError as exc:
        err.write(f"llmtop: {exc}\n")
        server.close()
        return EXIT_RUN_FAILED

    sweep = None
    if args.sweep is not None:
        model, session = next(iter(sessions.items()))
        facts = session.facts
        try:
            check_layers(args.sweep, model, facts.layers_total if facts else None)
        except SweepError as exc:
            err.write(f"llmtop: {exc}\n")
            server.close()
            return EXIT_USAGE
        sweep = SweepPlan(model, args.sweep, facts.layers_total if facts else None, args.repeat, settings)
        plan = sweep.first()
        err.write(
            f"llmtop: {announce(args.sweep, model, sweep.planner, args.repeat, facts.size_bytes if facts else None)}\n"
        )
    else:
        plan = build_plan(list(sessions), modes, args.repeat, settings)
    gpus = probe_gpu_backends(pids=collectors.ollama_pids)
    collectors.use_gpus(gpus if gpus.readers else None, gpus.unavailable_reason)
    power = probe_power_sources()
    collectors.use_power(power if power.sources else None, power_unavailable(power))
    version = next(iter(sessions.values())).version
    endpoint = None
    if args.metrics is not None:
        from llmtop.metrics import MetricsEndpoint, MetricsError
        from llmtop.watch import WatchState

        state = WatchState()
        try:
            endpoint = MetricsEndpoint(state, collectors, *args.metrics)
        except MetricsError as exc:
            err.write(f"llmtop: {exc}\n")
            gpus.close()
            power.close()
            server.close()
            return EXIT_USAGE
        err.write(f"llmtop: metrics: {endpoint.url}\n")
        address, port = args.metrics
        warning = exposure("--metrics", address, port, "the models, runs, memory and power it serves")
        if warning:
            err.write(f"llmtop: {warning}\n")
    recorder = start_recording(args, collectors, sessions, log, log_reason, plan, settings, sweep=sweep)

    def machine():
        latest = collectors.gpu.latest() if collectors.gpu else None
        facts = describe_machine(latest.gpus if latest else (), version)
        if recorder is not None:
            recorder.event("machine", time.monotonic(), {"machine": facts})
        return facts

    collectors.start()
    runner = PlanRunner(
        sessions,
        plan,
        history=None if args.no_history else History(),
        machine=machine,
        on_note=lambda message: err.write(f"llmtop: note: {message}\n") if args.headless else None,
        sweep=sweep,
    )
    if endpoint is not None:
        runner.row_listeners.append(lambda row: state.observe_row(time.monotonic(), row))
    try:
        if args.headless:
            return run_headless(runner, args, signals)
        return run_on_screen(runner, args, signals=signals)
    finally:
        if endpoint is not None:
            endpoint.stop()
        collectors.stop()
        gpus.close()
        power.close()
        server.close()
        if recorder is not None:
            recorder.close(time.monotonic())
            if recorder.problem:  # what was recorded before it stopped still replays
                err.write(f"llmtop: note: {recorder.problem}; what was recorded before replays up to there\n")
            else:
                err.write(f"llmtop: recorded to {recorder.path} (llmtop replay {recorder.path})\n")


def start_recording(args, collectors, sessions, log, log_reason, plan, settings, demo: str | None = None, sweep=None):
    """Open the recording (unless --no-record) and hook it to the collectors, the log and the
    sessions; None when there is none. A recording that cannot be opened costs no run. `demo`
    marks a recording made for the demo (its replay says so); `sweep` (a SweepPlan) a sweep's."""
    from llmtop import recording

    if args.no_record:
        return None
    path = (
        Path(args.record)
        if args.record
        else recording.default_folder() / recording.default_name(list(sessions), dt.datetime.now())
    )
    try:
        recorder = recording.Recorder(path, private=not args.record)
    except recording.RecordingError as exc:
        sys.stderr.write(f"llmtop: note: {exc}; the run goes on unrecorded\n")
        return None
    now = time.monotonic()
    recorder.event(
        "recording",
        now,
        recording.header(
            interval=collectors.memory.interval,
            plan=[{"model": p.model, "mode": p.settings.mode, "repeat": p.repeat} for p in plan],
            settings=settings,
            log={"description": log.description if log else None, "reason": log_reason},
            gpu={"available": collectors.gpu is not None, "reason": collectors.gpu_unavailable},
            power={"available": collectors.power is not None, "unavailable": collectors.power_unavailable},
            argv=redact_argv(sys.argv[1:]),
            demo=demo,
            sweep=None if sweep is None else {**sweep.spec.to_dict(), "num_ctx": settings.num_ctx},
        ),
    )
    for model, session in sessions.items():
        recorder.event(
            "model",
            now,
            {
                "model": model,
                "facts": session.facts,
                "ollama_version": session.version,
                "host": session.server.base_url,
            },
        )
        session.on_event = recorder.event
    record_collectors(recorder, collectors, log)
    return recorder


def record_collectors(recorder, collectors, log) -> None:
    """Every sample and sampler error, and every log line read, into the recording."""
    samplers = (
        ("ram", collectors.memory),
        ("ollama-rss", collectors.processes),
        ("gpu", collectors.gpu),
        ("power", collectors.power),
    )
    for source, sampler in samplers:
        if sampler is None:
            continue
        sampler.listeners.append(
            lambda sample, source=source: recorder.event("sample", sample.t, {"source": source, "sample": sample})
        )
        sampler.error_listeners.append(
            lambda t, error, source=source: recorder.event("error", t, {"source": source, "error": error})
        )
    if log is not None:
        log.taps.append(lambda line, t: recorder.event("log", t, {"line": line}))


def run_on_screen(
    runner,
    args: argparse.Namespace,
    banner: str | None = None,
    empty_ok: bool = True,
    signals: SignalStop | None = None,
) -> int:
    """Run the plan in the app, then --export and --chart; the exit status (`empty_ok`: quitting
    before any run finished is not a failure). A signal stops the app as `q` does, keeping the run
    in progress, and gives the signal's exit status."""
    from llmtop.tui.app import LlmtopApp

    app = LlmtopApp(runner, export_path=args.export, lang=args.lang, chart_path=args.chart, banner=banner)
    if signals is not None:
        signals.on_stop = app.stop_for_signal
    app.run()
    if signals is not None:
        signals.on_stop = None
        signals.defer()  # the files are written now: a signal is remembered, not obeyed mid-write
    rows = runner.rows
    sweep = runner.sweep_result() if rows else None
    written = write_outputs(rows, args, runner.machine if rows else {}, sys.stderr, sweep)
    if app.exit_status is not None:
        return app.exit_status
    if not written:
        return EXIT_RUN_FAILED
    return EXIT_OK if (rows or empty_ok) and all_measured(rows, sweep) else EXIT_RUN_FAILED


def run_headless(runner, args: argparse.Namespace, signals: SignalStop | None = None) -> int:
    """Run the plan with progress lines on stderr, then write the files asked for and print the
    compared table; the exit status. Ctrl+C, SIGTERM and SIGHUP keep the run in progress and drop
    the rest of the plan (see stopping.py)."""
    from llmtop.headless import HeadlessReporter

    reporter = HeadlessReporter(sys.stderr, runner)
    for session in runner.sessions.values():
        session.observer = reporter
    first = runner.current
    if first.log is not None:
        sys.stderr.write(f"llmtop: server log: {first.log.description}\n")
    else:
        sys.stderr.write(f"llmtop: note: server log not read: {first.log_reason}\n")
    stop: StopRequested | None = None
    try:
        runner.run_all()
    except KeyboardInterrupt as exc:  # between two runs: what is done is kept
        stop = exc if isinstance(exc, StopRequested) else stop_for(signal.SIGINT)
    if signals is not None:
        signals.defer()  # the files are written now: a signal is remembered, not obeyed mid-write
    stop = stop or runner.stop_request
    rows = runner.rows
    if not rows:
        sys.stderr.write(f"llmtop: no run finished{f' ({stop.reason})' if stop else ''}\n")
        return stop.status if stop else EXIT_RUN_FAILED
    sweep = runner.sweep_result()
    written = write_outputs(rows, args, runner.machine, sys.stderr, sweep)
    for row in rows:
        if row.error:
            sys.stderr.write(f"llmtop: {row.model} {row.mode}: run incomplete: {row.error}\n")
    table = session_markdown(rows, args.lang, sweep)
    print_out(table + ("\n" + terminal_chart(rows) if sys.stdout.isatty() else ""))
    if stop is not None:
        return stop.status
    return EXIT_OK if written and all_measured(rows, sweep) else EXIT_RUN_FAILED
