"""What a run asks of Ollama: the prompt, where the layers go, and the sampling that must stay the same."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from llmtop.measure.mode import Mode
from llmtop.measure.server_settings import ServerSettings

# The prompt of the article this project grew from ("Predict the future of AI, in 100 characters").
DEFAULT_PROMPT = "AIの未来を予測してください。（100字）"
DEFAULT_SEED = 42  # the same seed for every run, so runs generate comparable text
ORDERS = ("interleaved", "random", "latin")  # how a plan's runs are ordered (plan.build_plan)


@dataclass(frozen=True)
class RunSettings:
    """One run's request. num_gpu None lets Ollama decide; 0 is CPU only. num_ctx None lets Ollama
    choose the context; ctx_in_mode says the mode set it (`auto:ctx=8192`), so it is part of the mode's
    name. keep_loaded skips the unload before the run (a warm run, if the model is loaded). `server`:
    the settings of `ollama serve` the mode asks for (`auto:kv=q8_0`), honoured only with --serve.
    think_in_mode: the mode set `think` (`auto:think=off`), so it is part of the mode's name; a think
    from --think is every run's and stays out of it."""

    prompt: str = DEFAULT_PROMPT
    num_gpu: int | None = None
    num_ctx: int | None = None  # the context of the request; None: Ollama's (from 0.30 chosen from the VRAM)
    seed: int | None = DEFAULT_SEED
    temperature: float | None = None
    num_predict: int | None = None  # at most this many tokens (options.num_predict); None: the model decides
    think: bool | str | None = None  # a thinking model's `think`: True, False or a level; None: its default
    keep_loaded: bool = False
    ctx_in_mode: bool = False
    server: ServerSettings = field(default_factory=ServerSettings)
    think_in_mode: bool = False

    @property
    def mode(self) -> str:
        """The canonical name of the mode these settings run (rows, exports and recordings keep it)."""
        context = self.num_ctx if self.ctx_in_mode else None
        return Mode(self.num_gpu, context, self.server, think=self.think if self.think_in_mode else None).name

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
        if self.num_predict is not None:
            options["num_predict"] = self.num_predict
        return options

    def with_mode(self, mode: Mode) -> RunSettings:
        """These settings with a mode's parts; a mode without a context keeps num_ctx, one without
        think keeps think (--think's)."""
        settings = replace(
            self, num_gpu=mode.layers, server=mode.server, ctx_in_mode=mode.context is not None, think_in_mode=False
        )
        if mode.context is not None:
            settings = replace(settings, num_ctx=mode.context)
        if mode.think is not None:
            settings = replace(settings, think=mode.think, think_in_mode=True)
        return settings


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
