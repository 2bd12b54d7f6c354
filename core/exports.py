"""Session exports: Markdown in the article's layout, CSV and JSON. Pure text; writing is the caller's."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from llmtop import __version__, units
from llmtop.summary import SummaryRow

FORMATS = {".md": "md", ".markdown": "md", ".csv": "csv", ".json": "json"}
UNKNOWN = "n/a"


@dataclass(frozen=True)
class Column:
    """One column of the summary table as people read it (Markdown and the screen)."""

    header: str
    text: Callable[[SummaryRow], str]
    right: bool = True


def _or_unknown(text: str) -> str:
    return text if text else UNKNOWN


TABLE_COLUMNS: tuple[Column, ...] = (
    Column("model", lambda r: r.model, right=False),
    Column("params", lambda r: r.parameter_size or UNKNOWN),
    Column("quant", lambda r: r.quantization or UNKNOWN, right=False),
    Column("size", lambda r: _or_unknown(units.gb(r.size_bytes))),
    Column("env", lambda r: r.env or UNKNOWN, right=False),
    Column(
        "GPU layers",
        lambda r: f"{r.layers_offloaded}/{r.layers_total}" if r.layers_offloaded is not None else UNKNOWN,
    ),
    Column("tps", lambda r: _or_unknown(units.rate(r.eval_rate_tps))),
    Column("RAM", lambda r: _or_unknown(units.gb(r.ram_delta_bytes))),
    Column("VRAM", lambda r: _or_unknown(units.gb(r.vram_delta_bytes))),
    Column("shared", lambda r: _or_unknown(units.gb(r.shared_delta_bytes))),
    Column("TTFT", lambda r: _or_unknown(units.seconds(r.ttft_s))),
    Column("prompt tps", lambda r: _or_unknown(units.rate(r.prompt_rate_tps))),
    Column("client tps", lambda r: _or_unknown(units.rate(r.client_rate_tps))),
    Column("load", lambda r: _or_unknown(units.seconds(r.load_s))),
    Column("peak RAM", lambda r: _or_unknown(units.gb(r.ram_peak_bytes))),
    Column("run", lambda r: "complete" if r.complete else f"incomplete: {r.error or 'stopped'}", right=False),
)


def export_format(path: str | Path) -> str:
    """`md`, `csv` or `json` from the file's suffix; ValueError naming the accepted ones otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot tell the export format of {str(path)!r}: use .md, .csv or .json")
    return FORMATS[suffix]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(rows: Sequence[SummaryRow]) -> str:
    """A GitHub-flavoured Markdown table, numbers right-aligned; RAM, VRAM, shared and peak RAM are
    the increase over the baseline taken before the run."""
    lines = [
        "| " + " | ".join(c.header for c in TABLE_COLUMNS) + " |",
        "|" + "|".join("---:" if c.right else "---" for c in TABLE_COLUMNS) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_md_cell(c.text(row)) for c in TABLE_COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: Sequence[SummaryRow]) -> str:
    """CSV with the JSON keys as the header and raw values (bytes, seconds, tokens/s)."""
    out = io.StringIO()
    names = [f.name for f in fields(SummaryRow)]
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.to_dict().items()})
    return out.getvalue()


def to_json(rows: Sequence[SummaryRow]) -> str:
    """`{"llmtop_version": ..., "runs": [one object per run]}`; unknown figures are null."""
    document = {"llmtop_version": __version__, "runs": [row.to_dict() for row in rows]}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


RENDERERS: dict[str, Callable[[Sequence[SummaryRow]], str]] = {"md": to_markdown, "csv": to_csv, "json": to_json}


def render(rows: Sequence[SummaryRow], path: str | Path) -> str:
    """The export text for `path`'s format."""
    return RENDERERS[export_format(path)](rows)


def write_export(rows: Sequence[SummaryRow], path: str | Path) -> Path:
    """Write the rows to `path` (format by suffix) and return the path written."""
    target = Path(path)
    text = render(rows, target)
    target.write_text(text, encoding="utf-8", newline="")
    return target
