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
