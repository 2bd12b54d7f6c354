"""`llmtop MODEL`: parse the command line and hand over to the session (TUI or headless)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from llmtop import __version__
from llmtop.charts import chart_format
from llmtop.exports import LANGUAGES, export_format
from llmtop.figures import help_text
from llmtop.hosts import HostError, add_access_arguments, address_argument, check_access, ollama_base_url, redact_url
from llmtop.model_facts import valid_model_name
from llmtop.options import add_interval_argument, float_between
from llmtop.output import OutputFailed, end_after_closed_pipe, prepare_streams, unwritable
from llmtop.session_settings import (
    DEFAULT_PROMPT,
    DEFAULT_SEED,
    STALL_TIMEOUT_S,
    RunSettings,
    parse_context,
    parse_modes,
)
from llmtop.sweep import SweepError, SweepSpec, parse_sweep

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2

DESCRIPTION = """\
Run a model on Ollama and measure it live: tokens/s, RAM and the CPU/GPU split, each memory
figure taken as the increase over a baseline read just before the run.

A run: unload the model if it is loaded, wait until RAM and GPU memory settle and take the baseline, then
generate PROMPT with streaming while RAM and the Ollama processes are sampled every INTERVAL
seconds and /api/ps is polled once a second. The summary row comes when the final chunk arrives.
"""

OTHER = """\
the server log: --serve starts `ollama serve` on a free port and reads its output (the most
reliable); --log PATH follows a file; --docker NAME follows `docker logs`; by default llmtop
looks where the installer puts it (macOS ~/.ollama/logs/server.log, Windows
%LOCALAPPDATA%\\Ollama\\server.log, Linux `journalctl -u ollama`).
other commands: llmtop watch [--host URL ...] [--proxy PORT] [--metrics PORT] (what Ollama does for
                every app: loaded models, loads, requests, memory; sends nothing itself),
                llmtop doctor [--json] (what can be measured here, and why not),
                llmtop history [--model M] [--export PATH] (past runs, any day),
                llmtop replay FILE [--speed X] [--headless] (a recorded session),
                llmtop demo (a recorded session that ships with llmtop: no Ollama needed),
                llmtop parse-log FILE|- [--json]

sweeping: llmtop MODEL --sweep runs num_gpu from 0 to every layer (coarse, then finer around the
fastest) and Ollama's own choice, each point a planned run as above; it charts tps, VRAM and shared
GPU memory by layers, and concludes in one sentence with the Modelfile to use. --sweep 0,10,20,27
gives the points; --sweep num_ctx=2048,8192,32768 sweeps the context at Ollama's layer choice.

comparing: llmtop MODEL [MODEL ...] --modes cpu,auto --repeat 3 runs every model in every mode,
repeats interleaved; each run unloads the model, waits for memory to settle, takes the baseline
and generates with the same prompt, seed and temperature. The table gives tps as mean ± sd and
each mode's speed-up over cpu; every run also goes to the local history (llmtop history).

keys: q quit, r add a run, c toggle CPU-only for the runs r adds, e export, l server log,
b switch the live chart and the tps bar chart (a sweep's chart in a sweep), m the memory
timeline (RAM, Ollama RSS, VRAM, shared GPU memory over the run), t the tables' other columns,
? or F1 help: every key and figure, where each is read from, why any is n/a.
exit status: 0 every run complete, 1 a run failed midway (what was measured is kept and
exported), 2 bad usage, server unreachable or model missing, 130 Ctrl+C, 143 SIGTERM, 129 SIGHUP
(Ctrl+C and the signals keep the run in progress, as incomplete; a second signal ends at once).
"""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with the usage line and one error line on stderr and exit status 2."""


def _layers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _repeat(text: str) -> int:
    value = _layers(text)
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be between 1 and 1000, got {text}")
    return value


def _context(text: str) -> int:
    try:
        return parse_context(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _sweep(text: str) -> SweepSpec:
    try:
        return parse_sweep(text)
    except SweepError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _modes(text: str) -> list[str]:
    try:
        return parse_modes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="llmtop",
        description=DESCRIPTION,
        epilog=help_text() + "\n\n" + OTHER,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help="any name Ollama accepts, e.g. llama3.3 or hf.co/org/repo:Q4_K_M; several compare in one plan",
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
    placement.add_argument(
        "--modes",
        metavar="MODES",
        type=_modes,
        help="compare modes, e.g. cpu,auto or cpu,gpu=20,auto (cpu: num_gpu 0; auto: Ollama decides; gpu=N); "
        "a mode can set the context too: auto:ctx=4096,auto:ctx=32768",
    )
    placement.add_argument(
        "--sweep",
        metavar="LIST",
        nargs="?",
        const="",
        type=_sweep,
        help="find the fastest num_gpu here: runs from 0 to every layer, coarse then finer around the fastest, "
        "with Ollama's own choice, and says what to set (a Modelfile); LIST gives the layer counts "
        "(0,10,20,27) or contexts (num_ctx=2048,8192,32768, at Ollama's layer choice)",
    )
    parser.add_argument(
        "--num-ctx",
        metavar="N",
        type=_context,
        help="the context in tokens, e.g. 8192 or 8k (options.num_ctx; default: Ollama's, from 0.30 chosen by VRAM)",
    )
    parser.add_argument("--repeat", metavar="N", type=_repeat, default=1, help="run each model and mode N times")
    parser.add_argument(
        "--seed", metavar="N", type=int, default=DEFAULT_SEED, help=f"sampling seed (default {DEFAULT_SEED})"
    )
    parser.add_argument(
        "--temperature", metavar="T", type=float_between(0, 5), help="sampling temperature (default: the model's)"
    )
    parser.add_argument(
        "--warm", action="store_true", help="keep the model loaded between runs (warm runs, reported apart from cold)"
    )
    parser.add_argument(
        "--headless", action="store_true", help="no screen: run the plan and print the summary table to stdout"
    )
    parser.add_argument("--export", metavar="PATH", help="write the summary table to PATH: .md, .csv or .json")
    parser.add_argument("--lang", choices=LANGUAGES, default="en", help="Markdown headers: en, or ja (the article's)")
    parser.add_argument("--chart", metavar="PATH", help="write the tokens/s bar chart to PATH: .svg, .html or .png")
    parser.add_argument("--no-history", action="store_true", help="do not add the runs to the local history")
    recording = parser.add_mutually_exclusive_group()
    recording.add_argument(
        "--record", metavar="PATH", help="write the session's recording to PATH (default: the user data folder)"
    )
    recording.add_argument("--no-record", action="store_true", help="do not record the session")
    add_interval_argument(parser)
    parser.add_argument(
        "--stall-timeout",
        metavar="SECONDS",
        type=float_between(0, 86400, " seconds"),
        default=STALL_TIMEOUT_S,
        help="once tokens flow, end a run that gets no token for this long, keeping what was measured; "
        "a silent load waits for OLLAMA_LOAD_TIMEOUT (5 min) plus as long again, at most 1 min; 0 waits forever "
        "(default: 300)",
    )
    parser.add_argument("--pull", action="store_true", help="pull the model first if the server does not have it")
    add_access_arguments(parser)
    parser.add_argument(
        "--metrics",
        metavar="[ADDR:]PORT",
        type=address_argument,
        help="while the runs go, serve Prometheus metrics at http://ADDR:PORT/metrics (ADDR default 127.0.0.1)",
    )
    log = parser.add_mutually_exclusive_group()
    log.add_argument("--serve", action="store_true", help="start `ollama serve` on a free port and read its log")
    log.add_argument("--log", metavar="PATH", help="follow this server log file")
    log.add_argument("--docker", metavar="NAME", help="follow `docker logs` of this container")
    log.add_argument("--no-log", action="store_true", help="do not read the server log")
    parser.add_argument("--version", action="version", version=f"llmtop {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `llmtop` command; returns the exit status. Every subcommand writes its
    files before it prints; a closed pipe ends quietly, a failed print in one line."""
    prepare_streams()
    try:
        return _guarded(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:
        return end_after_closed_pipe()
    except OutputFailed as exc:
        sys.stderr.write(f"llmtop: {exc}\n")
        return EXIT_RUN_FAILED


def _guarded(argv: list[str]) -> int:
    """Every subcommand under one guard: a bug ends in one line naming the error log, exit 1, never
    a traceback (LLMTOP_DEBUG=1 shows it instead)."""
    try:
        return _command(argv)
    except (OutputFailed, BrokenPipeError, SystemExit, KeyboardInterrupt):
        raise
    except Exception as exc:  # the last line of defence
        if os.environ.get("LLMTOP_DEBUG"):
            raise
        from llmtop.output import internal_error

        where = f"llmtop {argv[0]}" if argv[:1] and argv[0] in SUBCOMMANDS else "llmtop"
        sys.stderr.write(f"llmtop: {internal_error(where, exc)} (set LLMTOP_DEBUG=1 to see it here)\n")
        return EXIT_RUN_FAILED


SUBCOMMANDS = ("parse-log", "doctor", "replay", "demo", "watch", "history")


def _command(argv: list[str]) -> int:
    if argv[:1] == ["parse-log"]:
        from llmtop.parse_log_command import main as parse_log

        return parse_log(argv[1:])
    if argv[:1] == ["doctor"]:
        from llmtop.doctor_command import main as doctor

        return doctor(argv[1:])
    if argv[:1] in (["replay"], ["demo"]):
        from llmtop.replay_command import main as replay

        return replay(argv[1:], demo=argv[0] == "demo")
    if argv[:1] == ["watch"]:
        from llmtop.watch_command import main as watch

        return watch(argv[1:])
    if argv[:1] == ["history"]:
        from llmtop.history_command import main as history

        return history(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.sweep is not None:
        if len(args.models) > 1:
            parser.error("argument --sweep: sweeps one model at a time")
        if args.warm:
            parser.error("argument --sweep: not allowed with --warm (each point loads the model anew)")
        if args.sweep.parameter == "num_ctx" and args.num_ctx is not None:
            parser.error("argument --sweep: a sweep of num_ctx sets the context itself: leave out --num-ctx")
    if args.serve and args.host is not None:
        parser.error("argument --serve: not allowed with --host (llmtop chooses the port of the server it starts)")
    for model in args.models:
        if not valid_model_name(model):
            parser.error(f"not a model name Ollama accepts: {model!r}")
    if args.export:
        try:
            export_format(args.export)
        except ValueError as exc:
            parser.error(f"argument --export: {exc}")
    if args.chart:
        try:
            chart_format(args.chart)
        except ValueError as exc:
            parser.error(f"argument --chart: {exc}")
    if not args.prompt.strip():
        parser.error("argument --prompt: the prompt is empty")
    for option, path in (("--export", args.export), ("--chart", args.chart), ("--record", args.record)):
        problem = unwritable(path, option) if path else None
        if problem:  # found before anything runs, not after the whole plan
            parser.error(problem)
    setting = args.host if args.host is not None else os.environ.get("OLLAMA_HOST")
    try:
        base_url = ollama_base_url(setting)
    except HostError as exc:
        parser.error(redact_url(f"argument --host: {exc}" if args.host is not None else f"OLLAMA_HOST: {exc}"))
    args.access_headers = check_access(parser, args, setting)
    settings = RunSettings(
        prompt=args.prompt,
        num_ctx=args.num_ctx,
        seed=args.seed,
        temperature=args.temperature,
        keep_loaded=args.warm,
    )
    modes = args.modes or [RunSettings(num_gpu=0 if args.cpu else args.num_gpu).mode]
    from llmtop.stopping import SignalStop, StopRequested, stop_for

    signals = SignalStop().install()
    try:
        from llmtop.model_command import measure

        return measure(args, base_url, settings, modes, signals)
    except KeyboardInterrupt as exc:  # before any run began: nothing to keep
        stop = exc if isinstance(exc, StopRequested) else stop_for(signal.SIGINT)
        sys.stderr.write(f"llmtop: {stop.reason}\n")
        return stop.status
    finally:
        signals.restore()
