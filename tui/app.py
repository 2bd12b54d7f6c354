"""The llmtop screen: header, phase line, gauges, tokens/s chart, streamed text, the runs and their
comparison.

The plan runs on its own daemon thread (a blocked read from a slow server must never keep the
app from quitting) and posts messages; the screen is refreshed from the collectors' buffers
once a second, the charts every four seconds, and a widget is redrawn only when what it shows
has changed (bench/versus_top.py measures what that costs).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import signal
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.widgets import Footer, Log, Static
from textual_plotext import PlotextPlot

from llmtop import units
from llmtop.data_folder import internal_error
from llmtop.figures import SCREEN_COMPARISON_COLUMNS, SWEEP_COLUMNS
from llmtop.measure.comparison import compare
from llmtop.measure.energy import EDGE_S, GPU_UNREAD
from llmtop.measure.live import energy_so_far, gpu_now, idle_power, process_deltas, ram_now, watts_over_idle
from llmtop.measure.plan import PlannedRun, PlanRunner
from llmtop.measure.session import Phase, Session, SessionObserver
from llmtop.measure.settings import RunSettings
from llmtop.measure.stopping import StopRequested, stop_for
from llmtop.measure.summary import SummaryRow, baseline_start, split_words
from llmtop.measure.timeline import memory_timeline, run_start
from llmtop.store.charts import chart_bars
from llmtop.store.session_files import write_session_files
from llmtop.tui.help_screen import HelpScreen
from llmtop.tui.messages import PhaseChanged, PlanDone, RunFinished, SessionNote
from llmtop.tui.widgets.gauge import Gauge
from llmtop.tui.widgets.memory_chart import MemoryTimelineChart
from llmtop.tui.widgets.paragraph import Paragraph
from llmtop.tui.widgets.streamed_text import StreamedText
from llmtop.tui.widgets.summary_table import SummaryTable
from llmtop.tui.widgets.sweep_chart import SweepChart
from llmtop.tui.widgets.text_line import TextLine
from llmtop.tui.widgets.token_rate import TokenRateChart, TpsBarChart

SPARK_S = 8.0  # a power gauge's history
SPARK_POINTS = 16
KIND_NAMES = {"cpu": "CPU", "gpu": "GPU"}
REFRESH_S = 1.0  # screen refresh: once a second, whatever the sampling interval
SLOW_EVERY = 4  # the charts and the log pane: every fourth refresh (every 4 s; plotext is the costliest draw)
CHART_POINTS = 80
WIDE_COLUMNS = 160  # from this width on, the tokens/s chart and the memory timeline are shown side by side
NARROW_COLUMNS = 100  # below this width, the gauges take the whole width and a chart replaces them on m or b
SHORT_ROWS = 32  # below this height, the screen drops its borders and the legend


def _power_gauge(label: str) -> Gauge:
    return Gauge(label, unit=units.watts, delta_unit=units.signed_watts)


class _AppObserver(SessionObserver):
    """Forwards session events to the app. Tokens are kept per run, on the session's thread, until
    the refresh timer drains them: a new run's text never mixes with the last one's, however late
    the app handles the phase messages (a replay delivers a whole run at once), and nothing is
    kept once it is on screen."""

    def __init__(self, app: LlmtopApp) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.parts: list[str] = []  # tokens not drained yet
        self.new_run = False  # a run began since the last drain

    def phase(self, phase: Phase, detail: str = "") -> None:
        if phase is Phase.BASELINE:  # every run takes one baseline, before its first token
            with self.lock:
                self.parts = []
                self.new_run = True
        self.app.post_message(PhaseChanged(phase, detail))

    def token(self, text: str) -> None:
        with self.lock:
            self.parts.append(text)

    def note(self, message: str) -> None:
        self.app.post_message(SessionNote(message))

    def finished(self, row: SummaryRow) -> None:
        self.app.post_message(RunFinished(row))

    def drain(self) -> tuple[bool, str]:
        """(a new run began since the last drain, the text that arrived since)."""
        with self.lock:
            new_run, text = self.new_run, "".join(self.parts)
            self.parts = []
            self.new_run = False
        return new_run, text


class LlmtopApp(App[int]):
    """Live view of a plan of runs; every run adds a row, and the runs are compared below."""

    CSS_PATH = "llmtop.tcss"
    TITLE = "llmtop"
    BINDINGS = [
        Binding("q", "quit_keeping", "Quit"),
        Binding("ctrl+c", "interrupt", "Quit", show=False, priority=True),
        Binding("r", "run_again", "Run again"),
        Binding("c", "toggle_cpu", "CPU next"),
        Binding("e", "export", "Export"),
        Binding("l", "toggle_log", "Log"),
        Binding("b", "toggle_bars", "Bars"),
        Binding("m", "toggle_memory", "Memory"),
        Binding("t", "more_columns", "Columns", show=False),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("f1", "help", "Help", show=False),
    ]
    ENABLE_COMMAND_PALETTE = False  # every action has its key, listed on the help screen

    def __init__(
        self,
        runner: PlanRunner,
        export_path: str | None = None,
        lang: str = "en",
        chart_path: str | None = None,
        banner: str | None = None,
        report_path: str | None = None,
    ) -> None:
        """`banner` marks a replay: it is shown above everything, and nothing new can be run.
        `e` writes the export to `export_path`, and the chart and the report where they are given."""
        super().__init__()
        self.runner = runner
        self.banner = banner
        first = runner.current_item
        self.settings = first.settings if first else RunSettings()
        self.auto_num_gpu = self.settings.num_gpu if self.settings.num_gpu != 0 else None
        self.export_path = export_path
        self.lang = lang
        self.chart_path = chart_path
        self.report_path = report_path
        if report_path:
            runner.keep_curves()
        self.exit_status: int | None = None  # set when Ctrl+C or a signal stopped the app
        self._signal_loop: asyncio.AbstractEventLoop | None = None
        self._pending_stop: StopRequested | None = None
        self._observer = _AppObserver(self)
        for session in runner.sessions.values():
            session.observer = self._observer
        runner.on_note = lambda message: self.post_message(SessionNote(message))
        self._thread: threading.Thread | None = None
        self._ticks = 0
        self.frames = 0  # live refreshes drawn so far (tests wait for one after what they check)
        self.notified: list[str] = []  # every toast's message, as notify() was asked
        self._bars_shown = False
        self.chart_view = "tps"  # the chart beside the gauges: "tps", "memory" or "bars" (m and b switch)
        self.charts_instead = False  # a narrow screen shows the chart view in place of the gauges
        self._laid_out_size: object = None  # the size the layout was made for
        self._idle: dict[str, float] = {}  # each power source's idle watts in the run's baseline

    @property
    def session(self) -> Session:
        """The session of the run in progress (or the latest one)."""
        return self.runner.current

    # -- layout -----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        if self.banner:
            yield Static(self.banner, id="banner")
        yield TextLine(self._header_texts()[0], id="header")
        yield TextLine(id="phase")
        yield TextLine(id="tokens")
        yield Static("Δ: change since the baseline taken before the run", id="legend")
        with Horizontal(id="live"):
            with Vertical(id="gauges"):
                yield Gauge("RAM", id="ram")
                yield Gauge("  mapped", id="mapped")
                yield Gauge("Swap", id="swap")
                yield Gauge("Ollama RSS", id="rss")
                with Vertical(id="gpu"):
                    yield Gauge("VRAM", id="vram-0")
                    yield Gauge("Shared GPU", id="shared-0")
                with Vertical(id="power"):
                    yield _power_gauge("Power")
                yield TextLine(id="energy")  # shown once there is something to say
                yield Gauge("GPU layers", id="layers", unit=str)
                yield TextLine(id="split")
                yield Paragraph(id="why")
            yield TokenRateChart(id="chart", classes="chart")
            yield MemoryTimelineChart(id="memory", classes="chart")
            yield TpsBarChart(id="bars", classes="chart")
            if self.runner.sweep is not None:
                yield SweepChart(id="sweep-chart", classes="chart")
        yield StreamedText(id="text")
        yield Log(id="log-pane", max_lines=300)
        yield SummaryTable(id="summary")
        yield SummaryTable(id="comparison", columns=SCREEN_COMPARISON_COLUMNS)
        if self.runner.sweep is not None:
            yield SummaryTable(id="sweep-table", columns=SWEEP_COLUMNS)
            yield Static(id="conclusion", markup=False)
        yield Footer()

    def _header_texts(self) -> tuple[str, ...]:
        """The header, and shorter ways to say it for a narrow terminal."""
        facts = self.session.facts
        if facts is None:
            return (self.session.model,)
        parts = [
            facts.name,
            facts.parameter_size or "params n/a",
            facts.quantization or "quant n/a",
            units.gb(facts.size_bytes) or "size n/a",
            f"{facts.layers_total} layers" if facts.layers_total else "layers n/a",
        ]
        server = [self.session.server.base_url, f"Ollama {self.session.version or 'n/a'}"]
        return (
            "  ·  ".join(parts + server),
            "  ·  ".join(parts + server[1:]),
            " · ".join(parts),
        )

    def on_mount(self) -> None:
        # Widgets are looked up once: the refresh timer and late messages from the session
        # thread (which may arrive while the app is closing) use these references.
        self.phase_line = self.query_one("#phase", TextLine)
        self.ram_gauge = self.query_one("#ram", Gauge)
        self.mapped_gauge = self.query_one("#mapped", Gauge)
        self.swap_gauge = self.query_one("#swap", Gauge)
        self.rss_gauge = self.query_one("#rss", Gauge)
        self.split_line = self.query_one("#split", TextLine)
        self.why = self.query_one("#why", Paragraph)
        self._why_shown = ""
        self.tokens_line = self.query_one("#tokens", TextLine)
        self.chart = self.query_one(TokenRateChart)
        self.memory_chart = self.query_one(MemoryTimelineChart)
        self.streamed = self.query_one(StreamedText)
        self.table = self.query_one("#summary", SummaryTable)
        self.comparison = self.query_one("#comparison", SummaryTable)
        self.table.set_title("runs (Δ over the baseline of each run)")
        self.comparison.set_title("compared: tps mean ± sd, speed-up over cpu")
        self.header = self.query_one("#header", TextLine)
        # A sweep's chart (tps and memory by layers) takes the place of the bar chart: `b` shows it.
        self.tps_bars = self.query_one(TpsBarChart)
        self.bars: PlotextPlot = self.tps_bars
        if self.runner.sweep is not None:
            self.sweep_chart = self.bars = self.query_one(SweepChart)
            self.sweep_table = self.query_one("#sweep-table", SummaryTable)
            self.sweep_table.set_title(
                "sweep: one line per point, tps mean ± sd, memory Δ over each run's baseline (b: its chart)"
            )
            self.conclusion = self.query_one("#conclusion", Static)
            self._show_sweep()
        self.layers_gauge = self.query_one("#layers", Gauge)
        self.log_pane = self.query_one("#log-pane", Log)
        self._pane_shown: list[str] = []
        self.gpu_box = self.query_one("#gpu", Vertical)
        self.gauges_box = self.query_one("#gauges", Vertical)
        self.gpu_gauges = [(self.query_one("#vram-0", Gauge), self.query_one("#shared-0", Gauge))]
        self.power_box = self.query_one("#power", Vertical)
        self.power_gauges = list(self.power_box.query(Gauge))
        self.energy_line = self.query_one("#energy", TextLine)
        self._spill_warned: object = None
        self._show_charts()
        self.set_interval(REFRESH_S, self._refresh_frame)
        self._signal_loop = asyncio.get_running_loop()
        if self._pending_stop is not None:
            self._stop(self._pending_stop)
            return
        self._work()

    # -- runs -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _work(self) -> None:
        """Work through the runner's queue on a daemon thread, if it is not already."""
        if self.running:
            return
        self._thread = threading.Thread(target=self._run_plan, name="llmtop-runs", daemon=True)
        self._thread.start()
        self._refresh_live()

    def _run_plan(self) -> None:
        """The runs, on their own thread: a bug there is said on screen, never a frozen phase."""
        try:
            self.runner.run_all()
        except Exception as exc:
            message = internal_error("the plan", exc)
            self.post_message(SessionNote(message))
        self.post_message(PlanDone())

    def _show_text(self) -> None:
        new_run, text = self._observer.drain()
        if new_run:
            self.streamed.clear()
            self.chart.show_series([])
            self.memory_chart.show_timeline(None)
        if text:
            self.streamed.append(text)

    def on_phase_changed(self, message: PhaseChanged) -> None:
        if message.phase is Phase.FAILED and message.detail:
            self.notify(message.detail, title="run incomplete", severity="error", timeout=10)
        self.header.show(*self._header_texts())
        self._refresh_live()

    def on_plan_done(self, message: PlanDone) -> None:
        self._show_comparison(plan_done=True)  # a sweep knows only now that no point is left

    def on_session_note(self, message: SessionNote) -> None:
        self.notify(message.text, severity="warning", timeout=8)

    def on_run_finished(self, message: RunFinished) -> None:
        self._show_text()
        self.table.add_summary(message.row)
        if message.row.log_eval_note:
            self.notify(message.row.log_eval_note, severity="warning", timeout=10)
        self._show_comparison()
        self._refresh_live()

    def _show_sweep(self) -> None:
        """The sweep's table, chart and conclusion from the points so far."""
        result = self.runner.sweep_result()
        if result is None:
            return
        self.sweep_table.replace_all(result.lines())
        self.sweep_chart.show_result(result)
        if not result.points:
            self.conclusion.update("the sweep's conclusion comes as its points finish")
            return
        if not result.finished:
            self.conclusion.update(f"so far: {result.conclusion}")
            return
        lines = [result.conclusion, *(f"· {note}" for note in result.notes)]
        if result.modelfile and result.create_command:
            modelfile = " / ".join(result.modelfile.strip().splitlines())
            lines.append(f"Modelfile: {modelfile}  ·  then: {result.create_command}")
        self.conclusion.update("\n".join(lines))

    def _show_comparison(self, plan_done: bool = False) -> None:
        rows = list(self.runner.rows)
        groups = compare(rows)
        self.comparison.replace_all(groups)
        self.comparison.display = len(rows) > 1 and self.runner.sweep is None  # a sweep's table says it
        if self.runner.sweep is not None:
            self._show_sweep()
            if plan_done and not self._bars_shown:
                self._bars_shown = True  # the sweep is done: show its chart once (b toggles)
                self._show_bars(True)
            return
        self.tps_bars.show_bars(chart_bars(rows))
        if len(groups) > 1 and not self.runner.queue and not self._bars_shown:
            self._bars_shown = True  # the plan is done: show the article's graph once (b toggles)
            self._show_bars(True)

    # -- live refresh -------------------------------------------------------------------------
    def _refresh_frame(self) -> None:
        self._refresh_live()
        self.frames += 1  # what the state held before this frame is on the screen now

    def _refresh_live(self) -> None:
        self._ticks += 1
        if self.size != self._laid_out_size:  # the terminal was resized: the layout for its new size
            self._show_charts()
        session = self.session
        record = session.last
        now = session.now()
        self.phase_line.show(*self._phase_texts(now))
        self._show_text()

        memory = session.collectors.memory.latest()
        proc = session.collectors.processes.latest()
        self._refresh_ram(record, memory, proc)

        rss = self.rss_gauge
        if proc is None:
            rss.show_unavailable(session.collectors.processes.last_error or "waiting for the first sample")
        elif proc.rss_bytes is None:
            rss.show_unavailable(proc.reason or "not readable")
        else:
            rss_delta, _ = process_deltas(proc, record.baseline_process if record else None)
            runner = f"runner {units.human_bytes(proc.runner_rss_bytes)}" if proc.runner_pids else "no runner"
            rss.show_reading(proc.rss_bytes, memory.total_bytes if memory else None, rss_delta, note=runner)

        self._refresh_gpus(record)
        self._refresh_power(record, now, self._ticks % SLOW_EVERY == 0 or (record and record.ended_at) is not None)
        self._refresh_layers()
        if self.log_pane.display and self._ticks % SLOW_EVERY == 0:
            self._refresh_log_pane()

        ps = session.latest_ps()
        if ps is not None and ps.vram_share is not None:
            split = split_words(ps.vram_share)
            on_gpu = f"{units.human_bytes(ps.size_vram_bytes)} of {units.human_bytes(ps.size_bytes)} on GPU"
            self.split_line.show(
                f"Ollama's split (/api/ps): {split}, {on_gpu}", f"/api/ps: {split}, {on_gpu}", f"/api/ps: {split}"
            )
        elif session.ps_problem:
            self.split_line.show(f"Ollama's split (/api/ps): n/a: {session.ps_problem}")
        else:
            self.split_line.show("Ollama's split (/api/ps): model not loaded")

        if record is not None:
            clock = record.clock
            # A finished run keeps its figures as they were at its end, not decaying ones.
            until = min(now, record.ended_at) if record.ended_at is not None else now
            live = clock.live_rate_tps(until)
            figures = (
                f"tokens {clock.count}   live {units.rate(live) or 'n/a'} tok/s   "
                f"TTFT {units.seconds(clock.ttft_s) or 'n/a'}"
            )
            server, server_short = self._server_texts(session, record)
            stall = self._stall_text(session, record)
            self.tokens_line.show(figures + server + stall, figures + server_short + stall, figures + stall)
            slow = self._ticks % SLOW_EVERY == 0 or record.ended_at is not None
            if clock.first_at is not None and slow and self.chart.display:
                self.chart.show_series(clock.series(until, CHART_POINTS))
            if slow and self.memory_chart.display:
                self._refresh_memory_chart(record, until)

    def _refresh_memory_chart(self, record, until: float) -> None:
        """Only this run's samples are taken from the buffers (they hold up to two hours)."""
        collectors = self.session.collectors
        start = run_start(record)
        self.memory_chart.show_timeline(
            memory_timeline(
                record,
                collectors.memory.between(start, until),
                collectors.processes.between(start, until),
                collectors.gpu.between(start, until) if collectors.gpu is not None else [],
                until,
            )
        )

    @staticmethod
    def _server_texts(session: Session, record) -> tuple[str, str]:
        """What llama-server's lines in the log say of this request (Ollama 0.30 on), in full and
        short: the prompt's progress while it is read, the server's own rate while it generates."""
        if record.ended_at is not None or session.phase not in (Phase.LOADING, Phase.PROMPT, Phase.GENERATING):
            return "", ""
        request = session.log_request(record)
        if request is None:
            return "", ""
        left = request.prompt_left_s
        if session.phase is Phase.GENERATING:
            if request.tg_tps is None:
                return "", ""
            return f"   ·   server {request.tg_tps:.2f} tok/s (log)", f"   server {request.tg_tps:.2f} tok/s"
        if request.prompt_done is not None and request.prompt_progress is not None and left is not None:
            total = round(request.prompt_done / request.prompt_progress / 10) * 10  # progress has 2 decimals
            share = f"{100 * request.prompt_progress:.0f}%"
            return (
                f"   ·   prompt {request.prompt_done} of about {total} tokens read ({share}) "
                f"at {request.prompt_live_tps:.0f} tok/s, about {units.clock(left)} left (server log)",
                f"   prompt {share} read, {units.clock(left)} left",
            )
        return "", ""

    @staticmethod
    def _stall_text(session: Session, record) -> str:
        """`no token for 34 s` once the gap since the last token is unusual for this run: over 5 s
        and over ten of its usual gaps."""
        gap = session.stall_s(record)
        rate = record.clock.client_rate_tps
        if gap is None or gap < 5.0 or (rate and gap < 10.0 / rate):
            return ""
        return f"   ·   no token for {gap:.0f} s"

    def _refresh_ram(self, record, memory, proc) -> None:
        """RAM as the summary row counts it: the system's in-use memory plus, where the platform
        counts mapped files as cache (Linux), the Ollama processes' file-backed memory, which holds
        mapped weights; that part is shown on the line below."""
        base_proc = record.baseline_process if record else None
        if proc is None or proc.file_rss_bytes is None:
            self.mapped_gauge.show_unavailable("counted apart on Linux only (see docs/measurement.md)")
        else:
            _, mapped_delta = process_deltas(proc, base_proc)
            total = memory.total_bytes if memory else None
            self.mapped_gauge.show_reading(proc.file_rss_bytes, total, mapped_delta, note="Ollama's files")
        ram = self.ram_gauge
        if memory is None:
            ram.show_unavailable(self.session.collectors.memory.last_error or "waiting for the first sample")
            return
        swap = self.swap_gauge
        if memory.swap_total_bytes:
            swap.show_reading(memory.swap_used_bytes, memory.swap_total_bytes)
        else:
            swap.show_unavailable("no swap configured")
        now = ram_now(memory, proc, record.baseline_memory if record else None, base_proc)
        note = f"in use {units.human_bytes(now.in_use)}" if now.in_use is not None else ""
        ram.show_reading(now.used, now.total, now.delta, note=note)

    def _refresh_gpus(self, record) -> None:
        collectors = self.session.collectors
        first_vram, first_shared = self.gpu_gauges[0]
        if collectors.gpu is None:
            first_vram.show_unavailable(f"no GPU read ({collectors.gpu_unavailable})")
            first_shared.show_unavailable("no GPU read (`llmtop doctor` shows each backend tried)")
            return
        sample = collectors.gpu.latest()
        if sample is None or not sample.gpus:
            why = "; ".join(sample.problems) if sample and sample.problems else "waiting for the first sample"
            first_vram.show_unavailable(why)
            first_shared.show_unavailable(why)
            return
        while len(self.gpu_gauges) < len(sample.gpus):
            pair = (Gauge("VRAM"), Gauge("Shared GPU"))
            self.gpu_box.mount(*pair)
            self.gpu_gauges.append(pair)
        several = len(sample.gpus) > 1
        baseline = {g.key: g for g in record.baseline_gpu.gpus} if record and record.baseline_gpu else {}
        running = self.session.current is not None
        for index, gpu in enumerate(sample.gpus):
            vram, shared = self.gpu_gauges[index]
            suffix = f" {index}" if several else ""
            vram.label = ("Unified" if gpu.unified else "VRAM") + suffix
            shared.label = "Shared GPU" + suffix
            figures = gpu_now(gpu, baseline.get(gpu.key), running)
            notes = [gpu.name]
            if gpu.utilization_pct is not None:
                notes.append(f"{gpu.utilization_pct:.0f}% busy")
            if gpu.ollama_dedicated is not None:
                notes.append(f"Ollama {units.human_bytes(gpu.ollama_dedicated)}")
            if gpu.dedicated_used is None:
                vram.show_unavailable(gpu.reason("dedicated"))
            else:
                vram.show_reading(
                    gpu.dedicated_used, gpu.dedicated_total, figures.dedicated_delta, note=" · ".join(notes)
                )
            if gpu.shared_used is None:
                shared.show_unavailable(gpu.reason("shared"))
                shared.set_class(False, "-warning")
                continue
            spilling = figures.spilling
            shared.show_reading(
                gpu.shared_used,
                gpu.shared_total,
                figures.shared_delta,
                note="spilling into system RAM" if spilling else "",
            )
            shared.set_class(spilling, "-warning")
            if spilling and self._spill_warned is not record:
                self._spill_warned = record
                # Said once, without the figure of the moment (the gauge keeps it up to date).
                self.notify(
                    f"{gpu.name}: shared GPU memory is growing over its baseline: the model is spilling out of "
                    "VRAM into system RAM",
                    severity="warning",
                    timeout=10,
                )

    def _refresh_power(self, record, now: float, slow: bool) -> None:
        """A gauge per power source (watts, its last 8 s, Δ over the baseline's idle power), n/a with
        the reasons where a kind is not measured; every 4 s the energy since the request."""
        collectors = self.session.collectors
        missing = collectors.power_unavailable
        sampler = collectors.power
        recent = sampler.between(now - SPARK_S) if sampler is not None else []
        latest = recent[-1] if recent else None
        shown: list[tuple[str, Any]] = [(kind, None) for kind in ("cpu", "gpu") if kind in missing]
        if latest is not None:
            shown = [(r.kind, r) for r in latest.sources] + shown
        while len(self.power_gauges) < len(shown):
            gauge = _power_gauge("Power")
            self.power_box.mount(gauge)
            self.power_gauges.append(gauge)
        for gauge in self.power_gauges[len(shown) :]:
            gauge.display = False
        if sampler is not None and latest is None:
            self.power_gauges[0].display = True
            self.power_gauges[0].show_unavailable(sampler.last_error or "waiting for the first sample")
            return
        if slow:  # the baseline's idle power changes once a run: every 4 s is plenty
            self._idle = self._idle_power(record)
        idle = self._idle
        gpus = sum(1 for kind, _ in shown if kind == "gpu")
        number = 0
        for gauge, (kind, reading) in zip(self.power_gauges, shown, strict=False):
            gauge.display = True
            if kind == "gpu" and gpus > 1 and reading is not None:
                gauge.label = f"GPU {number} power"
                number += 1
            else:
                gauge.label = f"{KIND_NAMES[kind]} power"
            if reading is None:
                gauge.show_unavailable(missing[kind])
            elif reading.watts is None:
                gauge.show_unavailable(reading.reason or "not read")
            else:
                history = [w for s in recent for r in s.sources if r.key == reading.key and (w := r.watts) is not None]
                points = history[-SPARK_POINTS:]
                spark = units.sparkline(points, reading.limit_w or 1.25 * max(points, default=0.0))
                over_idle = watts_over_idle(reading.watts, reading.key, idle)
                gauge.show_reading(reading.watts, reading.limit_w, over_idle, note=f"{spark} {reading.name}")
        if slow:
            texts = self._energy_texts(record, now)
            shown_line = bool(texts[0])
            if self.energy_line.display != shown_line:  # no empty row where nothing is measured
                self.energy_line.display = shown_line
            self.energy_line.show(*texts)

    def _idle_power(self, record) -> dict[str, float]:
        """Each source's mean power over the run's baseline, once the request has gone."""
        power = self.session.collectors.power
        if record is None or power is None or not record.clock.request_at:
            return {}
        since = baseline_start(record)
        samples = power.between(since, record.clock.request_at + EDGE_S) if since is not None else []
        return idle_power(record, samples)

    def _energy_texts(self, record, now: float) -> tuple[str, ...]:
        """`energy 3.40 kJ since the request · 2.10 J/token while generating` and shorter ones."""
        sampler = self.session.collectors.power
        if record is None or sampler is None or not record.phases:
            return ("",)
        if self.session.phase in (Phase.BASELINE, Phase.UNLOADING) and record.ended_at is None:
            return ("",)
        end = record.ended_at if record.ended_at is not None else now
        samples = sampler.between(record.clock.request_at - EDGE_S, end + EDGE_S)
        energy = energy_so_far(record, samples, now, self._gpu_works(record))
        if energy is None:
            return ("",)
        if energy.energy_j is None:
            why = energy.note or "not read"
            if why.startswith(GPU_UNREAD):
                return (f"energy n/a: {GPU_UNREAD}", "energy n/a: the GPU worked, its power is not read")
            return (f"energy n/a: {why}",)
        text = f"energy {units.joules(energy.energy_j)} since the request"
        if energy.joules_per_token is None:
            return (text,)
        per_token = f"{energy.joules_per_token:.3g} J/token"
        return (
            f"{text}   ·   {per_token} while generating",
            f"energy {units.joules(energy.energy_j)} · {per_token}",
            text,
        )

    def _gpu_works(self, record) -> bool:
        """Whether part of the model is on a GPU in this run: the log's layers, else `/api/ps`."""
        load = self.session.log_load(record)
        if load is not None and load.layers_offloaded is not None:
            return load.layers_offloaded > 0
        ps = self.session.latest_ps()
        return ps is not None and ps.size_vram_bytes > 0

    def _refresh_layers(self) -> None:
        session = self.session
        if session.log is None:
            self.layers_gauge.show_unavailable(f"server log {session.log_reason or 'not read'}")
            return
        load = session.log_load()
        if load is None or load.layers_offloaded is None:
            problem = session.log.problem or session.log.waiting
            problem = f" ({problem})" if problem else ""
            self.layers_gauge.show_unavailable(f"no model load in the log yet{problem}")
            return
        how = "Ollama's plan" if load.estimate_only else "confirmed"
        total = load.layers_total or (session.facts.layers_total if session.facts else None)
        overflowing = f" · {load.layers_overflowing} overflowing" if load.layers_overflowing else ""
        self.layers_gauge.show_reading(
            load.layers_offloaded, total, note=f"{load.library or '?'} · {how} (log){overflowing}"
        )
        reason = load.split_reason()
        why = f"why: {reason}" if reason else ""
        if load.layers_overflowing:
            why = f"{load.layers_overflowing} of them overflowing: their experts in system memory. {why}".strip()
        if why != self._why_shown:  # a sentence that changes once a load, so it may take a new layout
            self._why_shown = why
            self.why.show(why)

    def _refresh_log_pane(self) -> None:
        lines = self.session.log.pane_lines() if self.session.log else []
        if not lines:
            lines = [f"server log: {self.session.log_reason or 'no line about a model load yet'}"]
        if lines != self._pane_shown:
            self.log_pane.clear()
            self.log_pane.write_lines(lines)
            self._pane_shown = lines

    def _phase_texts(self, now: float) -> tuple[str, ...]:
        """Where the plan is, and shorter ways to say it."""
        session = self.session
        runner = self.runner
        elapsed = units.clock(now - session.phase_since)
        item = runner.current_item
        number = min(runner.done + (1 if runner.running else 0), runner.expected_total) or 1
        where = f"run {number} of {runner.total_text}" + (f" · {item.model} {item.settings.mode}" if item else "")
        left = runner.time_left() if runner.queue or runner.running else None
        eta = f"  ·  about {units.clock(left)} left" if left is not None else ""
        line = f"{where}  ·  {session.phase.value}  {elapsed}{eta}"
        short = f"run {number}/{runner.total_text}  ·  {session.phase.value} {elapsed}" + (
            f"  ·  {units.clock(left)} left" if left is not None else ""
        )
        if self.banner:
            return line, short
        next_mode = "CPU only" if self.settings.num_gpu == 0 else self.settings.mode
        return f"{line}  ·  r adds a run: {next_mode}", line, short

    # -- keys -------------------------------------------------------------------------------
    def action_toggle_log(self) -> None:
        self.log_pane.display = not self.log_pane.display
        if self.log_pane.display:
            self._refresh_log_pane()

    def _show_charts(self) -> None:
        """The gauges and the chart view beside them, for the terminal's size: from WIDE_COLUMNS on,
        the memory timeline is added to the tps chart (or to the bars); below NARROW_COLUMNS the
        gauges take the whole width and a chart is shown in their place on m or b; below
        SHORT_ROWS the screen drops its borders and legend."""
        width, height = self._laid_out_size = self.size
        narrow, wide = width < NARROW_COLUMNS, width >= WIDE_COLUMNS
        self.screen.set_class(narrow, "-narrow")
        self.screen.set_class(height < SHORT_ROWS, "-short")
        self.why.set_max_rows(1 if height < SHORT_ROWS else 4)
        view = self.chart_view
        charts = not narrow or self.charts_instead
        self.gauges_box.display = not narrow or not self.charts_instead
        self.bars.display = charts and view == "bars"
        self.chart.display = charts and (view == "tps" or (wide and view == "memory"))
        self.memory_chart.display = charts and (view == "memory" or (wide and not narrow))
        record = self.session.last
        if record is None:
            return
        now = self.session.now()
        until = min(now, record.ended_at) if record.ended_at is not None else now
        if self.chart.display and record.clock.first_at is not None:
            self.chart.show_series(record.clock.series(until, CHART_POINTS))
        if self.memory_chart.display:
            self._refresh_memory_chart(record, until)

    def _show_bars(self, show: bool) -> None:
        self.chart_view = "bars" if show else "tps"
        self.charts_instead = show
        self._show_charts()

    def action_toggle_bars(self) -> None:
        self._show_bars(self.chart_view != "bars" or not self.charts_instead)

    def action_toggle_memory(self) -> None:
        """tps <-> memory beside the gauges; on a narrow screen, in their place: memory, tps, gauges."""
        if self.size.width < NARROW_COLUMNS:
            if not self.charts_instead or self.chart_view == "bars":
                self.charts_instead, self.chart_view = True, "memory"
            elif self.chart_view == "memory":
                self.chart_view = "tps"
            else:
                self.charts_instead, self.chart_view = False, "tps"
        else:
            self.chart_view = "tps" if self.chart_view == "memory" else "memory"
        self._show_charts()

    # What each key does, in full, for the help screen (the footer names them in a word).
    KEY_HELP = {
        "quit_keeping": "quit (a run in progress is kept, marked incomplete; the export and history keep it)",
        "run_again": "queue one more run of the model with the next run's settings",
        "toggle_cpu": "the next run (r) CPU only, or back to the plan's setting",
        "export": "write the runs so far (--export PATH, else llmtop-MODEL-DATE.md)",
        "toggle_log": "the server log's lines about the model load",
        "toggle_bars": "tps per model and mode as bars (the article's graph); a sweep's chart in a sweep",
        "toggle_memory": "the memory timeline in place of the tps chart (both side by side from 160 columns)",
        "help": "this help (also F1); Esc closes it",
    }
    # Keys the footer leaves out, and what they do, for the help screen.
    HELP_KEYS = (
        ("Ctrl+C", "quit (the run in progress is kept, marked incomplete)"),
        ("t", "the tables' other columns, where they do not all fit the width"),
    )

    def action_help(self) -> None:
        """Every key, every figure and where it is read from, and the full reason of what is n/a."""
        keys = [
            (binding.key_display or binding.key, self.KEY_HELP.get(binding.action, binding.description))
            for binding in self.BINDINGS
            if isinstance(binding, Binding) and binding.show and self.check_action(binding.action, ()) is not False
        ]
        keys += list(self.HELP_KEYS)
        unavailable = [
            (gauge.label.strip(), gauge.reason) for gauge in self.query(Gauge) if gauge.used is None and gauge.reason
        ]
        self.push_screen(HelpScreen(keys, unavailable))

    def action_more_columns(self) -> None:
        for table in self.query(SummaryTable):
            table.next_page()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """A replay shows what was recorded: it has no `r` or `c` (and the footer hides them)."""
        return not (self.banner and action in ("run_again", "toggle_cpu"))

    def action_run_again(self) -> None:
        self.runner.add(PlannedRun(self.session.model, self.settings))
        if self.running:
            self.notify(f"queued: {self.session.model} {self.settings.mode}")
        self._work()

    def action_toggle_cpu(self) -> None:
        cpu = self.settings.num_gpu != 0
        self.settings = replace(self.settings, num_gpu=0 if cpu else self.auto_num_gpu)
        self.notify(f"next run: {'CPU only' if cpu else self.settings.mode}")
        self._refresh_live()

    def _default_export_path(self) -> Path:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", self.session.model)
        return Path(f"llmtop-{safe}-{stamp}.md")

    def action_export(self) -> None:
        rows = list(self.runner.rows)
        if not rows:
            self.notify("nothing to export yet: no run has finished", severity="warning")
            return
        path = self.export_path or str(self._default_export_path())
        runner = self.runner
        outcomes = write_session_files(
            rows,
            export=path,
            chart=self.chart_path,
            report=self.report_path,
            lang=self.lang,
            machine=runner.machine,
            sweep=runner.sweep_result(),
            curves=[runner.curves_of(row) for row in rows] if self.report_path else (),
        )
        for failed in (o for o in outcomes if o.problem):
            self.notify(failed.problem or "", severity="error")
        written = [o for o in outcomes if o.written]
        if written and written[0].what == "export":
            also = "".join(f" and the {o.what} to {o.path}" for o in written[1:])
            self.notify(f"wrote {len(rows)} run(s) to {written[0].path}{also}")
        elif written:
            self.notify("wrote " + " and ".join(f"the {o.what} to {o.path}" for o in written))

    def _keep_run_in_progress(self, reason: str = "quit before the run finished") -> None:
        row = self.runner.abandon(reason)
        if row is not None:
            self.table.add_summary(row)

    def action_quit_keeping(self) -> None:
        self._keep_run_in_progress()
        self.exit()

    def action_interrupt(self) -> None:
        self._stop(stop_for(signal.SIGINT))

    def _stop(self, stop: StopRequested) -> None:
        """Stop as Ctrl+C does: the run in progress is kept with the reason; exit with the status."""
        self.exit_status = stop.status
        self._keep_run_in_progress(stop.reason)
        self.exit(return_code=stop.status)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """A toast, as Textual shows it; every message is also kept in `notified`, oldest first."""
        self.notified.append(message)
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def stop_for_signal(self, stop: StopRequested) -> None:
        """SIGTERM or SIGHUP (called from the signal handler, on the main thread): stop as Ctrl+C
        does, from the app's loop."""
        if self._signal_loop is None:  # not mounted yet: stop as soon as it is
            self._pending_stop = stop
        else:
            self._signal_loop.call_soon_threadsafe(self._stop, stop)
