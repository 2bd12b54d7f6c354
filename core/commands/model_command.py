"""`llmtop MODEL ...`: read the command line, build the instruments, connect, run the plan on the
screen or headless, then export. Every failure ends in one line and an exit status."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from llmtop import __version__
from llmtop.collectors.log_sources import LogUnavailable
from llmtop.commands.instruments import Instruments
from llmtop.commands.options import (
    add_access_arguments,
    add_chart_argument,
    add_export_argument,
    add_host_argument,
    add_interval_argument,
    add_lang_argument,
    add_log_arguments,
    add_no_history_argument,
    add_record_arguments,
    add_report_argument,
    address_argument,
    check_access,
    check_files,
    context_size,
    float_between,
)
from llmtop.commands.plan_runs import run_headless, run_on_screen
from llmtop.commands.priority import add_priority_argument, running_at
from llmtop.commands.run_parts import (
    Refused,
    checked_plan,
    connect_models,
    say_when_the_sweep_compares_alike,
    start_parts,
)
from llmtop.exit_status import EXIT_FAILED, EXIT_STATUSES, EXIT_USAGE
from llmtop.figures import help_text
from llmtop.measure.mode import THINK_CHOICES, Mode, parse_modes, parse_think
from llmtop.measure.server_settings import serve_env
from llmtop.measure.settings import (
    DEFAULT_PROMPT,
    DEFAULT_SEED,
    ORDERS,
    STALL_TIMEOUT_S,
    RunSettings,
    ollama_load_timeout,
    silence_limit,
)
from llmtop.measure.stopping import SignalStop, StopRequested, stop_for
from llmtop.measure.sweep_plan import SweepError, SweepSpec, parse_sweep
from llmtop.ollama.api import OllamaServer
from llmtop.ollama.hosts import (
    HostError,
    ollama_base_url,
    redact_url,
)
from llmtop.ollama.model_facts import valid_model_name
from llmtop.units import NA

if TYPE_CHECKING:
    pass

DESCRIPTION = """\
Run a model on Ollama and measure it live: tokens/s, RAM and the CPU/GPU split, each memory
figure taken as the increase over a baseline read just before the run.

A run: unload the model if it is loaded, wait until RAM and GPU memory settle and take the baseline, then
generate PROMPT with streaming while RAM and the Ollama processes are sampled every INTERVAL
seconds and /api/ps is polled once a second. The summary row comes when the final chunk arrives.
"""

OTHER = f"""\
the server log: --serve starts `ollama serve` on a free port and reads its output (the most
reliable); --log PATH follows a file; --docker NAME follows `docker logs`; by default llmtop
looks where the installer puts it (macOS ~/.ollama/logs/server.log, Windows
%LOCALAPPDATA%\\Ollama\\server.log, Linux `journalctl -u ollama`).
other commands: llmtop watch [--host URL ...] [--proxy PORT] [--metrics PORT] (what Ollama does for
                every app: loaded models, loads, requests, memory; sends nothing itself),
                llmtop doctor [--json] (what can be measured here, and why not),
                llmtop fit MODEL [--num-ctx N] [--json] (before any load: the layers on the GPU,
                the memory, whether it spills, tokens/s),
                llmtop history [--model M] [--export PATH] (past runs, any day),
                llmtop replay FILE [--speed X] [--headless] (a recorded session),
                llmtop demo (a recorded session that ships with llmtop: no Ollama needed),
                llmtop parse-log FILE|- [--json]

sweeping: llmtop MODEL --sweep runs num_gpu from 0 to every layer (coarse, then finer around the
fastest) and Ollama's own choice, each point a planned run as above; it charts tps, VRAM and shared
GPU memory by layers, and concludes in one sentence with the Modelfile to use. --sweep 0,10,20,27
gives the points; --sweep num_ctx=2048,8192,32768 sweeps the context at Ollama's layer choice;
--serve --sweep moe=0,8,16,24 sweeps where an MoE model's experts live (every layer asked for the
GPU, the experts of N layers in system memory) and ends with the `ollama serve` line to use.

comparing: llmtop MODEL [MODEL ...] --modes cpu,auto --repeat 3 runs every model in every mode,
repeats interleaved; each run unloads the model, waits for memory to settle, takes the baseline
and generates with the same prompt, seed and temperature. The table gives tps as mean ± sd and
each mode's speed-up over cpu; every run also goes to the local history (llmtop history).

the server's settings: llmtop MODEL --serve --modes auto,auto:kv=q8_0,moe=all restarts the
`ollama serve` it started between runs whose settings differ (OLLAMA_KV_CACHE_TYPE,
OLLAMA_FLASH_ATTENTION, LLAMA_ARG_CPU_MOE / LLAMA_ARG_N_CPU_MOE, OLLAMA_NUM_PARALLEL); each run says
what the server ran it with and where its memory went (weights, KV cache, compute, per device).
A server llmtop did not start is never restarted: such modes need --serve.

keys: q quit, r add a run, c toggle CPU-only for the runs r adds, e export, l server log,
b switch the live chart and the tps bar chart (a sweep's chart in a sweep), m the memory
timeline (RAM, Ollama RSS, VRAM, shared GPU memory over the run), t the tables' other columns,
? or F1 help: every key and figure, where each is read from, why any is {NA}.
exit status (every command):
"""


def _exit_statuses() -> str:
    return "\n".join(f"  {status:>3}  {meaning}" for status, meaning in EXIT_STATUSES.items())


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with the usage line and one error line on stderr and exit status 2."""


def _whole_number(text: str, of: str = "", least: str = "0") -> int:
    """A count of 0 or more (`of`: what it counts, ` of tokens`; `least`: how the 0 reads)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number{of}: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be {least} or more, got {text}")
    return value


def _layers(text: str) -> int:
    return _whole_number(text)


def _repeat(text: str) -> int:
    value = _layers(text)
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be between 1 and 1000, got {text}")
    return value


def _sweep(text: str) -> SweepSpec:
    try:
        return parse_sweep(text)
    except SweepError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _modes(text: str) -> list[Mode]:
    try:
        return parse_modes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="llmtop",
        description=DESCRIPTION,
        epilog=help_text() + "\n\n" + OTHER + _exit_statuses(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help="any name Ollama accepts, e.g. llama3.3 or hf.co/org/repo:Q4_K_M; several compare in one plan",
    )
    add_host_argument(parser)
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
        "a mode can set the context too: auto:ctx=4096,auto:ctx=32768; with --serve, the server's own settings "
        "too: kv=f16|q8_0|q4_0 (KV cache type), fa=on|off (flash attention), moe=all|N (the experts of all or N "
        "layers in system memory, Ollama 0.30+), np=N (parallel slots), e.g. auto,auto:kv=q8_0,moe=all; and a "
        "thinking model's think=on|off|LEVEL, e.g. auto:think=off,auto:think=on (over --think)",
    )
    placement.add_argument(
        "--sweep",
        metavar="LIST",
        nargs="?",
        const="",
        type=_sweep,
        help="find the fastest num_gpu here: runs from 0 to every layer, coarse then finer around the fastest, "
        "with Ollama's own choice, and says what to set (a Modelfile); LIST gives the layer counts "
        "(0,10,20,27) or contexts (num_ctx=2048,8192,32768, at Ollama's layer choice); with --serve, "
        "moe=0,8,16,24 asks every layer for the GPU with the experts of N layers in system memory and says "
        "the environment to set",
    )
    parser.add_argument(
        "--num-ctx",
        metavar="N",
        type=context_size,
        help="the context in tokens, e.g. 8192 or 8k (options.num_ctx; default: Ollama's, from 0.30 chosen by VRAM)",
    )
    parser.add_argument("--repeat", metavar="N", type=_repeat, default=1, help="run each model and mode N times")
    parser.add_argument(
        "--num-predict",
        metavar="N",
        type=_num_predict,
        help="generate at most N tokens a run (options.num_predict; 0: as many as the model decides); default: "
        "one run as the model decides, a plan of several asks every run after the first for as many tokens as "
        "the first generated, so that they do the same work (a run that ends at the model's end of text before "
        "that is said to have ended early, and the verdicts compare all runs over the first tokens each generated)",
    )
    parser.add_argument(
        "--think",
        choices=THINK_CHOICES,
        help="a thinking model (qwen3, deepseek-r1, gpt-oss: /api/show lists `thinking`): on or off, or a level "
        "where the model takes one (low, medium, high); its tokens of thought are counted apart from the "
        "answer's, with the time to the first thought and to the first word of the answer (default: the "
        "model's own)",
    )
    parser.add_argument(
        "--order",
        choices=ORDERS,
        default="interleaved",
        help="the order of a plan's runs: interleaved (cpu, auto, cpu, auto, ...), random (each model's runs "
        "shuffled by --seed) or latin (each round's modes rotated: every mode in every place equally often); "
        "the order is in the JSON export",
    )
    parser.add_argument(
        "--cooldown",
        metavar="SECONDS",
        type=float_between(0, 3600, " seconds"),
        default=0.0,
        help="between two runs, wait up to SECONDS for the machine to cool: less once the temperatures and "
        "power read are back near where they were before the first run (default: 0, no wait)",
    )
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
    add_export_argument(parser, "the runs")
    add_lang_argument(parser)
    add_chart_argument(parser)
    add_report_argument(parser)
    add_no_history_argument(parser, "the runs")
    add_record_arguments(parser)
    add_interval_argument(parser)
    add_priority_argument(parser)
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
    add_log_arguments(parser, serve=True)
    parser.add_argument("--version", action="version", version=f"llmtop {__version__}")
    return parser


def main(argv: Sequence[str]) -> int:
    """`llmtop MODEL [MODEL ...] [options]`: check the command line, then measure; the exit status."""
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
    if not args.prompt.strip():
        parser.error("argument --prompt: the prompt is empty")
    check_files(parser, args)  # found before anything runs, not after the whole plan
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
        num_predict=args.num_predict or None,
        think=None if args.think is None else parse_think(args.think),
    )
    modes = args.modes or [Mode(0 if args.cpu else args.num_gpu)]
    refusal = server_modes_refused(modes, args.serve)
    if args.sweep is not None and args.sweep.parameter == "moe" and not args.serve:
        refusal = not_our_server("--sweep moe=... sets", ["LLAMA_ARG_N_CPU_MOE"])
    if refusal:
        sys.stderr.write(f"llmtop: {refusal}\n")
        return EXIT_USAGE
    args.running_at = running_at(args.priority)  # before any thread starts: they inherit it
    signals = SignalStop().install()
    try:
        return measure(args, base_url, settings, modes, signals)
    except KeyboardInterrupt as exc:  # before any run began: nothing to keep
        stop = exc if isinstance(exc, StopRequested) else stop_for(signal.SIGINT)
        sys.stderr.write(f"llmtop: {stop.reason}\n")
        return stop.status
    finally:
        signals.restore()


def server_modes_refused(modes: Sequence[Mode], serve: bool) -> str | None:
    """Why modes that set the server's own settings cannot run (no --serve: the server is someone
    else's, and llmtop never restarts it); None when they can, or none does."""
    setting = [mode for mode in modes if not mode.plain]
    if not setting or serve:
        return None
    names = sorted({name for mode in setting for name in mode.server.env()})
    said = ", ".join(mode.name for mode in setting)
    return not_our_server(f"{said} set{'s' if len(setting) == 1 else ''}", names)


def not_our_server(what: str, names: Sequence[str]) -> str:
    """`what` (`auto:kv=q8_0 sets`) the server's settings `names`, which need a server llmtop started."""
    return (
        f"{what} the server's own settings ({', '.join(names)}), and llmtop never restarts a server it did "
        "not start: add --serve, and llmtop starts `ollama serve` itself and restarts it between runs whose "
        "settings differ"
    )


def measure(
    args: argparse.Namespace, base_url: str, settings: RunSettings, modes: Sequence[Mode], signals: SignalStop
) -> int:
    """Run the plan: every model in every mode, `args.repeat` times; `signals` turns Ctrl+C, SIGTERM
    and SIGHUP into a stop that keeps the run in progress. Whatever was opened is closed on every
    way out."""
    with Instruments() as kit:
        try:
            if args.serve:
                first = RunSettings().with_mode(modes[0]) if args.sweep is None else RunSettings()
                base_url = kit.start_ollama_serve(serve_env(os.environ, first.server))
            else:
                kit.open_log(args, base_url)
        except LogUnavailable as exc:
            sys.stderr.write(f"llmtop: {exc}\n")
            return EXIT_USAGE
        kit.start_log()
        return _measure(kit, args, base_url, settings, modes, signals)


def _measure(
    kit: Instruments,
    args: argparse.Namespace,
    base_url: str,
    settings: RunSettings,
    modes: Sequence[Mode],
    signals: SignalStop,
) -> int:
    """Connect, check the plan against the models and the server, start the parts, run."""
    from llmtop.ollama.api import OllamaError

    err = sys.stderr
    load_timeout = ollama_load_timeout(os.environ.get("OLLAMA_LOAD_TIMEOUT"))
    server = OllamaServer(
        base_url,
        silence_limit_s=silence_limit(args.stall_timeout, load_timeout),
        headers=getattr(args, "access_headers", None),
        cacert=getattr(args, "cacert", None),
    )
    kit.closing(server)
    kit.sample_machine(base_url, args.interval)
    try:
        connected = connect_models(server, args.models, args.pull, err)
        plan, sweep = checked_plan(args, connected, settings, modes)
    except Refused as exc:
        err.write(f"llmtop: {exc}\n")
        return exc.status
    except OllamaError as exc:
        err.write(f"llmtop: {exc}\n")
        return EXIT_FAILED
    kit.probe_devices()
    say_when_the_sweep_compares_alike(kit, sweep, base_url, err)
    try:
        runner = start_parts(kit, args, server, connected, plan, sweep, settings)
    except Refused as exc:
        err.write(f"llmtop: {exc}\n")
        return exc.status
    if args.headless:
        return run_headless(runner, args, signals)
    return run_on_screen(runner, args, signals=signals)


def _num_predict(text: str) -> int:
    return _whole_number(text, " of tokens", "0 (the model decides)")
