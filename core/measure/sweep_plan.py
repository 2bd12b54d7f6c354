"""`--sweep`'s plan: which GPU layer count (or context) runs fastest here, where memory spills, and what to set.

A sweep is a plan that grows: a coarse grid of `num_gpu` values from 0 to every layer, with Ollama's
own choice (`auto`) as one more point, then points halfway between the fastest and its nearest
neighbours until they are one final step apart. For a function that rises until VRAM is full and
falls as shared memory grows, the fastest layer count then lies within one final step of the best
point measured. A list given by hand is run as given. `num_ctx=...` sweeps the context at Ollama's
own layer choice. `moe=0,8,16,24` (with --serve) puts every layer on the GPU and keeps the experts
of N layers in system memory, against Ollama's own choice: the fastest N that fits.

What the sweep found is sweep.py's. Pure: no I/O, no Textual.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from llmtop.measure.mode import Mode, parse_context
from llmtop.measure.server_settings import ServerSettings

LAYERS, CONTEXT, MOE = "num_gpu", "num_ctx", "moe"
COARSE_PARTS = 4  # the coarse grid: 0, a quarter, half, three quarters and all of the layers
FINAL_PARTS = 16  # refined until neighbours are at most total/16 layers apart (1 for small models)

# The time a run takes, guessed from the model's size before any run has finished (the runs
# refine it): a CPU reads the weights at about 40 GB/s per token (the article's 42 GB model ran at
# 0.99 tokens/s on the CPU), a disk or page cache loads them at about 2 GB/s, an answer is about 150
# tokens, and unloading and the settled baseline take about 10 s.
GUESS_BANDWIDTH = 40e9
GUESS_LOAD = 2e9
GUESS_TOKENS = 150
GUESS_OVERHEAD_S = 10.0


class SweepError(ValueError):
    """A sweep that cannot be run as asked; the message says why in one line."""


@dataclass(frozen=True)
class SweepSpec:
    """What to sweep: `num_gpu` or `num_ctx`, and the values given by hand (None: llmtop chooses)."""

    parameter: str = LAYERS
    values: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"parameter": self.parameter, "values": list(self.values) if self.values is not None else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepSpec:
        values = data.get("values")
        return cls(str(data.get("parameter") or LAYERS), tuple(int(v) for v in values) if values else None)


def parse_sweep(text: str) -> SweepSpec:
    """`` (llmtop chooses the layer counts), `0,10,20,27`, `num_gpu=0,20`, `num_ctx=2048,8k,32768` or
    `moe=0,8,16`; SweepError with the reason otherwise."""
    text = text.strip()
    if not text:
        return SweepSpec()
    parameter, equals, rest = text.partition("=")
    parameter = parameter.strip().lower()
    if not equals:
        if parameter == CONTEXT:
            raise SweepError("give the contexts to try, e.g. --sweep num_ctx=2048,8192,32768")
        if parameter == MOE:
            raise SweepError("give the layers whose experts stay in system memory, e.g. --sweep moe=0,8,16,24")
        parameter, rest = LAYERS, text
    elif parameter not in (LAYERS, CONTEXT, MOE):
        raise SweepError(
            f"cannot sweep {parameter!r}: sweep num_gpu (GPU layers), num_ctx (the context) or moe (the experts' "
            "place, with --serve)"
        )
    parts = [part.strip() for part in rest.split(",")]
    if not rest.strip() or any(not part for part in parts):
        raise SweepError(f"empty value in {text!r}: give a list such as 0,10,20")
    values: list[int] = []
    for part in parts:
        if parameter == CONTEXT:
            try:
                values.append(parse_context(part))
            except ValueError as exc:
                raise SweepError(str(exc)) from None
            continue
        if re.fullmatch(r"-\d+", part):
            raise SweepError(f"a layer count cannot be negative: {part}")
        if not re.fullmatch(r"\d+", part):
            raise SweepError(
                f"not a layer count: {part!r} (whole numbers, e.g. 0,10,20; the model goes first: llmtop MODEL --sweep)"
            )
        values.append(int(part))
    return SweepSpec(parameter, tuple(sorted(set(values))))


SWEPT = {
    LAYERS: "GPU layers (num_gpu)",
    CONTEXT: "context (num_ctx)",
    MOE: "the experts' place (moe=N: the experts of N layers in system memory)",
}
"""What each kind of sweep varies, as its section's title says it."""


def check_layers(spec: SweepSpec, model: str, layers_total: int | None) -> None:
    """SweepError when a layer sweep cannot be planned for this model: values past its layers, or no
    layer count to choose values from; for `moe=`, values past its repeating layers."""
    if spec.parameter == MOE and layers_total is not None:
        past = [v for v in spec.values or () if v > layers_total - 1]
        if past:
            raise SweepError(
                f"{model} has {layers_total - 1} repeating layers: moe={', '.join(map(str, past))} is past them"
            )
        return
    if spec.parameter != LAYERS:
        return
    if layers_total is None:
        if spec.values is None:
            raise SweepError(
                f"cannot find how many layers {model} has (/api/show gives no block_count): "
                "give the points, e.g. --sweep 0,10,20,30"
            )
        return
    past = [v for v in spec.values or () if v > layers_total]
    if past:
        raise SweepError(
            f"{model} has {layers_total} layers: num_gpu {', '.join(map(str, past))} is past them (0 to {layers_total})"
        )


def point_mode(spec: SweepSpec, value: int | None, layers_total: int | None = None) -> Mode:
    """The run's mode for one point: `cpu`, `gpu=N` or `auto` for layers; `auto:ctx=N` (or `auto`,
    Ollama's own context) for contexts; `gpu=ALL:moe=N` (every layer on the GPU, the experts of N in
    system memory; `auto:moe=N` where the layers are not known), or `auto`, for the experts."""
    if spec.parameter == CONTEXT:
        return Mode(None, value)
    if spec.parameter == MOE:
        if value is None:
            return Mode()
        return Mode(layers_total, None, ServerSettings(cpu_moe=str(value)))
    return Mode(value)


def point_value(spec: SweepSpec, mode: str) -> int | None:
    """The swept value a run's mode stands for (None: Ollama's choice)."""
    parts = Mode.of(mode)
    if spec.parameter == MOE:
        moe = parts.server.cpu_moe
        return int(moe) if moe is not None and moe.isdigit() else None
    return parts.context if spec.parameter == CONTEXT else parts.layers


def final_step(layers_total: int) -> int:
    return max(1, math.ceil(layers_total / FINAL_PARTS))


def coarse_values(layers_total: int) -> list[int]:
    return sorted({round(layers_total * k / COARSE_PARTS) for k in range(COARSE_PARTS + 1)})


def guess_run_s(size_bytes: int | None) -> float | None:
    """Seconds one run of a model of this size may take on a CPU, before any run says (a guess)."""
    if not size_bytes:
        return None
    return GUESS_OVERHEAD_S + size_bytes / GUESS_LOAD + GUESS_TOKENS * size_bytes / GUESS_BANDWIDTH
