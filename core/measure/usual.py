""" "Slow for this machine": what a model usually gives in a mode on this machine, from the history, and
a run that falls well below it said in one line with the likely causes llmtop can see in the runs
themselves. Pure.

Usual: the complete runs of the same model, mode, load kind and context, on a machine with the same
CPU, GPUs and RAM, that had the server to themselves; at least USUAL_RUNS of them. Well below: under
the usual mean by more than twice the usual spread and by more than SLOWER (a tenth), so that a run
in the noise is never called slow.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from llmtop import units
from llmtop.measure.summary import is_spill
from llmtop.measure.summary_row import SummaryRow

USUAL_RUNS = 3  # past runs needed before llmtop says what is usual
SLOWER = 0.10  # a run this much under the usual mean (and beyond twice its spread) is slow
SHARED_GROWN = 256 * 1024**2  # shared GPU memory this much over the usual: it grew
SWAPPING = 256 * 1024**2  # swap in use this much over the baseline while generating: the model (or more) swapped
POWER_LOWER = 0.8  # generation power under this share of the usual: capped or throttled
OTHERS_BUSIER = 0.5  # cores other processes kept busy beyond the usual: they took the CPU from the model
CLOCK_LOWER = 0.85  # the CPU's clock under this share of the usual: capped or throttled


@dataclass(frozen=True)
class Usual:
    """What the past runs like this one gave on this machine."""

    runs: tuple[SummaryRow, ...]

    @property
    def tps(self) -> float:
        return statistics.fmean(self._rates())

    @property
    def spread(self) -> float:
        rates = self._rates()
        return statistics.stdev(rates) if len(rates) >= 2 else 0.0

    def _rates(self) -> list[float]:
        return [r.eval_rate_tps for r in self.runs if r.eval_rate_tps is not None]

    def median(self, values: Sequence[float | int | None]) -> float | None:
        known = [float(v) for v in values if v is not None]
        return statistics.median(known) if known else None


def alike(past: SummaryRow, row: SummaryRow) -> bool:
    """`past` ran the same thing as `row`: model, mode, load kind and context, complete, alone."""
    return (
        past.model == row.model
        and past.mode == row.mode
        and (past.load_kind or "cold") == (row.load_kind or "cold")
        and (past.context is None or row.context is None or past.context == row.context)
        and past.complete
        and not past.concurrent_requests
        and past.eval_rate_tps is not None
    )


def usual_for(row: SummaryRow, history: Sequence[SummaryRow]) -> Usual | None:
    """The usual of `row` from `history` (this machine's past runs, `row` not among them); None with
    fewer than USUAL_RUNS alike."""
    runs = tuple(past for past in history if past is not row and alike(past, row))
    return Usual(runs) if len(runs) >= USUAL_RUNS else None


def likely_causes(row: SummaryRow, usual: Usual) -> list[str]:
    """What differs in this run from the usual ones, of what llmtop measures: another model loaded,
    swap in use, another app served meanwhile, fewer layers on the GPU, shared GPU memory grown (a spill),
    other processes busy on the CPU, the CPU's clock lower, the GPU's clock held down (NVML's reasons),
    less power drawn (a cap or throttling),
    another Ollama."""
    causes = []
    usually_alone = not any(r.other_models for r in usual.runs)
    if row.other_models and usually_alone:
        causes.append(f"another model was loaded beside it ({', '.join(row.other_models)})")
    if row.swap_delta_bytes is not None and row.swap_delta_bytes > SWAPPING:
        causes.append(f"swap in use: {units.human_bytes(row.swap_delta_bytes)} more than before the run")
    if row.concurrent_requests:
        causes.append(f"the server also worked for another app ({row.concurrent_requests} requests)")
    layers = usual.median([r.layers_offloaded for r in usual.runs])
    if row.layers_offloaded is not None and layers is not None and row.layers_offloaded < layers:
        causes.append(f"{row.layers_offloaded} layers on the GPU where usually {layers:.0f}")
    shared = usual.median([r.shared_delta_bytes for r in usual.runs]) or 0.0
    if row.shared_delta_bytes is not None and is_spill(row.shared_delta_bytes):
        if row.shared_delta_bytes - shared > SHARED_GROWN:
            causes.append(
                f"shared GPU memory grown: {units.human_bytes(row.shared_delta_bytes)} spilled where usually "
                f"{units.human_bytes(int(shared))}"
            )
    others = usual.median([r.other_cpu_cores for r in usual.runs]) or 0.0
    if row.other_cpu_cores is not None and row.other_cpu_cores - others >= OTHERS_BUSIER:
        causes.append(f"other processes kept {row.other_cpu_cores:.1f} CPU cores busy where usually {others:.1f}")
    clock = usual.median([r.cpu_clock_mhz for r in usual.runs])
    if row.cpu_clock_mhz and clock and row.cpu_clock_mhz < CLOCK_LOWER * clock:
        causes.append(
            f"the CPU at {row.cpu_clock_mhz / 1000:.2f} GHz where usually {clock / 1000:.2f} GHz (its clock capped "
            "or throttled)"
        )
    usual_limits = {limit for r in usual.runs for limit in r.gpu_clock_limits}
    if new_limits := [limit for limit in row.gpu_clock_limits if limit not in usual_limits]:
        causes.append(f"the GPU's clock held down ({', '.join(new_limits)})")
    power = usual.median([r.generation_power_w for r in usual.runs])
    if row.generation_power_w is not None and power and row.generation_power_w < POWER_LOWER * power:
        causes.append(
            f"{row.generation_power_w:.0f} W drawn where usually {power:.0f} W (a power cap, or the CPU or GPU "
            "throttled)"
        )
    versions = {r.ollama_version for r in usual.runs if r.ollama_version}
    if row.ollama_version and versions and row.ollama_version not in versions:
        causes.append(f"Ollama {row.ollama_version} where the usual runs had {', '.join(sorted(versions))}")
    return causes


def slow_note(row: SummaryRow, history: Sequence[SummaryRow]) -> str | None:
    """`slow for this machine: 40.0 tokens/s where llama3.3 auto usually gives 100 here (98.2 ± 2.1
    over 12 runs); likely: ...`, or None where the run is not well below its usual (or none is known)."""
    if row.eval_rate_tps is None or not row.complete:
        return None
    usual = usual_for(row, history)
    if usual is None:
        return None
    mean, spread = usual.tps, usual.spread
    if row.eval_rate_tps >= mean - max(2 * spread, SLOWER * mean):
        return None
    said = (
        f"slow for this machine: {row.eval_rate_tps:.2f} tokens/s where {row.model} {row.mode} usually gives "
        f"{mean:.2f} here ({mean:.2f} ± {spread:.2f} over {len(usual.runs)} runs)"
    )
    causes = likely_causes(row, usual)
    return said + ("; likely: " + "; ".join(causes) if causes else "; llmtop sees no cause in what it measures")


def usual_answer_tokens(model: str, history: Sequence[SummaryRow]) -> int | None:
    """How many tokens `model`'s answers usually are on this machine (`history`: its past runs here):
    the median of the complete runs that ended at the model's end of text (not cut at a count asked);
    None with fewer than time_left.USUAL_ANSWERS of them."""
    from llmtop.measure.time_left import usual_length
    from llmtop.ollama.model_facts import same_model

    return usual_length(
        [
            r.eval_count
            for r in history
            if same_model(r.model, model) and r.complete and r.done_reason == "stop" and r.eval_count
        ]
    )
