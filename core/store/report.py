"""One self-contained HTML page of a session: the article's table, the tokens/s bar chart, each run's
memory timeline and tokens/s over time with its figures, a sweep's points and conclusion, and the
machine. Nothing is fetched when it is opened (styles, charts and the few lines of script are in
the page), so it works offline and from a mail attachment. Pure text; writing is the caller's.

It is made from the same rows as the exports (the table is the Markdown export's, the figures the
JSON's, through llmtop.figures) and from each run's curves (llmtop.measure.timeline.RunCurves),
which a replay rebuilds from the recording's samples: a replay's report is the live run's.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmtop import __version__, words
from llmtop.figures import FIGURES, JAPANESE, UNKNOWN
from llmtop.measure.comparison import compare
from llmtop.measure.load_parts import parts_lines, worth_showing
from llmtop.measure.mode import CPU, Mode
from llmtop.measure.summary_row import SummaryRow
from llmtop.measure.sweep import SweepResult
from llmtop.measure.sweep_plan import SWEPT
from llmtop.measure.timeline import RunCurves, Timeline
from llmtop.measure.verdicts import said_of
from llmtop.store.charts import Bar, bar_chart_svg, chart_bars
from llmtop.store.exports import markdown_table, parts_columns, session_markdown
from llmtop.store.report_charts import CHART_CSS, memory_chart, parts_chart, rate_chart, spills
from llmtop.tables import COMPARISON_COLUMNS, REQUEST_COLUMNS, SWEEP_COLUMNS, Column
from llmtop.units import NA

if TYPE_CHECKING:
    from llmtop.watch.state import WatchedRequest

REPORT_SUFFIXES = (".html", ".htm")
NOTE_KEYS = ("_note", "_reason", "error")  # a figure's keys that say why it is n/a, or what it leaves out

PAGE_CSS = """
:root { color-scheme: light dark; --fg: #1f2328; --bg: #ffffff; --muted: #59636e; --line: #d1d9e0;
  --card: #f6f8fa; --accent: #0969da; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e6e6; --bg: #111316; --muted: #9aa4ae; --line: #30363d; --card: #1b1d21; --accent: #4c9be8; }
}
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 60rem; padding: 1rem; color: var(--fg); background: var(--bg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
h1 { font-size: 1.6rem; margin: 0.2rem 0; } h2 { font-size: 1.25rem; margin-top: 2rem; }
h3 { font-size: 1.05rem; }
.muted, figcaption { color: var(--muted); }
.scroll { overflow-x: auto; }
caption { caption-side: bottom; text-align: left; font-size: 0.85rem; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 0.5rem 0; }
th, td { border-bottom: 1px solid var(--line); padding: 0.25rem 0.6rem; white-space: nowrap; }
th { text-align: left; } td.num, th.num { text-align: right; }
figure { margin: 1rem 0; padding: 0.5rem; background: var(--card); border-radius: 6px;
  break-inside: avoid; page-break-inside: avoid; }
figure svg { display: block; max-width: 100%; height: auto; }
.downloads button, .copy { font: inherit; font-size: 0.85rem; margin: 0.3rem 0.3rem 0 0; padding: 0.15rem 0.6rem;
  color: var(--accent); background: transparent; border: 1px solid var(--line); border-radius: 4px; cursor: pointer; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.15rem 1rem; margin: 0.5rem 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
.why { color: var(--muted); font-size: 0.9rem; }
pre { background: var(--card); padding: 0.6rem; overflow-x: auto; }
@media (max-width: 40rem) { body { padding: 0.5rem; font-size: 14px; } dl.facts { grid-template-columns: 1fr; }
  dl.facts dd { margin-bottom: 0.4rem; } }
@page { size: A4; margin: 14mm; }
@media print { body { max-width: none; padding: 0; } .downloads, .copy { display: none; }
  figure { background: none; } h2, h3 { break-after: avoid; } }
"""

SCRIPT = """
(function () {
  function chartText(svg) {
    var copy = svg.cloneNode(true);
    var style = document.createElementNS("http://www.w3.org/2000/svg", "style");
    style.textContent = document.getElementById("chart-css").textContent;
    copy.insertBefore(style, copy.firstChild);
    return new XMLSerializer().serializeToString(copy);
  }
  function save(blob, name) {
    var link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = name;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(link.href); }, 1000);
  }
  document.querySelectorAll("figure[data-name]").forEach(function (figure) {
    var svg = figure.querySelector("svg");
    var name = figure.getAttribute("data-name");
    figure.querySelector("button.svg").addEventListener("click", function () {
      save(new Blob([chartText(svg)], {type: "image/svg+xml"}), name + ".svg");
    });
    figure.querySelector("button.png").addEventListener("click", function () {
      var box = svg.viewBox.baseVal, image = new Image(), scale = 2;
      image.onload = function () {
        var canvas = document.createElement("canvas");
        canvas.width = box.width * scale; canvas.height = box.height * scale;
        canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
        canvas.toBlob(function (blob) { save(blob, name + ".png"); }, "image/png");
      };
      image.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(chartText(svg));
    });
  });
  var copy = document.getElementById("copy-markdown");
  if (copy) {
    copy.addEventListener("click", function () {
      var text = document.getElementById("markdown").textContent;
      var done = function () { copy.textContent = "Copied"; };
      if (navigator.clipboard) { navigator.clipboard.writeText(text).then(done, function () {}); }
    });
  }
})();
"""


def report_format(path: str | Path) -> None:
    """ValueError unless `path` names an HTML file."""
    if Path(path).suffix.lower() not in REPORT_SUFFIXES:
        raise ValueError(f"a report is an HTML page: {str(path)!r} should end in .html")


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _table(items: Sequence[Any], columns: Sequence[Column], lang: str, caption: str) -> str:
    names = JAPANESE if lang == "ja" else {}
    head = "".join(f'<th scope="col"{_num(c)}>{_e(names.get(c.header, c.header))}</th>' for c in columns)
    body = "".join("<tr>" + "".join(f"<td{_num(c)}>{_e(c.text(i))}</td>" for c in columns) + "</tr>\n" for i in items)
    marked = ' lang="ja"' if lang == "ja" else ""
    return (
        f'<div class="scroll"><table{marked}><caption class="muted">{_e(caption)}</caption>\n'
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody></table></div>\n"
    )


def _num(column: Column) -> str:
    return ' class="num"' if column.right else ""


class _Figures:
    """Numbers the page's figures as they are made ("Figure 3."), so each caption names its chart."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, name: str, svg: str, caption: str) -> str:
        self.count += 1
        return _figure(name, svg, f"Figure {self.count}. {caption}")


def _figure(name: str, svg: str, caption: str) -> str:
    return (
        f'<figure data-name="{_e(name)}">\n{svg}<figcaption>{_e(caption)}</figcaption>\n'
        '<div class="downloads"><button type="button" class="svg">SVG</button>'
        '<button type="button" class="png">PNG</button></div></figure>\n'
    )


def _speed_ups(rows: Sequence[SummaryRow]) -> str:
    """The speed-up over the CPU-only run of each compared mode, as a sentence."""
    speed_up = next(c for c in COMPARISON_COLUMNS if c.header == "speed-up")
    said = [
        f"{c.model} {c.most_common(lambda r: r.env) or c.mode} ({c.mode}): {speed_up.text(c)} the CPU's rate"
        for c in compare(rows)
        if Mode.of(c.mode).placement != CPU and speed_up.text(c) not in (UNKNOWN, "")
    ]
    return "; ".join(said) + "." if said else "No CPU-only run to compare with."


def _run_facts(row: SummaryRow) -> str:
    """Every figure of the run, n/a ones with the reason the run recorded; what each figure is, in
    its name's tooltip."""
    items = []
    for figure in FIGURES:
        if figure.run is None:
            continue
        text = figure.run(row)
        notes = [str(getattr(row, k)) for k in figure.keys if k.endswith(NOTE_KEYS) and getattr(row, k, None)]
        why = "; ".join(notes)
        if text == UNKNOWN and not why:
            why = "not measured in this run"
        detail = f' <span class="why">({_e(why)})</span>' if why else ""
        items.append(f'<dt title="{_e(figure.how)}">{_e(figure.name)}</dt><dd>{_e(text)}{detail}</dd>')
    return '<dl class="facts">\n' + "\n".join(items) + "\n</dl>\n"


def _run_section(number: int, row: SummaryRow, curves: RunCurves | None, figure: _Figures, no_curves: str) -> str:
    name = f"{row.model} {row.env or row.mode}".strip()
    parts = [f'<section class="run" id="run-{number}">\n<h3>Run {number}: {_e(name)}</h3>\n']
    when = (row.started_at or "").replace("T", " ")
    parts.append(f'<p class="muted">{_e(when)} · mode {_e(row.mode)} · {_e(row.load_kind or "")} load</p>\n')
    if row.split_reason:
        parts.append(f"<p>{_e(row.split_reason)}</p>\n")
    if row.error:
        parts.append(f"<p><strong>Not complete:</strong> {_e(row.error)}</p>\n")
    if curves is not None and curves.timeline.series:
        bands = spills(curves)
        caption = (
            "RAM, the Ollama processes, dedicated VRAM and shared GPU memory, in GB; dashed: each one's baseline; "
            "in the legend: each one's last reading over its baseline"
        )
        if bands:
            caption += "; shaded: shared GPU memory over its baseline (the spill)"
        chart = memory_chart(f"m{number}", curves, f"Run {number} memory: {name}")
        parts.append(figure(f"run-{number}-memory", chart, caption))
        for why in curves.timeline.missing:
            parts.append(f'<p class="why">Not drawn: {_e(why)}</p>\n')
    elif curves is None:
        parts.append(f'<p class="why">Memory timeline and tokens/s over time: {NA} ({_e(no_curves)})</p>\n')
    if curves is not None and curves.rate:
        parts.append(
            figure(
                f"run-{number}-tokens",
                rate_chart(f"r{number}", curves, f"Run {number} tokens/s: {name}"),
                f"tokens/s over a {curves.rate_window_s:.3g} s window, on the memory timeline's axis",
            )
        )
    parts.append(_run_facts(row))
    parts.append("</section>\n")
    return "".join(parts)


def _sweep_section(sweep: SweepResult, lang: str, figure: _Figures) -> str:
    what = SWEPT[sweep.spec.parameter]
    bars = [Bar(line.point.mode, line.point.tps, line.point.tps_sd) for line in sweep.lines() if line.point.tps]
    parts = [f'<section id="sweep">\n<h2>Sweep of {_e(what)}: {_e(sweep.model)}</h2>\n']
    if bars:
        parts.append(
            figure("sweep", bar_chart_svg(bars, f"tokens/s by {what.split(' (')[0]}"), "each point's eval rate")
        )
    parts.append(_table(sweep.lines(), SWEEP_COLUMNS, lang, "the sweep's points"))
    parts.append(f"<p><strong>{_e(sweep.conclusion)}</strong></p>\n")
    parts.extend(f"<p>{_e(note)}</p>\n" for note in sweep.notes)
    if sweep.modelfile:
        parts.append(f"<p>Modelfile:</p>\n<pre>{_e(sweep.modelfile)}</pre>\n")
    if sweep.create_command:
        parts.append(f"<pre>{_e(sweep.create_command)}</pre>\n")
    parts.append("</section>\n")
    return "".join(parts)


def _watch_section(report: SessionReport, figure: _Figures) -> str:
    """A `llmtop watch` session: its requests, and the machine's memory while it watched."""
    parts = ['<section id="requests">\n<h2>Requests seen by llmtop watch</h2>\n']
    parts.append(_table(report.requests, REQUEST_COLUMNS, "en", f"{len(report.requests)} request(s), oldest first"))
    if report.watched is not None and report.watched.series:
        chart = memory_chart("w1", RunCurves(report.watched, ()), "Memory while watching")
        caption = "RAM, the Ollama processes, dedicated VRAM and shared GPU memory, in GB; marks: the loads"
        parts.append(figure("watch-memory", chart, caption))
        parts.extend(f'<p class="why">Not drawn: {_e(why)}</p>\n' for why in report.watched.missing)
    parts.append("</section>\n")
    return "".join(parts)


def _machine_section(machine: Mapping[str, Any]) -> str:
    facts = [
        ("CPU", machine.get("cpu_info")),
        (words.RAM, f"{machine['ram_total_bytes'] / 1e9:.1f} GB" if machine.get("ram_total_bytes") else None),
        ("GPUs", machine.get("gpu_info")),
        ("OS", machine.get("os")),
        ("Ollama", machine.get("ollama_version")),
        ("llmtop", machine.get("llmtop_version") or __version__),
    ]
    why = "not read" if machine else "not in the recording"
    items = "\n".join(
        f"<dt>{_e(name)}</dt><dd>{_e(value) if value else f'{UNKNOWN} <span class=why>({why})</span>'}</dd>"
        for name, value in facts
    )
    gpus = machine.get("gpus") or []
    extra = "".join(f"<dt>GPU {i + 1}</dt><dd>{_e(_gpu_line(g))}</dd>\n" for i, g in enumerate(gpus))
    return f'<section id="machine">\n<h2>The machine</h2>\n<dl class="facts">\n{items}\n{extra}</dl>\n</section>\n'


def _gpu_line(gpu: Any) -> str:
    if not isinstance(gpu, Mapping):
        return str(gpu)
    return ", ".join(f"{k}: {v}" for k, v in gpu.items() if v not in (None, ""))


@dataclass(frozen=True)
class SessionReport:
    """What a report shows: the rows, their curves (None where a row has none, `no_curves` saying
    why: the history keeps figures, not samples), the machine, the headers' language, the sweep."""

    rows: Sequence[SummaryRow]
    curves: Sequence[RunCurves | None]
    machine: Mapping[str, Any]
    lang: str = "en"
    sweep: SweepResult | None = None
    no_curves: str = "this run's samples are not in this session"
    requests: Sequence[WatchedRequest] = ()  # a `llmtop watch` session's
    watched: Timeline | None = None  # and its memory over the whole session
    columns: Sequence[str] | None = None  # the Markdown to copy: the article's columns or a few (--columns)


def report_html(report: SessionReport) -> str:
    """The page of a session: its runs, or the requests `llmtop watch` saw."""
    rows, lang = report.rows, report.lang
    models = list(dict.fromkeys(row.model for row in rows))
    if rows or not report.requests:
        title = f"llmtop: {', '.join(models) or 'no runs'}"
        counted = f"{len(rows)} run(s)"
        markdown = session_markdown(rows, lang, report.sweep, report.columns)
    else:
        title, counted = "llmtop watch", f"{len(report.requests)} request(s)"
        markdown = markdown_table(report.requests, REQUEST_COLUMNS)
    dates = sorted(row.started_at for row in rows if row.started_at)
    when = dates[0].replace("T", " ") if dates else ""
    if len(dates) > 1 and dates[-1][:10] != dates[0][:10]:
        when += f" to {dates[-1].replace('T', ' ')}"
    figure = _Figures()
    body = [
        f'<header>\n<h1>{_e(title)}</h1>\n<p class="muted">{counted}{f" · {_e(when)}" if when else ""} · '
        f"llmtop {_e(__version__)}</p>\n</header>\n",
    ]
    if rows:
        body.append(_results_section(report, figure))
    if report.requests:
        body.append(_watch_section(report, figure))
    body.append(
        '<button type="button" class="copy" id="copy-markdown">Copy the table as Markdown</button>\n'
        f'<details><summary>Markdown</summary>\n<pre id="markdown">{_e(markdown)}</pre>\n</details>\n'
    )
    if rows:
        body.append(_runs_section(report, figure))
    body.append(_machine_section(report.machine))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{PAGE_CSS}</style>\n"
        f'<style id="chart-css">{CHART_CSS}</style>\n</head>\n<body>\n'
        + "".join(body)
        + f"<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


def _results_section(report: SessionReport, figure: _Figures) -> str:
    """The article's table, the tokens/s bars with the speed-up over the CPU, and a sweep's section."""
    rows = report.rows
    parts = [
        '<section id="results">\n<h2>Results</h2>\n',
        _table(
            compare(rows), COMPARISON_COLUMNS, report.lang, "RAM, VRAM, shared: the increase over each run's baseline"
        ),
    ]
    bars = chart_bars(rows)
    if bars:
        parts.append(figure("tokens-per-second", bar_chart_svg(bars), _speed_ups(rows)))
    if said := said_of(rows):
        items = "".join(f"<li>{_e(line)}</li>\n" for line in said)
        parts.append(f'<ul class="verdicts">\n{items}</ul>\n')
    parts.append("</section>\n")
    if worth_showing([(r.mode, r.settings, r.memory_parts) for r in rows]):  # as the Markdown's section
        memory = parts_lines([(f"{r.model} {Mode.of(r.mode).label}", r.settings, r.memory_parts) for r in rows])
        caption = (
            "Where each run's memory went, by part and device, from the server log's own buffer sizes; "
            + "; ".join(dict.fromkeys(f"{line.run}: {line.settings}" for line in memory if line.settings))
        )
        parts.append('<section id="parts">\n<h2>Settings and memory by part</h2>\n')
        parts.append(figure("memory-by-part", parts_chart("parts", memory, "Memory by part"), caption))
        parts.append(
            _table(memory, parts_columns(memory), report.lang, "What each run ran with, and its memory by part")
        )
        parts.append("</section>\n")
    if report.sweep is not None:
        parts.append(_sweep_section(report.sweep, report.lang, figure))
    return "".join(parts)


def _runs_section(report: SessionReport, figure: _Figures) -> str:
    rows = report.rows
    padded = list(report.curves) + [None] * (len(rows) - len(report.curves))
    parts = ['<section id="runs">\n<h2>Each run</h2>\n']
    for number, (row, curves) in enumerate(zip(rows, padded, strict=False), start=1):
        parts.append(_run_section(number, row, curves, figure, report.no_curves))
    parts.append("</section>\n")
    return "".join(parts)


def write_report(path: str | Path, report: SessionReport) -> Path:
    """Write the page to `path` (OSError when it cannot be)."""
    target = Path(path)
    target.write_text(report_html(report), encoding="utf-8")
    return target
