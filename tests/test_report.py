"""`--report PATH.html`: one self-contained page of a session, made from the same rows and samples as
the exports; parsed as a browser parses it (html5lib). tests/test_report_browser.py opens it in Chromium."""

import re
from pathlib import Path

import html5lib
import pytest

from helpers.cli import llmtop, no_traceback
from llmtop.measure.timeline import RunCurves, Series, Timeline
from llmtop.store.report import SessionReport, report_html
from summary_rows import row

ROOT = Path(__file__).resolve().parent.parent
RECORDINGS = ROOT / "screenshots" / "recordings"
LIMIT_BYTES = 1_000_000


def parsed(page: str):
    """The page as html5lib's strict parser reads it (ParseError on the first error)."""
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(page)


SVG = "{http://www.w3.org/2000/svg}"


def svgs(tree) -> list:
    """The page's charts (html5lib puts SVG in its own namespace)."""
    return list(tree.iter(f"{SVG}svg"))


def within(svg, name: str) -> list:
    return list(svg.iter(f"{SVG}{name}"))


def fetched_addresses(tree) -> list[str]:
    """Every address the page would fetch: src, href (other than in-page ones), CSS url(), @import."""
    found = []
    for element in tree.iter():
        for name in ("src", "href", "xlink:href", "srcset", "poster", "data"):
            value = element.get(name)
            if value and not value.startswith("#"):
                found.append(value)
        if element.tag == "style" and element.text:
            found += re.findall(r"url\(([^)]*)\)|@import", element.text)
    return found


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    """`llmtop demo --headless --report demo.html`: (its result, the page)."""
    path = tmp_path_factory.mktemp("report") / "demo.html"
    result = llmtop("demo", "--headless", "--report", str(path))
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert f"llmtop: wrote {path}" in result.stderr
    return result, path.read_text(encoding="utf-8")


def test_the_demos_page_is_well_formed_self_contained_and_small(demo_report):
    _, page = demo_report
    tree = parsed(page)
    assert fetched_addresses(tree) == []
    assert len(page.encode()) < LIMIT_BYTES
    assert tree.find("head/title").text == "llmtop: llama3.3"
    assert tree.find("head/meta[@name='viewport']") is not None


def test_the_page_holds_the_exports_table_and_each_runs_figures(demo_report):
    result, page = demo_report
    tree = parsed(page)
    assert tree.find(".//pre[@id='markdown']").text == result.stdout  # the table printed is the page's Markdown
    cells = [[td.text for td in tr.findall("td")] for tr in tree.findall(".//section[@id='results']//tbody/tr")]
    assert [c[:10] for c in cells] == [
        ["llama3.3", "70.6B", "Q4_K_M", "42.5GB", "CPU", "cpu", "2048", "0/81", "0.99", "1.00x"],
        ["llama3.3", "70.6B", "Q4_K_M", "42.5GB", "CPU+GPU", "auto", "2048", "27/81", "1.34", "1.35x"],
    ]
    text = "".join(tree.find("body").itertext())
    assert "llama3.3 CPU+GPU (auto): 1.35x the CPU's rate." in text
    assert "27/81 layers on the GPU" in text  # the sentence that says why the split is what it is
    runs = tree.findall(".//section[@class='run']")
    assert [r.find("h3").text for r in runs] == ["Run 1: llama3.3 CPU", "Run 2: llama3.3 CPU+GPU"]
    facts = {dt.text: "".join(dd.itertext()) for dt, dd in zip(runs[1].iter("dt"), runs[1].iter("dd"), strict=True)}
    assert facts["GPU layers"] == "27/81" and facts["tps"] == "1.34" and facts["TTFT"] == "5.75s"
    assert facts["J/token"].startswith("n/a (")  # every n/a with its reason


def test_each_runs_memory_timeline_has_its_series_baselines_marks_and_the_spill(demo_report):
    _, page = demo_report
    tree = parsed(page)
    charts = {svg.findtext(f"{SVG}title"): svg for svg in svgs(tree)}
    assert list(charts) == [
        "tokens/s (eval rate)",
        "Memory by part",  # the GPU held part of the second run's weights
        "Run 1 memory: llama3.3 CPU",
        "Run 1 tokens/s: llama3.3 CPU",
        "Run 2 memory: llama3.3 CPU+GPU",
        "Run 2 tokens/s: llama3.3 CPU+GPU",
    ]
    cpu, gpu = charts["Run 1 memory: llama3.3 CPU"], charts["Run 2 memory: llama3.3 CPU+GPU"]
    for svg in (cpu, gpu):
        lines = within(svg, "polyline")
        assert [p.get("data-series") for p in lines] == ["RAM", "Ollama RSS", "VRAM", "shared"]
        assert all(len(p.get("points").split()) > 10 for p in lines)
        assert len([line for line in within(svg, "line") if "base" in line.get("class", "")]) == 4
        assert {t.text for t in within(svg, "text")} >= {"load", "gen", "end"}
    assert [r for r in within(gpu, "rect") if r.get("class") == "spill"]
    assert not [r for r in within(cpu, "rect") if r.get("class") == "spill"]
    assert "a spill" in gpu.findtext(f"{SVG}desc")
    parts = charts["Memory by part"].findtext(f"{SVG}desc")
    assert "llama3.3 auto in ROCm0: weights" in parts and "llama3.3 cpu in system memory: weights" in parts
    tokens = charts["Run 2 tokens/s: llama3.3 CPU+GPU"]
    assert [p.get("data-series") for p in within(tokens, "polyline")] == ["tokens/s"]


def test_a_replays_report_is_the_live_runs(double_factory, tmp_path):
    double = double_factory(token_rate=40, tokens=40, load_delay_s=0.3, vram_fraction=0.36)
    recording, live, replayed = tmp_path / "run.jsonl", tmp_path / "live.html", tmp_path / "replay.html"
    result = llmtop(
        "llama3.3", "--host", double.url, "--headless", "--no-log", "--record", str(recording), "--report", str(live)
    )
    assert result.returncode == 0, result.stderr
    again = llmtop("replay", str(recording), "--headless", "--report", str(replayed))
    assert again.returncode == 0, again.stderr
    assert replayed.read_text(encoding="utf-8") == live.read_text(encoding="utf-8")


def long_curves(seconds: float, points: int = 240) -> RunCurves:
    """Curves as run_curves makes them for a long run: every series at its most points."""
    step = seconds / points

    def series(name: str, base: int) -> Series:
        return Series(name, tuple((i * step, base + i * 7_919_000) for i in range(points)), base)

    names = ("RAM", "Ollama RSS", "VRAM", "shared")
    timeline = Timeline(tuple(series(n, (k + 1) * 3_000_000_000) for k, n in enumerate(names)), ((0.0, "base"),))
    return RunCurves(timeline, tuple((i * step, 1.0 + (i % 7) / 10) for i in range(points)))


def test_a_four_run_comparison_of_two_hour_runs_stays_under_a_megabyte():
    rows = [row("llama3.3", mode, tps) for mode, tps in (("cpu", 0.99), ("cpu", 1.01), ("auto", 1.34), ("auto", 1.30))]
    page = report_html(SessionReport(rows, [long_curves(7200.0) for _ in rows], {"cpu_info": "AMD Ryzen 7 7700"}))
    parsed(page)
    assert len(page.encode()) < LIMIT_BYTES
    assert "1.00 ± 0.01" in page and "1.32 ± 0.03" in page  # repeated runs: mean ± sd, in the table and the bars
    japanese = report_html(SessionReport(rows, [], {}, lang="ja"))
    assert '<table lang="ja">' in japanese and "パラ数" in japanese
    assert "over time: n/a (this run's samples" in "".join(parsed(japanese).find("body").itertext())


def test_the_comparison_and_the_sweep_recordings_make_their_pages(tmp_path):
    compare, sweep = tmp_path / "compare.html", tmp_path / "sweep.html"
    for recording, page in ((RECORDINGS / "compare.jsonl", compare), (RECORDINGS / "sweep.jsonl", sweep)):
        result = llmtop("replay", str(recording), "--headless", "--report", str(page), timeout=120)
        no_traceback(result)
        assert result.returncode == 0 and page.is_file(), result.stderr
        parsed(page.read_text(encoding="utf-8"))
    text = "".join(parsed(sweep.read_text(encoding="utf-8")).find("body").itertext())
    assert "Sweep of GPU layers (num_gpu): llama3.3" in text
    assert "PARAMETER num_gpu" in text  # the Modelfile that sets what the sweep found
    assert len(parsed(compare.read_text(encoding="utf-8")).findall(".//section[@class='run']")) == 4


def test_a_watch_sessions_replay_reports_its_requests_and_its_memory(tmp_path):
    page = tmp_path / "watch.html"
    result = llmtop("replay", str(RECORDINGS / "watch.jsonl"), "--headless", "--report", str(page), timeout=120)
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    tree = parsed(page.read_text(encoding="utf-8"))
    rows = tree.findall(".//section[@id='requests']//tbody/tr")
    assert len(rows) == 3 and [td.text for td in rows[0].findall("td")][1] == "llama3.3:latest"
    [chart] = svgs(tree)
    assert chart.findtext(f"{SVG}title") == "Memory while watching"
    assert [p.get("data-series") for p in within(chart, "polyline")] == ["RAM"]
    assert "load" in {t.text for t in within(chart, "text")}
    text = "".join(tree.find("body").itertext())
    assert "Not drawn: Ollama RSS: no Ollama process read" in text  # what is missing, and why
    assert tree.find(".//pre[@id='markdown']").text.startswith("| # | model |")


def test_the_history_reports_its_runs_and_says_why_it_has_no_timelines(double, tmp_path):
    env = {"LLMTOP_DATA_DIR": str(tmp_path / "data")}
    assert llmtop("llama3.3", "--host", double.url, "--headless", "--no-log", env=env).returncode == 0
    page = tmp_path / "history.html"
    result = llmtop("history", "--report", str(page), env=env)
    assert result.returncode == 0, result.stderr
    tree = parsed(page.read_text(encoding="utf-8"))
    text = "".join(tree.find("body").itertext())
    assert "the history keeps each run's figures, not its samples" in text
    assert tree.find(".//section[@id='machine']//dd").text not in ("n/a", None)  # the run's machine, kept


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("missing/r.html", "--report {tmp}/missing/r.html: the folder {tmp}/missing does not exist"),
        ("folder.html", "--report {tmp}/folder.html is a folder, not a file"),
        ("r.txt", "argument --report: a report is an HTML page: '{tmp}/r.txt' should end in .html"),
    ],
)
def test_a_report_path_that_cannot_be_written_is_refused_before_the_run(double, tmp_path, given, said):
    (tmp_path / "folder.html").mkdir()
    path = f"{tmp_path}/{given}"
    result = llmtop("llama3.3", "--host", double.url, "--headless", "--no-log", "--report", path)
    no_traceback(result)
    assert result.returncode == 2
    assert said.format(tmp=tmp_path) in result.stderr.splitlines()[-1]
    assert double.finals == []  # nothing was run


def test_runs_keep_their_curves_only_once_a_report_is_asked_for(double_factory):
    from llmtop.collectors.system_collectors import SystemCollectors
    from llmtop.measure.plan import PlannedRun, PlanRunner
    from llmtop.measure.session import RunSettings, Session
    from llmtop.ollama.api import OllamaServer

    double = double_factory(token_rate=200, tokens=20)
    collectors = SystemCollectors(0.02)
    session = Session(OllamaServer(double.url), "llama3.3", collectors)
    session.connect()
    collectors.start()
    try:
        runner = PlanRunner({"llama3.3": session}, [PlannedRun("llama3.3", RunSettings())] * 2)
        first = runner.run_next()
        runner.keep_curves()
        second = runner.run_next()
    finally:
        collectors.stop()
    assert runner.curves_of(first) is None  # no report asked for: nothing kept
    curves = runner.curves_of(second)
    assert curves is not None and curves.timeline.series[0].name == "RAM"
    assert len(curves.rate) > 5 and max(tps for _, tps in curves.rate) > 50  # the double streams 200 a second
    assert {word for _, word in curves.timeline.marks} >= {"base", "gen", "end"}


def test_one_spill_threshold_the_report_shades_what_the_screen_and_row_call_a_spill():
    """65 MB over the baseline: between 64 MB and 64 MiB, where the report once had a threshold of
    its own and left unshaded what the screen called a spill."""
    from llmtop.collectors.gpu_reading import GpuReading
    from llmtop.measure.live import gpu_now
    from llmtop.store.report_charts import spills

    base, grown = 1_000_000_000, 1_000_000_000 + 65_000_000
    shared = Series("shared", ((0.0, base), (1.0, grown), (2.0, grown), (3.0, base)), base)
    curves = RunCurves(Timeline((shared,), ()), ())
    assert spills(curves) == [(1.0, 3.0)]
    reading = GpuReading("0", "Radeon", "amdgpu", 0, 16 * 10**9, grown, 32 * 10**9)
    before = GpuReading("0", "Radeon", "amdgpu", 0, 16 * 10**9, base, 32 * 10**9)
    assert gpu_now(reading, before, running=True).spilling


def test_an_na_in_the_report_gives_the_runs_own_reason_as_the_screen_does(tmp_path):
    """The real engine's recording (a machine with no GPU, no power source), replayed with --report:
    VRAM, shared and J/token say why the run has none, in the screen's words; what each figure
    is stays in its name's tooltip."""
    path = tmp_path / "engine.html"
    result = llmtop("replay", str(RECORDINGS / "engine.jsonl"), "--headless", "--report", str(path))
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    tree = parsed(path.read_text(encoding="utf-8"))
    facts = tree.find(".//section[@id='run-1']//dl")
    said = {dt.text: "".join(dd.itertext()) for dt, dd in zip(facts.findall("dt"), facts.findall("dd"), strict=True)}
    for name in ("VRAM", "shared"):
        assert said[name].startswith("n/a (no GPU read (nvml: no NVIDIA driver"), said[name]
        assert "summed over the GPUs" not in said[name] and "Windows' shared GPU memory" not in said[name]
    assert "powercap: no RAPL package zone" in said["J/token"], said["J/token"]
    assert "not measured in this run (" not in "".join(said.values())
    vram = next(dt for dt in facts.findall("dt") if dt.text == "VRAM")
    assert vram.get("title").startswith("dedicated GPU memory in use")
