"""Session exports: Markdown in the article's layout, CSV and JSON. Pure text; writing is the caller's.

Markdown compares: one row per model, mode and load kind, tps as `mean ± sd` (llama-bench's way of
writing t/s) and the speed-up over `cpu`. CSV has one line per run with the JSON keys. JSON has one
object per run, the comparison, and the machine (llama-bench's `cpu_info` and `gpu_info` names).
Energy per token is in every one, per run and per compared mode.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmtop import __version__, units
from llmtop.figures import JAPANESE
from llmtop.measure.comparison import Comparison, compare, placement_text
from llmtop.measure.load_parts import PART_LABELS, PartsLine, bars_text, parts_lines, worth_showing
from llmtop.measure.mode import Mode
from llmtop.measure.summary_row import SummaryRow
from llmtop.measure.sweep import SweepResult
from llmtop.measure.sweep_plan import SWEPT
from llmtop.measure.verdicts import said_of, verdicts
from llmtop.tables import HISTORY_COLUMNS, REQUEST_COLUMNS, SWEEP_COLUMNS, Column, chosen_columns
from llmtop.units import NA

if TYPE_CHECKING:
    from llmtop.watch.state import WatchedRequest

FORMATS = {".md": "md", ".markdown": "md", ".csv": "csv", ".json": "json"}
LANGUAGES = ("en", "ja")


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


def to_markdown(rows: Sequence[SummaryRow], lang: str = "en", columns: Sequence[str] | None = None) -> str:
    """The compared table: RAM, VRAM, shared and peak RAM are the increase over the baseline taken
    before each run (means over the runs), sizes in GB (10^9 bytes) with one decimal. `columns`:
    the article's or those named (figures.parse_columns); None: every one."""
    chosen = chosen_columns(columns, len({r.model for r in rows}))
    return markdown_table(compare(rows), chosen, lang)


def sweep_markdown(result: SweepResult, lang: str = "en") -> str:
    """The sweep's section: its points, the conclusion, the notes, and the Modelfile that sets it."""
    what = SWEPT[result.spec.parameter]
    parts = [
        f"### Sweep of {what}: {result.model}\n",
        markdown_table(result.lines(), SWEEP_COLUMNS, lang),
        f"**{result.conclusion}**\n",
    ]
    parts.extend(f"- {note}" for note in result.notes)
    if result.notes:
        parts[-1] += "\n"
    if result.modelfile and result.create_command:
        parts.append(f"Modelfile:\n\n```\n{result.modelfile}```\n")
        parts.append(f"```\n{result.create_command}\n```\n")
    return "\n".join(parts)


def _part_cell(part: str) -> Callable[[PartsLine], str]:
    def cell(line: PartsLine) -> str:
        size = line.size_of(part)
        return units.human_bytes(size) if size else ""

    return cell


PARTS_COLUMNS: tuple[Column, ...] = (
    Column("run", lambda line: line.run, right=False),
    Column("settings", lambda line: line.settings or NA, right=False),
    Column("where", lambda line: line.device, right=False),
    *(Column(label, _part_cell(part)) for part, label in PART_LABELS.items()),
    Column("total", lambda line: units.human_bytes(line.total)),
)
"""The parts table's columns: a line per run and device (load_parts.PartsLine)."""


def parts_columns(lines: Sequence[PartsLine]) -> tuple[Column, ...]:
    """PARTS_COLUMNS less the experts' column where no run kept experts apart (a dense model)."""
    if any(line.size_of("experts") for line in lines):
        return PARTS_COLUMNS
    return tuple(c for c in PARTS_COLUMNS if c.header != PART_LABELS["experts"])


def parts_markdown(rows: Sequence[SummaryRow], lang: str = "en") -> str:
    """What each run ran with and where its memory went, by part and device (a table, then stacked
    bars on one scale); '' when the log told none of it."""
    lines = parts_lines([(f"{r.model} {Mode.of(r.mode).label}", r.settings, r.memory_parts) for r in rows])
    if not lines:
        return ""
    title = "設定とメモリの内訳" if lang == "ja" else "Settings and memory by part"
    bars = "\n".join(bars_text(lines))
    return f"### {title}\n\n{markdown_table(lines, parts_columns(lines), lang)}\n```\n{bars}\n```\n"


def verdicts_markdown(rows: Sequence[SummaryRow], lang: str = "en") -> str:
    """The verdicts section (verdicts.said_of: each difference, each early ending, each warm or lost
    prompt cache, each run slow for this machine); '' where there is nothing to say."""
    said = said_of(rows)
    if not said:
        return ""
    title = "比較の結論" if lang == "ja" else "Verdicts"
    return f"### {title}\n\n" + "".join(f"- {line}\n" for line in said)


def session_markdown(
    rows: Sequence[SummaryRow],
    lang: str = "en",
    sweep: SweepResult | None = None,
    columns: Sequence[str] | None = None,
) -> str:
    """The compared table; the verdicts (each difference with its interval, or "about the same"); what
    each run ran with and its memory by part, where the log told them and the runs set the server or
    used a GPU; and the sweep's section when the runs were a sweep. With
    `columns` (the article's or a few), the compared table alone, as it is pasted into a post."""
    parts = [to_markdown(rows, lang, columns)]
    if columns:
        return parts[0]
    if said := verdicts_markdown(rows, lang):
        parts.append(said)
    if worth_showing([(r.mode, r.settings, r.memory_parts) for r in rows]):
        parts.append(parts_markdown(rows, lang))
    if sweep is not None:
        parts.append(sweep_markdown(sweep, lang))
    return "\n".join(parts)


def runs_markdown(rows: Sequence[SummaryRow], lang: str = "en") -> str:
    """One line per run, with its date and mode (for the history)."""
    return markdown_table(rows, HISTORY_COLUMNS, lang)


def to_csv(rows: Sequence[SummaryRow], sweep: SweepResult | None = None) -> str:
    """CSV with the JSON keys as the header and raw values (bytes, seconds, tokens/s), one run a line;
    a sweep adds what it made of each run's point (`sweep_found`) and its conclusion (`sweep_conclusion`)."""
    out = io.StringIO()
    names = [f.name for f in fields(SummaryRow)]
    if sweep is not None:
        names += ["sweep_found", "sweep_conclusion"]
        found = {p.mode: sweep.marks(p) for p in sweep.points}
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        values = {k: _csv_cell(v) for k, v in row.to_dict().items()}
        if sweep is not None:
            values.update(sweep_found=found.get(row.mode, ""), sweep_conclusion=sweep.conclusion)
        writer.writerow(values)
    return out.getvalue()


def _csv_cell(value: Any) -> Any:
    """A raw value as a CSV cell: empty for null, names joined by `;`, a list of objects (the power
    sources) as its JSON."""
    if value is None:
        return ""
    if isinstance(value, (tuple, list)):
        if all(isinstance(v, str) for v in value):
            return ";".join(value)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")) if value else ""
    return value


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
        "speedup_low": c.speedup_interval[0] if c.speedup_interval else None,
        "speedup_high": c.speedup_interval[1] if c.speedup_interval else None,
        "ran_alike": placement_text(c.alike) if c.alike is not None else None,
        "ram_delta_bytes": c.mean(lambda r: r.ram_delta_bytes),
        "vram_delta_bytes": c.mean(lambda r: r.vram_delta_bytes),
        "shared_delta_bytes": c.mean(lambda r: r.shared_delta_bytes),
        "joules_per_token": c.joules_per_token,
        "energy_vs_cpu": c.energy_vs_cpu,
        "energy_j": c.mean(lambda r: r.energy_j),
        "idle_power_w": c.mean(lambda r: r.idle_power_w),
    }


def to_json(
    rows: Sequence[SummaryRow],
    machine: Mapping[str, Any] | None = None,
    sweep: SweepResult | None = None,
    plan: Mapping[str, Any] | None = None,
) -> str:
    """`{"llmtop_version", "machine", "plan", "runs": [one object per run, in the order they ran],
    "comparison": [...], "verdicts": [...]}`, and `"sweep"` for a sweep; unknown figures are null.
    `plan`: how the runs were ordered and paced (`order`, `seed`, `num_predict`, `cooldown_s`)."""
    document: dict[str, Any] = {
        "llmtop_version": __version__,
        "machine": dict(machine or {}),
        "plan": dict(plan or {}),
        "runs": [row.to_dict() for row in rows],
        "comparison": [comparison_dict(c) for c in compare(rows)],
        "verdicts": [v.to_dict() for v in verdicts(compare(rows))],
    }
    if sweep is not None:
        document["sweep"] = sweep.to_dict()
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render(
    rows: Sequence[SummaryRow],
    path: str | Path,
    lang: str = "en",
    machine: Mapping[str, Any] | None = None,
    sweep: SweepResult | None = None,
    columns: Sequence[str] | None = None,
    plan: Mapping[str, Any] | None = None,
) -> str:
    """The export text for `path`'s format (`columns`: the Markdown's; CSV and JSON keep every key)."""
    kind = export_format(path)
    if kind == "md":
        return session_markdown(rows, lang, sweep, columns)
    if kind == "csv":
        return to_csv(rows, sweep)
    return to_json(rows, machine, sweep, plan)


def write_export(
    rows: Sequence[SummaryRow],
    path: str | Path,
    lang: str = "en",
    machine: Mapping[str, Any] | None = None,
    sweep: SweepResult | None = None,
    columns: Sequence[str] | None = None,
    plan: Mapping[str, Any] | None = None,
) -> Path:
    """Write the rows to `path` (format by suffix) and return the path written."""
    target = Path(path)
    target.write_text(render(rows, target, lang, machine, sweep, columns, plan), encoding="utf-8", newline="")
    return target


KEPT_COLUMNS = (
    Column("date", lambda kept: str(kept.get("recorded_at") or "")[:16].replace("T", " "), right=False),
    Column("server", lambda kept: str(kept.get("host") or ""), right=False),
)


def _of_pair(column: Column, side: int) -> Column:
    """`column` read from one side of a (kept facts, request) pair."""
    return Column(column.header, lambda pair: column.text(pair[side]), column.right)


def render_requests(
    requests: Sequence[WatchedRequest], path: str | Path, kept: Sequence[Mapping[str, Any]] | None = None
) -> str:
    """`llmtop watch`'s requests in `path`'s format: a table, one CSV line or one JSON object each.
    `kept`: the history's facts of each request (`recorded_at`, `host`, `kind`), shown first (the
    table's date and server) for `llmtop history --watched`."""
    kind = export_format(path)
    extra: list[Mapping[str, Any]] = list(kept) if kept is not None else [{} for _ in requests]
    if kind == "md":
        if kept is None:
            return markdown_table(requests, REQUEST_COLUMNS)
        columns = [*(_of_pair(c, 0) for c in KEPT_COLUMNS), *(_of_pair(c, 1) for c in REQUEST_COLUMNS[1:])]
        return markdown_table(list(zip(extra, requests, strict=True)), columns)
    dicts = [{**facts, **r.to_dict()} for facts, r in zip(extra, requests, strict=True)]
    if kind == "json":
        return json.dumps({"llmtop_version": __version__, "requests": dicts}, indent=2, ensure_ascii=False) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(dicts[0]) if dicts else ["number"], lineterminator="\n")
    writer.writeheader()
    for values in dicts:
        writer.writerow({k: _csv_cell(v) for k, v in values.items()})
    return out.getvalue()


def write_requests(requests: Sequence[WatchedRequest], path: str | Path) -> Path:
    """Write `llmtop watch`'s requests to `path` (format by suffix) and return the path written."""
    target = Path(path)
    target.write_text(render_requests(requests, target), encoding="utf-8", newline="")
    return target
