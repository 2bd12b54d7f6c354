"""Every figure llmtop reports, defined once.

A figure has its column header in English and Japanese, the JSON keys it stands for, the sentence
that says how it is measured, and how a cell shows it in the per-run table and in the compared
table. The screen's and the Markdown tables, the Japanese headers, the JSON's stable keys, the
"the numbers" part of `--help` and docs/figures.md's measurement table are all made from FIGURES
(the tables' columns in llmtop.tables)
(tests/test_figures.py holds that page to it). Adding a figure is one entry here, plus the
collector that measures it.

Pure: no I/O, no Textual.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from llmtop import units
from llmtop.measure.comparison import Comparison
from llmtop.measure.intervals import ratio_text
from llmtop.measure.mode import Mode
from llmtop.measure.summary import VRAM_FROM_LOG, VRAM_FROM_PS
from llmtop.measure.summary_row import SummaryRow
from llmtop.measure.verdicts import RAN_ALIKE
from llmtop.units import NA

UNKNOWN = NA  # the figures' word for a value not read


@dataclass(frozen=True)
class Figure:
    """One figure: `run` and `compared` give its cell in each table (None: not in that table)."""

    name: str
    keys: tuple[str, ...]
    how: str
    ja: str | None = None
    run: Callable[[SummaryRow], str] | None = None
    compared: Callable[[Comparison], str] | None = None
    right: bool = True  # numbers are right-aligned
    stable: tuple[str, ...] = ()  # the keys promised to users of the JSON export
    on_screen_compared: bool = True  # the screen's compared table leaves out what its run table shows


def or_unknown(text: str) -> str:
    """`text`, or the word for a figure not read where it is empty."""
    return text if text else UNKNOWN


def gb_cell(value: float | None) -> str:
    """Bytes as a cell: GB, or the word for a figure not read."""
    return or_unknown(units.gb(None if value is None else int(value)))


OVERFLOWING = "overflowing: their experts in system memory"
SHARED_SERVER = " (shared server)"  # a run's tps while the server also worked for another app


def _layers(row: SummaryRow) -> str:
    if row.layers_offloaded is None:
        return UNKNOWN
    layers = f"{row.layers_offloaded}/{row.layers_total}"
    return f"{layers} ({row.layers_overflowing} {OVERFLOWING})" if row.layers_overflowing else layers


def _model(row: SummaryRow) -> str:
    return f"{row.model} ({row.experts})" if row.experts else row.model


def joules_per_token_cell(value: float | None) -> str:
    """Joules a token as a cell."""
    return "" if value is None else f"{value:.3g}"


def _context(row: SummaryRow) -> str:
    if row.context is None:
        return UNKNOWN
    return f"{row.context} (default)" if row.context_note and "default" in row.context_note else str(row.context)


def _tps(c: Comparison) -> str:
    mean, sd = c.tps, c.tps_stdev
    if mean is None and c.shared_tps is not None:  # every run shared the server: their rate, marked
        return f"{c.shared_tps:.2f}{SHARED_SERVER}"
    if mean is None:
        return UNKNOWN
    return f"{mean:.2f} ± {sd:.2f}" if sd is not None else f"{mean:.2f}"


def _gpu(row: SummaryRow) -> str:
    """`vulkan: llvmpipe (LLVM 15.0.6, 256 bits)`, `cpu`, or n/a where the log did not say."""
    if row.library is None:
        return ", ".join(row.gpus) or UNKNOWN
    if row.library == "cpu" or not row.gpus:
        return row.library
    return f"{row.library}: {', '.join(row.gpus)}"


def _vram(row: SummaryRow) -> str:
    """The counter's delta; else the engine's buffers on the GPU `(log)`; else /api/ps size_vram `(ps)`."""
    if row.vram_source == VRAM_FROM_LOG:
        return f"{gb_cell(row.vram_engine_bytes)} (log)"
    if row.vram_source == VRAM_FROM_PS:
        return f"{gb_cell(row.ps_size_vram_bytes)} (ps)"
    return gb_cell(row.vram_delta_bytes)


def _vram_compared(c: Comparison) -> str:
    counted = c.mean(lambda r: r.vram_delta_bytes)
    if counted is not None:
        return gb_cell(counted)
    engine = c.mean(lambda r: r.vram_engine_bytes)
    if engine is not None:
        return f"{gb_cell(engine)} (log)"
    ps = c.mean(lambda r: r.ps_size_vram_bytes if r.vram_source == VRAM_FROM_PS else None)
    return f"{gb_cell(ps)} (ps)" if ps is not None else UNKNOWN


def _speedup(c: Comparison) -> str:
    """`1.33x`, with its 95% interval where both sides were repeated: `1.33x (1.21-1.46x)`; `ran alike`
    where every run of the mode and of `cpu` had the same placement (no speed-up to name)."""
    if c.alike is not None:
        return RAN_ALIKE
    return UNKNOWN if c.speedup is None else ratio_text(c.speedup, c.speedup_interval)


def _first(get: Callable[[SummaryRow], Any]) -> Callable[[Comparison], str]:
    return lambda c: str(get(c.first) or UNKNOWN)


def _usual(get: Callable[[SummaryRow], Any]) -> Callable[[Comparison], str]:
    """The group's most common value."""
    return lambda c: str(c.most_common(get) or UNKNOWN)


def _meangb_cell(get: Callable[[SummaryRow], int | None]) -> Callable[[Comparison], str]:
    return lambda c: gb_cell(c.mean(get))


FIGURES: tuple[Figure, ...] = (
    Figure(
        "model",
        ("model", "experts"),
        "the name asked for, as Ollama accepts it; a mixture of experts is marked with the experts a token "
        "uses of those each layer has (`/api/show`'s `expert_used_count` and `expert_count`): `(MoE, 2 of 8 "
        "experts)`",
        ja="モデル",
        run=lambda r: _model(r),
        compared=lambda c: _model(c.first),
        right=False,
        stable=("model",),
    ),
    Figure(
        "params",
        ("parameter_size",),
        "`/api/show` `details.parameter_size`",
        ja="パラ数",
        run=lambda r: r.parameter_size or UNKNOWN,
        compared=_first(lambda r: r.parameter_size),
        stable=("parameter_size",),
    ),
    Figure(
        "quant",
        ("quantization",),
        "`/api/show` `details.quantization_level`",
        ja="量子化",
        run=lambda r: r.quantization or UNKNOWN,
        compared=_first(lambda r: r.quantization),
        right=False,
        stable=("quantization",),
    ),
    Figure(
        "size",
        ("size_bytes",),
        "the model's file size from `/api/tags` (GB are 10^9 bytes, as `ollama list` prints them)",
        ja="サイズ",
        run=lambda r: gb_cell(r.size_bytes),
        compared=lambda c: gb_cell(c.first.size_bytes),
        stable=("size_bytes",),
    ),
    Figure(
        "env",
        ("env", "env_source"),
        "from the layers in the log: none on the GPU is CPU, all is GPU, otherwise CPU+GPU; without the log, "
        "from `/api/ps` while the model is loaded (`size_vram` zero, all of `size`, or partial), and "
        "`env_source` says which",
        ja="環境",
        run=lambda r: r.env or UNKNOWN,
        compared=_usual(lambda r: r.env),
        right=False,
        stable=("env",),
    ),
    Figure(
        "mode",
        ("mode",),
        "what the run asked Ollama for: `cpu` (`num_gpu` 0), `auto` (Ollama decides) or `gpu=N` (N layers), "
        "with `:ctx=N` where the plan varied the context (`--modes auto:ctx=4096,auto:ctx=32768`), then the "
        "server settings it asked of the `ollama serve` llmtop started (`auto:kv=q8_0:fa=on`, shown as `auto, KV "
        "q8_0, FA on`)",
        ja="モード",
        run=lambda r: Mode.of(r.mode).label,
        compared=lambda c: Mode.of(c.mode).label,
        right=False,
    ),
    Figure(
        "ctx",
        ("context", "context_note"),
        "the context of the run's request in tokens: `--num-ctx` (or the mode's `:ctx=N`) where asked, else "
        "`/api/ps` `context_length`, else the server log (llama-server's per-request `n_ctx_seq`, or `-c` over "
        "`-np`); `(default)` and `context_note` say when it is Ollama's VRAM-based default",
        ja="コンテキスト",
        run=_context,
        compared=_usual(lambda r: _context(r) if r.context is not None else None),
    ),
    Figure(
        "GPU layers",
        ("layers_offloaded", "layers_total", "layers_overflowing"),
        "from the server log: the first model load after the request, `offloaded 27/81 layers to GPU`; 0 of "
        "`n_layer` + 1 where every model buffer is in host memory (a CPU-only build prints no `offloaded` line); "
        "Ollama's plan where that is all the log has; `(14 overflowing)` where the fit's plan keeps the expert "
        "weights of offloaded layers in system memory (env is then CPU+GPU)",
        ja="GPU層",
        run=_layers,
        compared=_usual(lambda r: _layers(r) if r.layers_offloaded is not None else None),
        stable=("layers_offloaded", "layers_total"),
    ),
    Figure(
        "tps",
        ("eval_rate_tps", "concurrent_requests", "concurrent_note"),
        'the server\'s `eval_count / eval_duration` from the final chunk: the "eval rate" `ollama run --verbose` '
        "prints; compared, the mean ± the sample standard deviation over the runs. A run during which the server "
        "also worked on another app's request (its log's access lines, llama-server's tasks) is marked "
        "`(shared server)`, counted in `concurrent_requests` and said in `concurrent_note`, and left out of the "
        "comparisons; `concurrent_requests` is `null` without a server log",
        ja="tps",
        run=lambda r: or_unknown(units.rate(r.eval_rate_tps)) + (SHARED_SERVER if r.concurrent_requests else ""),
        compared=_tps,
        stable=("eval_rate_tps",),
    ),
    Figure(
        "speed-up",
        ("speedup_vs_cpu", "speedup_low", "speedup_high"),
        "a mode's mean tps over the mean tps of `cpu` for the same model (in the JSON's `comparison`), with "
        "its 95% interval where both were repeated (`1.33x (1.21-1.46x)`; `speedup_low`, `speedup_high`): "
        "an interval that holds 1.00x is no difference; `ran alike` (JSON `ran_alike`, speed-up null) where "
        "every run of both had the same placement (env, layers on each device): the mode changed nothing",
        ja="速度比",
        compared=_speedup,
    ),
    Figure(
        "RAM",
        ("ram_delta_bytes", "ram_in_use_delta_bytes", "ram_mapped_delta_bytes"),
        "the model's footprint in system RAM, whether its weights are mapped or copied: RAM in use (as each "
        'platform counts it: see "RAM, per platform" in docs/measurement.md) during generation (first token to last), '
        "median of the samples, minus the baseline; on Linux its two parts beside it, each minus its baseline: "
        "the system's in-use memory and the Ollama processes' mapped files (`null` elsewhere)",
        ja="RAM",
        run=lambda r: gb_cell(r.ram_delta_bytes),
        compared=_meangb_cell(lambda r: r.ram_delta_bytes),
        stable=("ram_delta_bytes",),
    ),
    Figure(
        "VRAM",
        ("vram_delta_bytes", "vram_peak_bytes", "gpu_baseline_note", "vram_note", "vram_engine_bytes", "vram_source"),
        "dedicated GPU memory in use (summed over the GPUs read; unified memory on Apple Silicon) during "
        "generation, median, minus the baseline; `vram_peak_bytes` the highest minus it. The baseline waits "
        "until GPU memory is steady; a fall below it of more than 64 MB is `null`, `gpu_baseline_note` saying "
        "the baseline was not settled; where no GPU was read, `vram_note` says why, in the screen's words. "
        "Where no counter reads the GPU (a Vulkan-only GPU, a software one), the engine's own buffers on it from "
        "the server log (weights + KV cache + compute: `vram_engine_bytes`, kept beside a counter's figure too), "
        "marked `(log)`, else `/api/ps` size_vram, marked `(ps)`; `vram_source` says which",
        ja="VRAM",
        run=lambda r: _vram(r),
        compared=lambda c: _vram_compared(c),
        stable=("vram_delta_bytes",),
    ),
    Figure(
        "shared",
        ("shared_delta_bytes", "shared_peak_bytes", "shared_note"),
        "shared GPU memory (Windows' shared GPU memory, GTT on Linux AMD) the same way, `shared_peak_bytes` "
        "beside it: the part of the model that spilled out of VRAM; `null` where the platform has no such "
        "figure (NVIDIA on Linux, Apple), `shared_note` saying why",
        ja="共有GPUメモリ",
        run=lambda r: gb_cell(r.shared_delta_bytes),
        compared=_meangb_cell(lambda r: r.shared_delta_bytes),
        stable=("shared_delta_bytes",),
    ),
    Figure(
        "TTFT",
        ("ttft_s",),
        "client clock: request sent to first token received (the kernel's receive time on Linux), so it includes "
        "the model load",
        run=lambda r: or_unknown(units.seconds(r.ttft_s)),
        compared=lambda c: or_unknown(units.seconds(c.mean(lambda r: r.ttft_s))),
        stable=("ttft_s",),
        on_screen_compared=False,
    ),
    Figure(
        "prompt tps",
        ("prompt_rate_tps",),
        "the server's `prompt_eval_count / prompt_eval_duration`",
        ja="プロンプトtps",
        run=lambda r: or_unknown(units.rate(r.prompt_rate_tps)),
        compared=lambda c: or_unknown(units.rate(c.mean(lambda r: r.prompt_rate_tps))),
        stable=("prompt_rate_tps",),
        on_screen_compared=False,
    ),
    Figure(
        "client tps",
        ("client_rate_tps", "client_rate_note"),
        "client clock: (tokens - 1) / (last token time - first token time); the live chart is the same over a "
        "2 s window. The stream is read at most 10 times a second: a token read with others is timed within "
        "0.1 s of its arrival, a token read alone (under 10 tokens/s) and the first one as it arrived; `null`, "
        "with `client_rate_note` saying why, when the tokens arrived in bursts (all at once, or, of 9 "
        "tokens or more, 8 or more to a delivery on average, tokens under 0.5 ms apart being one delivery: "
        "as a buffering proxy hands them on)",
        ja="実測tps",
        run=lambda r: or_unknown(units.rate(r.client_rate_tps)),
        compared=lambda c: or_unknown(units.rate(c.mean(lambda r: r.client_rate_tps))),
        stable=("client_rate_tps",),
        on_screen_compared=False,
    ),
    Figure(
        "load",
        ("load_s",),
        "the server's `load_duration`; `(warm)` where the model was already loaded",
        ja="ロード",
        run=lambda r: or_unknown(units.seconds(r.load_s)),
        compared=lambda c: (
            or_unknown(units.seconds(c.mean(lambda r: r.load_s))) + (" (warm)" if c.load_kind == "warm" else "")
        ),
        stable=("load_s",),
        on_screen_compared=False,
    ),
    Figure(
        "peak RAM",
        ("ram_peak_bytes",),
        "the highest RAM sample of the run minus the baseline",
        ja="RAMピーク",
        run=lambda r: gb_cell(r.ram_peak_bytes),
        compared=_meangb_cell(lambda r: r.ram_peak_bytes),
        stable=("ram_peak_bytes",),
    ),
    Figure(
        "log tps",
        ("log_eval_tps", "log_eval_note"),
        "the server log's eval tokens over its eval time for this run's request (llama-server's `eval time = ... "
        "ms / N tokens`, Ollama 0.30 on): how Ollama makes the API's eval rate, so it should equal tps to rounding; "
        "`null` where the log has no request timings; where the two differ by more than 1%, `log_eval_note` says so "
        "(and the screen and the headless output)",
    ),
    Figure(
        "why this split",
        ("split_reason",),
        "one sentence from the server log's own numbers: what a full offload needs (weights, KV cache for the "
        "context, compute) against the free device memory and the reserve (llama.cpp's fit step, Ollama 0.30 on), "
        "or Ollama's estimate (`memory.required.full`, `memory.available`) before it, or why no GPU was used; "
        "what would change it is marked as an estimate",
    ),
    Figure(
        "settings",
        ("settings",),
        "what the run's load ran with, as the server tells it, never assumed: `kv_cache` (the KV cache's type, "
        "from llama.cpp's `K (q8_0)`/`V (q8_0)` sizes or the runner's flags), `flash_attention` (`on`/`off` as "
        "llama.cpp chose, `auto` where only the request says), `parallel` (slots, `-np`), `cpu_moe` (`all` or N: "
        "the layers whose experts stay in system memory, from llama-server's flags, llama.cpp's lines for the "
        "expert tensors it kept there, or the `LLAMA_ARG_CPU_MOE`/`LLAMA_ARG_N_CPU_MOE` in its environment); a "
        "setting the server does not tell is left out",
    ),
    Figure(
        "memory by part",
        ("memory_parts",),
        "where the load's memory went, per device, from the server log's own buffer sizes: `weights` (llama.cpp's "
        "`model buffer size`, Ollama's `model weights`), `kv_cache` (`KV buffer size`, `kv cache`) and `compute` "
        "(`compute buffer size`, `compute graph`), and for an MoE model `experts`, its expert tensors kept in system "
        "memory (llama.cpp's `tensor blk.N.ffn_*_exps.weight (... MiB ...) buffer type overridden to CPU`), taken "
        "out of the weights there; `device` is the GPU as llama.cpp names it (CUDA0, ROCm0, Metal) or `system "
        "memory`; the export's Markdown draws them as a bar per run",
    ),
    Figure(
        "J/token",
        ("joules_per_token", "tokens_per_joule", "generation_power_w", "energy_note"),
        "energy per generated token: the energy of every power source read (CPU package, each GPU) from the first "
        "token to the last, over the tokens after the first (the first one's cost is the prompt's); "
        "`tokens_per_joule` its inverse, `generation_power_w` the mean power meanwhile; compared, the mean over "
        "the runs; `null`, with `energy_note` saying why, where no source was read",
        ja="J/トークン",
        run=lambda r: or_unknown(joules_per_token_cell(r.joules_per_token)),
        compared=lambda c: or_unknown(joules_per_token_cell(c.joules_per_token)),
        stable=("joules_per_token",),
    ),
    Figure(
        "energy vs cpu",
        ("energy_vs_cpu",),
        "a mode's mean J/token over the mean J/token of `cpu` for the same model (in the JSON's `comparison`): "
        "under 1x, its tokens cost less energy than on the CPU alone",
        ja="電力量比",
        compared=lambda c: f"{c.energy_vs_cpu:.2f}x" if c.energy_vs_cpu is not None else UNKNOWN,
    ),
    Figure(
        "energy",
        ("energy_j", "energy_generation_j", "power_sources", "energy_note"),
        "the energy of the whole run, from the request to the end (load and prompt included), summed over the "
        "sources read, and `energy_generation_j` from the first token to the last; each source apart in "
        "`power_sources` (what it is, how it was read: a hardware counter "
        "such as RAPL's `energy_uj` or NVML's total energy, else power integrated over time), and `energy_note` "
        "saying which kind was not measured and why. Counters are read at each phase's edge, so a phase's "
        "energy is their difference",
        ja="電力量",
        run=lambda r: or_unknown(units.joules(r.energy_j)),
        compared=lambda c: or_unknown(units.joules(c.mean(lambda r: r.energy_j))),
        stable=("energy_j", "energy_generation_j", "power_sources"),
        on_screen_compared=False,
    ),
    Figure(
        "idle W",
        ("idle_power_w",),
        "the mean power of the same sources over the baseline (at least 1 s before the request): the machine's "
        "own share, to set against `generation_power_w`",
        ja="アイドル電力",
        run=lambda r: or_unknown(units.watts(r.idle_power_w)),
        compared=lambda c: or_unknown(units.watts(c.mean(lambda r: r.idle_power_w))),
        on_screen_compared=False,
    ),
    Figure(
        "Ollama RSS",
        ("ollama_rss_delta_bytes",),
        "resident memory of `ollama serve` and its runners (`ollama_llama_server`, `ollama runner`, "
        "`llama-server`), same method",
    ),
    Figure(
        "Ollama",
        ("ollama_version",),
        "the server's version, from `/api/version`",
        stable=("ollama_version",),
    ),
    Figure(
        "run",
        ("complete", "error"),
        "`complete`, or `incomplete` with the reason the run ended early (a failure, a quit, a signal)",
        ja="結果",
        run=lambda r: "complete" if r.complete else f"incomplete: {r.error or 'stopped'}",
        right=False,
        stable=("complete",),
    ),
    Figure(
        "thinking",
        ("think", "thinking_tokens", "answer_tokens", "ttft_thought_s", "ttft_answer_s"),
        "a thinking model's run (`--think`): its tokens of thought (the stream's `thinking` field) and of answer, "
        "as llmtop counted them (`eval_count` holds both), and the time from the request to the first thought and "
        "to the first word of the answer; `none` where no thought came and none was asked for",
        ja="思考",
        run=lambda r: r.thinking_text or "none",
        right=False,
    ),
    Figure(
        "limit",
        ("limit_tps", "limit_share", "limit_note"),
        "the run held to its limit: the tokens/s its split allows, a token's bytes on each side (the layers in "
        "system memory, in VRAM, spilled into shared memory) over that side's bandwidth from this machine's "
        "history, a probe or the vendor's peak (`llmtop fit`), and the share of it the run reached; well under "
        f"it, `limit_note` says which side takes most of a token's time. {NA} where a side's bandwidth is not known",
        ja="上限比",
        run=lambda r: or_unknown(
            f"{r.limit_share * 100:.0f}% of {r.limit_tps:.2f}" if r.limit_share and r.limit_tps else ""
        ),  # fmt: skip
        compared=lambda c: or_unknown(
            f"{share * 100:.0f}%" if (share := c.mean(lambda r: r.limit_share)) is not None else ""
        ),
    ),
    Figure(
        "GPU",
        ("library", "gpus", "vram_cross_note"),
        "the backend that ran the model's layers (the server log: `vulkan`, `cuda`, `rocm`, `metal`, or `cpu` "
        "where no layer was on a GPU) and the GPU's name (its memory counter's, else Ollama's GPU discovery or "
        "llama-server's device list in the log); `vram_cross_note` gives the engine's buffers and `/api/ps` "
        "size_vram beside a counter's VRAM, each a check on the other",
        ja="GPU",
        run=lambda r: _gpu(r),
        compared=lambda c: str(c.most_common(_gpu) or UNKNOWN),
        right=False,
    ),
    Figure(
        "runs",
        (),
        "the runs in the group, how many of them did not complete, and how many ran while the server also "
        "worked for another app (left out of the group's figures)",
        ja="回数",
        compared=lambda c: (
            f"{len(c.runs)}"
            + (f" ({c.incomplete} incomplete)" if c.incomplete else "")
            + (f" ({c.shared} on a shared server, left out)" if c.shared else "")
        ),
    ),
)

# Keys promised to users of the JSON export, in the order the export writes them.
STABLE_KEYS: tuple[str, ...] = tuple(
    f.name for f in fields(SummaryRow) if any(f.name in figure.stable for figure in FIGURES)
)
JAPANESE: dict[str, str] = {
    **{f.name: f.ja for f in FIGURES if f.ja},
    "date": "日時",
    "point": "設定",
    "spilled": "スピル",
    "limit tps": "上限tps",
    "found": "判定",
}


def help_text(width: int = 96) -> str:
    """The "the numbers" part of `--help`: each figure and how it is measured."""
    lines = ["the numbers (Δ: the increase over a baseline read just before the run):"]
    for figure in FIGURES:
        body = textwrap.wrap(figure.how.replace("`", ""), width - 14)
        lines.append(f"  {figure.name:<11} {body[0]}")
        lines.extend(f"{'':14}{line}" for line in body[1:])
    return "\n".join(lines)


def readme_table(figures: Sequence[Figure] = FIGURES) -> str:
    """The measurement table of docs/figures.md."""
    lines = ["| column | JSON key | how it is measured |", "|---|---|---|"]
    for figure in figures:
        keys = ", ".join(f"`{key}`" for key in figure.keys)
        lines.append(f"| {figure.name} | {keys} | {figure.how} |")
    return "\n".join(lines) + "\n"
