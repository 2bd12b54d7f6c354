"""A mode: what a run asks for, parsed once from the command line (`--modes cpu,auto:ctx=8k:kv=q8_0`)
into its parts: where the layers go, the context, the settings of `ollama serve`, and a thinking
model's `think`. Its canonical name (`auto:ctx=8192:kv=q8_0:think=off`) is what rows, exports and
recordings keep; whatever reads a row's mode
back (the verdicts, the comparison, the report, the labels) reads it through Mode.of, and then its fields.
Pure: text in, values out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llmtop.measure.server_settings import SETTING_KEYS, ServerSettings
from llmtop.units import switch

MIN_CONTEXT, MAX_CONTEXT = 256, 16_777_216  # a context Ollama can be asked for (tokens)
CPU, AUTO = "cpu", "auto"
THINK_LEVELS = ("low", "medium", "high")  # the levels a thinking model may take (gpt-oss: /api/show's thinking.values)
THINK_CHOICES = ("on", "off", *THINK_LEVELS)
_KEYS = ("ctx", *SETTING_KEYS, "think")


def parse_think(text: str) -> bool | str:
    """A thinking model's `think`: on or off (read as every switch is, units.switch) -> True or False, or
    a level (`low`, `medium`, `high`) as it is; ValueError for anything else."""
    word = text.strip().lower()
    state = switch(word)
    if state is not None:
        return state
    if word in THINK_LEVELS:
        return word
    raise ValueError(f"think= takes on, off or a level ({', '.join(THINK_LEVELS)}), not {text.strip()!r}")


def think_word(think: bool | str) -> str:
    """`True` -> `on`, `False` -> `off`, a level as it is."""
    return "on" if think is True else "off" if think is False else str(think)


def parse_context(text: str) -> int:
    """A context size in tokens (`8192`, `8k`, `32K`); ValueError outside 256 to 16M."""
    match = re.fullmatch(r"(\d+)([kK]?)", text.strip())
    if not match:
        raise ValueError(f"not a context size: {text.strip()!r} (tokens, e.g. 8192 or 8k)")
    value = int(match.group(1)) * (1024 if match.group(2) else 1)
    if not MIN_CONTEXT <= value <= MAX_CONTEXT:
        raise ValueError(f"a context must be between {MIN_CONTEXT} and {MAX_CONTEXT} tokens, got {text.strip()}")
    return value


def parse_layers(text: str) -> int | None:
    """`cpu` -> 0, `auto` -> None, `gpu=27` -> 27; ValueError for anything else."""
    word = text.strip().lower()
    if word == CPU:
        return 0
    if word == AUTO:
        return None
    match = re.fullmatch(r"gpu=(\d+)", word)
    if match:
        return int(match.group(1))
    raise ValueError(
        f"unknown mode {text.strip()!r}: use cpu, auto or gpu=N, each optionally with :ctx=N and server settings"
    )


@dataclass(frozen=True)
class Mode:
    """Where the layers go (`layers`: 0 the CPU alone, None Ollama's choice, N layers on the GPU), the
    context the mode sets (None: the run's own), the server's settings it asks for (honoured only
    with --serve), and the `think` it asks of a thinking model (None: the run's own, --think or the
    model's default). `unread`: a name from elsewhere that is not a mode llmtop writes, kept as it is."""

    layers: int | None = None
    context: int | None = None
    server: ServerSettings = field(default_factory=ServerSettings)
    unread: str | None = None
    think: bool | str | None = None

    @classmethod
    def parse(cls, text: str) -> Mode:
        """`cpu`, `auto:ctx=8k:kv=q8_0`, `moe=all` (Ollama's choice, the experts on the CPU); ValueError
        with the reason for anything else."""
        parts = [part.strip() for part in text.strip().lower().split(":")]
        if any(not part for part in parts):
            raise ValueError(
                f"empty part in mode {text.strip()!r}: parts go between colons, e.g. auto:ctx=8192:kv=q8_0"
            )
        layers: int | None = None
        if parts[0] in (CPU, AUTO) or parts[0].startswith("gpu="):
            layers = parse_layers(parts[0])
            parts = parts[1:]
        context: int | None = None
        think: bool | str | None = None
        server = ServerSettings()
        seen: set[str] = set()
        for part in parts:
            key, equals, value = part.partition("=")
            if not equals and key in _KEYS:
                raise ValueError(f"{key} without a value in mode {text.strip()!r}: write {key}=..., e.g. auto:ctx=8192")
            if not equals or key not in _KEYS:
                raise ValueError(
                    f"unknown mode {text.strip()!r}: use cpu, auto or gpu=N, then any of ctx=N, kv=TYPE, "
                    "fa=on|off, moe=all|N, np=N, think=on|off|LEVEL, joined by colons"
                )
            if key in seen:
                raise ValueError(f"{key}= twice in mode {text.strip()!r}")
            seen.add(key)
            if key == "ctx":
                context = parse_context(value)
            elif key == "think":
                think = parse_think(value)
            else:
                server = server.with_setting(key, value)
        return cls(layers, context, server, think=think)

    @classmethod
    def of(cls, name: str) -> Mode:
        """The mode a row, a recording or the history names (never raises: a name llmtop did not write
        is kept as `unread`, its placement the name itself)."""
        try:
            return cls.parse(name)
        except ValueError:
            return cls(unread=name)

    @property
    def placement(self) -> str:
        """`cpu`, `auto` or `gpu=N`: where the layers go."""
        if self.unread is not None:
            return self.unread.partition(":")[0]
        return AUTO if self.layers is None else (CPU if self.layers == 0 else f"gpu={self.layers}")

    @property
    def context_part(self) -> str:
        """`ctx=8192` where the mode sets the context, else empty."""
        return f"ctx={self.context}" if self.context is not None else ""

    @property
    def think_part(self) -> str:
        """`think=off` where the mode sets the run's think, else empty."""
        return f"think={think_word(self.think)}" if self.think is not None else ""

    @property
    def variant(self) -> str:
        """All but the placement (`ctx=8192:kv=q8_0`): runs compare with the CPU-only run of the same variant."""
        if self.unread is not None:
            return self.unread.partition(":")[2]
        return ":".join(self.name.split(":")[1:])

    @property
    def plain(self) -> bool:
        """Asks nothing of the server itself (no kv=, fa=, moe=, np=)."""
        return self.server.empty

    @property
    def name(self) -> str:
        """The canonical name: the placement, then `ctx=N`, then the server's settings in a fixed order,
        then `think=`."""
        if self.unread is not None:
            return self.unread
        parts = [self.placement, self.context_part, *self.server.mode_parts(), self.think_part]
        return ":".join(part for part in parts if part)

    @property
    def label(self) -> str:
        """As tables and charts show it: `auto:ctx=8192, KV q8_0, FA on, think off`; a mode that sets
        neither the server's settings nor think, as its name."""
        if self.plain and self.think is None:
            return self.name
        base = ":".join([self.placement, *([self.context_part] if self.context_part else [])])
        think = [f"think {think_word(self.think)}"] if self.think is not None else []
        return ", ".join([base, *self.server.label_parts(), *think])


def parse_modes(text: str) -> list[Mode]:
    """`cpu,auto,gpu=20,auto:ctx=8192,auto:kv=q8_0` -> the modes, in order, without repeats."""
    modes: list[Mode] = []
    for part in text.split(","):
        if not part.strip():
            raise ValueError(f"empty mode in {text!r}")
        mode = Mode.parse(part)
        if mode.name not in [m.name for m in modes]:
            modes.append(mode)
    return modes
