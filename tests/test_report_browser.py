"""The HTML report in a real browser: Debian's Chromium, driven by Playwright, opens the pages of the
demo, of a 4-run comparison and of a sweep (made by `llmtop replay ... --report` from the recordings
that ship with the README's pictures) and prints them to PDF."""

import os
import shutil
from pathlib import Path

import pytest

from helpers.cli import llmtop, no_traceback

ROOT = Path(__file__).resolve().parent.parent
RECORDINGS = ROOT / "screenshots" / "recordings"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGES = {"demo": None, "compare": RECORDINGS / "compare.jsonl", "sweep": RECORDINGS / "sweep.jsonl"}

CHARTS_JS = """() => Array.from(document.querySelectorAll("svg")).map(svg => ({
  title: svg.querySelector("title") ? svg.querySelector("title").textContent : null,
  width: svg.getBoundingClientRect().width,
  height: svg.getBoundingClientRect().height,
  lines: Array.from(svg.querySelectorAll("polyline")).map(p => [p.dataset.series, p.getBBox().width]),
  bars: Array.from(svg.querySelectorAll("rect")).filter(r => r.getAttribute("fill") && r.getAttribute("fill")
    .startsWith("#")).map(r => r.getBBox().height),
}))"""


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium: .ci/run installs it")
        pytest.skip("no Chromium here: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("reports")
    made = {}
    for name, recording in PAGES.items():
        made[name] = folder / f"{name}.html"
        what = ("demo",) if recording is None else ("replay", str(recording))
        result = llmtop(*what, "--headless", "--report", str(made[name]), timeout=120)
        no_traceback(result)
        assert made[name].is_file(), result.stderr
    return made


def opened(browser, path: Path, **context):
    """The page open in a new context: (page, console errors, every address it asked for)."""
    page = browser.new_context(**context).new_page()
    errors: list[str] = []
    asked: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: asked.append(request.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, errors, asked


def markdown_cells(markdown: str) -> list[str]:
    """The cells of the Markdown table's rows (the header and the rule left out)."""
    lines = [line for line in markdown.splitlines() if line.startswith("| ")][1:]
    return [cell.strip() for line in lines for cell in line.strip("|").split(" | ")]


@pytest.mark.parametrize("name", list(PAGES))
def test_chromium_draws_every_chart_with_no_error_and_no_request(browser, reports, name, tmp_path):
    page, errors, asked = opened(browser, reports[name], viewport={"width": 1000, "height": 1400})
    assert errors == []
    assert asked == [reports[name].as_uri()]  # nothing fetched: no network, no other file
    table = "\n".join(page.locator("table").all_inner_texts())  # the runs' and the sweep's
    cells = markdown_cells(page.text_content("#markdown"))  # (the text of the closed <details>)
    assert len(cells) >= 2 * 20
    for cell in cells:
        assert cell.replace("\\|", "|") in table  # the tables' figures, as the Markdown export has them
    charts = page.evaluate(CHARTS_JS)
    runs = page.locator("section.run").count()
    rated = len([c for c in charts if " tokens/s: " in c["title"]])  # a run that failed to load has no tokens
    parts = len([c for c in charts if c["title"] == "Memory by part"])  # where a GPU held part of a load
    assert len(charts) == 1 + (name == "sweep") + parts + runs + rated and rated >= runs // 2
    for chart in charts:
        assert chart["title"] and chart["width"] > 300 and chart["height"] > 150, chart
        assert all(width > 10 for _, width in chart["lines"]), chart  # every series drawn across the plot
    memory = [c for c in charts if " memory: " in c["title"]]
    assert len(memory) == runs
    assert all(c["lines"][0][0] == "RAM" for c in memory)  # (the recorded comparison read no Ollama process)
    assert all(height > 0 for height in charts[0]["bars"]) and charts[0]["bars"]
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_the_printed_pdf_cuts_no_chart_across_pages(browser, reports, tmp_path):
    from pypdf import PdfReader

    for name, path in reports.items():
        page, _, _ = opened(browser, path)
        pdf = tmp_path / f"{name}.pdf"
        page.pdf(path=str(pdf), format="A4", print_background=True)
        pages = [p.extract_text() for p in PdfReader(pdf).pages]
        captions = page.locator("figcaption").all_inner_texts()
        titles = page.evaluate('() => Array.from(document.querySelectorAll("svg > title")).map(t => t.textContent)')
        assert len(captions) == len(titles) > 0
        for title, caption in zip(titles, captions, strict=True):
            number = caption.split(". ", 1)[0] + "."  # "Figure 3."
            on = [i for i, text in enumerate(pages) if title in text]
            assert on, f"{name}: {title!r} is not in the PDF"
            assert number in pages[on[0]], f"{name}: {title!r} starts on page {on[0] + 1} but {number} is not there"


def test_dark_mode_and_a_phones_width(browser, reports):
    page, dark_errors, _ = opened(browser, reports["demo"], color_scheme="dark")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    chart = page.evaluate('getComputedStyle(document.querySelector("svg.chart .bg")).fill')
    assert background == "rgb(17, 19, 22)" and chart == "rgb(27, 29, 33)"
    assert dark_errors == []
    phone, phone_errors, _ = opened(browser, reports["demo"], viewport={"width": 390, "height": 844}, is_mobile=True)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # tables scroll in their own box
    width = phone.evaluate('document.querySelector("svg.chart").getBoundingClientRect().width')
    assert 300 < width <= 390
    assert phone_errors == []


def test_each_chart_downloads_as_svg_and_png_and_the_table_copies_as_markdown(browser, reports, tmp_path):
    page, errors, _ = opened(browser, reports["demo"])
    figure = page.locator("figure[data-name='run-2-memory']")
    with page.expect_download() as svg_download:
        figure.locator("button.svg").click()
    assert svg_download.value.suggested_filename == "run-2-memory.svg"
    svg = Path(svg_download.value.path()).read_text(encoding="utf-8")
    assert svg.startswith("<svg") and "<style>" in svg and 'data-series="shared"' in svg  # it carries its styles
    with page.expect_download() as png_download:
        figure.locator("button.png").click()
    assert Path(png_download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.locator("#copy-markdown").click()
    page.wait_for_function('document.getElementById("copy-markdown").textContent === "Copied"')
    assert page.evaluate("navigator.clipboard.readText()") == page.text_content("#markdown")
    assert errors == []
