"""Formatting of bytes, seconds, rates and messages, done only at the edge (screen and exports).

Sizes are decimal gigabytes (1 GB = 10^9 bytes), as `ollama list` and `ollama ps` print them.
"""

from __future__ import annotations

GB = 1_000_000_000
MB = 1_000_000

NA = "n/a"
"""What llmtop writes for a figure it could not read, written here alone: the screen, the exports,
the report and every command read it from here, and say the reason beside it."""

_ON = frozenset({"1", "true", "t", "yes", "y", "on", "enabled"})
_OFF = frozenset({"0", "false", "f", "no", "n", "off", "disabled"})


def switch(text: str | None) -> bool | None:
    """One reading of on/off for every switch llmtop reads (a mode's `fa=`, OLLAMA_FLASH_ATTENTION, an
    engine's `FlashAttention:Enabled`, llama.cpp's `flash_attn = 1`, LLAMA_ARG_CPU_MOE): True, False, or
    None for anything else (`auto`, empty)."""
    word = (text or "").strip().lower()
    return True if word in _ON else False if word in _OFF else None


def one_line(text: str) -> str:
    """A message on one line: its lines joined with " / ", blank ones left out (Ollama's errors can
    hold llama.cpp's several lines: `error loading model: ...\nllama_load_model_from_file: failed`)."""
    return " / ".join(part.strip() for part in text.splitlines() if part.strip())


def gb(value: int | None, digits: int = 1) -> str:
    """`42520413916` -> `42.5GB`, the article's way of writing a size; `""` when unknown."""
    if value is None:
        return ""
    return _no_negative_zero(f"{value / GB:.{digits}f}") + "GB"


def _no_negative_zero(text: str) -> str:
    """`-0.0` -> `0.0`: a change too small to show has no sign."""
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


def human_bytes(value: int | float | None) -> str:
    """A size for the screen: `41.6 GB`, `512 MB`; `n/a` when unknown. Negative deltas keep the sign."""
    if value is None:
        return NA
    sign = "-" if value < 0 else ""
    size = abs(value)
    if size >= GB:
        return f"{sign}{size / GB:.1f} GB"
    if size >= MB:
        return f"{sign}{size / MB:.0f} MB"
    if size >= 1000:
        return f"{sign}{size / 1000:.0f} kB"
    return f"{sign}{size:.0f} B"


def signed_bytes(value: int | None) -> str:
    """A delta for the screen: `+41.6 GB`, `-12 MB`; `n/a` when unknown."""
    if value is None:
        return NA
    return ("+" if value >= 0 else "") + human_bytes(value)


def rate(value: float | None, digits: int = 2) -> str:
    """Tokens per second with a fixed number of decimals; `""` when unknown."""
    return "" if value is None else f"{value:.{digits}f}"


def seconds(value: float | None) -> str:
    """`1.234` -> `1.23s`; `""` when unknown."""
    return "" if value is None else f"{value:.2f}s"


def clock(elapsed: float) -> str:
    """Elapsed time as `m:ss` for the phase line (whole seconds: the line is redrawn once a second)."""
    minutes, secs = divmod(int(max(elapsed, 0.0)), 60)
    return f"{minutes}:{secs:02d}"


def duration(value: float) -> str:
    """A longer span for an estimate: `40 s`, `32 min`, `1 h 05 min`."""
    total = int(round(max(value, 0.0)))
    if total < 60:
        return f"{total} s"
    minutes = (total + 30) // 60
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def joules(value: float | None) -> str:
    """Energy for people: `850 J`, `12.4 kJ`, `3.10 MJ`; `""` when unknown."""
    if value is None:
        return ""
    if abs(value) >= 1e6:
        return f"{value / 1e6:.2f} MJ"
    if abs(value) >= 1e4:
        return f"{value / 1e3:.1f} kJ"
    if abs(value) >= 1e3:
        return f"{value / 1e3:.2f} kJ"
    return f"{value:.3g} J" if abs(value) < 10 else f"{value:.0f} J"


def watts(value: float | None) -> str:
    """Power for people: `45.2 W`, `310 W`; `""` when unknown."""
    if value is None:
        return ""
    return f"{value:.1f} W" if abs(value) < 100 else f"{value:.0f} W"


def signed_watts(value: float | None) -> str:
    """A change of power: `+38.0 W`, `-2.1 W`; `n/a` when unknown."""
    if value is None:
        return NA
    return ("+" if value >= 0 else "-") + watts(abs(value))


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], top: float | None = None) -> str:
    """A short history as block characters, 0 to `top` (default: the highest value)."""
    high = top if top else max(values, default=0.0)
    if not values or high <= 0:
        return ""
    last = len(SPARKS) - 1
    return "".join(SPARKS[min(last, max(0, round(last * v / high)))] for v in values)
