"""What a run asks of Ollama: the prompt, where the layers go, and the sampling that must stay the same."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

# The prompt of the article this project grew from ("Predict the future of AI, in 100 characters").
DEFAULT_PROMPT = "AIの未来を予測してください。（100字）"
DEFAULT_SEED = 42  # the same seed for every run, so runs generate comparable text


@dataclass(frozen=True)
class RunSettings:
    """One run's request. num_gpu None lets Ollama decide; 0 is CPU only. num_ctx None lets Ollama
    choose the context; ctx_in_mode says the mode set it (`auto:ctx=8192`), so it is part of the mode's
    name. keep_loaded skips the unload before the run (a warm run, if the model is loaded)."""

    prompt: str = DEFAULT_PROMPT
    num_gpu: int | None = None
    num_ctx: int | None = None  # the context of the request; None: Ollama's (from 0.30 chosen from the VRAM)
    seed: int | None = DEFAULT_SEED
    temperature: float | None = None
    keep_loaded: bool = False
    ctx_in_mode: bool = False

    @property
    def mode(self) -> str:
        return mode_name(self.num_gpu, self.num_ctx if self.ctx_in_mode else None)

    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.num_gpu is not None:
            options["num_gpu"] = self.num_gpu
        if self.num_ctx is not None:
            options["num_ctx"] = self.num_ctx
        if self.seed is not None:
            options["seed"] = self.seed
        if self.temperature is not None:
            options["temperature"] = self.temperature
        return options

    def with_mode(self, mode: str) -> RunSettings:
        """These settings with a mode from parse_modes(); a mode without a context keeps num_ctx."""
        layers, context = parse_mode_and_context(mode)
        if context is None:
            return replace(self, num_gpu=layers, ctx_in_mode=False)
        return replace(self, num_gpu=layers, num_ctx=context, ctx_in_mode=True)


STALL_TIMEOUT_S = 300.0  # default --stall-timeout: no token for this long ends a run
LOAD_MARGIN_S = 60.0  # beyond Ollama's own load timeout, before a silent load is given up
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def ollama_load_timeout(value: str | None) -> float | None:
    """Seconds of `OLLAMA_LOAD_TIMEOUT` as Ollama reads it (a Go duration such as `5m` or `1h30m`,
    or whole seconds; 5 minutes when unset or unreadable); None when it is 0 or less (no limit)."""
    text = (value or "").strip()
    seconds = 300.0
    if re.fullmatch(r"-?\d+", text):
        seconds = float(text)
    elif text and re.fullmatch(r"(?:\d+(?:\.\d+)?(?:h|ms|us|µs|ns|m|s))+", text):
        seconds = sum(float(n) * _GO_UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)", text))
    return seconds if seconds > 0 else None


def silence_limit(stall_timeout_s: float, load_timeout_s: float | None) -> float | None:
    """How long a generation may send nothing at all, its load included (None: forever): Ollama's
    load timeout plus a margin (as long as the timeout itself, at most LOAD_MARGIN_S), so that
    Ollama's own error comes first, and never less than the stall timeout."""
    if stall_timeout_s <= 0 or load_timeout_s is None:
        return None
    return max(load_timeout_s + min(LOAD_MARGIN_S, load_timeout_s), stall_timeout_s)


MIN_CONTEXT, MAX_CONTEXT = 256, 16_777_216  # a context Ollama can be asked for (tokens)


def parse_context(text: str) -> int:
    """A context size in tokens (`8192`, `8k`, `32K`); ValueError outside 256 to 16M."""
    match = re.fullmatch(r"(\d+)([kK]?)", text.strip())
    if not match:
        raise ValueError(f"not a context size: {text.strip()!r} (tokens, e.g. 8192 or 8k)")
    value = int(match.group(1)) * (1024 if match.group(2) else 1)
    if not MIN_CONTEXT <= value <= MAX_CONTEXT:
        raise ValueError(f"a context must be between {MIN_CONTEXT} and {MAX_CONTEXT} tokens, got {text.strip()}")
    return value


def mode_name(layers: int | None, context: int | None = None) -> str:
    """The canonical name of a mode: `cpu`, `auto` or `gpu=N`, then `:ctx=N` when it sets the context."""
    name = "auto" if layers is None else ("cpu" if layers == 0 else f"gpu={layers}")
    return f"{name}:ctx={context}" if context is not None else name


def parse_mode_and_context(text: str) -> tuple[int | None, int | None]:
    """`cpu` -> (0, None), `auto:ctx=8k` -> (None, 8192), `gpu=27` -> (27, None); ValueError else."""
    mode, colon, context = text.strip().lower().partition(":")
    layers = parse_mode(mode)
    if not context:
        if colon:
            raise ValueError(f"empty context in mode {text.strip()!r}: use e.g. auto:ctx=8192")
        return layers, None
    if not context.startswith("ctx="):
        raise ValueError(f"unknown mode {text.strip()!r}: after ':' comes ctx=N, e.g. auto:ctx=8192")
    return layers, parse_context(context[4:])


def parse_mode(text: str) -> int | None:
    """`cpu` -> 0, `auto` -> None, `gpu=27` -> 27; ValueError for anything else."""
    mode = text.strip().lower()
    if mode == "cpu":
        return 0
    if mode == "auto":
        return None
    match = re.fullmatch(r"gpu=(\d+)", mode)
    if match:
        return int(match.group(1))
    raise ValueError(f"unknown mode {text.strip()!r}: use cpu, auto or gpu=N, each optionally with :ctx=N")


def parse_modes(text: str) -> list[str]:
    """`cpu,auto,gpu=20,auto:ctx=8192` -> the modes' canonical names, in order, without repeats."""
    modes: list[str] = []
    for part in text.split(","):
        if not part.strip():
            raise ValueError(f"empty mode in {text!r}")
        name = mode_name(*parse_mode_and_context(part))
        if name not in modes:
            modes.append(name)
    return modes
