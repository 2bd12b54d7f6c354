"""The article's graph: tokens/s per model and mode as bars, in the terminal (plotext) or to a file
(SVG and HTML written here, PNG through Pillow)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llmtop.measure.comparison import Comparison, compare
from llmtop.measure.mode import Mode
from llmtop.measure.summary_row import SummaryRow

CHART_FORMATS = (".svg", ".html", ".png")
COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948")


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    error: float | None = None  # one standard deviation, drawn as a whisker
    group: int = 0  # bars of one model share a colour


def chart_bars(rows: Sequence[SummaryRow]) -> list[Bar]:
    """One bar per model, mode and load kind with a measured tps (mean, and sd when repeated),
    labelled by model and env ("llama3.3 CPU+GPU"), or by mode where two bars would share a label
    (a sweep's points: "llama3.3 gpu=20")."""
    measured = [c for c in compare(rows) if c.tps is not None]
    models = list(dict.fromkeys(c.model for c in measured))

    def label(c: Comparison, by_mode: bool) -> str:
        what = Mode.of(c.mode).label if by_mode else c.most_common(lambda r: r.env) or Mode.of(c.mode).label
        return f"{c.model} {what}" + (" (warm)" if c.load_kind == "warm" else "")

    labels = [label(c, False) for c in measured]
    labels = [label(c, True) if labels.count(text) > 1 else text for c, text in zip(measured, labels, strict=True)]
    return [
        Bar(text, c.tps, c.tps_stdev, models.index(c.model))  # type: ignore[arg-type]
        for c, text in zip(measured, labels, strict=True)
    ]


def chart_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in CHART_FORMATS:
        raise ValueError(f"cannot tell the chart format of {str(path)!r}: use .svg, .html or .png")
    return suffix[1:]


def nice_top(value: float) -> float:
    """A round number at or above `value` for a y axis (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 1.0
    while power * 10 < value:
        power *= 10
    while power > value and power > 1e-9:
        power /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _scale_top(values: Sequence[float]) -> float:
    """The bar chart's axis: at least 1 (tokens a second)."""
    return nice_top(max([*values, 1.0]))


def _said(bars: Sequence[Bar]) -> str:
    """The chart in words, for a screen reader and a search."""
    said = [f"{b.label}: {b.value:.2f}" + (f" ± {b.error:.2f}" if b.error else "") for b in bars]
    return "; ".join(said) + "." if said else "no run measured a rate."


def bar_chart_svg(bars: Sequence[Bar], title: str = "tokens/s (eval rate)") -> str:
    """A self-contained SVG bar chart with value labels and a y axis. Its colours are presentation
    attributes, which a page's CSS overrides (the report's dark theme: report_charts.CHART_CSS)."""
    width, height, left, bottom, top_margin = 160 + 120 * max(len(bars), 1), 420, 60, 90, 50
    plot_h = height - bottom - top_margin
    top = _scale_top([b.value + (b.error or 0) for b in bars])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="13" role="img">',
        f"<title>{html.escape(title)}</title>",
        f"<desc>{html.escape(_said(bars))}</desc>",
        f'<rect class="bg" width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="28" text-anchor="middle" font-size="17" font-weight="bold">'
        f"{html.escape(title)}</text>",
    ]
    for i in range(6):
        value = top * i / 5
        y = top_margin + plot_h - plot_h * i / 5
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{width - 20}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{value:g}</text>')
    slot = (width - left - 20) / max(len(bars), 1)
    for i, bar in enumerate(bars):
        bar_h = plot_h * bar.value / top
        x = left + slot * i + slot * 0.2
        y = top_margin + plot_h - bar_h
        colour = COLOURS[bar.group % len(COLOURS)]
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.6:.1f}" height="{bar_h:.1f}" fill="{colour}"/>')
        centre = x + slot * 0.3
        if bar.error:
            e_top = top_margin + plot_h - plot_h * (bar.value + bar.error) / top
            e_bottom = top_margin + plot_h - plot_h * max(bar.value - bar.error, 0) / top
            parts.append(
                f'<line class="axis" x1="{centre:.1f}" y1="{e_top:.1f}" x2="{centre:.1f}" y2="{e_bottom:.1f}" '
                'stroke="#333"/>'
            )
        label = f"{bar.value:.2f}" + (f" ± {bar.error:.2f}" if bar.error else "")
        parts.append(f'<text x="{centre:.1f}" y="{y - 8:.1f}" text-anchor="middle">{html.escape(label)}</text>')
        for line_no, text in enumerate(bar.label.split(" ", 1)):
            parts.append(
                f'<text x="{centre:.1f}" y="{top_margin + plot_h + 20 + 16 * line_no:.1f}" text-anchor="middle">'
                f"{html.escape(text)}</text>"
            )
    parts.append(
        f'<line class="axis" x1="{left}" y1="{top_margin + plot_h}" x2="{width - 20}" y2="{top_margin + plot_h}" '
        'stroke="#333"/>'
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def bar_chart_html(bars: Sequence[Bar], title: str = "tokens/s (eval rate)") -> str:
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>\n'
        f"<body>\n{bar_chart_svg(bars, title)}</body></html>\n"
    )


def bar_chart_png(bars: Sequence[Bar], path: Path, title: str = "tokens/s (eval rate)") -> None:
    """The same chart drawn with Pillow."""
    from PIL import Image, ImageDraw, ImageFont

    width, height, left, bottom, top_margin = 160 + 120 * max(len(bars), 1), 420, 60, 90, 50
    plot_h = height - bottom - top_margin
    top = _scale_top([b.value + (b.error or 0) for b in bars])
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.load_default(size=13)
        title_font = ImageFont.load_default(size=17)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        font = title_font = ImageFont.load_default()
    draw.text((width / 2, 20), title, fill="black", font=title_font, anchor="mm")
    for i in range(6):
        y = top_margin + plot_h - plot_h * i / 5
        draw.line((left, y, width - 20, y), fill="#dddddd")
        draw.text((left - 8, y), f"{top * i / 5:g}", fill="#555555", font=font, anchor="rm")
    slot = (width - left - 20) / max(len(bars), 1)
    for i, bar in enumerate(bars):
        bar_h = plot_h * bar.value / top
        x = left + slot * i + slot * 0.2
        y = top_margin + plot_h - bar_h
        draw.rectangle((x, y, x + slot * 0.6, top_margin + plot_h), fill=COLOURS[bar.group % len(COLOURS)])
        centre = x + slot * 0.3
        if bar.error:
            draw.line(
                (
                    centre,
                    top_margin + plot_h - plot_h * (bar.value + bar.error) / top,
                    centre,
                    top_margin + plot_h - plot_h * max(bar.value - bar.error, 0) / top,
                ),
                fill="#333333",
            )
        label = f"{bar.value:.2f}" + (f" +/- {bar.error:.2f}" if bar.error else "")
        draw.text((centre, y - 10), label, fill="black", font=font, anchor="mm")
        for line_no, text in enumerate(bar.label.split(" ", 1)):
            draw.text((centre, top_margin + plot_h + 20 + 16 * line_no), text, fill="black", font=font, anchor="mm")
    draw.line((left, top_margin + plot_h, width - 20, top_margin + plot_h), fill="#333333")
    image.save(path, "PNG")


def write_chart(rows: Sequence[SummaryRow], path: str | Path) -> Path:
    """Write the tps chart of `rows` to `path` (.svg, .html or .png)."""
    target = Path(path)
    kind = chart_format(target)
    bars = chart_bars(rows)
    if kind == "png":
        bar_chart_png(bars, target)
    else:
        text = bar_chart_svg(bars) if kind == "svg" else bar_chart_html(bars)
        target.write_text(text, encoding="utf-8")
    return target


def terminal_chart(rows: Sequence[SummaryRow], width: int = 80, height: int = 16) -> str:
    """The chart as terminal text (plotext), for the headless output."""
    import plotext as plt

    bars = chart_bars(rows)
    if not bars:
        return ""
    plt.clear_figure()
    plt.plotsize(width, height)
    plt.bar([f"{b.label}: {b.value:.2f}" for b in bars], [round(b.value, 2) for b in bars], width=0.4)
    plt.ylim(0, max(max(b.value for b in bars), 0.01) * 1.1)
    plt.title("tokens/s (eval rate)")
    plt.theme("clear")  # the terminal's own colours
    text = plt.build()
    plt.clear_figure()
    return text.rstrip("\n") + "\n"
