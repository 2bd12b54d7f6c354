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
    from llmtop.collectors.log_watch import LogWatcher
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
  VRAM        dedicated GPU memory in use (all GPUs), increase over the baseline: NVML on
              NVIDIA, sysfs/amdsmi on AMD, performance counters on Windows, ioreg on Apple
  shared      shared GPU memory (Windows' "shared GPU memory", GTT on Linux AMD): the
              part of the model that spilled out of VRAM into system RAM
  GPU layers  layers on the GPU / all layers, from the server log (offloaded 27/81)
  env         CPU, CPU+GPU or GPU: from the layers in the server log (none, some, all);
              without the log, from /api/ps (size_vram zero, partial or all of size)

the server log: --serve starts `ollama serve` on a free port and reads its output (the most
reliable); --log PATH follows a file; --docker NAME follows `docker logs`; by default llmtop
looks where the installer puts it (macOS ~/.ollama/logs/server.log, Windows
%LOCALAPPDATA%\\Ollama\\server.log, Linux `journalctl -u ollama`).
other commands: llmtop doctor [--json] (what can be measured here, and why not),
                llmtop parse-log FILE|- [--json]

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
    log = parser.add_mutually_exclusive_group()
    log.add_argument("--serve", action="store_true", help="start `ollama serve` on a free port and read its log")
    log.add_argument("--log", metavar="PATH", help="follow this server log file")
    log.add_argument("--docker", metavar="NAME", help="follow `docker logs` of this container")
    log.add_argument("--no-log", action="store_true", help="do not read the server log")
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
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["parse-log"]:
        from llmtop.parse_log_command import main as parse_log

        return parse_log(argv[1:])
    if argv[:1] == ["doctor"]:
        from llmtop.doctor_command import main as doctor

        return doctor(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.serve and args.host is not None:
        parser.error("argument --serve: not allowed with --host (llmtop chooses the port of the server it starts)")
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

    from llmtop.collectors.log_sources import LogUnavailable
    from llmtop.collectors.log_watch import LogWatcher

    err = sys.stderr
    try:
        serve, source, log_reason, base_url = _log_source(args, base_url)
    except LogUnavailable as exc:
        err.write(f"llmtop: {exc}\n")
        return EXIT_USAGE
    log = LogWatcher(source) if source is not None else None
    if log is not None:
        log.start()
    try:
        return _measure(args, base_url, settings, log, log_reason)
    finally:
        if log is not None:
            log.stop()
        if serve is not None:
            serve.stop()


def _log_source(args: argparse.Namespace, base_url: str):
    """(serve process, log source, why there is none, base URL) for the log options given."""
    from llmtop.collectors.log_sources import (
        CommandFollower,
        FileFollower,
        LogUnavailable,
        ServeProcess,
        default_log_source,
        wait_for_port,
    )

    if args.no_log:
        return None, None, "not read (--no-log)", base_url
    if args.serve:
        serve = ServeProcess()
        process = serve.start()
        if not wait_for_port(serve.port, 60, lambda: process.poll() is None):
            tail = "".join(_drain(process))[-300:].strip().replace("\n", " | ")
            serve.stop()
            raise LogUnavailable(f"`ollama serve` did not start (exit status {process.poll()}): {tail or 'no output'}")
        return serve, serve, None, serve.base_url
    if args.log:
        path = os.path.expanduser(args.log)
        if not os.path.isfile(path):
            raise LogUnavailable(f"no log file at {args.log}")
        if not os.access(path, os.R_OK):
            raise LogUnavailable(f"cannot read {args.log}: permission denied")
        return None, FileFollower(path), None, base_url
    if args.docker:
        import shutil
        import subprocess

        if shutil.which("docker") is None:
            raise LogUnavailable("--docker needs the `docker` command on PATH")
        probe = subprocess.run(
            ["docker", "logs", "--tail", "0", args.docker], capture_output=True, text=True, timeout=20
        )
        if probe.returncode != 0:
            raise LogUnavailable(f"docker logs {args.docker}: {(probe.stderr or probe.stdout).strip() or 'failed'}")
        return (
            None,
            CommandFollower(["docker", "logs", "-f", "--tail", "0", args.docker], f"docker logs {args.docker}"),
            None,
            base_url,
        )
    choice = default_log_source(is_local(base_url, _own_addresses()))
    return None, choice.source, choice.reason, base_url


def _drain(process) -> list[str]:
    try:
        return [process.stdout.read().decode("utf-8", errors="replace")] if process.stdout else []
    except (OSError, ValueError):
        return []


def _measure(
    args: argparse.Namespace, base_url: str, settings: RunSettings, log: LogWatcher | None, log_reason: str | None
) -> int:
    from llmtop.collectors.gpu_collector import probe_gpu_backends
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
    session = Session(server, args.model, collectors, log=log, log_reason=log_reason)
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

    gpus = probe_gpu_backends(pids=collectors.ollama_pids)
    collectors.use_gpus(gpus if gpus.readers else None, gpus.unavailable_reason)
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
        gpus.close()
        server.close()


def _headless(session: Session, settings: RunSettings, export: str | None) -> int:
    from llmtop.headless import HeadlessReporter

    session.observer = HeadlessReporter(sys.stderr)
    if session.log is not None:
        sys.stderr.write(f"llmtop: server log: {session.log.description}\n")
    else:
        sys.stderr.write(f"llmtop: note: server log not read: {session.log_reason}\n")
    row = session.run(settings)
    sys.stdout.write(to_markdown([row]))
    sys.stdout.flush()
    if row.error:
        sys.stderr.write(f"llmtop: run incomplete: {row.error}\n")
    exported = _export([row], export, sys.stderr)
    if row.error and row.error.startswith("interrupted"):
        return EXIT_INTERRUPTED
    return EXIT_OK if row.complete and exported else EXIT_RUN_FAILED
