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
    """One run's request. num_gpu None lets Ollama decide; 0 is CPU only. keep_loaded skips the
    unload before the run (a warm run, if the model is loaded)."""

    prompt: str = DEFAULT_PROMPT
    num_gpu: int | None = None
    seed: int | None = DEFAULT_SEED
    temperature: float | None = None
    keep_loaded: bool = False

    @property
    def mode(self) -> str:
        if self.num_gpu is None:
            return "auto"
        return "cpu" if self.num_gpu == 0 else f"gpu={self.num_gpu}"

    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.num_gpu is not None:
            options["num_gpu"] = self.num_gpu
        if self.seed is not None:
            options["seed"] = self.seed
        if self.temperature is not None:
            options["temperature"] = self.temperature
        return options

    def with_mode(self, mode: str) -> RunSettings:
        """These settings with a mode from parse_mode()."""
        return replace(self, num_gpu=parse_mode(mode))


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
    load timeout plus a margin, and never less than the stall timeout."""
    if stall_timeout_s <= 0 or load_timeout_s is None:
        return None
    return max(load_timeout_s + LOAD_MARGIN_S, stall_timeout_s)


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
    raise ValueError(f"unknown mode {text.strip()!r}: use cpu, auto or gpu=N")


def parse_modes(text: str) -> list[str]:
    """`cpu,auto,gpu=20` -> the modes' canonical names, in order, without repeats."""
    modes: list[str] = []
    for part in text.split(","):
        if not part.strip():
            raise ValueError(f"empty mode in {text!r}")
        layers = parse_mode(part)
        name = "auto" if layers is None else ("cpu" if layers == 0 else f"gpu={layers}")
        if name not in modes:
            modes.append(name)
    return modes
