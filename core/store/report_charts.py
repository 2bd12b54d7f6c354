"""The report's line charts as SVG: a run's memory timeline and its tokens/s over time (pure text).

llmtop writes these itself rather than through a plotting library: the charts are small and of two
kinds, their text stays text (a screen reader and a search read the title, the description, the
axes and every label), their colours follow the page's light or dark theme through CSS classes,
and a 4-run report stays a few tens of kB where a library's SVG (matplotlib draws every glyph as a
path) is hundreds, with a second of import and tens of MB of install. The classes are styled by
CHART_CSS, which the page holds once and which a downloaded chart carries with it.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmtop import units, words
from llmtop.measure.load_parts import PART_LABELS, PartsLine
from llmtop.measure.summary import is_spill
from llmtop.measure.timeline import RunCurves
from llmtop.store.charts import nice_top

WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 34, 40  # the legend sits right of the plot
COLOUR_OF = {words.RAM: 0, words.OLLAMA_RSS: 1, words.VRAM: 2, words.SHARED: 3}  # the classes s0-s3 and k0-k3

CHART_CSS = """
svg.chart { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; font-size: 12px; }
svg.chart .bg { fill: #ffffff; }
svg.chart text { fill: #222222; }
svg.chart .title { font-size: 14px; font-weight: 600; }
svg.chart .grid { stroke: #e3e3e3; stroke-width: 1; }
svg.chart .axis { stroke: #555555; stroke-width: 1; }
svg.chart .mark { stroke: #888888; stroke-width: 1; stroke-dasharray: 2 3; }
svg.chart .spill { fill: #e15759; fill-opacity: 0.16; }
svg.chart .line { fill: none; stroke-width: 2; stroke-linejoin: round; }
svg.chart .base { stroke-width: 1; stroke-dasharray: 5 4; }
svg.chart .s0 { stroke: #4e79a7; } svg.chart .s1 { stroke: #59a14f; }
svg.chart .s2 { stroke: #f28e2b; } svg.chart .s3 { stroke: #e15759; }
svg.chart .k0 { fill: #4e79a7; } svg.chart .k1 { fill: #59a14f; }
svg.chart .k2 { fill: #f28e2b; } svg.chart .k3 { fill: #e15759; }
@media (prefers-color-scheme: dark) {
  svg.chart .bg { fill: #1b1d21; }
  svg.chart text { fill: #e6e6e6; }
  svg.chart .grid { stroke: #33363c; }
  svg.chart .axis { stroke: #aaaaaa; }
  svg.chart .spill { fill-opacity: 0.28; }
}
"""


@dataclass(frozen=True)
class Line:
    """One series: its name, its points (x in seconds, y in the chart's unit) and, dashed, its baseline."""

    name: str
    points: Sequence[tuple[float, float]]
    baseline: float | None = None
    note: str = ""  # said after the name in the legend


def line_chart(
    ident: str,
    title: str,
    description: str,
    lines: Sequence[Line],
    unit: str,
    end_s: float,
    marks: Sequence[tuple[float, str]] = (),
    bands: Sequence[tuple[float, float]] = (),
    label: Callable[[float], str] = lambda v: f"{v:g}",
) -> str:
    """An SVG line chart over [0, end_s] seconds: each line with its dashed baseline, the phase marks
    as dotted verticals, `bands` (x ranges) shaded. Its title and description are text for readers;
    `ident` names it in the page (unique there)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    end_s = end_s if end_s > 0 else 1.0
    top = nice_top(max([y for line in lines for _, y in line.points] + [line.baseline or 0 for line in lines] + [0]))

    def x_of(seconds: float) -> float:
        return LEFT + plot_w * min(max(seconds, 0.0), end_s) / end_s

    def y_of(value: float) -> float:
        return TOP + plot_h - plot_h * value / top

    title_id = html.escape(ident)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}" role="img" aria-labelledby="{title_id} {title_id}d">',
        f'<title id="{title_id}">{html.escape(title)}</title>',
        f'<desc id="{title_id}d">{html.escape(description)}</desc>',
        f'<rect class="bg" width="{WIDTH}" height="{HEIGHT}"/>',
        f'<text class="title" x="{LEFT}" y="20">{html.escape(title)}</text>',
    ]
    for x0, x1 in bands:
        out.append(
            f'<rect class="spill" x="{x_of(x0):.1f}" y="{TOP}" width="{max(x_of(x1) - x_of(x0), 1.0):.1f}" '
            f'height="{plot_h}"><title>spill</title></rect>'
        )
    for i in range(5):
        value = top * i / 4
        y = y_of(value)
        out.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{html.escape(label(value))}</text>')
    out.append(f'<text x="{LEFT - 6}" y="{TOP - 8}" text-anchor="end">{html.escape(unit)}</text>')
    for i in range(6):
        seconds = end_s * i / 5
        out.append(
            f'<text x="{x_of(seconds):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{_seconds(seconds)}</text>'
        )
    last_x, row = -1e9, 0
    for at, word in marks:
        x = x_of(at)
        row = 1 - row if x - last_x < 36 else 0  # a word too close to the one before goes a line lower
        last_x = x
        out.append(f'<line class="mark" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}"/>')
        anchor = ' text-anchor="end"' if x > LEFT + 0.9 * plot_w else ""  # the last mark's word stays in the plot
        shift = -3 if anchor else 3
        y = TOP + 10 + 11 * row
        out.append(f'<text x="{x + shift:.1f}" y="{y}" font-size="10"{anchor}>{html.escape(word)}</text>')
    out.append(f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}"/>')
    for i, line in enumerate(lines):
        colour = COLOUR_OF.get(line.name, i % 4)  # a figure keeps its colour when another is missing
        if line.baseline is not None:
            y = y_of(line.baseline)
            out.append(
                f'<line class="base s{colour}" x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}">'
                f"<title>{html.escape(line.name)} baseline {html.escape(label(line.baseline))} {unit}</title></line>"
            )
        path = " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in line.points)
        out.append(
            f'<polyline class="line s{colour}" data-series="{html.escape(line.name)}" points="{path}">'
            f"<title>{html.escape(line.name)}</title></polyline>"
        )
        ly = TOP + 8 + 20 * i
        out.append(f'<rect class="k{colour}" x="{WIDTH - RIGHT + 14}" y="{ly - 8}" width="14" height="4"/>')
        legend = f"{line.name} {line.note}".strip()
        out.append(f'<text x="{WIDTH - RIGHT + 34}" y="{ly}">{html.escape(legend)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _seconds(value: float) -> str:
    if value >= 120:
        return units.clock(value)
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"


def spills(curves: RunCurves) -> list[tuple[float, float]]:
    """The stretches where shared GPU memory stood over its baseline by a spill (is_spill)."""
    shared = next((s for s in curves.timeline.series if s.name == words.SHARED), None)
    if shared is None or shared.baseline is None:
        return []
    stretches: list[tuple[float, float]] = []
    begun: float | None = None
    for x, value in shared.points:
        over = is_spill(value - shared.baseline)
        if over and begun is None:
            begun = x
        elif not over and begun is not None:
            stretches.append((begun, x))
            begun = None
    if begun is not None:
        stretches.append((begun, shared.points[-1][0]))
    return stretches


def memory_chart(ident: str, curves: RunCurves, title: str) -> str:
    """The run's memory timeline in GB, each figure with its baseline; a spill shaded."""
    timeline = curves.timeline
    lines = [
        Line(
            s.name,
            [(x, v / 1e9) for x, v in s.points],
            None if s.baseline is None else s.baseline / 1e9,
            ""
            if s.baseline is None
            else f"{(s.points[-1][1] - s.baseline) / 1e9:+.1f}",  # at the end, over its baseline
        )
        for s in timeline.series
    ]
    bands = spills(curves)
    said = [f"{s.name} from {s.points[0][1] / 1e9:.1f} to peak {(s.peak or 0) / 1e9:.1f} GB" for s in timeline.series]
    if bands:
        said.append(f"shared GPU memory over its baseline (a spill) for {sum(b - a for a, b in bands):.0f} s")
    said += [f"not drawn: {why}" for why in timeline.missing]
    return line_chart(
        ident,
        title,
        "; ".join(said) + ".",
        lines,
        "GB",
        timeline.end,
        timeline.marks,
        bands,
        label=lambda v: f"{v:.3g}",
    )


def rate_chart(ident: str, curves: RunCurves, title: str) -> str:
    """The run's tokens/s over time, on the memory timeline's axis."""
    end = max(curves.timeline.end, max((x for x, _ in curves.rate), default=0.0))
    values = [y for _, y in curves.rate]
    said = f"tokens/s from {min(values):.2f} to {max(values):.2f} over {len(values)} points" if values else "no token"
    return line_chart(
        ident,
        title,
        said + ".",
        [Line("tokens/s", curves.rate)],
        "tok/s",
        end,
        curves.timeline.marks,
        label=lambda v: f"{v:.3g}",
    )


PART_CLASSES = {"weights": "k0", "experts": "k3", "kv_cache": "k2", "compute": "k1"}


def parts_chart(ident: str, lines: Sequence[PartsLine], title: str) -> str:
    """Each run's memory on each device as one horizontal stacked bar (weights, experts, KV cache, compute), every
    bar on one scale, its total at its end: which part a setting shrank, and which part a GPU held."""
    labels = [f"{line.run} ({line.device})" for line in lines]
    label_width = max(160, 16 + 7 * max((len(label) for label in labels), default=0))  # about 7 px a character
    bar_width, row, top = 300, 26, 34
    scale = max((line.total for line in lines), default=0) or 1
    height = max(160, top + row * len(lines) + 34)
    width = label_width + bar_width + 90
    said = "; ".join(
        f"{line.run} in {line.device}: "
        + ", ".join(f"{PART_LABELS[p]} {units.human_bytes(b)}" for p, b in line.sizes if p in PART_LABELS)
        for line in lines
    )
    out = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{ident}-t {ident}-d">',
        f'<title id="{ident}-t">{html.escape(title)}</title><desc id="{ident}-d">{html.escape(said)}.</desc>',
        f'<rect class="bg" width="{width}" height="{height}"/>',
        f'<text class="title" x="8" y="20">{html.escape(title)}</text>',
    ]
    for i, (line, label) in enumerate(zip(lines, labels, strict=True)):
        y = top + i * row
        out.append(f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end">{html.escape(label)}</text>')
        x = float(label_width)
        for part, size in line.sizes:
            w = size / scale * bar_width
            out.append(
                f'<rect class="{PART_CLASSES.get(part, "k3")}" x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="16">'
                f"<title>{html.escape(PART_LABELS.get(part, part))}: {units.human_bytes(size)}</title></rect>"
            )
            x += w
        out.append(f'<text x="{x + 6:.1f}" y="{y + 15}">{units.human_bytes(line.total)}</text>')
    key_y = height - 16
    x = float(label_width)
    shown = {part for line in lines for part, size in line.sizes if size}
    for part, label in PART_LABELS.items():
        if part == "experts" and part not in shown:
            continue
        out.append(f'<rect class="{PART_CLASSES[part]}" x="{x:.1f}" y="{key_y - 10}" width="12" height="12"/>')
        out.append(f'<text x="{x + 16:.1f}" y="{key_y}">{html.escape(label)}</text>')
        x += 100
    out.append("</svg>\n")
    return "\n".join(out)
