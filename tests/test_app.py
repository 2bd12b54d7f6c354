"""The Textual app driven by its Pilot against the double: a run completes, the row appears, keys work."""

import json
import re

import pytest

from helpers.screens import cells_of, one_run, until
from llmtop.collectors.ollama_processes import OllamaProcessSample
from llmtop.collectors.system_collectors import SystemCollectors
from llmtop.collectors.system_memory import SystemMemorySample
from llmtop.measure.mode import parse_modes
from llmtop.measure.plan import PlannedRun, PlanRunner
from llmtop.measure.session import Phase, RunSettings, Session
from llmtop.ollama.api import OllamaServer
from llmtop.tui.app import SLOW_EVERY, LlmtopApp
from llmtop.tui.widgets.gauge import Gauge
from llmtop.tui.widgets.streamed_text import StreamedText
from llmtop.tui.widgets.summary_table import SummaryTable
from ollama_double import WORDS
from waiting import eventually_async, next_frame, on_screen

GB = 10**9


def make_app(double, settings=None, export_path=None, readers=True, report_path=None):
    def memory(now):
        used = 20 * GB + (44 * GB if double.loaded else 0)
        return SystemMemorySample(now, 64 * GB, 64 * GB - used, 2 * GB, 8 * GB)

    def processes(now):
        return OllamaProcessSample(now, GB + (43 * GB if double.loaded else 0), 43 * GB, 10, (11,))

    collectors = (
        SystemCollectors(0.02, memory_reader=memory, process_reader=processes) if readers else SystemCollectors(0.05)
    )
    session = Session(OllamaServer(double.url), "llama3.3", collectors)
    session.connect()
    collectors.start()
    return LlmtopApp(one_run(session, settings), export_path=export_path, report_path=report_path)


async def test_a_run_completes_and_its_row_appears(double_factory):
    double = double_factory(token_rate=100, tokens=30, load_delay_s=0.2, vram_fraction=0.36)
    app = make_app(double)
    async with app.run_test(size=(140, 44)) as pilot:
        await until(pilot, lambda: len(app.runner.rows) == 1)
        table = app.query_one(SummaryTable)
        assert table.row_count == 1
        row = table.summaries[0]
        assert row.complete and row.eval_rate_tps > 0
        cells = [str(c) for c in table.get_row_at(0)]
        headers = [c.header for c in table.shown_columns]
        assert headers[:8] == ["model", "params", "quant", "size", "env", "tps", "RAM", "VRAM"]  # the article's first
        assert len(table.pages) == 2 and table.pages[1][0] == 0  # the rest one key away, the model on both
        cell = dict(zip(headers, cells, strict=True))
        assert cells[:5] == ["llama3.3", "70.6B", "Q4_K_M", "42.5GB", "CPU+GPU"]
        assert (cell["mode"], cell["ctx"]) == ("auto", "2048")  # ctx: /api/ps
        assert row.context_note == "Ollama's choice: the request set none (/api/ps)"
        assert cell["GPU layers"] == "n/a"  # no server log in this test
        assert cell["tps"] == f"{row.eval_rate_tps:.2f}"
        assert cell["RAM"] == "44.0GB"
        assert app.query_one(StreamedText).text == "".join(WORDS[:30])
        assert "64.0 GB / 64.0 GB" in app.query_one("#ram", Gauge).text
        assert "Δ +44.0 GB" in app.query_one("#ram", Gauge).text
        assert "runner 43.0 GB" in app.query_one("#rss", Gauge).text
        assert "n/a: counted apart on Linux only" in app.query_one("#mapped", Gauge).text
        assert app.query_one("#vram-0", Gauge).text.startswith("VRAM        n/a: no GPU read (GPUs not probed)")
        assert app.query_one("#shared-0", Gauge).text.startswith("Shared GPU  n/a: no GPU read")
        assert "35% GPU / 65% CPU, 15.2 GB of 44.0 GB on GPU" in str(app.query_one("#split").render())
        assert "tokens 30" in str(app.query_one("#tokens").render())
        assert "done" in str(app.query_one("#phase").render())
        assert "llama3.3  ·  70.6B  ·  Q4_K_M  ·  42.5GB  ·  81 layers" in str(app.query_one("#header").render())
    app.session.collectors.stop()


async def test_c_then_r_runs_again_on_the_cpu_and_e_exports_both(double_factory, tmp_path):
    double = double_factory(token_rate=200, tokens=20, vram_fraction=0.5)
    out, page = tmp_path / "runs.json", tmp_path / "runs.html"
    app = make_app(double, export_path=str(out), report_path=str(page))
    async with app.run_test(size=(140, 44)) as pilot:
        await until(pilot, lambda: len(app.runner.rows) == 1)
        await pilot.press("c")
        assert app.settings.num_gpu == 0
        assert "r adds a run: CPU only" in str(app.query_one("#phase").render())
        await pilot.press("r")
        await until(pilot, lambda: len(app.runner.rows) == 2)
        assert double.requests[-1][2]["options"] == {"num_gpu": 0, "seed": 42}
        assert [r.env for r in app.query_one(SummaryTable).summaries] == ["CPU+GPU", "CPU"]
        await pilot.press("c")
        assert app.settings.num_gpu is None
        await pilot.press("e")
        await on_screen(pilot, out.exists)
        assert f"wrote 2 run(s) to {out} and the report to {page}" in app.notified
    runs = json.loads(out.read_text())["runs"]
    assert [r["mode"] for r in runs] == ["auto", "cpu"]
    report = page.read_text(encoding="utf-8")
    assert report.count('<section class="run"') == 2  # both runs, each with its memory timeline from the samplers
    assert report.count('data-series="RAM"') == 2 and report.count('data-series="Ollama RSS"') == 2
    app.session.collectors.stop()


async def test_export_before_any_run_finished_writes_nothing(double_factory, tmp_path):
    double = double_factory(token_rate=5, tokens=500)
    out = tmp_path / "runs.md"
    app = make_app(double, export_path=str(out))
    async with app.run_test() as pilot:
        await pilot.press("e")
        await on_screen(pilot, lambda: any("nothing to export" in message for message in app.notified))
        assert not out.exists()
        await pilot.press("q")
    app.session.collectors.stop()


async def test_q_mid_run_keeps_the_run_so_far(double_factory):
    double = double_factory(token_rate=20, tokens=2000)
    app = make_app(double)
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.session.current is not None and app.session.current.clock.count >= 3)
        await pilot.press("q")
    assert app.return_code == 0
    [row] = app.runner.rows
    assert not row.complete and row.error == "quit before the run finished"
    assert row.client_rate_tps is not None and row.ram_delta_bytes == 44 * GB
    app.session.collectors.stop()


async def test_r_during_a_run_queues_one_and_ctrl_c_drops_the_queue(double_factory):
    double = double_factory(token_rate=20, tokens=2000)
    app = make_app(double)
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.session.phase is Phase.GENERATING)
        await pilot.press("r")
        await on_screen(pilot, lambda: app.runner.total == 2)
        assert len(app.runner.queue) == 1
        assert any("queued: llama3.3 auto" in message for message in app.notified)
        await until(pilot, lambda: "run 1 of 2" in str(app.query_one("#phase").render()))
        await pilot.press("ctrl+c")
    assert app.exit_status == 130 and app.return_code == 130
    assert len(app.runner.rows) == 1 and not app.runner.queue
    assert app.runner.rows[0].error == "interrupted (Ctrl+C)"
    assert sum(1 for _, path, body in double.requests if path == "/api/generate" and body.get("prompt")) == 1
    app.session.collectors.stop()


@pytest.mark.parametrize(("fault", "text"), [("drop", "dropped mid-stream"), ("oom", "requires more system memory")])
async def test_a_failed_run_is_shown_and_kept(double_factory, fault, text):
    double = double_factory(fault=fault, fault_after=10, token_rate=100)
    app = make_app(double)
    async with app.run_test(size=(140, 44)) as pilot:
        await until(pilot, lambda: len(app.runner.rows) == 1)
        assert "failed" in str(app.query_one("#phase").render())
        assert any(text in message for message in app.notified)
        run = cells_of(app.query_one(SummaryTable), 0)["run"]
        assert run.startswith("incomplete: ") and text in run
    app.session.collectors.stop()


async def test_mapped_weights_are_added_to_ram_and_shown_apart(double_factory):
    # Linux, weights mapped: in use grows by 2 GB only, the runner's mapped files by 40 GB.
    double = double_factory(token_rate=100, tokens=30, load_delay_s=0.2)

    def memory(now):
        used = 20 * GB + (2 * GB if double.loaded else 0)
        return SystemMemorySample(now, 64 * GB, 64 * GB - used, 0, 0)

    def processes(now):
        mapped = GB + (40 * GB if double.loaded else 0)
        return OllamaProcessSample(now, GB + mapped, mapped, 10, (11,), file_rss_bytes=mapped)

    collectors = SystemCollectors(0.02, memory_reader=memory, process_reader=processes)
    session = Session(OllamaServer(double.url), "llama3.3", collectors)
    session.connect()
    collectors.start()
    app = LlmtopApp(one_run(session))
    async with app.run_test(size=(140, 44)) as pilot:
        await until(pilot, lambda: len(app.runner.rows) == 1)
        assert "63.0 GB / 64.0 GB  Δ +42.0 GB  in use 22.0 GB" in app.query_one("#ram", Gauge).text
        assert "41.0 GB / 64.0 GB  Δ +40.0 GB  Ollama's files" in app.query_one("#mapped", Gauge).text
        row = app.runner.rows[0]
        assert (row.ram_delta_bytes, row.ram_in_use_delta_bytes, row.ram_mapped_delta_bytes) == (
            42 * GB,
            2 * GB,
            40 * GB,
        )
    collectors.stop()


async def test_real_collectors_fill_the_ram_gauge(double):
    app = make_app(double, readers=False)
    async with app.run_test(size=(140, 44)) as pilot:
        await until(pilot, lambda: len(app.runner.rows) == 1)
        assert re.search(r"\d [kMG]B / \d+\.\d GB  Δ [+-]", app.query_one("#ram", Gauge).text)
        assert isinstance(app.runner.rows[0].ram_delta_bytes, int)
    app.session.collectors.stop()


@pytest.fixture
def logged_app(tmp_path):
    """An app on a double that writes Ollama's server log to a file the session follows."""
    from llmtop.collectors.log_sources import FileFollower
    from llmtop.collectors.log_watch import LogWatcher
    from ollama_double import DoubleConfig, OllamaDouble, ServerLog

    opened = []

    def make(**config):
        log_file = tmp_path / "server.log"
        log_file.write_text("")
        writer = open(log_file, "a", encoding="utf-8", buffering=1)
        watcher = LogWatcher(FileFollower(log_file, poll_s=0.02))
        watcher.start()
        assert watcher.wait_until_following(5)
        double = OllamaDouble(DoubleConfig(**config), log=ServerLog(writer.write)).start()
        collectors = SystemCollectors(0.05)
        session = Session(OllamaServer(double.url), "llama3.3", collectors, log=watcher)
        session.connect()
        collectors.start()
        opened.append((collectors, watcher, double, writer))
        return LlmtopApp(one_run(session))

    yield make
    for collectors, watcher, double, writer in opened:
        collectors.stop()
        watcher.stop()
        double.stop()
        writer.close()


async def test_gpu_layers_gauge_and_log_pane(logged_app):
    app = logged_app(vram_fraction=27 / 81, token_rate=100)
    async with app.run_test(size=(140, 50)) as pilot:
        await until(pilot, lambda: len(app.runner.rows) == 1)
        gauge = app.query_one("#layers", Gauge).text
        assert "27 / 81" in gauge and "cuda · confirmed (log)" in gauge
        assert cells_of(app.runs_table, 0)["GPU layers"] == "27/81"
        # Why 27 of 81: Ollama 0.5's own estimate line, in one sentence under the gauge.
        assert app.live.layers_panel.why.text == (
            "why: 27/81 layers on the GPU: Ollama's estimate for all of them is 44.4 GiB (KV cache 640.0 MiB) "
            "and 15.6 GiB was available"
        )
        assert app.runner.rows[0].split_reason == app.live.layers_panel.why.text.removeprefix("why: ")
        assert not app.log_pane.display
        await pilot.press("l")
        await on_screen(pilot, lambda: app.log_pane.display)
        assert any("offloaded 27/81 layers to GPU" in line for line in app.log_pane.lines)
        await pilot.press("l")
        assert not app.log_pane.display


async def test_without_a_log_the_layers_gauge_says_why(double):
    app = make_app(double)
    app.session.log_reason = "not read (--no-log)"
    async with app.run_test(size=(140, 44)) as pilot:
        await until(pilot, lambda: len(app.runner.rows) == 1)
        assert "n/a: server log not read (--no-log)" in app.query_one("#layers", Gauge).text
        await pilot.press("l")
        await on_screen(pilot, lambda: app.log_pane.lines == ["server log: not read (--no-log)"])
    app.session.collectors.stop()


def gpu_watching(double):
    """A 16 GB Radeon whose VRAM fills and whose shared memory grows 2 GB while the model is loaded."""
    from llmtop.collectors.gpu_reading import GpuReading, GpuSample

    def read(now):
        loaded = bool(double.loaded)
        return GpuSample(
            now,
            (
                GpuReading(
                    key="win:luid_0x00000000_0x0000D1B8",
                    name="AMD Radeon RX 7600 XT",
                    backend="windows-pdh",
                    dedicated_used=(15 if loaded else 1) * GB,
                    dedicated_total=16 * GB,
                    shared_used=(2 if loaded else 0) * GB + 300_000_000,
                    shared_total=16 * GB,
                    utilization_pct=90.0 if loaded else 1.0,
                    ollama_dedicated=14 * GB if loaded else 0,
                ),
            ),
        )

    return read


async def test_gpu_gauges_spillover_warning_and_the_rows_vram_and_shared(double_factory):
    double = double_factory(token_rate=40, tokens=200, vram_fraction=0.36)  # 5 s: two frames and more
    app = make_app(double)
    app.session.collectors.stop()
    app.session.collectors.use_gpus(gpu_watching(double))
    app.session.collectors.start()
    async with app.run_test(size=(140, 44)) as pilot:
        await until(pilot, lambda: app.session.phase is Phase.GENERATING)
        await next_frame(pilot, frames=2)  # the GPU sampler's reading since the request, drawn
        vram, shared = app.live.gpu_panel.pairs[0]
        assert "15.0 GB / 16.0 GB  Δ +14.0 GB" in vram.text
        assert "AMD Radeon RX 7600 XT · 90% busy · Ollama 14.0 GB" in vram.text
        assert "2.3 GB / 16.0 GB  Δ +2.0 GB  spilling into system RAM" in shared.text
        assert shared.has_class("-warning")
        assert any("spilling" in message for message in app.notified)
        await until(pilot, lambda: len(app.runner.rows) == 1)
        assert not shared.has_class("-warning")  # the run is over
        row = app.runner.rows[0]
        assert (row.vram_delta_bytes, row.shared_delta_bytes) == (14 * GB, 2 * GB)
        assert row.gpus == ("AMD Radeon RX 7600 XT",)
        assert cells_of(app.runs_table, 0)["VRAM"] == "14.0GB"
    app.session.collectors.stop()


async def test_a_cpu_auto_plan_shows_its_progress_and_the_comparison(double_factory, tmp_path):
    from llmtop.measure.plan import build_plan
    from llmtop.tui.widgets.token_rate import TpsBarChart

    double = double_factory(token_rate=150, cpu_token_rate=50, tokens=25, vram_fraction=0.36)
    collectors = SystemCollectors(0.05)
    session = Session(OllamaServer(double.url), "llama3.3", collectors)
    session.connect()
    collectors.start()
    runner = PlanRunner({"llama3.3": session}, build_plan(["llama3.3"], parse_modes("cpu,auto"), 2, RunSettings()))
    chart = tmp_path / "tps.svg"
    app = LlmtopApp(runner, export_path=str(tmp_path / "runs.md"), chart_path=str(chart))
    seen = set()
    async with app.run_test(size=(140, 50)) as pilot:

        def every_row_shown() -> bool:
            text = str(app.query_one("#phase").render())
            seen.update(m.group(0) for m in [re.search(r"run \d of 4 · llama3.3 (cpu|auto)", text)] if m)
            return app.runs_table.row_count == 4

        await on_screen(pilot, every_row_shown, 30)
        assert {"run 1 of 4 · llama3.3 cpu", "run 2 of 4 · llama3.3 auto"} <= seen
        assert app.runs_table.row_count == 4
        kinds = [(r.mode, r.load_kind, r.complete, r.error) for r in app.runner.rows]
        assert app.comparison_table.display and app.comparison_table.row_count == 2, kinds
        rates = [f["eval_count"] / (f["eval_duration"] / 1e9) for f in double.finals]
        cpu_row, auto_row = cells_of(app.comparison_table, 0), cells_of(app.comparison_table, 1)
        assert (cpu_row["env"], cpu_row["mode"], cpu_row["speed-up"], cpu_row["runs"]) == ("CPU", "cpu", "1.00x", "2")
        mean_cpu, mean_auto = sum(rates[0::2]) / 2, sum(rates[1::2]) / 2
        assert auto_row["tps"].startswith(f"{mean_auto:.2f} ± ")
        assert auto_row["speed-up"].startswith(f"{mean_auto / mean_cpu:.2f}x (")  # with its 95% interval
        verdicts = app.query_one("#verdicts")
        assert verdicts.display and str(verdicts.render()).startswith(f"auto: {auto_row['speed-up']} the speed of cpu")
        bars = app.query_one(TpsBarChart)
        assert bars.display and not app.live.chart.display  # the plan is done: the graph replaces the live chart
        assert [b.label for b in bars.bars] == ["llama3.3 CPU", "llama3.3 CPU+GPU"]
        await pilot.press("b")
        assert not bars.display and app.live.chart.display
        await pilot.press("e")
        await on_screen(pilot, (tmp_path / "runs.md").exists)
    lines = (tmp_path / "runs.md").read_text(encoding="utf-8").splitlines()
    assert "| 1.00x |" in lines[2] and lines[4:7] == ["", "### Verdicts", ""]  # the table, then the verdicts
    assert lines[7].startswith("- auto: ") and len(lines) == 8
    assert chart.read_text().startswith("<svg")
    collectors.stop()


async def test_an_unusual_gap_is_said_on_screen(double_factory):
    double = double_factory(token_rate=100, tokens=100, fault="stall", fault_after=20)
    app = make_app(double)
    async with app.run_test(size=(140, 44)) as pilot:
        await until(pilot, lambda: "no token for" in str(app.query_one("#tokens").render()), timeout=20)
        assert re.search(r"tokens 20 .* no token for [5-9] s", str(app.query_one("#tokens").render()))
        await pilot.press("q")
    double.stalled.set()
    app.session.collectors.stop()


async def test_a_long_prompts_progress_and_the_servers_rate_from_the_log(logged_app):
    app = logged_app(token_rate=20, tokens=60, prompt_delay_s=3.0, llama_server_log=True)
    tokens = app.query_one
    async with app.run_test(size=(140, 50)) as pilot:
        # the frame that shows the progress, read as it is drawn: with one frame a second, the next
        # frame may already show the first tokens (the progress line lasts 1.5 s here)
        shown = await eventually_async(
            lambda: text if "tokens read" in (text := str(tokens("#tokens").render())) else "",
            timeout=20,
            pause=lambda: pilot.pause(0.02),
        )
        # 1.5 s left as of the line, counted down to the frame: 0:01, or 0:00 where a busy machine drew it late
        assert re.search(
            r"prompt 2560 of about 5120 tokens read \(50%\) at 1707 tok/s, about 0:0[01] left \(server log\)", shown
        )
        await until(pilot, lambda: re.search(r"server \d", str(tokens("#tokens").render())), timeout=20)
        assert re.search(r"server \d+\.\d\d tok/s \(log\)", str(tokens("#tokens").render()))
        await until(pilot, lambda: len(app.runner.rows) == 1, timeout=20)
        assert app.runner.rows[0].log_eval_tps == pytest.approx(app.runner.rows[0].eval_rate_tps, rel=1e-3)


async def test_a_sweep_shows_its_points_its_chart_and_what_to_set(double_factory):
    from llmtop.measure.plan import SweepPlan
    from llmtop.measure.sweep_plan import SweepSpec
    from llmtop.tui.widgets.sweep_chart import SweepChart
    from spilling_machine import SpillingMachine

    double = double_factory(tokens=12, machine=SpillingMachine(speedup=100.0))
    collectors = SystemCollectors(0.02)
    session = Session(OllamaServer(double.url), "llama3.3", collectors)
    session.connect()
    collectors.start()
    sweep = SweepPlan("llama3.3", SweepSpec("num_gpu", (0, 24)), 81, 1, RunSettings())
    app = LlmtopApp(PlanRunner({"llama3.3": session}, sweep.first(), sweep=sweep))
    try:
        async with app.run_test(size=(140, 50)) as pilot:
            assert "run 1 of 3" in str(app.query_one("#phase").render())
            await until(pilot, lambda: app.query_one(SweepChart).display, timeout=30)
            table = app.query_one("#sweep-table", SummaryTable)
            assert [line.point.mode for line in table.summaries] == ["cpu", "gpu=24", "auto"]
            assert [line.marks for line in table.summaries] == ["", "fastest, recommended", "Ollama's choice"]
            conclusion = str(app.query_one("#conclusion").render())
            assert conclusion.startswith("num_gpu 24 gives ")
            assert "Modelfile: FROM llama3.3 / PARAMETER num_gpu 24" in conclusion
            assert not app.query_one("#comparison").display  # the sweep's table takes its place
            assert app.query_one(SweepChart).drawn is not None and not app.query_one("#chart").display
            await pilot.press("b")
            assert app.query_one("#chart").display and not app.query_one(SweepChart).display
    finally:
        collectors.stop()


async def test_a_log_file_that_does_not_exist_yet_is_awaited_visibly(double_factory, tmp_path):
    from llmtop.collectors.log_sources import FileFollower
    from llmtop.collectors.log_watch import LogWatcher

    double = double_factory(token_rate=100, tokens=10)
    log_file = tmp_path / "server.log"  # Ollama has not written it yet
    watcher = LogWatcher(FileFollower(log_file, poll_s=0.02))
    watcher.start()
    collectors = SystemCollectors(0.05)
    session = Session(OllamaServer(double.url), "llama3.3", collectors, log=watcher)
    session.connect()
    collectors.start()
    app = LlmtopApp(one_run(session))
    try:
        async with app.run_test(size=(140, 44)) as pilot:
            await until(pilot, lambda: len(app.runner.rows) == 1)
            layers = app.query_one("#layers", Gauge).text
            assert f"n/a: no model load in the log yet (waiting for {log_file} to appear)" in layers
    finally:
        collectors.stop()
        watcher.stop()


async def test_power_gauges_show_watts_their_history_and_the_energy_per_token(double_factory, tmp_path):
    import pynvml
    from power_trees import RunningCounter, rapl_tree

    from helpers.fake_nvml import EnergyNvml
    from llmtop.collectors.power_collector import power_unavailable, probe_power_sources

    root = rapl_tree(tmp_path, max_range=30_000_000)
    double = double_factory(token_rate=20, tokens=80, vram_fraction=0.36)
    app = make_app(double, RunSettings(num_gpu=0))  # CPU only: the unread GPU did none of the work
    app.session.collectors.stop()
    power = probe_power_sources("linux", sysfs=root, nvml=EnergyNvml(init_error=pynvml.NVMLError_LibraryNotFound()))
    app.session.collectors.use_power(power, power_unavailable(power))
    with RunningCounter(root / "class/powercap/intel-rapl:0/energy_uj", 40.0, wrap=30_000_000) as counter:
        app.session.collectors.start()
        async with app.run_test(size=(140, 44)) as pilot:
            await until(pilot, lambda: app.session.last is not None and app.session.last.clock.count > 30)
            await next_frame(pilot, frames=SLOW_EVERY + 1)  # the energy line is redrawn every SLOW_EVERY frames
            cpu, gpu = [g for g in app.live.power_panel.gauges if g.display]
            shown = re.search(r"^CPU power   [█░]+ ([\d.]+) W / 125 W  Δ [+-]\d+\.\d W  [▁-█]+ CPU package$", cpu.text)
            assert shown, cpu.text
            # 40 W, read between two samples 0.5 s apart from a file its writer steps every 5 ms (more when busy)
            assert float(shown.group(1)) == pytest.approx(40.0, abs=40.0 * 2 * counter.max_gap_s / 0.5 + 1.0)
            assert gpu.text.startswith("GPU power   n/a: nvml: no NVIDIA driver")
            energy = app.live.power_panel.energy_line.text
            assert re.fullmatch(r"energy \d+ J since the request   ·   \d\.\d+ J/token while generating", energy), (
                energy
            )
            await until(pilot, lambda: len(app.runner.rows) == 1)
            row = app.runner.rows[0]
            assert row.joules_per_token == pytest.approx(40.0 / 20, rel=0.1)  # 40 W at 20 tokens/s
            assert cells_of(app.runs_table, 0)["J/token"] == f"{row.joules_per_token:.3g}"
            drm = root / "class" / "drm"
            assert row.energy_note == (
                "GPU not measured (nvml: no NVIDIA driver: the NVML library (libnvidia-ml / nvml.dll) is not found; "
                f"amd-hwmon: no AMD GPU with hwmon power1_average or power1_input under {drm}; "
                f"intel-hwmon: no Intel GPU with hwmon energy1_input under {drm})"
            )
    app.session.collectors.stop()


async def test_server_modes_restart_the_server_between_runs_and_draw_each_runs_memory_by_part(tmp_path):
    """A plan of `auto` and `auto:kv=q8_0:fa=on` on the screen: the phase line says the server restarts
    (here a stand-in restart that makes the double's log obey the new settings, as a restarted 0.5.11
    would), then each run's row, and the memory-by-part panel with the KV cache of q8_0 about half."""
    import threading

    from llmtop.collectors.log_sources import FileFollower
    from llmtop.collectors.log_watch import LogWatcher
    from llmtop.measure.server_settings import ServerSettings
    from ollama_double import DoubleConfig, OllamaDouble, ServerLog

    log_file = tmp_path / "server.log"
    log_file.write_text("")
    writer = open(log_file, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed below
    watcher = LogWatcher(FileFollower(log_file, poll_s=0.02))
    watcher.start()
    assert watcher.wait_until_following(5)
    server_log = ServerLog(writer.write)
    double = OllamaDouble(DoubleConfig(vram_fraction=27 / 81, token_rate=100, tokens=20), log=server_log).start()
    collectors = SystemCollectors(0.05)
    session = Session(OllamaServer(double.url), "llama3.3", collectors, log=watcher)
    session.connect()
    collectors.start()
    seen_restarting = threading.Event()
    restarted: list[ServerSettings] = []

    def restart(settings: ServerSettings) -> None:
        seen_restarting.wait(10)  # until the screen has shown it
        env = settings.env()
        server_log.__init__(writer.write, server_env=env)  # the restarted server's log, with its settings
        restarted.append(settings)

    plan = [PlannedRun("llama3.3", RunSettings().with_mode(m)) for m in parse_modes("auto,auto:kv=q8_0:fa=on")]
    runner = PlanRunner({"llama3.3": session}, plan, restart_server=restart, server_settings=ServerSettings())
    app = LlmtopApp(runner)
    try:
        async with app.run_test(size=(140, 50)) as pilot:
            await until(
                pilot, lambda: "restarting ollama serve (KV q8_0, FA on)" in app.phase_panel.query_one("#phase").text
            )
            seen_restarting.set()
            await until(pilot, lambda: len(app.runner.rows) == 2, timeout=30)
            await until(pilot, lambda: app.query_one("#parts").display)
            f16, q8 = app.runner.rows
            assert restarted == [ServerSettings(kv_cache="q8_0", flash_attention=True)]
            assert (f16.settings["kv_cache"], q8.settings["kv_cache"], q8.settings["flash_attention"]) == (
                "f16",
                "q8_0",
                "on",
            )

            def kv(row):
                return sum(p.bytes for p in row.memory_parts if p.part == "kv_cache")

            assert kv(q8) / kv(f16) == pytest.approx(34 / 64)  # q8_0: 8.5 bits a value against 16
            drawn = str(app.query_one("#parts").render())
            assert "llama3.3 auto, KV q8_0, FA on (CUDA0)" in drawn and "█ weights  ▓ KV cache  ░ compute" in drawn
            assert cells_of(app.runs_table, 1)["mode"] == "auto, KV q8_0, FA on"
    finally:
        collectors.stop()
        watcher.stop()
        double.stop()
        writer.close()
