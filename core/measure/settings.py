"""What a run asks of Ollama: the prompt, where the layers go, and the sampling that must stay the same."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from llmtop.measure.server_settings import SETTING_KEYS, ServerSettings

# The prompt of the article this project grew from ("Predict the future of AI, in 100 characters").
DEFAULT_PROMPT = "AIの未来を予測してください。（100字）"
DEFAULT_SEED = 42  # the same seed for every run, so runs generate comparable text
ORDERS = ("interleaved", "random", "latin")  # how a plan's runs are ordered (plan.build_plan)


@dataclass(frozen=True)
class RunSettings:
    """One run's request. num_gpu None lets Ollama decide; 0 is CPU only. num_ctx None lets Ollama
    choose the context; ctx_in_mode says the mode set it (`auto:ctx=8192`), so it is part of the mode's
    name. keep_loaded skips the unload before the run (a warm run, if the model is loaded). `server`:
    the settings of `ollama serve` the mode asks for (`auto:kv=q8_0`), honoured only with --serve."""

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

    @property
    def mode(self) -> str:
        return mode_name(self.num_gpu, self.num_ctx if self.ctx_in_mode else None, self.server)

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

    def with_mode(self, mode: str) -> RunSettings:
        """These settings with a mode from parse_modes(); a mode without a context keeps num_ctx."""
        layers, context, server = parse_full_mode(mode)
        if context is None:
            return replace(self, num_gpu=layers, ctx_in_mode=False, server=server)
        return replace(self, num_gpu=layers, num_ctx=context, ctx_in_mode=True, server=server)


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


def mode_name(layers: int | None, context: int | None = None, server: ServerSettings | None = None) -> str:
    """The canonical name of a mode: `cpu`, `auto` or `gpu=N`, then `:ctx=N` when it sets the context,
    then the server's settings it asks for (`:kv=q8_0:fa=on:moe=all:np=2`, in that order)."""
    name = "auto" if layers is None else ("cpu" if layers == 0 else f"gpu={layers}")
    parts = [name] + ([f"ctx={context}"] if context is not None else []) + (server.mode_parts() if server else [])
    return ":".join(parts)


def parse_full_mode(text: str) -> tuple[int | None, int | None, ServerSettings]:
    """`cpu` -> (0, None, none), `auto:ctx=8k:kv=q8_0` -> (None, 8192, KV q8_0), `moe=all` -> (None,
    None, experts on CPU): where the layers go, the context, and the server's settings; ValueError
    with the reason for anything else."""
    parts = [part.strip() for part in text.strip().lower().split(":")]
    if any(not part for part in parts):
        raise ValueError(f"empty part in mode {text.strip()!r}: parts go between colons, e.g. auto:ctx=8192:kv=q8_0")
    layers: int | None = None
    if parts[0] in ("cpu", "auto") or parts[0].startswith("gpu="):
        layers = parse_mode(parts[0])
        parts = parts[1:]
    context: int | None = None
    server = ServerSettings()
    seen: set[str] = set()
    for part in parts:
        key, equals, value = part.partition("=")
        if not equals and key in ("ctx", *SETTING_KEYS):
            raise ValueError(f"{key} without a value in mode {text.strip()!r}: write {key}=..., e.g. auto:ctx=8192")
        if not equals or key not in ("ctx", *SETTING_KEYS):
            raise ValueError(
                f"unknown mode {text.strip()!r}: use cpu, auto or gpu=N, then any of ctx=N, kv=TYPE, "
                "fa=on|off, moe=all|N, np=N, joined by colons"
            )
        if key in seen:
            raise ValueError(f"{key}= twice in mode {text.strip()!r}")
        seen.add(key)
        if key == "ctx":
            context = parse_context(value)
        else:
            server = server.with_setting(key, value)
    return layers, context, server


def parse_mode_and_context(text: str) -> tuple[int | None, int | None]:
    """`cpu` -> (0, None), `auto:ctx=8k` -> (None, 8192), `gpu=27` -> (27, None); ValueError for a mode
    that is not one of these (server settings included)."""
    layers, context, server = parse_full_mode(text)
    if not server.empty:
        raise ValueError(f"mode {text.strip()!r} sets the server (kv=, fa=, moe=, np=)")
    return layers, context


def mode_is_plain(mode: str) -> bool:
    """Whether a mode asks nothing of the server itself (no kv=, fa=, moe=, np=)."""
    try:
        return parse_full_mode(mode)[2].empty
    except ValueError:
        return True


def mode_label(mode: str) -> str:
    """A mode as tables and charts show it: `auto:ctx=8192:kv=q8_0:fa=on` -> `auto:ctx=8192, KV q8_0,
    FA on`; a mode without server settings (or one that cannot be read) as it is."""
    try:
        layers, context, server = parse_full_mode(mode)
    except ValueError:
        return mode
    if server.empty:
        return mode
    return ", ".join([mode_name(layers, context), *server.label_parts()])


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
    raise ValueError(
        f"unknown mode {text.strip()!r}: use cpu, auto or gpu=N, each optionally with :ctx=N and server settings"
    )


def parse_modes(text: str) -> list[str]:
    """`cpu,auto,gpu=20,auto:ctx=8192,auto:kv=q8_0` -> the modes' canonical names, in order, without
    repeats."""
    modes: list[str] = []
    for part in text.split(","):
        if not part.strip():
            raise ValueError(f"empty mode in {text!r}")
        name = mode_name(*parse_full_mode(part))
        if name not in modes:
            modes.append(name)
    return modes
