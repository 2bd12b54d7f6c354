"""One run as exported: the summary row, its JSON and what its figures say in words.

Pure: no I/O, no Textual. Every figure is None when it was not measured; nothing is estimated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from llmtop import units
from llmtop.measure.energy import SourceEnergy
from llmtop.measure.load_parts import MemoryPart


@dataclass(frozen=True)
class SummaryRow:
    """One run, as exported (figures.py says what each figure is; STABLE_KEYS there, the keys
    every export carries)."""

    model: str
    parameter_size: str | None
    quantization: str | None
    size_bytes: int | None
    env: str | None
    eval_rate_tps: float | None
    client_rate_tps: float | None
    prompt_rate_tps: float | None
    ttft_s: float | None
    load_s: float | None
    ram_delta_bytes: int | None
    ram_peak_bytes: int | None
    vram_delta_bytes: int | None
    shared_delta_bytes: int | None
    layers_offloaded: int | None
    layers_total: int | None
    ollama_version: str | None
    complete: bool
    # Energy (energy.py): summed over the power sources read, each apart in `power_sources`.
    energy_j: float | None = None  # from the request to the end of the run
    energy_generation_j: float | None = None  # from the first token to the last
    joules_per_token: float | None = None  # energy_generation_j over the tokens after the first
    power_sources: tuple[SourceEnergy, ...] = ()
    # Beyond the stable keys: context for reading the figures above.
    mode: str = "auto"
    load_kind: str | None = None  # "cold": the model was not loaded when the request went; "warm": it was
    env_source: str | None = None
    library: str | None = None
    gpus: tuple[str, ...] = ()
    vram_peak_bytes: int | None = None
    shared_peak_bytes: int | None = None
    host: str | None = None
    started_at: str | None = None
    eval_count: int | None = None
    prompt_eval_count: int | None = None
    done_reason: str | None = None
    ollama_rss_delta_bytes: int | None = None
    # RAM's two parts where the platform counts mapped files apart (Linux): the system's in-use
    # memory, and the Ollama processes' resident file-backed memory (the mapped weights).
    ram_in_use_delta_bytes: int | None = None
    ram_mapped_delta_bytes: int | None = None
    client_rate_note: str | None = None  # why client_rate_tps is null when tokens were streamed
    log_eval_tps: float | None = None  # the server log's eval tokens / eval time for this request
    log_eval_note: str | None = None  # set when log_eval_tps and eval_rate_tps disagree beyond rounding
    layers_overflowing: int | None = None  # offloaded layers whose expert weights stay in system memory
    context: int | None = None  # the context of this run's request, in tokens
    context_note: str | None = None  # where `context` comes from
    split_reason: str | None = None  # why the layers landed where they did, from the log's numbers
    ps_size_bytes: int | None = None
    ps_size_vram_bytes: int | None = None
    tokens_per_joule: float | None = None
    generation_power_w: float | None = None  # mean power while generating
    idle_power_w: float | None = None  # mean power over the baseline: the machine's share
    energy_note: str | None = None  # what the sums leave out, or why they are null
    error: str | None = None
    gpu_baseline_note: str | None = None  # why a GPU memory delta is null: it fell below an unsettled baseline
    vram_note: str | None = None  # why vram_delta_bytes is null where no GPU (or none of its figures) was read
    shared_note: str | None = None  # the same for shared_delta_bytes
    # Requests of other apps the server worked on while this run ran (0: none; None: no log to tell):
    # such a run's tokens/s is not the model's alone, and comparisons leave it out.
    concurrent_requests: int | None = None
    concurrent_note: str | None = None
    # What the load ran with and where its memory went, by part, from the log (load_parts.py).
    settings: dict[str, str] = field(default_factory=dict, hash=False)
    memory_parts: tuple[MemoryPart, ...] = ()
    experts: str | None = None  # a mixture of experts: `MoE, 2 of 8 experts` (/api/show)
    num_predict: int | None = None  # the most tokens the run asked for (None: the model decides)
    # A thinking model's run: the request's think, its tokens of thought and of answer as the client
    # counted them (eval_count holds both), and the time to the first of each; None: no thought came
    # and none was asked for.
    think: bool | str | None = None
    thinking_tokens: int | None = None
    answer_tokens: int | None = None
    ttft_thought_s: float | None = None
    ttft_answer_s: float | None = None
    # Slower than this model in this mode usually is on this machine, with the likely causes (usual.py).
    slow_note: str | None = None
    # llama-server's prompt cache (Ollama 0.30 on, from its log): the prompt's tokens, and those its
    # slot found cached from an earlier request (a warm prompt: only the rest was read).
    prompt_tokens_total: int | None = None
    prompt_cached_tokens: int | None = None
    other_models: tuple[str, ...] = ()  # other models Ollama had loaded while this run ran (/api/ps)
    swap_delta_bytes: int | None = None  # swap in use during generation over the baseline's (median)
    # (count, seconds from the first token to the count-th) at 8, 12, 16, 24 ... tokens and the last, on
    # the client's clock (token_timing.token_marks): runs of different lengths compared over the same
    # first tokens; () where the client's clock could not time the stream.
    token_marks: tuple[tuple[int, float], ...] = ()
    # The CPU while generating (first token to end; cpu_load.py): cores other processes kept busy (not
    # Ollama's, not llmtop's), Ollama's, and the clock at the end against its maximum; None: not read.
    other_cpu_cores: float | None = None
    ollama_cpu_cores: float | None = None
    cpu_clock_mhz: float | None = None
    cpu_clock_max_mhz: float | None = None
    gpu_clock_limits: tuple[str, ...] = ()  # what held a GPU's clock down while generating (NVML)
    # The engine's own buffers on its GPUs (weights + KV cache + compute, per its server-log lines), and
    # where the row's VRAM figure comes from: a GPU's memory counter, else these buffers, else /api/ps.
    vram_engine_bytes: int | None = None
    vram_source: str | None = None
    vram_cross_note: str | None = None  # beside a counter's VRAM: the engine's buffers and /api/ps size_vram
    # The run held to its limit: the tokens/s its split allows (each side's bytes over that side's
    # bandwidth, measure/forecast.py), the share of it the run reached, and the sentence that says so.
    limit_tps: float | None = None
    limit_share: float | None = None
    limit_note: str | None = None

    @property
    def thinking_text(self) -> str:
        """`42 thinking + 18 answer tokens, first thought 0.41 s, answer 3.2 s` ('' for a run without
        thinking)."""
        if self.thinking_tokens is None:
            return ""
        parts = [f"{self.thinking_tokens} thinking + {self.answer_tokens or 0} answer tokens"]
        if self.ttft_thought_s is not None:
            parts.append(f"first thought {units.seconds(self.ttft_thought_s)}")
        if self.ttft_answer_s is not None:
            parts.append(f"answer {units.seconds(self.ttft_answer_s)}")
        return ", ".join(parts)

    @property
    def tokens_text(self) -> str:
        """`64 tokens`, `64 tokens (of 64 asked)` or, where the model ended its answer sooner, `40 of 64
        tokens: ended at the model's end of text` ('' where the count is not known)."""
        if self.eval_count is None:
            return ""
        if self.ended_early:
            return f"{self.eval_count} of {self.num_predict} tokens: ended at the model's end of text"
        return f"{self.eval_count} tokens" + (f" (of {self.num_predict} asked)" if self.num_predict else "")

    @property
    def ended_early(self) -> bool:
        """The model ended its answer (end of text) before the tokens the run asked for."""
        return (
            self.num_predict is not None
            and self.done_reason == "stop"
            and self.eval_count is not None
            and self.eval_count < self.num_predict
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping: the stable keys first, then the context keys."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SummaryRow:
        """A row from its JSON (history, recordings); keys a newer or older llmtop wrote are dropped
        or defaulted."""
        data = {k: v for k, v in values.items() if k in _ROW_FIELDS}
        data["gpus"] = tuple(data.get("gpus") or ())
        data["other_models"] = tuple(data.get("other_models") or ())
        data["gpu_clock_limits"] = tuple(data.get("gpu_clock_limits") or ())
        data["token_marks"] = tuple(
            (int(m[0]), float(m[1])) for m in data.get("token_marks") or () if isinstance(m, Sequence) and len(m) == 2
        )
        source_fields = {f.name for f in fields(SourceEnergy)}
        data["power_sources"] = tuple(
            SourceEnergy(**{k: v for k, v in s.items() if k in source_fields})
            for s in data.get("power_sources") or ()
            if isinstance(s, Mapping)
        )
        settings = data.get("settings")
        data["settings"] = {str(k): str(v) for k, v in settings.items()} if isinstance(settings, Mapping) else {}
        data["memory_parts"] = tuple(
            MemoryPart.from_dict(p) for p in data.get("memory_parts") or () if isinstance(p, Mapping)
        )
        return cls(**data)


_ROW_FIELDS = frozenset(f.name for f in fields(SummaryRow))
