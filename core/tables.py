"""The tables people read, each made of columns: a run's row and the compared groups (from
llmtop.figures.FIGURES), the history, a sweep's points and `llmtop watch`'s requests; and
`--columns`, which picks the compared table's columns by name.

Pure: no I/O, no Textual.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llmtop import units, words
from llmtop.figures import FIGURES, JAPANESE, UNKNOWN, gb_cell, joules_per_token_cell, or_unknown


@dataclass(frozen=True)
class Column:
    """One column of a table as people read it (Markdown and the screen)."""

    header: str
    text: Callable[[Any], str]
    right: bool = True


RUN_COLUMNS: tuple[Column, ...] = tuple(Column(f.name, f.run, f.right) for f in FIGURES if f.run is not None)
COMPARISON_COLUMNS: tuple[Column, ...] = tuple(
    Column(f.name, f.compared, f.right) for f in FIGURES if f.compared is not None
)
SCREEN_COMPARISON_COLUMNS: tuple[Column, ...] = tuple(
    Column(f.name, f.compared, f.right) for f in FIGURES if f.compared is not None and f.on_screen_compared
)
ARTICLE_COLUMNS = ("params", "quant", "size", "env", "tps", words.RAM, words.VRAM)
"""The article's own table (パラ数 量子化 サイズ 環境 tps RAM VRAM), with `model` first when several
models are compared: `--columns article`."""


def parse_columns(text: str) -> tuple[str, ...]:
    """`article`, or compared columns by name (`tps,RAM,VRAM,shared`; English or Japanese headers, any
    case) -> their headers in the order given; ValueError naming the columns there are."""
    if text.strip().lower() == "article":
        return ("article",)
    known = {c.header.lower(): c.header for c in COMPARISON_COLUMNS}
    known.update({JAPANESE[h].lower(): h for h in known.values() if h in JAPANESE})
    chosen: list[str] = []
    for part in text.split(","):
        name = part.strip()
        if not name:
            raise ValueError(f"empty column in {text!r}")
        header = known.get(name.lower())
        if header is None:
            names = ", ".join(c.header for c in COMPARISON_COLUMNS)
            raise ValueError(f"no column {name!r}: use article, or some of {names}")
        if header not in chosen:
            chosen.append(header)
    return tuple(chosen)


def chosen_columns(columns: Sequence[str] | None, models: int) -> tuple[Column, ...]:
    """The compared table's columns: all of them (None), the article's (with `model` when `models` > 1),
    or those named (parse_columns)."""
    if not columns:
        return COMPARISON_COLUMNS
    names = (("model",) if models > 1 else ()) + ARTICLE_COLUMNS if tuple(columns) == ("article",) else columns
    by_header = {c.header: c for c in COMPARISON_COLUMNS}
    return tuple(by_header[name] for name in names)


# The article's table first on the screen (the columns that fit a narrow terminal come first); the
# timing figures and the rest after them, one key away where the width is short.
ARTICLE_FIRST = (
    "model",
    "params",
    "quant",
    "size",
    "env",
    "tps",
    "speed-up",
    words.RAM,
    words.VRAM,
    "shared",
    "GPU layers",
)


def article_first(columns: tuple[Column, ...]) -> tuple[Column, ...]:
    """`columns` with the article's columns first, in the article's order, the others as they were."""
    rank = {name: i for i, name in enumerate(ARTICLE_FIRST)}
    return tuple(sorted(columns, key=lambda c: rank.get(c.header, len(rank))))  # sorted() is stable


SCREEN_RUN_COLUMNS = article_first(RUN_COLUMNS)
SCREEN_COMPARISON_COLUMNS = article_first(SCREEN_COMPARISON_COLUMNS)
HISTORY_COLUMNS: tuple[Column, ...] = (
    Column("date", lambda r: (r.started_at or "")[:16].replace("T", " ") or UNKNOWN, right=False),
    *RUN_COLUMNS,
)


def _point_tps(line: Any) -> str:
    point = line.point
    if point.tps is None:
        return "failed" if point.error else UNKNOWN
    return f"{point.tps:.2f} ± {point.tps_sd:.2f}" if point.tps_sd is not None else f"{point.tps:.2f}"


def _point_layers(line: Any) -> str:
    point = line.point
    if point.layers is None:
        return UNKNOWN
    return f"{point.layers}/{point.layers_total}" if point.layers_total else str(point.layers)


# The sweep's table (llmtop.measure.sweep.SweepLine): one line per point, the figures as the tables above
# define them (means over the point's runs), and what the sweep made of the point.
SWEEP_COLUMNS: tuple[Column, ...] = (
    Column("point", lambda line: line.point.mode, right=False),
    Column("GPU layers", _point_layers),
    Column("ctx", lambda line: str(line.point.context) if line.point.context is not None else UNKNOWN),
    Column("tps", _point_tps),
    Column(words.VRAM, lambda line: gb_cell(line.point.vram_bytes)),
    Column("shared", lambda line: gb_cell(line.point.shared_bytes)),
    Column("J/token", lambda line: or_unknown(joules_per_token_cell(line.point.joules_per_token))),
    Column("limit tps", lambda line: or_unknown(units.rate(line.limit))),
    Column("spilled", lambda line: UNKNOWN if line.point.spilled is None else ("yes" if line.point.spilled else "no")),
    Column(
        "runs",
        lambda line: f"{line.point.runs}" + (f" ({line.point.incomplete} incomplete)" if line.point.incomplete else ""),
    ),
    Column("found", lambda line: line.marks, right=False),
)


def _rate_of(value: float | None, digits: int = 2) -> str:
    return or_unknown(units.rate(value, digits))


def _request_result(request: Any) -> str:
    if request.error:
        return f"failed: {request.error}"
    if request.cancelled:
        return "cancelled"
    if request.done:
        return "complete"
    if request.eval_tokens:
        usual = getattr(request, "usual_tokens", None)
        if usual is None:
            return "generating"
        left = getattr(request, "answer_left_s", None)
        if left is None:
            return f"generating, past its usual {usual} tokens"
        return f"generating, about {units.clock(left)} left (usually {usual} tokens)"
    if request.prompt_progress is not None:
        left = getattr(request, "prompt_left_s", None)
        eta = f", about {units.clock(left)} left" if left is not None else ""
        return f"prompt {100 * request.prompt_progress:.0f}% read{eta}"
    return "running"


# `llmtop watch`'s requests (llmtop.watch.state.WatchedRequest): what the log's timings or the proxy told.
REQUEST_COLUMNS: tuple[Column, ...] = (
    Column("#", lambda r: str(r.number)),
    Column("model", lambda r: r.model or UNKNOWN, right=False),
    Column("prompt", lambda r: or_unknown(str(r.prompt_tokens) if r.prompt_tokens is not None else "")),
    Column("prompt tps", lambda r: _rate_of(r.prompt_tps, 1)),
    Column("tokens", lambda r: or_unknown(str(r.eval_tokens) if r.eval_tokens is not None else "")),
    Column("tps", lambda r: _rate_of(r.eval_tps)),
    Column("seconds", lambda r: or_unknown(f"{r.ended - r.started:.1f}" if r.ended is not None else "")),
    Column("from", lambda r: "server log" if r.source == "log" else (r.endpoint or "proxy"), right=False),
    Column("result", _request_result, right=False),
)
