"""Session exports: Markdown in the article's layout, CSV and JSON. Pure text; writing is the caller's.

Markdown compares: one row per model, mode and load kind, tps as `mean ± sd` (llama-bench's way of
writing t/s) and the speed-up over `cpu`. CSV has one line per run with the JSON keys. JSON has one
object per run, the comparison, and the machine (llama-bench's `cpu_info` and `gpu_info` names).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from llmtop import __version__, units
from llmtop.comparison import Comparison, compare
from llmtop.summary import SummaryRow

FORMATS = {".md": "md", ".markdown": "md", ".csv": "csv", ".json": "json"}
LANGUAGES = ("en", "ja")
UNKNOWN = "n/a"
# The article's Japanese headers (パラ数, 量子化, サイズ, 環境, tps, RAM, VRAM) and the rest in kind.
JAPANESE = {
    "model": "モデル",
    "params": "パラ数",
    "quant": "量子化",
    "size": "サイズ",
    "env": "環境",
    "GPU layers": "GPU層",
    "speed-up": "速度比",
    "shared": "共有GPUメモリ",
    "prompt tps": "プロンプトtps",
    "client tps": "実測tps",
    "load": "ロード",
    "peak RAM": "RAMピーク",
    "runs": "回数",
    "run": "結果",
    "date": "日時",
    "mode": "モード",
}


@dataclass(frozen=True)
class Column:
    """One column of a table as people read it (Markdown and the screen)."""

    header: str
    text: Callable[[Any], str]
    right: bool = True


def _or_unknown(text: str) -> str:
    return text if text else UNKNOWN


def _layers(row: SummaryRow) -> str:
    return f"{row.layers_offloaded}/{row.layers_total}" if row.layers_offloaded is not None else UNKNOWN


def _run_state(row: SummaryRow) -> str:
    return "complete" if row.complete else f"incomplete: {row.error or 'stopped'}"


# Per run (the screen's table, history): the article's columns, then the timing figures.
TABLE_COLUMNS: tuple[Column, ...] = (
    Column("model", lambda r: r.model, right=False),
    Column("params", lambda r: r.parameter_size or UNKNOWN),
    Column("quant", lambda r: r.quantization or UNKNOWN, right=False),
    Column("size", lambda r: _or_unknown(units.gb(r.size_bytes))),
    Column("env", lambda r: r.env or UNKNOWN, right=False),
    Column("GPU layers", _layers),
    Column("tps", lambda r: _or_unknown(units.rate(r.eval_rate_tps))),
    Column("RAM", lambda r: _or_unknown(units.gb(r.ram_delta_bytes))),
    Column("VRAM", lambda r: _or_unknown(units.gb(r.vram_delta_bytes))),
    Column("shared", lambda r: _or_unknown(units.gb(r.shared_delta_bytes))),
    Column("TTFT", lambda r: _or_unknown(units.seconds(r.ttft_s))),
    Column("prompt tps", lambda r: _or_unknown(units.rate(r.prompt_rate_tps))),
    Column("client tps", lambda r: _or_unknown(units.rate(r.client_rate_tps))),
    Column("load", lambda r: _or_unknown(units.seconds(r.load_s))),
    Column("peak RAM", lambda r: _or_unknown(units.gb(r.ram_peak_bytes))),
    Column("run", _run_state, right=False),
)

HISTORY_COLUMNS: tuple[Column, ...] = (
    Column("date", lambda r: (r.started_at or "")[:16].replace("T", " ") or UNKNOWN, right=False),
    Column("mode", lambda r: r.mode, right=False),
    *TABLE_COLUMNS,
)


def _gb_mean(get: Callable[[SummaryRow], int | None]) -> Callable[[Comparison], str]:
    return lambda c: _or_unknown(units.gb(None if (v := c.mean(get)) is None else int(v)))


def _tps(c: Comparison) -> str:
    mean, sd = c.tps, c.tps_stdev
    if mean is None:
        return UNKNOWN
    return f"{mean:.2f} ± {sd:.2f}" if sd is not None else f"{mean:.2f}"


def _runs(c: Comparison) -> str:
    return f"{len(c.runs)}" + (f" ({c.incomplete} incomplete)" if c.incomplete else "")


# Compared (Markdown export, headless output): one row per model, mode and load kind.
COMPARISON_COLUMNS: tuple[Column, ...] = (
    Column("model", lambda c: c.model, right=False),
    Column("params", lambda c: c.first.parameter_size or UNKNOWN),
    Column("quant", lambda c: c.first.quantization or UNKNOWN, right=False),
    Column("size", lambda c: _or_unknown(units.gb(c.first.size_bytes))),
    Column("env", lambda c: str(c.most_common(lambda r: r.env) or UNKNOWN), right=False),
    Column(
        "GPU layers",
        lambda c: str(c.most_common(lambda r: _layers(r) if r.layers_offloaded is not None else None) or UNKNOWN),
    ),
    Column("tps", _tps),
    Column("speed-up", lambda c: f"{c.speedup:.2f}x" if c.speedup is not None else UNKNOWN),
    Column("RAM", _gb_mean(lambda r: r.ram_delta_bytes)),
    Column("VRAM", _gb_mean(lambda r: r.vram_delta_bytes)),
    Column("shared", _gb_mean(lambda r: r.shared_delta_bytes)),
    Column("TTFT", lambda c: _or_unknown(units.seconds(c.mean(lambda r: r.ttft_s)))),
    Column("prompt tps", lambda c: _or_unknown(units.rate(c.mean(lambda r: r.prompt_rate_tps)))),
    Column("client tps", lambda c: _or_unknown(units.rate(c.mean(lambda r: r.client_rate_tps)))),
    Column(
        "load",
        lambda c: _or_unknown(units.seconds(c.mean(lambda r: r.load_s))) + (" (warm)" if c.load_kind == "warm" else ""),
    ),
    Column("peak RAM", _gb_mean(lambda r: r.ram_peak_bytes)),
    Column("runs", _runs),
)


# On screen, where the per-run table above already has the timing figures.
SCREEN_COMPARISON_COLUMNS: tuple[Column, ...] = tuple(
    c for c in COMPARISON_COLUMNS if c.header not in ("TTFT", "prompt tps", "client tps", "load")
)


def export_format(path: str | Path) -> str:
    """`md`, `csv` or `json` from the file's suffix; ValueError naming the accepted ones otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot tell the export format of {str(path)!r}: use .md, .csv or .json")
    return FORMATS[suffix]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(items: Sequence[Any], columns: Sequence[Column], lang: str = "en") -> str:
    """A GitHub-flavoured Markdown table, numbers right-aligned."""
    names = JAPANESE if lang == "ja" else {}
    lines = [
        "| " + " | ".join(names.get(c.header, c.header) for c in columns) + " |",
        "|" + "|".join("---:" if c.right else "---" for c in columns) + "|",
    ]
    for item in items:
        lines.append("| " + " | ".join(_md_cell(c.text(item)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def to_markdown(rows: Sequence[SummaryRow], lang: str = "en") -> str:
    """The compared table: RAM, VRAM, shared and peak RAM are the increase over the baseline taken
    before each run (means over the runs), sizes in GB (10^9 bytes) with one decimal."""
    return markdown_table(compare(rows), COMPARISON_COLUMNS, lang)


def runs_markdown(rows: Sequence[SummaryRow], lang: str = "en") -> str:
    """One line per run, with its date and mode (for the history)."""
    return markdown_table(rows, HISTORY_COLUMNS, lang)


def to_csv(rows: Sequence[SummaryRow]) -> str:
    """CSV with the JSON keys as the header and raw values (bytes, seconds, tokens/s), one run a line."""
    out = io.StringIO()
    names = [f.name for f in fields(SummaryRow)]
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: ("" if v is None else ";".join(v) if isinstance(v, tuple) else v) for k, v in row.to_dict().items()}
        )
    return out.getvalue()


def comparison_dict(c: Comparison) -> dict[str, Any]:
    """A compared group as JSON: llama-bench's `avg_ts` and `stddev_ts` for tps."""
    return {
        "model": c.model,
        "mode": c.mode,
        "load_kind": c.load_kind,
        "runs": len(c.runs),
        "incomplete": c.incomplete,
        "avg_ts": c.tps,
        "stddev_ts": c.tps_stdev,
        "speedup_vs_cpu": c.speedup,
        "ram_delta_bytes": c.mean(lambda r: r.ram_delta_bytes),
        "vram_delta_bytes": c.mean(lambda r: r.vram_delta_bytes),
        "shared_delta_bytes": c.mean(lambda r: r.shared_delta_bytes),
    }


def to_json(rows: Sequence[SummaryRow], machine: Mapping[str, Any] | None = None) -> str:
    """`{"llmtop_version", "machine", "runs": [one object per run], "comparison": [...]}`; unknown
    figures are null."""
    document = {
        "llmtop_version": __version__,
        "machine": dict(machine or {}),
        "runs": [row.to_dict() for row in rows],
        "comparison": [comparison_dict(c) for c in compare(rows)],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render(
    rows: Sequence[SummaryRow], path: str | Path, lang: str = "en", machine: Mapping[str, Any] | None = None
) -> str:
    """The export text for `path`'s format."""
    kind = export_format(path)
    if kind == "md":
        return to_markdown(rows, lang)
    if kind == "csv":
        return to_csv(rows)
    return to_json(rows, machine)


def write_export(
    rows: Sequence[SummaryRow], path: str | Path, lang: str = "en", machine: Mapping[str, Any] | None = None
) -> Path:
    """Write the rows to `path` (format by suffix) and return the path written."""
    target = Path(path)
    target.write_text(render(rows, target, lang, machine), encoding="utf-8", newline="")
    return target
