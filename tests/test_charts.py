"""The article's graph: tps bars, to SVG, HTML and PNG files and in the terminal."""

import re
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from llmtop.store.charts import chart_bars, chart_format, terminal_chart, write_chart
from summary_rows import row

RUNS = [
    row("llama3.3", "cpu", 0.98),
    row("llama3.3", "auto", 1.32),
    row("llama3.3", "cpu", 1.0),
    row("llama3.3", "auto", 1.36),
]


def test_one_bar_per_mode_with_the_mean_and_deviation():
    bars = chart_bars(RUNS + [row("qwen3:8b", "auto", 30.0), row("x", "cpu", None, error="dropped")])
    assert [(b.label, round(b.value, 2), b.group) for b in bars] == [
        ("llama3.3 CPU", 0.99, 0),
        ("llama3.3 CPU+GPU", 1.34, 0),
        ("qwen3:8b CPU+GPU", 30.0, 1),
    ]
    assert bars[0].error == pytest.approx(0.01414, rel=1e-3) and bars[2].error is None


def test_bars_that_would_share_a_label_are_named_by_their_mode():
    points = [row("llama3.3", "cpu", 0.94), row("llama3.3", "gpu=20", 1.19), row("llama3.3", "gpu=24", 1.26)]
    assert [b.label for b in chart_bars(points)] == ["llama3.3 CPU", "llama3.3 gpu=20", "llama3.3 gpu=24"]


def test_svg_is_well_formed_and_labels_every_bar(tmp_path):
    path = write_chart(RUNS, tmp_path / "tps.svg")
    root = ET.fromstring(path.read_text())
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "0.99 ± 0.01" in texts and "1.34 ± 0.03" in texts
    assert texts.count("llama3.3") == 2 and "CPU+GPU" in texts
    heights = [float(r.get("height")) for r in root.iter("{http://www.w3.org/2000/svg}rect")][1:]
    assert heights[1] / heights[0] == pytest.approx(1.34 / 0.99, rel=0.01)  # bars are to scale


def test_html_wraps_the_svg_and_png_is_a_picture(tmp_path):
    page = write_chart(RUNS, tmp_path / "tps.html").read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and "1.34 ± 0.03" in page
    png = write_chart(RUNS, tmp_path / "tps.PNG")
    with Image.open(png) as picture:
        assert picture.format == "PNG" and picture.size == (400, 420)
        # the second bar's colour is somewhere in the picture
        assert (0x4E, 0x79, 0xA7) in {colour for _, colour in picture.convert("RGB").getcolors(1 << 16)}


def test_unknown_chart_suffix_is_refused():
    with pytest.raises(ValueError, match=r"use \.svg, \.html or \.png"):
        chart_format("tps.jpg")


def test_terminal_chart_names_the_bars():
    text = re.sub(r"\x1b\[[0-9;]*m", "", terminal_chart(RUNS, width=70, height=14))
    assert "tokens/s (eval rate)" in text
    assert "llama3.3 CPU" in text and "llama3.3 CPU+GPU" in text
    assert len(text.splitlines()) == 14
    assert terminal_chart([]) == ""
