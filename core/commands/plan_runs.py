"""Running a plan to its end, on the screen or headless, and what follows it: the files asked for
(--export, --chart, --report), the compared table, and the exit status. `llmtop MODEL`, `replay` and `demo`
end here."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from llmtop.commands.output import print_out
from llmtop.exit_status import EXIT_FAILED, EXIT_OK
from llmtop.measure.plan import PlanRunner
from llmtop.measure.stopping import SignalStop, StopRequested, stop_for
from llmtop.measure.summary_row import SummaryRow
from llmtop.measure.sweep import SweepResult
from llmtop.measure.timeline import RunCurves
from llmtop.store.charts import terminal_chart
from llmtop.store.exports import session_markdown
from llmtop.store.session_files import write_session_files

KEEP_WAIT_S = 10.0  # how long leaving the screen waits for the run that just ended to reach the history


def write_outputs(
    rows: Sequence[SummaryRow],
    args: argparse.Namespace,
    machine: Mapping[str, Any],
    err: TextIO,
    sweep: SweepResult | None = None,
    curves: Sequence[RunCurves | None] = (),
    plan: Mapping[str, Any] | None = None,
) -> bool:
    """--export, --chart and --report (a sweep's section in the export and the report; `curves`,
    the rows' memory timelines and tokens/s, in the report); False when a file could not be written
    (said on err)."""
    outcomes = write_session_files(
        rows,
        export=args.export,
        chart=args.chart,
        report=args.report,
        lang=args.lang,
        machine=machine,
        sweep=sweep,
        curves=curves,
        columns=args.columns,
        plan=plan,
    )
    for outcome in outcomes:
        err.write(f"llmtop: {outcome.problem or f'wrote {outcome.written}'}\n")
    return all(outcome.problem is None for outcome in outcomes)


def say_incomplete(rows: Sequence[SummaryRow], err: TextIO) -> None:
    """One line for each run that broke off, with its reason."""
    for row in rows:
        if row.error:
            err.write(f"llmtop: {row.model} {row.mode}: run incomplete: {row.error}\n")


def all_measured(rows: Sequence[SummaryRow], sweep: SweepResult | None) -> bool:
    """Every run complete; for a sweep, that it concluded: a point that failed before its first token
    (out of memory while loading, say) is a result, one that broke off mid-stream is not."""
    if sweep is not None:
        return sweep.concluded and all(r.complete or r.ttft_s is None for r in rows)
    return all(r.complete for r in rows)


def run_on_screen(
    runner: PlanRunner,
    args: argparse.Namespace,
    banner: str | None = None,
    empty_ok: bool = True,
    signals: SignalStop | None = None,
) -> int:
    """Run the plan in the app, then --export and --chart; the exit status (`empty_ok`: quitting
    before any run finished is not a failure). A signal stops the app as `q` does, keeping the run
    in progress, and gives the signal's exit status."""
    from llmtop.tui.app import LlmtopApp

    app = LlmtopApp(
        runner,
        export_path=args.export,
        lang=args.lang,
        columns=args.columns,
        chart_path=args.chart,
        banner=banner,
        report_path=args.report,
    )
    with signals.handled_by(app.stop_for_signal) if signals is not None else contextlib.nullcontext():
        app.run()
        runner.wait_kept(KEEP_WAIT_S)  # a run that ended as the user quit: in the history before llmtop exits
    if signals is not None:
        signals.defer()  # the files are written now: a signal is remembered, not obeyed mid-write
    rows = runner.rows
    sweep = runner.sweep_result() if rows else None
    curves = [runner.curves_of(row) for row in rows]
    written = write_outputs(rows, args, runner.machine if rows else {}, sys.stderr, sweep, curves, runner.plan_facts)
    say_incomplete(rows, sys.stderr)  # the screen is gone: the terminal keeps why a run broke off
    if runner.failure:
        sys.stderr.write(f"llmtop: {runner.failure}\n")
    if app.exit_status is not None:
        return app.exit_status
    if not written or runner.failure:
        return EXIT_FAILED
    return EXIT_OK if (rows or empty_ok) and all_measured(rows, sweep) else EXIT_FAILED


def run_headless(runner: PlanRunner, args: argparse.Namespace, signals: SignalStop | None = None) -> int:
    """Run the plan with progress lines on stderr, then write the files asked for and print the
    compared table; the exit status. Ctrl+C, SIGTERM and SIGHUP keep the run in progress and drop
    the rest of the plan (see stopping.py)."""
    from llmtop.commands.headless import HeadlessReporter

    if args.report:
        runner.keep_curves()
    HeadlessReporter(sys.stderr, runner)  # the progress lines, from the runner's events
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
        why = stop.reason if stop else runner.failure
        sys.stderr.write(f"llmtop: no run finished{f' ({why})' if why else ''}\n")
        return stop.status if stop else EXIT_FAILED
    sweep = runner.sweep_result()
    curves = [runner.curves_of(row) for row in rows]
    written = write_outputs(rows, args, runner.machine, sys.stderr, sweep, curves, runner.plan_facts)
    say_incomplete(rows, sys.stderr)
    table = session_markdown(rows, args.lang, sweep, args.columns)
    print_out(table + ("\n" + terminal_chart(rows) if sys.stdout.isatty() else ""))
    if stop is not None:
        return stop.status
    return EXIT_OK if written and all_measured(rows, sweep) and not runner.failure else EXIT_FAILED
