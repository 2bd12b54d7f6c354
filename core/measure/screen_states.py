"""What each panel of the screens draws, made once a refresh from the session and its collectors.

Every state is immutable and compares by value: a panel redraws only when the state it is handed
differs from the last one it drew. The texts and figures are made here (by live.py's rules, the
summary row's); the panels in tui/panels/ lay them out and fit them to their width. Pure of
Textual."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmtop import units, words
from llmtop.collectors.ollama_log import LoadRecord
from llmtop.collectors.system_collectors import SystemCollectors
from llmtop.measure.comparison import Comparison, compare
from llmtop.measure.energy import EDGE_S, GPU_UNREAD
from llmtop.measure.live import energy_so_far, gpu_now, idle_power, process_deltas, ram_now, watts_over_idle
from llmtop.measure.load_parts import bars_text, memory_parts, parts_lines, worth_showing
from llmtop.measure.mode import Mode
from llmtop.measure.plan import PlanRunner
from llmtop.measure.session import Phase, Session
from llmtop.measure.split_reason import split_reason
from llmtop.measure.summary import RunRecord, baseline_start, split_words
from llmtop.measure.summary_row import SummaryRow
from llmtop.measure.sweep import SweepResult
from llmtop.measure.time_left import answer_left_s, load_left_s, prompt_left_s, prompt_time_left
from llmtop.measure.timeline import Timeline, memory_timeline, run_start
from llmtop.measure.verdicts import said_of
from llmtop.units import NA

WAITING = "waiting for the first sample"
NO_GPU_READ = f"{words.NO_GPU_READ} (`llmtop doctor` shows each backend tried)"
SPARK_S = 8.0  # a power gauge's history
SPARK_POINTS = 16
KIND_NAMES = {"cpu": "CPU", "gpu": "GPU"}


@dataclass(frozen=True)
class GaugeState:
    """One gauge: a reading (`used`, of `total`, `delta` over the baseline, a note) or n/a and why."""

    label: str
    used: float | None = None
    total: float | None = None
    delta: float | None = None
    note: str = ""
    reason: str = WAITING
    warning: bool = False

    @classmethod
    def na(cls, label: str, reason: str) -> GaugeState:
        """n/a: `reason` (never a number that was not read)."""
        return cls(label, reason=reason)


# -- memory ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class MemoryState:
    """RAM (the mapped weights counted once), the mapped part, swap, and the Ollama processes."""

    ram: GaugeState
    mapped: GaugeState
    swap: GaugeState
    rss: GaugeState


def memory_state(collectors: SystemCollectors, record: RunRecord | None) -> MemoryState:
    """The memory gauges now, each Δ over `record`'s baseline (none without a run: the watch)."""
    memory = collectors.memory.latest()
    proc = collectors.processes.latest()
    base_proc = record.baseline_process if record else None
    total = memory.total_bytes if memory else None
    if proc is None or proc.rss_bytes is None:  # the Ollama processes are not read: the RSS gauge says why
        mapped = GaugeState.na("  mapped", "no Ollama process read (see Ollama RSS)")
    elif proc.file_rss_bytes is None:
        mapped = GaugeState.na("  mapped", "counted apart on Linux only (see docs/measurement.md)")
    else:
        _, mapped_delta = process_deltas(proc, base_proc)
        mapped = GaugeState("  mapped", proc.file_rss_bytes, total, mapped_delta, note="Ollama's files")
    if proc is None:
        rss = GaugeState.na(words.OLLAMA_RSS, collectors.processes.last_error or WAITING)
    elif proc.rss_bytes is None:
        rss = GaugeState.na(words.OLLAMA_RSS, proc.reason or "not readable")
    else:
        rss_delta, _ = process_deltas(proc, base_proc)
        runner = f"runner {units.human_bytes(proc.runner_rss_bytes)}" if proc.runner_pids else "no runner"
        rss = GaugeState(words.OLLAMA_RSS, proc.rss_bytes, total, rss_delta, note=runner)
    if memory is None:
        ram = GaugeState.na(words.RAM, collectors.memory.last_error or WAITING)
        return MemoryState(ram, mapped, GaugeState("Swap"), rss)
    if memory.swap_total_bytes:
        swap = GaugeState("Swap", memory.swap_used_bytes, memory.swap_total_bytes)
    else:
        swap = GaugeState.na("Swap", "no swap configured")
    now = ram_now(memory, proc, record.baseline_memory if record else None, base_proc)
    note = f"in use {units.human_bytes(now.in_use)}" if now.in_use is not None else ""
    return MemoryState(GaugeState(words.RAM, now.used, now.total, now.delta, note=note), mapped, swap, rss)


# -- GPUs -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class GpuState:
    """Per GPU, its dedicated (or unified) and its shared memory gauges; `spill` names a GPU whose
    shared memory grows over its baseline while `run` goes on (the time the run began: one per run)."""

    gauges: tuple[tuple[GaugeState, GaugeState], ...]
    spill: str | None = None
    run: float = 0.0


def engine_vram(load: LoadRecord | None) -> GaugeState | None:
    """VRAM where no counter reads the GPU: the engine's own buffers on it (weights, KV cache, compute)
    as the server log says them, against the device's memory where the log says it; None where the log
    names no buffer on a GPU."""
    if load is None:
        return None
    on_gpu = [p for p in memory_parts(load) if p.on_gpu]
    if not on_gpu:
        return None
    used = sum(p.bytes for p in on_gpu)
    devices = list(dict.fromkeys(p.device for p in on_gpu))
    total = sum(load.device_totals[d] for d in devices) if all(d in load.device_totals for d in devices) else None
    named = ", ".join(load.gpus) or ", ".join(devices)
    return GaugeState(words.VRAM, used, total, used, note=f"buffers (log) · {named}")


def gpu_state(
    collectors: SystemCollectors, record: RunRecord | None, running: bool, load: LoadRecord | None = None
) -> GpuState:
    """`running`: a run is in progress (a spill is said only then). `load`: the run's model load in the
    server log, whose buffers on a GPU stand for VRAM where no counter reads it."""
    engine = engine_vram(load)
    if collectors.gpu is None:
        why = f"{words.NO_GPU_READ} ({collectors.gpu_unavailable})"
        return GpuState(((engine or GaugeState.na(words.VRAM, why), GaugeState.na(words.SHARED_GPU, NO_GPU_READ)),))
    sample = collectors.gpu.latest()
    if sample is None or not sample.gpus:
        why = "; ".join(sample.problems) if sample and sample.problems else WAITING
        return GpuState(((engine or GaugeState.na(words.VRAM, why), GaugeState.na(words.SHARED_GPU, why)),))
    several = len(sample.gpus) > 1
    baseline = {g.key: g for g in record.baseline_gpu.gpus} if record and record.baseline_gpu else {}
    gauges = []
    spill = None
    for index, gpu in enumerate(sample.gpus):
        suffix = f" {index}" if several else ""
        vram_label, shared_label = (words.UNIFIED if gpu.unified else words.VRAM) + suffix, words.SHARED_GPU + suffix
        figures = gpu_now(gpu, baseline.get(gpu.key), running)
        notes = [gpu.name]
        if gpu.utilization_pct is not None:
            notes.append(f"{gpu.utilization_pct:.0f}% busy")
        if gpu.ollama_dedicated is not None:
            notes.append(f"Ollama {units.human_bytes(gpu.ollama_dedicated)}")
        if gpu.dedicated_used is None:
            vram = GaugeState.na(vram_label, gpu.reason("dedicated"))
        else:
            vram = GaugeState(
                vram_label, gpu.dedicated_used, gpu.dedicated_total, figures.dedicated_delta, note=" · ".join(notes)
            )
        if gpu.shared_used is None:
            shared = GaugeState.na(shared_label, gpu.reason("shared"))
        else:
            note = "spilling into system RAM" if figures.spilling else ""
            shared = GaugeState(
                shared_label, gpu.shared_used, gpu.shared_total, figures.shared_delta, note, warning=figures.spilling
            )
            if figures.spilling and spill is None:
                spill = gpu.name
        gauges.append((vram, shared))
    if record is None or not record.phases:  # no run to say it of
        return GpuState(tuple(gauges))
    return GpuState(tuple(gauges), spill, record.phases[0][0])


def spill_warning(gpu_name: str) -> str:
    """The toast said once a run when a GPU spills (the gauge keeps the figure up to date)."""
    return (
        f"{gpu_name}: shared GPU memory is growing over its baseline: the model is spilling out of VRAM into system RAM"
    )


# -- power and energy ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PowerState:
    """A gauge per power source (watts, a sparkline of its last 8 s, Δ over the baseline's idle
    power), n/a with the reason for each kind not measured; the energy line's texts ("" hides it)."""

    gauges: tuple[GaugeState, ...]
    energy: tuple[str, ...] = ("",)


def power_state(
    collectors: SystemCollectors, now: float, idle: Mapping[str, float], energy: tuple[str, ...]
) -> PowerState:
    """`idle` and `energy` from `run_idle_power` and `energy_texts` (each changes slowly: the app
    makes them every few seconds)."""
    missing = collectors.power_unavailable
    sampler = collectors.power
    recent = sampler.between(now - SPARK_S) if sampler is not None else []
    latest = recent[-1] if recent else None
    if sampler is not None and latest is None:
        return PowerState((GaugeState.na("Power", sampler.last_error or WAITING),), energy)
    gauges = []
    sources = list(latest.sources) if latest is not None else []
    gpus = sum(1 for r in sources if r.kind == "gpu") + (1 if "gpu" in missing else 0)
    number = 0
    for reading in sources:
        if reading.kind == "gpu" and gpus > 1:
            label = f"GPU {number} power"
            number += 1
        else:
            label = f"{KIND_NAMES[reading.kind]} power"
        if reading.watts is None:
            gauges.append(GaugeState.na(label, reading.reason or "not read"))
            continue
        history = [w for s in recent for r in s.sources if r.key == reading.key and (w := r.watts) is not None]
        points = history[-SPARK_POINTS:]
        spark = units.sparkline(points, reading.limit_w or 1.25 * max(points, default=0.0))
        over_idle = watts_over_idle(reading.watts, reading.key, idle)
        gauges.append(GaugeState(label, reading.watts, reading.limit_w, over_idle, note=f"{spark} {reading.name}"))
    gauges += [GaugeState.na(f"{KIND_NAMES[kind]} power", missing[kind]) for kind in ("cpu", "gpu") if kind in missing]
    return PowerState(tuple(gauges), energy)


def run_idle_power(session: Session, record: RunRecord | None) -> dict[str, float]:
    """Each power source's mean watts over the run's baseline, once the request has gone."""
    power = session.collectors.power
    if record is None or power is None or not record.clock.request_at:
        return {}
    since = baseline_start(record)
    samples = power.between(since, record.clock.request_at + EDGE_S) if since is not None else []
    return idle_power(record, samples)


def energy_texts(session: Session, record: RunRecord | None, now: float) -> tuple[str, ...]:
    """`energy 3.40 kJ since the request · 2.10 J/token while generating` and shorter ones; ("",)
    where there is nothing to say yet."""
    sampler = session.collectors.power
    if record is None or sampler is None or not record.phases:
        return ("",)
    if session.phase in (Phase.BASELINE, Phase.UNLOADING) and record.ended_at is None:
        return ("",)
    end = record.ended_at if record.ended_at is not None else now
    samples = sampler.between(record.clock.request_at - EDGE_S, end + EDGE_S)
    energy = energy_so_far(record, samples, now, _gpu_works(session, record))
    if energy is None:
        return ("",)
    if energy.energy_j is None:
        why = energy.note or "not read"
        if why.startswith(GPU_UNREAD):
            return (f"energy {NA}: {GPU_UNREAD}", f"energy {NA}: the GPU worked, its power is not read")
        return (f"energy {NA}: {why}",)
    text = f"energy {units.joules(energy.energy_j)} since the request"
    if energy.joules_per_token is None:
        return (text,)
    per_token = f"{energy.joules_per_token:.3g} J/token"
    return (f"{text}   ·   {per_token} while generating", f"energy {units.joules(energy.energy_j)} · {per_token}", text)


def _gpu_works(session: Session, record: RunRecord) -> bool:
    """Whether part of the model is on a GPU in this run: the log's layers, else `/api/ps`."""
    load = session.log_load(record)
    if load is not None and load.layers_offloaded is not None:
        return load.layers_offloaded > 0
    ps = session.latest_ps()
    return ps is not None and ps.size_vram_bytes > 0


# -- layers and the split -------------------------------------------------------------------------
@dataclass(frozen=True)
class LayersState:
    """The GPU layers the log gives, Ollama's split as `/api/ps` gives it (a line, and shorter ways
    to say it), and why the split is what it is."""

    layers: GaugeState
    split: tuple[str, ...]
    why: str = ""


def layers_state(session: Session) -> LayersState:
    ps = session.latest_ps()
    if ps is not None and ps.vram_share is not None:
        words = split_words(ps.vram_share)
        on_gpu = f"{units.human_bytes(ps.size_vram_bytes)} of {units.human_bytes(ps.size_bytes)} on GPU"
        split: tuple[str, ...] = (
            f"Ollama's split (/api/ps): {words}, {on_gpu}",
            f"/api/ps: {words}, {on_gpu}",
            f"/api/ps: {words}",
        )
    elif session.ps_problem:
        split = (f"Ollama's split (/api/ps): {NA}: {session.ps_problem}",)
    else:
        split = ("Ollama's split (/api/ps): model not loaded",)
    if session.log is None:
        return LayersState(GaugeState.na("GPU layers", f"server log {session.log_reason or 'not read'}"), split)
    load = session.log_load()
    if load is None or load.layers_offloaded is None:
        problem = session.log.problem or session.log.waiting
        problem = f" ({problem})" if problem else ""
        return LayersState(GaugeState.na("GPU layers", f"no model load in the log yet{problem}"), split)
    how = "Ollama's plan" if load.estimate_only else "confirmed"
    total = load.layers_total or (session.facts.layers_total if session.facts else None)
    overflowing = f" · {load.layers_overflowing} overflowing" if load.layers_overflowing else ""
    gauge = GaugeState(
        "GPU layers", load.layers_offloaded, total, note=f"{load.library or '?'} · {how} (log){overflowing}"
    )
    reason = split_reason(load)
    why = f"why: {reason}" if reason else ""
    if load.layers_overflowing:
        why = f"{load.layers_overflowing} of them overflowing: their experts in system memory. {why}".strip()
    return LayersState(gauge, split, why)


# -- the phase and the run's figures -------------------------------------------------------------
@dataclass(frozen=True)
class PhaseState:
    """Where the plan is, and the run's token figures (each a line and shorter ways to say it)."""

    phase: tuple[str, ...]
    tokens: tuple[str, ...] = ("",)


def header_texts(session: Session) -> tuple[str, ...]:
    """The header (model facts, server, version), and shorter ways to say it."""
    facts = session.facts
    if facts is None:
        return (session.model,)
    parts = [
        facts.name,
        facts.parameter_size or f"params {NA}",
        facts.quantization or f"quant {NA}",
        units.gb(facts.size_bytes) or f"size {NA}",
        f"{facts.layers_total} layers" if facts.layers_total else f"layers {NA}",
    ]
    server = [session.server.base_url, f"Ollama {session.version or NA}"]
    return ("  ·  ".join(parts + server), "  ·  ".join(parts + server[1:]), " · ".join(parts))


def phase_state(runner: PlanRunner, now: float, next_mode: str | None) -> PhaseState:
    """`next_mode`: what `r` would add (None in a replay, which adds nothing)."""
    session = runner.current
    return PhaseState(_phase_texts(runner, session, now, next_mode), _token_texts(session, session.last, now))


def _phase_texts(runner: PlanRunner, session: Session, now: float, next_mode: str | None) -> tuple[str, ...]:
    elapsed = units.clock(now - session.phase_since)
    item = runner.current_item
    number = min(runner.done + (1 if runner.running else 0), runner.expected_total) or 1
    where = f"run {number} of {runner.total_text}" + (f" · {item.model} {item.settings.mode}" if item else "")
    left = runner.time_left() if runner.queue or runner.running else None
    eta = f"  ·  about {units.clock(left)} left" if left is not None else ""
    phase = session.phase.value
    if runner.restarting:
        phase = f"restarting ollama serve ({runner.restarting})"
    elif (until := runner.cooling_until) is not None:
        phase = f"cooling down between runs ({max(until - now, 0.0):.0f} s left, --cooldown)"
    line = f"{where}  ·  {phase}  {elapsed}{eta}"
    short = f"run {number}/{runner.total_text}  ·  {phase} {elapsed}" + (
        f"  ·  {units.clock(left)} left" if left is not None else ""
    )
    if next_mode is None:
        return line, short
    return f"{line}  ·  r adds a run: {next_mode}", line, short


def _token_texts(session: Session, record: RunRecord | None, now: float) -> tuple[str, ...]:
    if record is None:
        return ("",)
    clock = record.clock
    until = run_until(record, now)  # a finished run keeps its figures as they were at its end
    live = clock.live_rate_tps(until)
    figures = f"tokens {clock.count}   live {units.rate(live) or NA} tok/s   TTFT {units.seconds(clock.ttft_s) or NA}"
    server, server_short = _server_texts(session, record, now)
    stall = _stall_text(session, record)
    waiting = _waiting_text(session, record, now, live)
    return figures + server + waiting + stall, figures + server_short + waiting + stall, figures + waiting + stall


def _waiting_text(session: Session, record: RunRecord, now: float, live: float | None) -> str:
    """How long the load or the answer has left (time_left.py), while it goes on; '' where there is
    nothing to tell it from."""
    if record.ended_at is not None:
        return ""
    if session.phase is Phase.LOADING and record.clock.request_at:
        loaded = _loaded_bytes(session, record)
        size = record.facts.size_bytes
        left = load_left_s(size, loaded, now - record.clock.request_at)
        if left is None or loaded is None or not size:
            return ""
        return (
            f"   ·   loading: {units.human_bytes(loaded)} of {units.human_bytes(size)}, about {units.clock(left)} left"
        )
    if session.phase is Phase.GENERATING:
        if record.num_predict:
            left = answer_left_s(record.num_predict, record.clock.count, live)
            said = f"at most ({record.num_predict} tokens asked)"
        elif record.usual_tokens:  # the model decides: its usual length here stands for it
            left = answer_left_s(record.usual_tokens, record.clock.count, live)
            said = f"(its answers here are usually {record.usual_tokens} tokens)"
        else:
            return ""
        return f"   ·   answer ready in about {units.clock(left)} {said}" if left is not None else ""
    return ""


def _loaded_bytes(session: Session, record: RunRecord) -> int | None:
    """What the load has put in memory so far: the Ollama processes' resident memory and the GPUs'
    dedicated and shared memory, each over the run's baseline (None where none is read)."""
    parts: list[int] = []
    process = session.collectors.processes.latest()
    if process is not None and process.rss_bytes is not None and record.baseline_process is not None:
        rss, _ = process_deltas(process, record.baseline_process)
        if rss is not None:
            parts.append(max(rss, 0))
    gpus = session.collectors.gpu.latest() if session.collectors.gpu is not None else None
    base = record.baseline_gpu
    if gpus is not None and base is not None:
        before = {b.key: b for b in base.gpus}
        for gpu in gpus.gpus:
            grown = gpu_now(gpu, before.get(gpu.key), running=False)
            parts.extend(max(v, 0) for v in (grown.dedicated_delta, grown.shared_delta) if v is not None)
    return sum(parts) if parts else None


def run_until(record: RunRecord, now: float) -> float:
    """`now`, or the run's end once it has ended (its figures stay as they were then)."""
    return min(now, record.ended_at) if record.ended_at is not None else now


def _server_texts(session: Session, record: RunRecord, now: float) -> tuple[str, str]:
    """What llama-server's lines in the log say of this request (Ollama 0.30 on), in full and
    short: the prompt's progress while it is read, the server's own rate while it generates."""
    if record.ended_at is not None or session.phase not in (Phase.LOADING, Phase.PROMPT, Phase.GENERATING):
        return "", ""
    request = session.log_request(record)
    if request is None:
        return "", ""
    left = prompt_left_s(prompt_time_left(request), request.progress_seen, now)
    if session.phase is Phase.GENERATING:
        if request.tg_tps is None:
            return "", ""
        return f"   ·   server {request.tg_tps:.2f} tok/s (log)", f"   server {request.tg_tps:.2f} tok/s"
    if request.prompt_done is not None and request.prompt_progress is not None and left is not None:
        total = round(request.prompt_done / request.prompt_progress / 10) * 10  # progress has 2 decimals
        share = f"{100 * request.prompt_progress:.0f}%"
        return (
            f"   ·   prompt {request.prompt_done} of about {total} tokens read ({share}) "
            f"at {request.prompt_live_tps:.0f} tok/s, about {units.clock(left)} left (server log)",
            f"   prompt {share} read, {units.clock(left)} left",
        )
    return "", ""


def _stall_text(session: Session, record: RunRecord) -> str:
    """`no token for 34 s` once the gap since the last token is unusual for this run: over 5 s and
    over ten of its usual gaps."""
    gap = session.stall_s(record)
    rate = record.clock.client_rate_tps
    if gap is None or gap < 5.0 or (rate and gap < 10.0 / rate):
        return ""
    return f"   ·   no token for {gap:.0f} s"


# -- the log pane ---------------------------------------------------------------------------------
def log_pane_lines(session: Session) -> tuple[str, ...]:
    """The server log's lines about the model load, or why there are none."""
    lines = session.log.pane_lines() if session.log else []
    return tuple(lines) or (f"server log: {session.log_reason or 'no line about a model load yet'}",)


def chart_points(record: RunRecord, now: float, points: int) -> tuple[tuple[float, float], ...]:
    """The tokens/s chart's points from the request to `now` (or the run's end); none before the
    first token."""
    if record.clock.first_at is None:
        return ()
    return tuple(record.clock.series(run_until(record, now), points))


# -- the answer, the runs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class AnswerState:
    """The answer's text that arrived since the last refresh; `new_run`: a run began meanwhile (the
    pane starts again)."""

    new_run: bool
    text: str
    thoughts: int = 0  # a thinking model's tokens of thought in this run so far: shown folded, not as text


@dataclass(frozen=True)
class RunsState:
    """The runs' rows, their comparison (shown from two runs on, but not in a sweep, whose table
    says it), and a sweep's result and conclusion."""

    rows: tuple[SummaryRow, ...]
    comparisons: tuple[Comparison, ...]
    sweep: SweepResult | None = None
    conclusion: str = ""
    parts: tuple[str, ...] = ()  # each run's memory by part as stacked bars, where they say more than the table
    verdicts: tuple[str, ...] = ()  # each difference compared, in a sentence with its interval (verdicts.py)

    @property
    def compared(self) -> bool:
        return len(self.rows) > 1 and self.sweep is None


def runs_state(runner: PlanRunner, finished: SummaryRow | None = None) -> RunsState:
    """`finished`: a run's row as its end was told, which the runner may not have kept yet."""
    rows = tuple(runner.rows)
    if finished is not None and not any(r is finished for r in rows):
        rows += (finished,)
    sweep = runner.sweep_result()
    compared = tuple(compare(rows))
    conclusion = sweep_conclusion(sweep) if sweep is not None else ""
    said = tuple(said_of(rows))
    return RunsState(rows, compared, sweep, conclusion, parts_bars(rows), said)


PARTS_BAR_WIDTH = 30


def parts_bars(rows: Sequence[SummaryRow]) -> tuple[str, ...]:
    """The runs' memory by part as stacked bars with their settings (load_parts.py), where some mode
    set the server (the screen is short of room: a GPU split alone is the tables' VRAM and RAM, and
    the export's and the report's parts); () otherwise."""
    if all(Mode.of(r.mode).plain for r in rows) or not worth_showing(
        [(r.mode, r.settings, r.memory_parts) for r in rows]
    ):
        return ()
    named = [(f"{r.model} {Mode.of(r.mode).label}", r.settings, r.memory_parts) for r in rows]
    return tuple(bars_text(parts_lines(named), PARTS_BAR_WIDTH))


def sweep_conclusion(result: SweepResult) -> str:
    """What the sweep concludes so far, its notes, and the Modelfile that sets its best point."""
    if not result.points:
        return "the sweep's conclusion comes as its points finish"
    if not result.finished:
        return f"so far: {result.conclusion}"
    lines = [result.conclusion, *(f"· {note}" for note in result.notes)]
    if result.modelfile and result.create_command:
        modelfile = " / ".join(result.modelfile.strip().splitlines())
        lines.append(f"Modelfile: {modelfile}  ·  then: {result.create_command}")
    return "\n".join(lines)


def run_timeline(collectors: SystemCollectors, record: RunRecord, now: float) -> Timeline:
    """The memory chart's timeline of a run up to `now` (or its end). Only this run's samples are
    taken from the buffers (they hold up to two hours)."""
    until, start = run_until(record, now), run_start(record)
    return memory_timeline(
        record,
        collectors.memory.between(start, until),
        collectors.processes.between(start, until),
        collectors.gpu.between(start, until) if collectors.gpu is not None else [],
        until,
    )
