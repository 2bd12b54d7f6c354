"""The summary row of one run (summary_row.SummaryRow): the article's columns and the timing figures,
computed from a run's record and its samples.

Pure: no I/O, no Textual. Every figure is None when it was not measured; nothing is estimated.
"""

from __future__ import annotations

import statistics
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmtop import units, words
from llmtop.collectors.cpu_load import CpuReading, cpu_use
from llmtop.collectors.gpu_reading import GpuSample, sum_known
from llmtop.collectors.ollama_log import LoadRecord, RequestTiming, ServedRequest
from llmtop.collectors.ollama_processes import OllamaProcessSample
from llmtop.collectors.power_reading import PowerSample
from llmtop.collectors.system_memory import SystemMemorySample
from llmtop.collectors.token_timing import ServerTiming, TokenClock
from llmtop.measure.energy import RunEnergy, Window, run_energy
from llmtop.measure.load_parts import MemoryPart, memory_parts, settings_in_effect
from llmtop.measure.split_reason import split_reason
from llmtop.measure.summary_row import SummaryRow
from llmtop.ollama.model_facts import ModelFacts
from llmtop.units import NA


@dataclass(frozen=True, slots=True)
class PsReading:
    """One `/api/ps` entry for our model: Ollama's own account of where it put the model."""

    t: float
    size_bytes: int
    size_vram_bytes: int
    context_length: int | None = None  # the context Ollama loaded the model with
    others: tuple[str, ...] = ()  # the other models /api/ps listed as loaded beside it

    @property
    def vram_share(self) -> float | None:
        """The part of the model Ollama put on the GPU (0 to 1); None when it gave no size."""
        return vram_share(self.size_bytes, self.size_vram_bytes)


def vram_share(size_bytes: int | None, size_vram_bytes: int | None) -> float | None:
    """`/api/ps`'s size_vram over its size: the model's share on the GPU (None without a size)."""
    return size_vram_bytes / size_bytes if size_bytes and size_vram_bytes is not None else None


def split_words(share: float | None) -> str:
    """Ollama's split as people say it: "36% GPU / 64% CPU" ("n/a" without a share)."""
    return NA if share is None else f"{100 * share:.0f}% GPU / {100 - 100 * share:.0f}% CPU"


@dataclass
class RunRecord:
    """Everything measured in one run, as the session collected it."""

    facts: ModelFacts
    mode: str
    host: str | None
    ollama_version: str | None
    started_at: str | None
    clock: TokenClock
    load_kind: str | None = None
    baseline_memory: SystemMemorySample | None = None
    baseline_process: OllamaProcessSample | None = None
    memory: Sequence[SystemMemorySample] = field(default_factory=list)
    processes: Sequence[OllamaProcessSample] = field(default_factory=list)
    ps: Sequence[PsReading] = field(default_factory=list)
    baseline_gpu: GpuSample | None = None
    gpu: Sequence[GpuSample] = field(default_factory=list)
    server: ServerTiming | None = None
    log_load: LoadRecord | None = None
    log_request: RequestTiming | None = None  # the run's request as llama-server's log timed it
    ended_at: float | None = None
    complete: bool = False
    error: str | None = None
    stalled: str | None = None  # why the stall watchdog cut this run's stream, if it did
    num_ctx: int | None = None  # the context the run asked for
    num_predict: int | None = None  # the most tokens the run asked for (None: the model decides)
    think: bool | str | None = None  # the request's `think` (None: the model's default)
    thinking_tokens: int = 0  # chunks of thought (a thinking model's `thinking` field), counted apart
    first_thought_at: float | None = None
    first_answer_at: float | None = None  # the first chunk with answer text
    phases: list[tuple[float, str]] = field(default_factory=list)  # (t, phase) as the run went through them
    power: Sequence[PowerSample] = field(default_factory=list)  # from the baseline's start to the end
    power_unavailable: dict[str, str] = field(default_factory=dict)  # why a kind ("cpu", "gpu") has no source
    gpu_unavailable: str | None = None  # why no GPU was read during the run (the collectors' reason)
    # What the server log says it served meanwhile (None: no log to tell): its access lines of
    # generating requests, and llama-server's tasks (0.30 on), over the run's time.
    served: Sequence[ServedRequest] | None = None
    tasks: Sequence[RequestTiming] = ()
    cpu: list[CpuReading] = field(default_factory=list)  # the CPU's use at the first token and at the end
    usual_tokens: int | None = None  # the model's usual answer length here (history), where num_predict is not set


def baseline_start(run: RunRecord) -> float | None:
    """When the run's baseline phase began (its idle power is measured from there to the request)."""
    return next((t for t, phase in run.phases if phase == "baseline"), None)


def energy_of(run: RunRecord, end: float, gpu_used: bool = False) -> RunEnergy:
    """The run's energy from its power samples (see energy.py for the windows); `gpu_used`: the
    model was (partly) on a GPU."""
    clock = run.clock
    generation = (
        Window(clock.first_at, clock.last_at)
        if clock.first_at is not None and clock.last_at is not None and clock.count >= 2
        else None
    )
    since = baseline_start(run)
    idle = Window(since, clock.request_at) if since is not None else None
    tokens = clock.count - 1 if clock.count >= 2 else None
    run_window = Window(clock.request_at, end)
    return run_energy(run.power, run_window, generation, idle, tokens, run.power_unavailable, gpu_used)


SPILL_BYTES = 64 * 1000 * 1000  # shared GPU memory grown by more than this during a run: the model spilled


def is_spill(shared_over_baseline: float | None) -> bool:
    """Shared GPU memory this far over its baseline is a spill (the screen, the row, a sweep's
    point, watch's warning and the report's shading all decide here)."""
    return shared_over_baseline is not None and shared_over_baseline > SPILL_BYTES


BURSTS = "tokens arrived in bursts (a buffering proxy?): the client's clock cannot time them"
ENV_FROM_LOG = "server log"
ENV_FROM_PLAN = "server log (Ollama's plan)"
ENV_FROM_PS = "/api/ps (Ollama's estimate)"


def env_from_layers(offloaded: int, total: int, overflowing: int | None = None) -> str:
    """The split as the log gives it: no layer on the GPU is CPU, every layer GPU, else CPU+GPU; and
    CPU+GPU when offloaded layers overflow (their expert weights stay in system memory)."""
    if offloaded <= 0:
        return "CPU"
    return "GPU" if offloaded >= total and not overflowing else "CPU+GPU"


def env_from_vram(size_bytes: int, size_vram_bytes: int) -> str:
    """Ollama's split as `ollama ps` reads it: no VRAM is CPU, all of it GPU, else CPU+GPU."""
    if size_vram_bytes <= 0:
        return "CPU"
    if size_vram_bytes >= size_bytes:
        return "GPU"
    return "CPU+GPU"


def steady_and_peak(
    during_generation: Sequence[int], during_run: Sequence[int], baseline: int | None
) -> tuple[int | None, int | None]:
    """(steady increase, peak increase) of a memory figure over its baseline.

    Steady is the median during generation (the model is loaded and working); when generation was
    too short for a sample, the last sample of the run. Peak is the highest sample of the run.
    """
    if baseline is None or not during_run:
        return None, None
    steady = statistics.median_low(during_generation) if during_generation else during_run[-1]
    return int(steady) - baseline, max(during_run) - baseline


def dedicated_total(sample: GpuSample) -> int | None:
    """Dedicated (or unified) memory in use on every GPU read, summed."""
    return sum_known([g.dedicated_used for g in sample.gpus])


def shared_total(sample: GpuSample) -> int | None:
    """Shared GPU memory (Windows' shared, Linux GTT) in use on every GPU read, summed."""
    return sum_known([g.shared_used for g in sample.gpus])


@dataclass(frozen=True)
class RunWindow:
    """When a run's samples count: from the request to the end for peaks, and for steady values
    while it generated, from the first token to the last (after a runner dies, its memory is gone
    before the stream says so)."""

    start: float
    end: float
    gen_start: float
    gen_end: float

    @classmethod
    def of(cls, run: RunRecord) -> RunWindow:
        clock = run.clock
        end = run.ended_at if run.ended_at is not None else float("inf")
        gen_start = clock.first_at if clock.first_at is not None else end
        return cls(clock.request_at, end, gen_start, clock.last_at if clock.last_at is not None else end)

    def deltas(self, points: Sequence[tuple[float, int | None]], baseline: int | None) -> tuple[int | None, int | None]:
        """(steady, peak) increase over `baseline` of a figure's (t, value) points; see steady_and_peak."""
        during_run = [(t, v) for t, v in points if v is not None and self.start <= t <= self.end]
        during_generation = [v for t, v in during_run if self.gen_start <= t <= self.gen_end]
        return steady_and_peak(during_generation, [v for _, v in during_run], baseline)


BASELINE_NOISE_BYTES = SPILL_BYTES  # a GPU memory delta below minus this is no figure: the baseline moved


def unsettled_baseline(vram_delta: int | None, shared_delta: int | None) -> str | None:
    """Why GPU memory deltas are not figures: one fell below the baseline by more than the noise, so
    the baseline was read while memory was still being freed (None when both are figures)."""
    fell = [
        f"{label} fell by {units.gb(-delta)}"
        for label, delta in (("dedicated", vram_delta), ("shared", shared_delta))
        if delta is not None and delta < -BASELINE_NOISE_BYTES
    ]
    if not fell:
        return None
    return f"{NA}: the baseline was not settled ({' and '.join(fell)} during the run)"


def _gpu_deltas(
    run: RunRecord, window: RunWindow, figure: Callable[[GpuSample], int | None]
) -> tuple[int | None, int | None]:
    baseline = figure(run.baseline_gpu) if run.baseline_gpu else None
    return window.deltas([(s.t, figure(s)) for s in run.gpu], baseline)


def ram_used(memory: SystemMemorySample, process: OllamaProcessSample | None) -> int:
    """RAM as llmtop counts it everywhere (the row, the gauge, the timeline, the metrics): the
    system's in-use memory plus, where the platform counts mapped files apart (Linux), the Ollama
    processes' resident file-backed memory (the mapped weights), so a model's footprint is the
    same whether its weights are mapped or copied."""
    mapped = process.file_rss_bytes if process is not None else None
    return memory.used_bytes + (mapped or 0)


def counts_mapped_apart(process: OllamaProcessSample | None) -> bool:
    """The platform reports the processes' mapped files apart from in-use memory (ram_used adds them)."""
    return process is not None and process.file_rss_bytes is not None


def ram_with_mapped(
    memory: Sequence[SystemMemorySample], processes: Sequence[OllamaProcessSample]
) -> list[tuple[float, int]]:
    """(t, ram_used) for each RAM sample, the process sample nearest in time giving the mapped
    part; [] when no process sample has that figure."""
    known = [p for p in processes if counts_mapped_apart(p)]
    if not known:
        return []
    times = [p.t for p in known]
    combined = []
    for sample in memory:
        i = bisect_right(times, sample.t)
        nearest = min((known[j] for j in (i - 1, i) if 0 <= j < len(known)), key=lambda p: abs(p.t - sample.t))
        combined.append((sample.t, ram_used(sample, nearest)))
    return combined


def _ram_deltas(run: RunRecord, window: RunWindow) -> tuple[tuple[int | None, int | None], int | None, int | None]:
    """((RAM delta, RAM peak), in-use delta, mapped delta). RAM is the system's in-use memory plus,
    where the platform counts mapped files apart (Linux), the Ollama processes' resident
    file-backed memory: the model's footprint whether its weights are mapped or copied."""
    base_in_use = run.baseline_memory.used_bytes if run.baseline_memory else None
    in_use = window.deltas([(s.t, s.used_bytes) for s in run.memory], base_in_use)
    base_mapped = run.baseline_process.file_rss_bytes if run.baseline_process else None
    mapped_delta, _ = window.deltas([(s.t, s.file_rss_bytes) for s in run.processes], base_mapped)
    if run.baseline_memory is None or not counts_mapped_apart(run.baseline_process):
        return in_use, in_use[0], None
    combined = ram_with_mapped(
        [s for s in run.memory if window.start <= s.t <= window.end],
        [s for s in run.processes if window.start <= s.t <= window.end],
    )
    if not combined:
        return in_use, in_use[0], None
    return window.deltas(combined, ram_used(run.baseline_memory, run.baseline_process)), in_use[0], mapped_delta


def run_context(run: RunRecord, last_ps: PsReading | None) -> tuple[int | None, str | None]:
    """(the context of the run's request, where it comes from): what the run asked for, else what
    `/api/ps` reports, else what the server log says; and whether it is Ollama's VRAM-based default
    (when the log has Ollama's start-up line that says so) or Ollama's choice for a request that set none."""
    load = run.log_load
    if run.num_ctx is not None:
        return run.num_ctx, "asked for (--num-ctx)"
    context = (last_ps.context_length if last_ps else None) or (load.context if load else None)
    if context is None:
        return None, None
    source = "/api/ps" if last_ps is not None and last_ps.context_length else "server log"
    if load is not None and load.default_context == context:
        return context, f"Ollama's VRAM-based default ({source})"
    return context, f"Ollama's choice: the request set none ({source})"


RATES_AGREE = 0.01  # the API's eval rate and the log's, made the same way, agree to rounding


def rates_disagree(api_tps: float | None, log_tps: float | None) -> str | None:
    """A sentence when the server log's eval rate for the request is not the API's (beyond 1%),
    which says the log's request may not be this run's; None when they agree or one is missing."""
    if not api_tps or not log_tps or abs(log_tps - api_tps) <= RATES_AGREE * api_tps:
        return None
    return (
        f"the server log's eval rate ({log_tps:.2f} tokens/s) is not the API's ({api_tps:.2f}): "
        "the log's request may be another client's"
    )


def gpu_note(run: RunRecord, figure: str) -> str | None:
    """Why the run has no `figure` ("dedicated" or "shared") reading, in the screen's words: no GPU
    read and the collectors' reason, or each GPU's own reason for the figure. None when it was read."""
    samples = list(run.gpu) + ([run.baseline_gpu] if run.baseline_gpu else [])
    gpus = [g for sample in samples for g in sample.gpus]
    if not gpus:
        return f"{words.NO_GPU_READ} ({run.gpu_unavailable})" if run.gpu_unavailable else words.NO_GPU_READ
    if any(getattr(g, f"{figure}_used") is not None for g in gpus):
        return None
    reasons = {g.name: g.reason(figure) for g in gpus}
    return "; ".join(f"{name}: {why}" for name, why in reasons.items())


def others_served(run: RunRecord, end: float) -> tuple[int | None, str | None]:
    """(how many requests of other apps the server worked on during the run, what the log showed of
    them); (None, None) without a log. The run's own request is the generate whose access line fits
    its time best; llama-server's tasks count too (they show a request that was still running)."""
    if run.served is None:
        return None, None
    start = run.clock.request_at
    overlapping = [r for r in run.served if r.generating and r.overlaps(start, end)]
    candidates = [r for r in overlapping if r.path == "/api/generate"]
    own = min(candidates, key=lambda r: abs(r.ended - end) + abs(r.began - start), default=None)
    others = [r for r in overlapping if r is not own]
    tasks = [q for q in run.tasks if start <= q.first_seen <= end]
    count = max(len(others), len(tasks) - 1)
    if count <= 0:
        return 0, None
    seen = "; ".join(r.describe() for r in others[:3]) or f"{len(tasks)} llama-server tasks"
    return count, (
        f"{count} other request(s) were served while this run ran ({seen}; server log): its tokens/s is not "
        "this model's alone"
    )


def clock_limits_while_generating(run: RunRecord) -> tuple[str, ...]:
    """What held any GPU's clock down in the samples from the first token on, each once."""
    first = run.clock.first_at
    if first is None:
        return ()
    limits = (limit for s in run.gpu if s.t >= first for gpu in s.gpus for limit in gpu.clock_limits)
    return tuple(dict.fromkeys(limits))


VRAM_FROM_COUNTER = "counter"
VRAM_FROM_LOG = "server log"
VRAM_FROM_PS = "/api/ps"


def vram_source(counted: int | None, engine: int | None, ps_vram: int | None, counter_read: bool = False) -> str | None:
    """Where a run's VRAM figure comes from: a GPU's memory counter (its delta over the baseline), else,
    where no counter read the GPU at all, the engine's own buffers on the GPU from the server log, else
    Ollama's /api/ps size_vram (its estimate); None where none of them says, or where a counter read the
    GPU but its delta is n/a (an unsettled baseline: the row says why)."""
    if counted is not None:
        return VRAM_FROM_COUNTER
    if counter_read:
        return None
    if engine is not None:
        return VRAM_FROM_LOG
    if ps_vram:
        return VRAM_FROM_PS
    return None


def vram_cross_check(counted: int | None, engine: int | None, ps_vram: int | None) -> str | None:
    """Beside a counter's VRAM, what the engine's buffers and Ollama's /api/ps say of the same memory
    (each a check on the other: a counter that reads more also counts other programs' use and the
    driver's own); None without a counter or without either of them."""
    if counted is None or (engine is None and not ps_vram):
        return None
    said = []
    if engine is not None:
        said.append(f"the engine's buffers on the GPU {units.human_bytes(engine)} (server log)")
    if ps_vram:
        said.append(f"/api/ps size_vram {units.human_bytes(ps_vram)}")
    return f"beside the counter's {units.human_bytes(counted)}: " + ", ".join(said)


def summarize(run: RunRecord) -> SummaryRow:
    """Build the summary row of a run, complete or not, from its figures by kind: what ran, where the
    model was placed, the timing, the memory, the GPUs, the energy, what else the machine did, and a
    thinking model's thought."""
    window = RunWindow.of(run)
    end = window.end if window.end != float("inf") else run.clock.request_at
    last_ps = run.ps[-1] if run.ps else None
    placement = _placement(run, last_ps)
    return SummaryRow(
        **_identity(run),
        **placement,
        **_timing(run),
        **_memory(run, window),
        **_gpu(run, window, last_ps, placement["memory_parts"]),
        **_energy(run, end, placement["env"]),
        **_sharing(run, end),
        **_thinking(run),
    )


def _identity(run: RunRecord) -> dict[str, Any]:
    """What ran: the model, the mode, the server, and how the run ended."""
    load = run.log_load
    error = run.error
    if error and load is not None and load.error and load.error not in error:
        error = f"{error} (server log: {load.error})"
    facts = run.facts
    return {
        "model": facts.name,
        "parameter_size": facts.parameter_size,
        "experts": facts.experts_text,
        "quantization": facts.quantization,
        "size_bytes": facts.size_bytes,
        "ollama_version": run.ollama_version,
        "complete": run.complete,
        "error": error,
        "mode": run.mode,
        "load_kind": run.load_kind,
        "host": run.host,
        "started_at": run.started_at,
        "num_predict": run.num_predict,
    }


def _placement(run: RunRecord, last_ps: PsReading | None) -> dict[str, Any]:
    """Where the model went: the layers on the GPU (the log's count, else /api/ps's share), the context,
    why the split is what it is, and what the load ran with, its memory by part."""
    load = run.log_load
    layers_offloaded = load.layers_offloaded if load else None
    layers_total = (load.layers_total if load else None) or run.facts.layers_total
    overflowing = load.layers_overflowing if load else None
    if layers_offloaded is not None and layers_total:
        env: str | None = env_from_layers(layers_offloaded, layers_total, overflowing)
        env_source: str | None = ENV_FROM_PLAN if load and load.estimate_only else ENV_FROM_LOG
    elif last_ps is not None:
        env, env_source = env_from_vram(last_ps.size_bytes, last_ps.size_vram_bytes), ENV_FROM_PS
    else:
        env = env_source = None
    context, context_note = run_context(run, last_ps)
    return {
        "env": env,
        "env_source": env_source,
        "layers_offloaded": layers_offloaded,
        "layers_total": layers_total,
        "layers_overflowing": overflowing,
        "library": load.library if load else None,
        "context": context,
        "context_note": context_note,
        "split_reason": split_reason(load) if load else None,
        "settings": settings_in_effect(load, dict(run.processes[-1].runner_env) if run.processes else {}),
        "memory_parts": memory_parts(load),
        "ps_size_bytes": last_ps.size_bytes if last_ps else None,
        "ps_size_vram_bytes": last_ps.size_vram_bytes if last_ps else None,
    }


def _timing(run: RunRecord) -> dict[str, Any]:
    """The rates and times: the server's (its final chunk), the client's clock (none where the tokens
    came in bursts) and the server log's, and the prompt's cache."""
    clock, server, request = run.clock, run.server, run.log_request
    bursts = clock.in_bursts()
    eval_rate = server.eval_rate_tps if server else None
    log_tps = request.eval_tps if request else None
    return {
        "eval_rate_tps": eval_rate,
        "client_rate_tps": None if bursts else clock.client_rate_tps,
        "client_rate_note": BURSTS if bursts else None,
        "token_marks": () if bursts else clock.marks(),
        "prompt_rate_tps": server.prompt_rate_tps if server else None,
        "ttft_s": clock.ttft_s,
        "load_s": server.load_s if server else None,
        "eval_count": server.eval_count if server else None,
        "prompt_eval_count": server.prompt_eval_count if server else None,
        "done_reason": server.done_reason if server else None,
        "log_eval_tps": log_tps,
        "log_eval_note": rates_disagree(eval_rate, log_tps),
        "prompt_tokens_total": request.prompt_total if request else None,
        "prompt_cached_tokens": request.prompt_cached if request else None,
    }


def _memory(run: RunRecord, window: RunWindow) -> dict[str, Any]:
    """System memory over the baseline: RAM (and its two parts where mapped files count apart), the
    Ollama processes' resident memory, and swap."""
    (ram_delta, ram_peak), in_use_delta, mapped_delta = _ram_deltas(run, window)
    baseline_rss = run.baseline_process.rss_bytes if run.baseline_process else None
    baseline_swap = run.baseline_memory.swap_used_bytes if run.baseline_memory else None
    return {
        "ram_delta_bytes": ram_delta,
        "ram_peak_bytes": ram_peak,
        "ram_in_use_delta_bytes": in_use_delta,
        "ram_mapped_delta_bytes": mapped_delta,
        "ollama_rss_delta_bytes": window.deltas([(s.t, s.rss_bytes) for s in run.processes], baseline_rss)[0],
        "swap_delta_bytes": window.deltas([(s.t, s.swap_used_bytes) for s in run.memory], baseline_swap)[0],
    }


def _gpu(run: RunRecord, window: RunWindow, last_ps: PsReading | None, parts: Sequence[MemoryPart]) -> dict[str, Any]:
    """GPU memory over the baseline, dedicated and shared (none below an unsettled baseline, with why),
    the engine's own buffers and where the VRAM figure comes from, the GPUs and their clocks."""
    vram_delta, vram_peak = _gpu_deltas(run, window, dedicated_total)
    shared_delta, shared_peak = _gpu_deltas(run, window, shared_total)
    baseline_note = unsettled_baseline(vram_delta, shared_delta)
    if vram_delta is not None and vram_delta < -BASELINE_NOISE_BYTES:
        vram_delta = vram_peak = None
    if shared_delta is not None and shared_delta < -BASELINE_NOISE_BYTES:
        shared_delta = shared_peak = None
    load = run.log_load
    read = run.baseline_gpu.gpus if run.baseline_gpu else (run.gpu[-1].gpus if run.gpu else ())
    named = tuple(load.gpus) if load and load.library not in (None, "cpu") else ()
    on_gpus = [p.bytes for p in parts if p.on_gpu]
    engine = sum(on_gpus) if on_gpus else None
    ps_vram = last_ps.size_vram_bytes if last_ps else None
    return {
        "vram_delta_bytes": vram_delta,
        "shared_delta_bytes": shared_delta,
        "vram_peak_bytes": vram_peak,
        "shared_peak_bytes": shared_peak,
        "gpus": tuple(g.name for g in read) or named,
        "gpu_clock_limits": clock_limits_while_generating(run),
        "gpu_baseline_note": baseline_note,
        "vram_note": gpu_note(run, "dedicated") if vram_delta is None and not baseline_note else None,
        "shared_note": gpu_note(run, "shared") if shared_delta is None and not baseline_note else None,
        "vram_engine_bytes": engine,
        "vram_source": vram_source(vram_delta, engine, ps_vram, gpu_note(run, "dedicated") is None),
        "vram_cross_note": vram_cross_check(vram_delta, engine, ps_vram),
    }


def _energy(run: RunRecord, end: float, env: str | None) -> dict[str, Any]:
    """The run's energy (energy.py), with a GPU's share where the model was (partly) on one."""
    energy = energy_of(run, end, env in ("GPU", "CPU+GPU"))
    return {
        "energy_j": energy.energy_j,
        "energy_generation_j": energy.energy_generation_j,
        "joules_per_token": energy.joules_per_token,
        "tokens_per_joule": energy.tokens_per_joule,
        "generation_power_w": energy.generation_w,
        "idle_power_w": energy.idle_w,
        "power_sources": energy.sources,
        "energy_note": energy.note,
    }


def _sharing(run: RunRecord, end: float) -> dict[str, Any]:
    """What else the machine did meanwhile: other apps' requests to the server, other models loaded,
    other processes on the CPU and its clock."""
    concurrent, concurrent_note = others_served(run, end)
    cpu = cpu_use(run.cpu[0], run.cpu[-1]) if len(run.cpu) >= 2 else None
    return {
        "concurrent_requests": concurrent,
        "concurrent_note": concurrent_note,
        "other_models": tuple(dict.fromkeys(name for reading in run.ps for name in reading.others)),
        "other_cpu_cores": round(cpu.others_cores, 3) if cpu else None,
        "ollama_cpu_cores": round(cpu.ollama_cores, 3) if cpu and cpu.ollama_cores is not None else None,
        "cpu_clock_mhz": cpu.clock_mhz if cpu else None,
        "cpu_clock_max_mhz": cpu.clock_max_mhz if cpu else None,
    }


def _thinking(run: RunRecord) -> dict[str, Any]:
    """The row's thinking fields: tokens of thought and of answer (client side), and the time from
    the request to the first of each; none for a run that had no thought and asked for none."""
    if not run.thinking_tokens and run.think is None:
        return {}
    start = run.clock.request_at
    return {
        "think": run.think,
        "thinking_tokens": run.thinking_tokens,
        "answer_tokens": run.clock.count - run.thinking_tokens,
        "ttft_thought_s": run.first_thought_at - start if run.first_thought_at is not None else None,
        "ttft_answer_s": run.first_answer_at - start if run.first_answer_at is not None else None,
    }
