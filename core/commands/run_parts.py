"""The parts of `llmtop MODEL`'s plan, built once its command line is read: each model's facts (pulled
where asked), the plan checked against the models and the server, then the event stream and what
subscribes to it (the metrics endpoint, the recording), the sessions, the history's judge, and the runner."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from llmtop.collectors.log_sources import LogUnavailable
from llmtop.commands.instruments import Instruments, server_is_local
from llmtop.exit_status import EXIT_USAGE
from llmtop.measure.mode import Mode, think_word
from llmtop.measure.server_settings import ServerSettings, serve_env, unsupported
from llmtop.measure.settings import RunSettings
from llmtop.ollama.api import OllamaServer
from llmtop.ollama.hosts import exposure

if TYPE_CHECKING:
    from llmtop.collectors.system_collectors import SystemCollectors
    from llmtop.measure.cool_down import CoolDownCheck
    from llmtop.measure.events import EventStream
    from llmtop.measure.forecast import Bandwidth
    from llmtop.measure.model_shape import ModelShape
    from llmtop.measure.plan import PlannedRun, PlanRunner, SweepPlan
    from llmtop.measure.summary_row import SummaryRow
    from llmtop.ollama.model_facts import ModelFacts
    from llmtop.store.history import History
    from llmtop.store.recording import Recorder

Connected = dict[str, "tuple[str | None, ModelFacts]"]  # each model: its server's version and its facts


def pull_model(server: OllamaServer, model: str, stream: TextIO) -> None:
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


class Refused(Exception):
    """The request cannot run as asked: the text says why, `status` is the exit status."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


def connect_models(server: OllamaServer, models: Sequence[str], pull: bool, err: TextIO) -> Connected:
    """Each model's facts and its server's version; a model not there is pulled with --pull.
    Raises Refused (the server is unreachable, a model is not there) or OllamaError."""
    from llmtop.measure.session import connect
    from llmtop.ollama.api import ModelNotFound, ServerUnreachable

    connected: Connected = {}
    try:
        for model in dict.fromkeys(models):
            try:
                connected[model] = connect(server, model)
            except ModelNotFound:
                if not pull:
                    raise
                pull_model(server, model, err)
                connected[model] = connect(server, model)
    except (ServerUnreachable, ModelNotFound) as exc:
        raise Refused(str(exc)) from None
    return connected


def checked_plan(
    args: argparse.Namespace, connected: Connected, settings: RunSettings, modes: Sequence[Mode]
) -> tuple[list[PlannedRun], SweepPlan | None]:
    """The plan (or the sweep's first points), once the models and the server can run it: raises
    Refused with the reason where they cannot."""
    from llmtop.measure.plan import SweepPlan, build_plan
    from llmtop.measure.sweep import announce
    from llmtop.measure.sweep_plan import SweepError, check_layers

    sweep = None
    if args.sweep is not None:
        model, (_, facts) = next(iter(connected.items()))
        try:
            check_layers(args.sweep, model, facts.layers_total)
        except SweepError as exc:
            raise Refused(str(exc)) from None
        sweep = SweepPlan(model, args.sweep, facts.layers_total, args.repeat, settings)
        plan = sweep.first()
        sys.stderr.write(f"llmtop: {announce(args.sweep, model, sweep.planner, args.repeat, facts.size_bytes)}\n")
    else:
        plan = build_plan(list(connected), modes, args.repeat, settings, args.order, args.seed)
    version = next(iter(connected.values()))[0]
    for server_settings in dict.fromkeys(item.settings.server for item in plan):
        problem = unsupported(server_settings, version, serve_env(os.environ, server_settings))
        if problem:
            raise Refused(problem)
    for item in plan:  # --think's, or a mode's think=
        refusal = think_refused(item.settings, item.model, connected[item.model][1])
        if refusal:
            raise Refused(refusal)
    dense = [i for i in plan if i.settings.server.cpu_moe is not None and not connected[i.model][1].expert_count]
    if dense:
        raise Refused(
            f"{dense[0].settings.mode} places experts, and {dense[0].model} has none (/api/show gives no "
            "expert_count): the mode would run as auto does"
        )
    return plan, sweep


def say_when_the_sweep_compares_alike(kit: Instruments, sweep: SweepPlan | None, base_url: str, err: TextIO) -> None:
    """A layer or experts sweep on a local server with no GPU runs every point on the CPU: say so."""
    collectors = kit.collectors
    assert collectors is not None
    if sweep is None or sweep.spec.parameter not in ("num_gpu", "moe") or collectors.gpu is not None:
        return
    if server_is_local(base_url)[0]:
        err.write(
            f"llmtop: note: no GPU found on this machine ({collectors.gpu_unavailable}): Ollama runs every point on "
            f"the CPU, so the {'layer' if sweep.spec.parameter == 'num_gpu' else 'experts'} sweep compares runs of "
            "the same thing\n"
        )


def start_parts(
    kit: Instruments,
    args: argparse.Namespace,
    server: OllamaServer,
    connected: Connected,
    plan: list[PlannedRun],
    sweep: SweepPlan | None,
    settings: RunSettings,
) -> PlanRunner:
    """The plan's event stream and what subscribes to it (the metrics endpoint, the recording), the
    sessions and the runner, with the machine's sampling started. Raises Refused (--metrics)."""
    from llmtop.measure.events import EventStream
    from llmtop.measure.plan import PlanRunner
    from llmtop.measure.session import Session
    from llmtop.store.history import History

    collectors = kit.collectors
    assert collectors is not None
    events = EventStream()
    _serve_metrics(kit, args, events)
    recorder = _record(kit, args, server.base_url, connected, plan, sweep, settings, events)
    machine = _machine(collectors, next(iter(connected.values()))[0], recorder)
    kit.start_sampling()
    past = MachineHistory(History(), machine, _tensor_shapes(server))
    sessions = {
        model: Session(
            server,
            model,
            collectors,
            events,
            log=kit.log,
            log_reason=kit.log_reason,
            stall_timeout_s=args.stall_timeout,
            judge=past.judge,
            usual_answer=past.usual_answer,
            connected=facts,
        )
        for model, facts in connected.items()
    }
    same_work = args.num_predict is None and (len(plan) > 1 or sweep is not None)
    return PlanRunner(
        sessions,
        plan,
        history=None if args.no_history else History(),
        machine=machine,
        sweep=sweep,
        restart_server=_restarter(kit) if kit.serve is not None else None,
        server_settings=plan[0].settings.server if plan else None,
        same_work=same_work,
        cooldown_s=args.cooldown,
        cooled=_cool_down_check(collectors) if args.cooldown > 0 else None,
        plan_facts={
            "order": args.order if sweep is None else "sweep",
            "seed": args.seed,
            "num_predict": args.num_predict,
            "same_work": same_work,
            "cooldown_s": args.cooldown,
        },
    )


def _machine(
    collectors: SystemCollectors, version: str | None, recorder: Recorder | None
) -> Callable[[], Mapping[str, Any]]:
    """The machine's facts (CPU, RAM, GPUs, OS, versions), described once when first asked (the
    recording keeps them then)."""
    import functools

    from llmtop.measure.machine import describe_machine

    @functools.cache
    def machine() -> Mapping[str, Any]:
        latest = collectors.gpu.latest() if collectors.gpu else None
        facts = describe_machine(latest.gpus if latest else (), version)
        if recorder is not None:
            recorder.event("machine", time.monotonic(), {"machine": facts})
        return facts

    return machine


def _record(
    kit: Instruments,
    args: argparse.Namespace,
    host: str,
    connected: Connected,
    plan: list[PlannedRun],
    sweep: SweepPlan | None,
    settings: RunSettings,
    events: EventStream,
) -> Recorder | None:
    """The recording (unless --no-record): its header with the plan, each model's facts, then every
    event of the stream a recording keeps."""
    plan_fields = {
        "plan": [{"model": p.model, "mode": p.settings.mode, "repeat": p.repeat} for p in plan],
        "settings": settings,
        "priority": args.running_at,
        "sweep": None if sweep is None else {**sweep.spec.to_dict(), "num_ctx": settings.num_ctx},
    }
    recorder = kit.record(args, connected, plan_fields)
    if recorder is not None:
        record_models(recorder.event, host, connected)
        events.subscribe(recorder.take)
    return recorder


def _serve_metrics(kit: Instruments, args: argparse.Namespace, events: EventStream) -> None:
    """--metrics: the endpoint, fed each kept run from `events`. Raises Refused where it cannot listen."""
    if args.metrics is None:
        return
    from llmtop.measure.events import RunKept, handlers
    from llmtop.watch.metrics import MetricsEndpoint, MetricsError
    from llmtop.watch.state import WatchState

    assert kit.collectors is not None
    metrics = WatchState()
    try:
        endpoint = MetricsEndpoint(metrics, kit.collectors, *args.metrics)
    except MetricsError as exc:
        raise Refused(str(exc)) from None
    kit.stopping(endpoint)
    events.subscribe(handlers({RunKept: lambda event: metrics.observe_row(event.t, event.row)}))
    sys.stderr.write(f"llmtop: metrics: {endpoint.url}\n")
    address, port = args.metrics
    warning = exposure("--metrics", address, port, "the models, runs, memory and power it serves")
    if warning:
        sys.stderr.write(f"llmtop: {warning}\n")


def _cool_down_check(collectors: SystemCollectors) -> CoolDownCheck:
    """What tells a cool-down the machine is back near its rest: the temperatures and the power read
    now, before the first run."""
    from llmtop.collectors.temperatures import TemperatureReader
    from llmtop.measure.cool_down import CoolDownCheck, gpu_temperatures

    chips = TemperatureReader()
    return CoolDownCheck(collectors.power, lambda: {**chips.read(), **gpu_temperatures(collectors.gpu)})


def think_refused(settings: RunSettings, model: str, facts: ModelFacts | None) -> str | None:
    """Why a run's `think` (--think's, or its mode's `think=`) cannot go with `model` (it does not think;
    it takes no such level); None if it can, or the run asks none."""
    think = settings.think
    if think is None:
        return None
    option = "think=" if settings.think_in_mode else "--think "
    asked = f"mode {settings.mode}" if settings.think_in_mode else f"--think {think_word(think)}"
    if facts is None or not facts.thinks:
        if think is False:
            return None  # Ollama takes think false from any model: there is nothing to turn off
        return (
            f"{asked}: {model} is not a thinking model (/api/show lists no `thinking` capability), so "
            f"Ollama would refuse the request: leave {option.strip()} out"
        )
    if facts.think_values and think not in facts.think_values:
        takes = ", ".join(think_word(v) for v in facts.think_values)
        return f"{asked}: {model} takes {option}{takes} (/api/show's thinking.values)"
    return None


class MachineHistory:
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


def _tensor_shapes(server: OllamaServer) -> Callable[[str], ModelShape | None]:
    """A model's shape from its server's tensor table (Ollama 0.6 on), else its file on this machine."""

    def shape(model: str) -> ModelShape | None:
        from llmtop.measure.model_shape import shape_of_header, shape_of_show
        from llmtop.ollama.api import OllamaError
        from llmtop.ollama.model_source import SourceFailed, blob_of, header_from_file

        try:
            shown = server.tensors(model)
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


def _restarter(kit: Instruments) -> Callable[[ServerSettings], None]:
    """Restarts the `ollama serve` llmtop started with a run's settings (RestartFailed with the reason)."""
    from llmtop.measure.plan import RestartFailed

    def restart(settings: ServerSettings) -> None:
        try:
            kit.restart_ollama_serve(serve_env(os.environ, settings))
        except LogUnavailable as exc:
            raise RestartFailed(str(exc)) from None

    return restart


def record_models(event: Callable[[str, float, Mapping[str, Any]], None], host: str, connected: Connected) -> None:
    """Each model's facts into the recording, before any run's events."""
    now = time.monotonic()
    for model, (version, facts) in connected.items():
        event("model", now, {"model": model, "facts": facts, "ollama_version": version, "host": host})
