"""Options that several commands take, defined once: the same limits, default and help wherever
they appear (`llmtop MODEL`, `llmtop watch`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from llmtop.ollama.hosts import access_headers, parse_address

INTERVAL_S = 0.25  # the collectors' sampling interval unless --interval says otherwise
INTERVAL_LIMITS = (0.05, 60.0)


def float_between(low: float, high: float, unit: str = "") -> Callable[[str], float]:
    """An argparse type: a number from `low` to `high`, with a one-line reason otherwise."""

    def read(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}{unit}, got {text}")
        return value

    return read


def context_size(text: str) -> int:
    """An argparse type: a context size in tokens (`8192`, `8k`), as --num-ctx takes it."""
    from llmtop.measure.mode import parse_context

    try:
        return parse_context(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_interval_argument(parser: argparse.ArgumentParser) -> None:
    """`--interval SECONDS`: how often RAM, GPU memory, the Ollama processes and power are sampled."""
    parser.add_argument(
        "--interval",
        metavar="SECONDS",
        type=float_between(*INTERVAL_LIMITS, " seconds"),
        default=INTERVAL_S,
        help=f"sampling interval of RAM, GPU memory and power, {INTERVAL_LIMITS[0]:g} to {INTERVAL_LIMITS[1]:g} "
        f"(default: {INTERVAL_S:g})",
    )


def add_export_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """`--export PATH`: `what` written to PATH in the format its suffix names."""
    parser.add_argument("--export", metavar="PATH", help=f"write {what} to PATH: .md, .csv or .json")


def add_lang_argument(parser: argparse.ArgumentParser) -> None:
    """`--lang en|ja` and `--columns article|LIST`: the Markdown table's headers and columns."""
    from llmtop.store.exports import LANGUAGES

    parser.add_argument("--lang", choices=LANGUAGES, default="en", help="Markdown headers: en, or ja (the article's)")
    parser.add_argument(
        "--columns",
        metavar="LIST",
        type=_columns,
        help="the Markdown table's columns (the export, the printed table, the report's Markdown): article "
        "(the article's: params quant size env tps RAM VRAM, and model when several are compared) or some by "
        "name, e.g. tps,RAM,VRAM,shared; default: every one (CSV and JSON keep every key)",
    )


def _columns(text: str) -> tuple[str, ...]:
    from llmtop.tables import parse_columns

    try:
        return parse_columns(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_chart_argument(parser: argparse.ArgumentParser) -> None:
    """`--chart PATH`: the tokens/s bar chart."""
    parser.add_argument("--chart", metavar="PATH", help="write the tokens/s bar chart to PATH: .svg, .html or .png")


def add_report_argument(parser: argparse.ArgumentParser) -> None:
    """`--report PATH.html`: the session's page."""
    parser.add_argument(
        "--report",
        metavar="PATH",
        help="write the session as one self-contained HTML page to PATH (.html): the table, the charts, "
        "each run's memory timeline, the machine",
    )


def add_record_arguments(parser: argparse.ArgumentParser) -> None:
    """`--record PATH` / `--no-record`."""
    recording = parser.add_mutually_exclusive_group()
    recording.add_argument(
        "--record", metavar="PATH", help="write the session's recording to PATH (default: the user data folder)"
    )
    recording.add_argument("--no-record", action="store_true", help="do not record the session")


def add_log_arguments(parser: argparse.ArgumentParser, serve: bool) -> None:
    """`--log PATH` / `--docker NAME` / `--no-log`, and `--serve` where the command can start a server."""
    log = parser.add_mutually_exclusive_group()
    if serve:
        log.add_argument("--serve", action="store_true", help="start `ollama serve` on a free port and read its log")
    log.add_argument("--log", metavar="PATH", help="follow this server log file")
    log.add_argument("--docker", metavar="NAME", help="follow `docker logs` of this container")
    log.add_argument("--no-log", action="store_true", help="do not read the server log")


def check_files(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Before anything runs: --export, --chart and --report name a format llmtop writes, and every
    file option given (--export, --chart, --report, --record) can be written; else one line and exit
    status 2."""
    from llmtop.commands.output import unwritable
    from llmtop.store.charts import chart_format
    from llmtop.store.exports import export_format
    from llmtop.store.report import report_format

    for option, check in (("export", export_format), ("chart", chart_format), ("report", report_format)):
        if getattr(args, option, None):
            try:
                check(getattr(args, option))
            except ValueError as exc:
                parser.error(f"argument --{option}: {exc}")
    for option in ("export", "chart", "report", "record"):
        path = getattr(args, option, None)
        problem = unwritable(path, f"--{option}") if path else None
        if problem:
            parser.error(problem)


HOST_HELP = "the Ollama server: host, host:port or a URL (default: $OLLAMA_HOST, else 127.0.0.1:11434)"


def add_host_argument(parser: argparse.ArgumentParser, several: str | None = None) -> None:
    """`--host URL`; `several`: it may be repeated, and the sentence that says what that does."""
    if several is None:
        parser.add_argument("--host", metavar="URL", help=HOST_HELP)
    else:
        parser.add_argument("--host", metavar="URL", action="append", help=f"{HOST_HELP}; {several}")


def add_no_history_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """`--no-history`: `what` is not kept in the local history (llmtop history)."""
    parser.add_argument("--no-history", action="store_true", help=f"do not keep {what} in the local history")


def add_access_arguments(parser: argparse.ArgumentParser) -> None:
    """`--header` and `--cacert`, the same for `llmtop MODEL` and `llmtop watch`."""
    parser.add_argument(
        "--header",
        metavar="'NAME: VALUE'",
        action="append",
        help="send this header with every request to the server (repeatable), e.g. 'Authorization: Bearer TOKEN'; "
        "never shown, recorded or exported",
    )
    parser.add_argument(
        "--cacert", metavar="FILE", help="the CA certificate (PEM) that signs an https server's certificate"
    )


def check_access(parser: argparse.ArgumentParser, args: argparse.Namespace, setting: str | None) -> dict[str, str]:
    """The access headers for the parsed `args`, or the parser's usage error (never echoing a secret)."""
    import os

    try:
        headers = access_headers(setting, args.header)
    except ValueError as exc:
        parser.error(f"argument --header: {exc}")
    if args.cacert and not os.access(os.path.expanduser(args.cacert), os.R_OK):
        parser.error(f"argument --cacert: cannot read {args.cacert}")
    return headers


def address_argument(text: str) -> tuple[str, int]:
    """parse_address as an argparse type (`--metrics`, `--proxy`)."""
    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
