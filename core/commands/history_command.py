"""`llmtop history [--model M] [--limit N] [--export PATH] [--report PATH] [--lang ja] [--repair]
[--watched]`: past runs, from any day, and the requests `llmtop watch` kept."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from typing import Any

from llmtop.commands.options import add_export_argument, add_lang_argument, add_report_argument, check_files
from llmtop.commands.output import print_out
from llmtop.exit_status import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from llmtop.store.exports import (
    export_format,
    render_requests,
    runs_markdown,
    to_csv,
    to_json,
    to_markdown,
    verdicts_markdown,
)
from llmtop.store.history import History, HistoryError
from llmtop.store.report import SessionReport, write_report

HISTORY_HAS_NO_SAMPLES = (
    "the history keeps each run's figures, not its samples: `llmtop replay` its recording for these"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmtop history",
        description="List the runs llmtop has kept (one line per run, oldest first), and compare them: "
        "the second table groups them by model, mode and load, with tps mean ± sd and the speed-up over cpu; "
        "then what each --sweep concluded.",
    )
    parser.add_argument("--model", metavar="M", help="only this model's runs")
    parser.add_argument(
        "--watched", action="store_true", help="the requests `llmtop watch` saw (kind watch) instead of the runs"
    )
    parser.add_argument("--limit", metavar="N", type=int, help="only the last N runs")
    add_export_argument(parser, "them")
    add_lang_argument(parser)
    add_report_argument(parser)
    parser.add_argument(
        "--repair",
        action="store_true",
        help="a damaged history file: move it aside (its name gets .damaged- and the time) and start a new one",
    )
    return parser


def repair(history: History) -> int:
    """`--repair`: move a damaged file aside, or say that there is nothing to repair."""
    problem = history.damaged()
    if problem is None:
        what = "reads fine" if history.path.exists() else "does not exist yet"
        sys.stderr.write(f"llmtop: the history at {history.path} {what}: nothing to repair\n")
        return EXIT_OK
    try:
        moved = history.repair(dt.datetime.now())
    except HistoryError as exc:
        sys.stderr.write(f"llmtop: {exc}\n")
        return EXIT_USAGE
    sys.stderr.write(
        f"llmtop: the history at {history.path} was damaged ({problem}); moved it to {moved}. "
        "A new history starts with the next run.\n"
    )
    return EXIT_OK


def sweeps_markdown(sweeps: Sequence[dict[str, Any]]) -> str:
    """Past sweeps, one line each: when, which model and setting, and what each concluded."""
    lines = ["### Sweeps\n"]
    for sweep in sweeps:
        when = str(sweep.get("recorded_at") or "")[:16].replace("T", " ")
        stopped = "" if sweep.get("finished") else " (stopped early)"
        lines.append(f"- {when} {sweep.get('model')} {sweep.get('parameter')}{stopped}: {sweep.get('conclusion')}")
    return "\n".join(lines) + "\n"


def with_sweeps(document: str, sweeps: Sequence[dict[str, Any]]) -> str:
    """The runs' JSON export with the past sweeps under `sweeps`."""
    data = json.loads(document)
    data["sweeps"] = list(sweeps)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _watched(history: History, args: argparse.Namespace) -> int:
    """`llmtop history --watched`: the requests kept by `llmtop watch`, listed or exported (the same
    columns as `llmtop watch --export`, after each one's date and server)."""
    from llmtop.watch.state import WatchedRequest

    try:
        kept = history.requests(args.model, args.limit)
    except HistoryError as exc:
        sys.stderr.write(f"llmtop: {exc}\n")
        return EXIT_USAGE
    if not kept:
        sys.stderr.write(f"llmtop: no watched requests kept yet (history file: {history.path})\n")
        return EXIT_FAILED
    requests = [WatchedRequest.from_dict(r) for r in kept]
    facts = [{"kind": r.get("kind"), "recorded_at": r.get("recorded_at"), "host": r.get("host")} for r in kept]
    listing = render_requests(requests, "listing.md", facts)
    if args.export:
        try:
            with open(args.export, "w", encoding="utf-8", newline="") as handle:
                handle.write(render_requests(requests, args.export, facts))
        except OSError as exc:
            sys.stderr.write(f"llmtop: cannot write {args.export}: {exc.strerror or exc}\n")
            return EXIT_FAILED
        sys.stderr.write(f"llmtop: wrote {args.export}\n")
    print_out(listing)
    return EXIT_OK


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("argument --limit: must be 1 or more")
    check_files(parser, args)
    if args.repair and (args.model or args.watched or args.limit is not None or args.export or args.report):
        parser.error("argument --repair: only moves a damaged history aside: given alone")
    if args.watched and args.report:
        parser.error("argument --report: the watched requests have no runs to report (use --export)")
    if args.watched and args.lang != "en":
        parser.error("argument --lang: the watched requests' table has no Japanese headers")
    if args.watched and args.columns:
        parser.error("argument --columns: the watched requests' table has its own columns")
    kind = export_format(args.export) if args.export else ""
    history = History()
    if args.repair:
        return repair(history)
    if args.watched:
        return _watched(history, args)
    try:
        rows = history.runs(args.model, args.limit)
        sweeps = history.sweeps(args.model)
        machine = history.last_machine() if args.report else {}
    except HistoryError as exc:
        sys.stderr.write(f"llmtop: {exc}\n")
        return EXIT_USAGE
    if not rows:
        sys.stderr.write(
            f"llmtop: no runs kept yet{' for ' + args.model if args.model else ''} (history file: {history.path})\n"
        )
        return EXIT_FAILED
    listing = runs_markdown(rows, args.lang) + "\n" + to_markdown(rows, args.lang, args.columns)
    if not args.columns and (said := verdicts_markdown(rows, args.lang)):
        listing += "\n" + said
    if sweeps:
        listing += "\n" + sweeps_markdown(sweeps)
    status = EXIT_OK
    if args.export:  # the file first: a failing print never costs it
        text = {
            "md": lambda: listing,
            "csv": lambda: to_csv(rows),
            "json": lambda: with_sweeps(to_json(rows), sweeps),
        }[kind]()
        try:
            with open(args.export, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
        except OSError as exc:
            sys.stderr.write(f"llmtop: cannot write {args.export}: {exc.strerror or exc}\n")
            status = EXIT_FAILED
        else:
            sys.stderr.write(f"llmtop: wrote {args.export}\n")
    if args.report:
        try:
            report = SessionReport(rows, [], machine, args.lang, no_curves=HISTORY_HAS_NO_SAMPLES, columns=args.columns)
            written = write_report(args.report, report)
        except OSError as exc:
            sys.stderr.write(f"llmtop: cannot write {args.report}: {exc.strerror or exc}\n")
            status = EXIT_FAILED
        else:
            sys.stderr.write(f"llmtop: wrote {written}\n")
    print_out(listing)
    return status
