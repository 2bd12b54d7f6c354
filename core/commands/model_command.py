"""`llmtop MODEL ...`: read the command line, build the instruments, connect, run the plan on the
screen or headless, then export. Every failure ends in one line and an exit status."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from llmtop import __version__
from llmtop.collectors.log_sources import LogUnavailable
from llmtop.commands.instruments import Instruments, server_is_local
from llmtop.commands.options import (
    add_chart_argument,
    add_export_argument,
    add_host_argument,
    add_interval_argument,
    add_lang_argument,
    add_log_arguments,
    add_no_history_argument,
    add_record_arguments,
    add_report_argument,
    check_files,
    context_size,
    float_between,
)
from llmtop.commands.plan_runs import run_headless, run_on_screen
from llmtop.commands.priority import add_priority_argument, running_at
from llmtop.exit_status import EXIT_FAILED, EXIT_STATUSES, EXIT_USAGE
from llmtop.figures import help_text
from llmtop.measure.mode import Mode, parse_modes
from llmtop.measure.server_settings import ServerSettings, serve_env, unsupported
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
from llmtop.measure.sweep import SweepError, SweepSpec, parse_sweep
from llmtop.ollama.api import OllamaServer
from llmtop.ollama.hosts import (
    HostError,
    add_access_arguments,
    address_argument,
    check_access,
    exposure,
    ollama_base_url,
    redact_url,
)
from llmtop.ollama.model_facts import valid_model_name
from llmtop.units import NA

if TYPE_CHECKING:
    from llmtop.measure.forecast import Bandwidth
    from llmtop.measure.model_shape import ModelShape
    from llmtop.measure.session import Session
    from llmtop.measure.summary import SummaryRow
    from llmtop.ollama.model_facts import ModelFacts
    from llmtop.store.history import History

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
        "layers in system memory, Ollama 0.30+), np=N (parallel slots), e.g. auto,auto:kv=q8_0,moe=all",
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
        think=THINK_VALUES.get(args.think, args.think),
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
    from llmtop.collectors.temperatures import TemperatureReader
    from llmtop.measure.cool_down import CoolDownCheck, gpu_temperatures
    from llmtop.measure.machine import describe_machine
    from llmtop.measure.plan import PlanRunner, SweepPlan, build_plan
    from llmtop.measure.session import Session
    from llmtop.measure.sweep import SweepError, announce, check_layers
    from llmtop.ollama.api import ModelNotFound, OllamaError, ServerUnreachable
    from llmtop.store.history import History

    err = sys.stderr
    load_timeout = ollama_load_timeout(os.environ.get("OLLAMA_LOAD_TIMEOUT"))
    server = OllamaServer(
        base_url,
        silence_limit_s=silence_limit(args.stall_timeout, load_timeout),
        headers=getattr(args, "access_headers", None),
        cacert=getattr(args, "cacert", None),
    )
    kit.closing(server)
    collectors = kit.sample_machine(base_url, args.interval)
    sessions = {}
    try:
        for model in dict.fromkeys(args.models):
            session = Session(
                server, model, collectors, log=kit.log, log_reason=kit.log_reason, stall_timeout_s=args.stall_timeout
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
        return EXIT_USAGE
    except OllamaError as exc:
        err.write(f"llmtop: {exc}\n")
        return EXIT_FAILED

    sweep = None
    if args.sweep is not None:
        model, session = next(iter(sessions.items()))
        facts = session.facts
        try:
            check_layers(args.sweep, model, facts.layers_total if facts else None)
        except SweepError as exc:
            err.write(f"llmtop: {exc}\n")
            return EXIT_USAGE
        sweep = SweepPlan(model, args.sweep, facts.layers_total if facts else None, args.repeat, settings)
        plan = sweep.first()
        err.write(
            f"llmtop: {announce(args.sweep, model, sweep.planner, args.repeat, facts.size_bytes if facts else None)}\n"
        )
    else:
        plan = build_plan(list(sessions), modes, args.repeat, settings, args.order, args.seed)
    version = next(iter(sessions.values())).version
    for server_settings in dict.fromkeys(item.settings.server for item in plan):
        problem = unsupported(server_settings, version, serve_env(os.environ, server_settings))
        if problem:
            err.write(f"llmtop: {problem}\n")
            return EXIT_USAGE
    if args.think is not None:
        for model, session in sessions.items():
            refusal = think_refused(args.think, model, session.facts)
            if refusal:
                err.write(f"llmtop: {refusal}\n")
                return EXIT_USAGE
    dense = [i for i in plan if i.settings.server.cpu_moe is not None and not _experts(sessions[i.model])]
    if dense:
        err.write(
            f"llmtop: {dense[0].settings.mode} places experts, and {dense[0].model} has none (/api/show gives no "
            "expert_count): the mode would run as auto does\n"
        )
        return EXIT_USAGE
    kit.probe_devices()
    if (
        sweep is not None
        and sweep.spec.parameter in ("num_gpu", "moe")
        and collectors.gpu is None
        and server_is_local(base_url)[0]
    ):
        err.write(
            f"llmtop: note: no GPU found on this machine ({collectors.gpu_unavailable}): Ollama runs every point on "
            f"the CPU, so the {'layer' if sweep.spec.parameter == 'num_gpu' else 'experts'} sweep compares runs of "
            "the same thing\n"
        )
    metrics = None
    if args.metrics is not None:
        from llmtop.watch.metrics import MetricsEndpoint, MetricsError
        from llmtop.watch.state import WatchState

        metrics = WatchState()
        try:
            endpoint = MetricsEndpoint(metrics, collectors, *args.metrics)
        except MetricsError as exc:
            err.write(f"llmtop: {exc}\n")
            return EXIT_USAGE
        kit.stopping(endpoint)
        err.write(f"llmtop: metrics: {endpoint.url}\n")
        address, port = args.metrics
        warning = exposure("--metrics", address, port, "the models, runs, memory and power it serves")
        if warning:
            err.write(f"llmtop: {warning}\n")
    recorder = kit.record(
        args,
        sessions,
        {
            "plan": [{"model": p.model, "mode": p.settings.mode, "repeat": p.repeat} for p in plan],
            "settings": settings,
            "priority": args.running_at,
            "sweep": None if sweep is None else {**sweep.spec.to_dict(), "num_ctx": settings.num_ctx},
        },
    )
    if recorder is not None:
        record_sessions(recorder.event, sessions)

    def machine() -> Mapping[str, Any]:
        latest = collectors.gpu.latest() if collectors.gpu else None
        facts = describe_machine(latest.gpus if latest else (), version)
        if recorder is not None:
            recorder.event("machine", time.monotonic(), {"machine": facts})
        return facts

    kit.start_sampling()
    cooled = None
    if args.cooldown > 0:  # the temperatures before the first run: the rest a cool-down waits for
        chips = TemperatureReader()
        cooled = CoolDownCheck(collectors.power, lambda: {**chips.read(), **gpu_temperatures(collectors.gpu)})
    runner = PlanRunner(
        sessions,
        plan,
        history=None if args.no_history else History(),
        machine=machine,
        on_note=lambda message: err.write(f"llmtop: note: {message}\n") if args.headless else None,
        sweep=sweep,
        restart_server=_restarter(kit) if kit.serve is not None else None,
        server_settings=plan[0].settings.server if plan else None,
        same_work=args.num_predict is None and (len(plan) > 1 or sweep is not None),
        cooldown_s=args.cooldown,
        cooled=cooled,
    )
    runner.plan_facts = {
        "order": args.order if sweep is None else "sweep",
        "seed": args.seed,
        "num_predict": args.num_predict,
        "same_work": runner.same_work,
        "cooldown_s": args.cooldown,
    }
    if metrics is not None:
        runner.row_listeners.append(lambda row: metrics.observe_row(time.monotonic(), row))
    past = _MachineHistory(History(), lambda: runner.machine, _tensor_shapes(sessions))
    for session in sessions.values():
        session.judge = past.judge
        session.usual_answer = past.usual_answer
    if args.headless:
        return run_headless(runner, args, signals)
    return run_on_screen(runner, args, signals=signals)


THINK_CHOICES = ("on", "off", "low", "medium", "high")
THINK_VALUES: dict[str, bool | str] = {"on": True, "off": False}  # --think on|off is think true|false


def think_refused(think: str, model: str, facts: ModelFacts | None) -> str | None:
    """Why `--think` cannot go with `model` (it does not think; it takes no such level); None if it can."""
    if facts is None or not facts.thinks:
        if think == "off":
            return None  # Ollama takes think false from any model: there is nothing to turn off
        return (
            f"--think {think}: {model} is not a thinking model (/api/show lists no `thinking` capability), so "
            "Ollama would refuse the request: leave --think out"
        )
    wanted = THINK_VALUES.get(think, think)
    if facts.think_values and wanted not in facts.think_values:
        takes = ", ".join("on" if v is True else "off" if v is False else str(v) for v in facts.think_values)
        return f"--think {think}: {model} takes --think {takes} (/api/show's thinking.values)"
    return None


def _num_predict(text: str) -> int:
    return _whole_number(text, " of tokens", "0 (the model decides)")


class _MachineHistory:
    """This machine's past runs (the history), read once when first asked: a finished run's row with
    its `slow_note` where it fell well below what this model usually gives in this mode here, held to
    its limit (its split's forecast from this machine's bandwidths, measure/forecast.py), and the
    model's usual answer length here."""

    def __init__(
        self,
        history: History,
        machine: Callable[[], Mapping[str, Any]],
        shapes: Callable[[str], ModelShape | None] = lambda model: None,
    ) -> None:
        self._history = history
        self._machine = machine
        self._past: list[SummaryRow] | None = None
        self._shapes = shapes  # a model's bytes layer by layer (its tensor table), read once a model
        self._shape_of: dict[str, ModelShape | None] = {}
        self._judged: list[SummaryRow] = []  # this plan's runs so far: their bandwidths count for the next

    def _runs(self) -> list[SummaryRow]:
        from llmtop.store.history import HistoryError

        if self._past is None:
            try:
                self._past = self._history.runs_on(self._machine())
            except HistoryError:
                self._past = []
        return self._past

    def judge(self, row: SummaryRow) -> SummaryRow:
        from dataclasses import replace

        from llmtop.measure.usual import slow_note

        note = slow_note(row, self._runs())
        judged = replace(row, slow_note=note) if note else row
        judged = self._held_to_limit(judged)
        self._judged.append(row)
        return judged

    def _held_to_limit(self, row: SummaryRow) -> SummaryRow:
        """The row with its split's limit, where its model's tensors and this machine's bandwidths are
        known (the CPU's and the GPU's from the runs before it, else the CPU's from `llmtop fit`'s probe)."""
        from dataclasses import replace

        from llmtop.measure.bandwidth import cpu_from_history, gpu_from_history
        from llmtop.measure.forecast import run_limit

        if row.layers_offloaded is None or not row.eval_rate_tps or not row.complete or row.concurrent_requests:
            return row
        if row.model not in self._shape_of:
            self._shape_of[row.model] = self._shapes(row.model)
        shape = self._shape_of[row.model]
        if shape is None:
            return row
        before = [*self._runs(), *self._judged]
        cpu = cpu_from_history(before) or _probed_cpu(self._machine())
        gpu = gpu_from_history(before, cpu)
        spilled = row.shared_delta_bytes if row.shared_delta_bytes and row.shared_delta_bytes > 0 else 0
        held = run_limit(shape, row.layers_offloaded, row.context or 0, spilled, row.eval_rate_tps, cpu, gpu, None)
        if held is None:
            return row
        limit, share, note = held
        return replace(row, limit_tps=round(limit, 4), limit_share=round(share, 4), limit_note=note)

    def usual_answer(self, model: str) -> int | None:
        from llmtop.measure.usual import usual_answer_tokens

        return usual_answer_tokens(model, self._runs())


def _probed_cpu(machine: Mapping[str, Any]) -> Bandwidth | None:
    """System memory's read rate as `llmtop fit` probed it on this machine, where it did (never probed here:
    a probe during a measurement would be measured)."""
    from llmtop.collectors.memory_bandwidth import ProbeCache
    from llmtop.data_folder import data_folder
    from llmtop.measure.bandwidth import probed
    from llmtop.measure.machine import PROBE_FILE, machine_identity

    kept = ProbeCache(data_folder() / PROBE_FILE).read(machine_identity(machine))
    return probed(*kept) if kept else None


def _tensor_shapes(sessions: Mapping[str, Session]) -> Callable[[str], ModelShape | None]:
    """A model's shape from its server's tensor table (Ollama 0.6 on), else its file on this machine."""

    def shape(model: str) -> ModelShape | None:
        from llmtop.measure.model_shape import shape_of_header, shape_of_show
        from llmtop.ollama.api import OllamaError
        from llmtop.ollama.model_source import SourceFailed, blob_of, header_from_file

        session = sessions.get(model)
        if session is None:
            return None
        try:
            shown = session.server.tensors(model)
        except OllamaError:
            return None
        try:
            return shape_of_show(shown)
        except ValueError:
            blob = blob_of(shown)
            try:
                return shape_of_header(header_from_file(blob)) if blob is not None else None
            except (SourceFailed, ValueError):
                return None

    return shape


def _experts(session: Session) -> int | None:
    """The experts a layer of the session's model has (None: a dense model, or not said)."""
    return session.facts.expert_count if session.facts is not None else None


def _restarter(kit: Instruments) -> Callable[[ServerSettings], None]:
    """Restarts the `ollama serve` llmtop started with a run's settings (RestartFailed with the reason)."""
    from llmtop.measure.plan import RestartFailed

    def restart(settings: ServerSettings) -> None:
        try:
            kit.restart_ollama_serve(serve_env(os.environ, settings))
        except LogUnavailable as exc:
            raise RestartFailed(str(exc)) from None

    return restart


def record_sessions(event: Callable[[str, float, Mapping[str, Any]], None], sessions: Mapping[str, Session]) -> None:
    """Each model's facts into the recording, and each session's events (phases, runs) after them."""
    now = time.monotonic()
    for model, session in sessions.items():
        event(
            "model",
            now,
            {
                "model": model,
                "facts": session.facts,
                "ollama_version": session.version,
                "host": session.server.base_url,
            },
        )
        session.on_event = event
