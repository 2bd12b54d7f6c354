"""The llmtop screen: the app composes the panels (tui/panels/) and, once a second, makes each
panel's state (measure/screen_states.py) and hands it out; a panel redraws only when its state
changed (the charts, the log pane and the energy every fourth refresh: plotext is the costliest
draw). The plan runs on its own daemon thread (a blocked read from a slow server must never keep
the app from quitting) and posts messages; the app keeps the keys, the layout for the terminal's
size, the signals and the exports."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import threading
from collections.abc import Sequence
from dataclasses import replace

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.widgets import Footer, Static
from textual_plotext import PlotextPlot

from llmtop.data_folder import internal_error
from llmtop.measure import screen_states as states
from llmtop.measure.plan import PlannedRun, PlanRunner
from llmtop.measure.session import Phase, Session
from llmtop.measure.settings import RunSettings
from llmtop.measure.stopping import StopRequested, stop_for
from llmtop.measure.summary import RunRecord, SummaryRow
from llmtop.store.charts import chart_bars
from llmtop.store.session_files import export_name, outcome_messages, write_plan_files
from llmtop.tui.app_observer import AppObserver
from llmtop.tui.help_screen import HelpScreen, unavailable_gauges
from llmtop.tui.help_text import key_lines
from llmtop.tui.messages import PhaseChanged, PlanDone, RunFinished, SessionNote
from llmtop.tui.panels.answer_panel import AnswerPanel
from llmtop.tui.panels.gpu_panel import GpuPanel
from llmtop.tui.panels.layers_panel import LayersPanel
from llmtop.tui.panels.log_panel import LogPanel
from llmtop.tui.panels.memory_panel import MemoryPanel
from llmtop.tui.panels.phase_panel import PhasePanel
from llmtop.tui.panels.power_panel import PowerPanel
from llmtop.tui.panels.runs_panel import runs_panel
from llmtop.tui.screen_layout import after_memory_key, screen_layout
from llmtop.tui.widgets.memory_chart import MemoryTimelineChart
from llmtop.tui.widgets.summary_table import SummaryTable
from llmtop.tui.widgets.sweep_chart import SweepChart
from llmtop.tui.widgets.text_line import TextLine
from llmtop.tui.widgets.token_rate import TokenRateChart, TpsBarChart

REFRESH_S = 1.0  # screen refresh: once a second, whatever the sampling interval
SLOW_EVERY = 4  # the charts, the log pane and the energy: every fourth refresh (every 4 s)
CHART_POINTS = 80


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
        columns: Sequence[str] | None = None,
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
        self.columns = columns  # the exported Markdown's columns (--columns); the screen shows them all
        self.chart_path = chart_path
        self.report_path = report_path
        if report_path:
            runner.keep_curves()
        self.exit_status: int | None = None  # set when Ctrl+C or a signal stopped the app
        self._signal_loop: asyncio.AbstractEventLoop | None = None
        self._pending_stop: StopRequested | None = None
        self._observer = AppObserver(self, runner.events)
        self._thread: threading.Thread | None = None
        self._ticks = 0
        self.frames = 0  # live refreshes drawn so far (tests wait for one after what they check)
        self.notified: list[str] = []  # every toast's message, as notify() was asked
        self._bars_shown = False
        self.chart_view = "tps"  # the chart beside the gauges: "tps", "memory" or "bars" (m and b switch)
        self.charts_instead = False  # a narrow screen shows the chart view in place of the gauges
        self._laid_out_size: object = None  # the size the layout was made for
        self._idle: dict[str, float] = {}  # each power source's idle watts in the run's baseline
        self._energy: tuple[str, ...] = ("",)
        self._rows_shown = 0  # the runner's rows the runs panel was last handed
        self.runs_parts = runs_panel(runner.sweep is not None)
        self.runs_table, self.comparison_table = self.runs_parts[0], self.runs_parts[1]

    @property
    def session(self) -> Session:
        """The session of the run in progress (or the latest one)."""
        return self.runner.current

    # -- layout -----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        sweep = self.runner.sweep is not None
        if self.banner:
            yield Static(self.banner, id="banner")
        yield TextLine(states.header_texts(self.session)[0], id="header")
        yield PhasePanel()
        yield Static("Δ: change since the baseline taken before the run", id="legend")
        with Horizontal(id="live"):
            with Vertical(id="gauges"):
                yield MemoryPanel()
                yield GpuPanel(id="gpu")
                yield PowerPanel(id="power")
                yield LayersPanel()
            yield TokenRateChart(id="chart", classes="chart")
            yield MemoryTimelineChart(id="memory", classes="chart")
            yield TpsBarChart(id="bars", classes="chart")
            if sweep:
                yield SweepChart(id="sweep-chart", classes="chart")
        yield AnswerPanel(id="text")
        yield LogPanel(id="log-pane")
        yield from self.runs_parts
        yield Footer()

    def on_mount(self) -> None:
        # Panels are looked up once: the refresh timer and late messages from the session thread
        # (which may arrive while the app is closing) use these references.
        self.header = self.query_one("#header", TextLine)
        self.phase_panel = self.query_one(PhasePanel)
        self.memory_panel = self.query_one(MemoryPanel)
        self.gpu_panel = self.query_one(GpuPanel)
        self.power_panel = self.query_one(PowerPanel)
        self.layers_panel = self.query_one(LayersPanel)
        self.answer = self.query_one(AnswerPanel)
        self.log_pane = self.query_one(LogPanel)
        self.gauges_box = self.query_one("#gauges", Vertical)
        self.chart = self.query_one(TokenRateChart)
        self.memory_chart = self.query_one(MemoryTimelineChart)
        # A sweep's chart (tps and memory by layers) takes the place of the bar chart: `b` shows it.
        self.tps_bars = self.query_one(TpsBarChart)
        self.bars: PlotextPlot = self.tps_bars
        if self.runner.sweep is not None:
            self.sweep_chart = self.bars = self.query_one(SweepChart)
            self._show_runs()
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

    def _show_answer(self) -> None:
        answer = self._observer.drain()
        if answer.new_run:
            self.chart.show_series([])
            self.memory_chart.show_timeline(None)
        self.answer.show(answer)

    def on_phase_changed(self, message: PhaseChanged) -> None:
        if message.phase is Phase.FAILED and message.detail:
            self.notify(message.detail, title="run incomplete", severity="error", timeout=10)
        self.header.show(*states.header_texts(self.session))
        self._refresh_live()

    def on_plan_done(self, message: PlanDone) -> None:
        self._show_runs(plan_done=True)  # a sweep knows only now that no point is left

    def on_session_note(self, message: SessionNote) -> None:
        self.notify(message.text, severity="warning", timeout=8)

    def on_run_finished(self, message: RunFinished) -> None:
        self._show_answer()
        if message.row.log_eval_note:
            self.notify(message.row.log_eval_note, severity="warning", timeout=10)
        if message.row.slow_note:
            self.notify(message.row.slow_note, title="slow for this machine", severity="warning", timeout=15)
        self._show_runs(finished=message.row)
        self._refresh_live()

    def _show_runs(self, plan_done: bool = False, finished: SummaryRow | None = None) -> None:
        """The runs panel, and the bars (or a sweep's chart) once the plan is done."""
        self._rows_shown = len(self.runner.rows)
        runs = states.runs_state(self.runner, finished)
        for part in self.runs_parts:
            part.show(runs)
        if runs.sweep is not None:
            self.sweep_chart.show_result(runs.sweep)
            if plan_done and not self._bars_shown:
                self._bars_shown = True  # the sweep is done: show its chart once (b toggles)
                self._show_bars(True)
            return
        self.tps_bars.show_bars(chart_bars(runs.rows))
        if len(runs.comparisons) > 1 and not self.runner.queue and not self._bars_shown:
            self._bars_shown = True  # the plan is done: show the article's graph once (b toggles)
            self._show_bars(True)

    # -- live refresh -------------------------------------------------------------------------
    def _refresh_frame(self) -> None:
        self._refresh_live()
        self.frames += 1  # what the state held before this frame is on the screen now

    def _refresh_live(self) -> None:
        """Each panel's state, made once and handed out."""
        self._ticks += 1
        if self.size != self._laid_out_size:  # the terminal was resized: the layout for its new size
            self._show_charts()
        session = self.session
        record = session.last
        now = session.now()
        slow = self._ticks % SLOW_EVERY == 0 or (record is not None and record.ended_at is not None)
        next_mode = None if self.banner else ("CPU only" if self.settings.num_gpu == 0 else self.settings.mode)
        self.phase_panel.show(states.phase_state(self.runner, now, next_mode))
        self._show_answer()
        collectors = session.collectors
        self.memory_panel.show(states.memory_state(collectors, record))
        load = session.log_load(record)
        self.gpu_panel.show(states.gpu_state(collectors, record, session.current is not None, load))
        if slow:  # the baseline's idle power changes once a run, the energy slowly: every 4 s is plenty
            self._idle = states.run_idle_power(session, record)
            self._energy = states.energy_texts(session, record, now)
        self.power_panel.show(states.power_state(collectors, now, self._idle, self._energy))
        self.layers_panel.show(states.layers_state(session))
        if self.log_pane.display and self._ticks % SLOW_EVERY == 0:
            self.log_pane.show(states.log_pane_lines(session))
        if record is not None and slow:
            self._show_run_charts(record, now)
        if len(self.runner.rows) != self._rows_shown:  # the runner has kept a row since (a run's end comes first)
            self._show_runs()

    def _show_run_charts(self, record: RunRecord, now: float) -> None:
        """The tokens/s chart and the memory timeline, where they are shown."""
        if self.chart.display and record.clock.first_at is not None:
            self.chart.show_series(states.chart_points(record, now, CHART_POINTS))
        if self.memory_chart.display:
            self.memory_chart.show_timeline(states.run_timeline(self.session.collectors, record, now))

    # -- keys -------------------------------------------------------------------------------
    def action_toggle_log(self) -> None:
        self.log_pane.display = not self.log_pane.display
        if self.log_pane.display:
            self.log_pane.show(states.log_pane_lines(self.session))

    def _show_charts(self) -> None:
        """The gauges and the chart view beside them, for the terminal's size (screen_layout)."""
        width, height = self._laid_out_size = self.size
        layout = screen_layout(width, height, self.chart_view, self.charts_instead)
        self.screen.set_class(layout.narrow, "-narrow")
        self.screen.set_class(layout.short, "-short")
        self.layers_panel.set_max_rows(layout.reason_rows)
        self.gauges_box.display = layout.gauges
        self.bars.display, self.chart.display, self.memory_chart.display = layout.bars, layout.tps, layout.memory
        if self.session.last is not None:
            self._show_run_charts(self.session.last, self.session.now())

    def _show_bars(self, show: bool) -> None:
        self.chart_view = "bars" if show else "tps"
        self.charts_instead = show
        self._show_charts()

    def action_toggle_bars(self) -> None:
        self._show_bars(self.chart_view != "bars" or not self.charts_instead)

    def action_toggle_memory(self) -> None:
        """tps <-> memory beside the gauges; on a narrow screen, in their place: memory, tps, gauges."""
        self.chart_view, self.charts_instead = after_memory_key(self.size.width, self.chart_view, self.charts_instead)
        self._show_charts()

    def action_help(self) -> None:
        """Every key, every figure and where it is read from, and the full reason of what is n/a."""
        shown = [b for b in self.BINDINGS if isinstance(b, Binding) and self.check_action(b.action, ()) is not False]
        keys = key_lines([(b.key_display or b.key, b.action, b.description) for b in shown if b.show])
        self.push_screen(HelpScreen(keys, unavailable_gauges(self)))

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

    def action_export(self) -> None:
        if not self.runner.rows:
            self.notify("nothing to export yet: no run has finished", severity="warning")
            return
        path = self.export_path or export_name(self.session.model, dt.datetime.now())
        written = write_plan_files(
            self.runner,
            export=path,
            chart=self.chart_path,
            report=self.report_path,
            lang=self.lang,
            columns=self.columns,
        )
        for message, failed in outcome_messages(written, len(self.runner.rows)):
            self.notify(message, severity="error" if failed else "information")

    def _keep_run_in_progress(self, reason: str = "quit before the run finished") -> None:
        if self.runner.abandon(reason) is not None:
            for part in self.runs_parts:
                part.show(states.runs_state(self.runner))

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
