"""`llmtop MODEL`: parse the command line and hand over to the session (TUI or headless)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from llmtop import __version__
from llmtop.exports import export_format, to_markdown, write_export
from llmtop.hosts import HostError, is_local, ollama_base_url
from llmtop.model_facts import valid_model_name
from llmtop.session_settings import DEFAULT_PROMPT, RunSettings

if TYPE_CHECKING:
    from llmtop.ollama_api import OllamaServer
    from llmtop.session import Session
    from llmtop.summary import SummaryRow

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DESCRIPTION = """\
Run a model on Ollama and measure it live: tokens/s, RAM and the CPU/GPU split, each memory
figure taken as the increase over a baseline read just before the run.

A run: unload the model if it is loaded, wait until RAM settles and take the baseline, then
generate PROMPT with streaming while RAM and the Ollama processes are sampled every INTERVAL
seconds and /api/ps is polled once a second. The summary row comes when the final chunk arrives.
"""

NUMBERS = """\
the numbers:
  tps         the server's eval rate, eval_count / eval_duration from the final chunk: the
              figure `ollama run --verbose` prints as "eval rate"
  client tps  tokens/s as llmtop saw them arrive, from the first token to the last
  prompt tps  the server's prompt eval rate, prompt_eval_count / prompt_eval_duration
  TTFT        time from sending the request to the first token, model load included
  load        the server's load_duration: time spent loading the model
  RAM         system RAM in use (total - available, Task Manager's "In use") during
              generation, minus the baseline; peak RAM is the highest reading minus it
  Ollama RSS  resident memory of the Ollama server and its runner processes
  VRAM        GPU memory increase over the baseline (n/a: GPU collectors come later)
  env         CPU, CPU+GPU or GPU, from /api/ps: size_vram zero, partial or all of size

keys: q quit, r run again, c toggle CPU-only for the next run, e export the table.
exit status: 0 run complete, 1 run failed midway (what was measured is kept and exported),
2 bad usage, server unreachable or model missing, 130 interrupted.
"""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with the usage line and one error line on stderr and exit status 2."""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.05 <= value <= 60:
        raise argparse.ArgumentTypeError(f"must be between 0.05 and 60 seconds, got {text}")
    return value


def _layers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="llmtop",
        description=DESCRIPTION,
        epilog=NUMBERS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model", metavar="MODEL", help="any name Ollama accepts, e.g. llama3.3 or hf.co/org/repo:Q4_K_M"
    )
    parser.add_argument(
        "--host",
        metavar="URL",
        help="the Ollama server: host, host:port or a URL (default: $OLLAMA_HOST, else 127.0.0.1:11434)",
    )
    parser.add_argument(
        "--prompt", metavar="TEXT", default=DEFAULT_PROMPT, help=f"what to generate from (default: {DEFAULT_PROMPT})"
    )
    placement = parser.add_mutually_exclusive_group()
    placement.add_argument("--cpu", action="store_true", help="run on the CPU only (num_gpu 0)")
    placement.add_argument(
        "--num-gpu", metavar="N", type=_layers, help="put N layers on the GPU (default: Ollama decides)"
    )
    parser.add_argument(
        "--headless", action="store_true", help="no screen: run once and print the summary row to stdout"
    )
    parser.add_argument("--export", metavar="PATH", help="write the summary table to PATH: .md, .csv or .json")
    parser.add_argument(
        "--interval", metavar="SECONDS", type=_positive_float, default=0.25, help="sampling interval (default: 0.25)"
    )
    parser.add_argument("--pull", action="store_true", help="pull the model first if the server does not have it")
    parser.add_argument("--version", action="version", version=f"llmtop {__version__}")
    return parser


def _pull(server: OllamaServer, model: str, stream: TextIO) -> None:
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


def _own_addresses() -> frozenset[str]:
    try:
        import psutil

        return frozenset(a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs)
    except Exception:
        return frozenset()


def _export(rows: Sequence[SummaryRow], path: str | None, err: TextIO) -> bool:
    if not path or not rows:
        return True
    try:
        written = write_export(rows, path)
    except OSError as exc:
        err.write(f"llmtop: cannot write {path}: {exc.strerror or exc}\n")
        return False
    err.write(f"llmtop: wrote {written}\n")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `llmtop` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not valid_model_name(args.model):
        parser.error(f"not a model name Ollama accepts: {args.model!r}")
    if args.export:
        try:
            export_format(args.export)
        except ValueError as exc:
            parser.error(f"argument --export: {exc}")
    if not args.prompt.strip():
        parser.error("argument --prompt: the prompt is empty")
    try:
        base_url = ollama_base_url(args.host if args.host is not None else os.environ.get("OLLAMA_HOST"))
    except HostError as exc:
        parser.error(f"argument --host: {exc}" if args.host is not None else f"OLLAMA_HOST: {exc}")
    settings = RunSettings(prompt=args.prompt, num_gpu=0 if args.cpu else args.num_gpu)
    try:
        return _run(args, base_url, settings)
    except KeyboardInterrupt:
        sys.stderr.write("llmtop: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last line of defence: one line, never a traceback
        if os.environ.get("LLMTOP_DEBUG"):
            raise
        sys.stderr.write(f"llmtop: internal error: {type(exc).__name__}: {exc} (set LLMTOP_DEBUG=1 for details)\n")
        return EXIT_RUN_FAILED


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


def _run(args: argparse.Namespace, base_url: str, settings: RunSettings) -> int:
    _import_ollama_client()
    from llmtop.collectors.ollama_processes import OllamaProcessReader
    from llmtop.collectors.system_collectors import SystemCollectors
    from llmtop.ollama_api import ModelNotFound, OllamaError, OllamaServer, ServerUnreachable
    from llmtop.session import Session

    err = sys.stderr
    server = OllamaServer(base_url)
    local = is_local(base_url, _own_addresses())
    collectors = SystemCollectors(
        interval=args.interval,
        process_reader=OllamaProcessReader(local=local, remote_host=base_url),
    )
    session = Session(server, args.model, collectors)
    try:
        try:
            session.connect()
        except ModelNotFound as exc:
            if not args.pull:
                err.write(f"llmtop: {exc}\n")
                return EXIT_USAGE
            _pull(server, args.model, err)
            session.connect()
    except ServerUnreachable as exc:
        err.write(f"llmtop: {exc}\n")
        return EXIT_USAGE
    except ModelNotFound as exc:
        err.write(f"llmtop: {exc}\n")
        return EXIT_USAGE
    except OllamaError as exc:
        err.write(f"llmtop: {exc}\n")
        return EXIT_RUN_FAILED

    collectors.start()
    try:
        if args.headless:
            return _headless(session, settings, args.export)
        from llmtop.tui.app import LlmtopApp

        app = LlmtopApp(session, settings, export_path=args.export)
        app.run()
        rows = session.rows
        if not _export(rows, args.export, err):
            return EXIT_RUN_FAILED
        if app.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK if rows and all(r.complete for r in rows) else (EXIT_RUN_FAILED if rows else EXIT_OK)
    finally:
        collectors.stop()
        server.close()


def _headless(session: Session, settings: RunSettings, export: str | None) -> int:
    from llmtop.headless import HeadlessReporter

    session.observer = HeadlessReporter(sys.stderr)
    row = session.run(settings)
    sys.stdout.write(to_markdown([row]))
    sys.stdout.flush()
    if row.error:
        sys.stderr.write(f"llmtop: run incomplete: {row.error}\n")
    exported = _export([row], export, sys.stderr)
    if row.error and row.error.startswith("interrupted"):
        return EXIT_INTERRUPTED
    return EXIT_OK if row.complete and exported else EXIT_RUN_FAILED
