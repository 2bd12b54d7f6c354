"""The llmtop screen: the app composes the panels (tui/panels/; the gauges and charts in
live_view.py) and, once a second, makes each panel's state (measure/screen_states.py) and hands it
out; a panel redraws only when its state changed (the charts, the log pane and the energy every
fourth refresh: plotext is the costliest draw). The plan runs on its own daemon thread
(runs_thread.py) and its events come in as messages (app_observer.py); the app keeps the keys, the
signals and the exports."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
from collections.abc import Sequence
from dataclasses import replace
from functools import partial

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.widgets import Footer, Static

from llmtop.measure import screen_states as states
from llmtop.measure.plan import PlannedRun, PlanRunner
from llmtop.measure.session import Phase, Session
from llmtop.measure.settings import RunSettings
from llmtop.measure.stopping import StopRequested, stop_for
from llmtop.measure.summary_row import SummaryRow
from llmtop.store.charts import chart_bars
from llmtop.store.session_files import export_name, outcome_messages, write_plan_files
from llmtop.tui.app_observer import AppObserver
from llmtop.tui.help_screen import HelpScreen, unavailable_gauges
from llmtop.tui.help_text import key_lines
from llmtop.tui.live_view import LiveView
from llmtop.tui.messages import PhaseChanged, PlanDone, RunFinished, SessionNote
from llmtop.tui.panels.answer_panel import AnswerPanel
from llmtop.tui.panels.log_panel import LogPanel
from llmtop.tui.panels.phase_panel import PhasePanel
from llmtop.tui.panels.runs_panel import runs_panel
from llmtop.tui.runs_thread import RunsThread
from llmtop.tui.widgets.summary_table import SummaryTable
from llmtop.tui.widgets.text_line import TextLine

REFRESH_S = 1.0  # screen refresh: once a second, whatever the sampling interval
SLOW_EVERY = 4  # the charts, the log pane and the energy: every fourth refresh (every 4 s)


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
        self.runs_thread = RunsThread(runner, self.post_message)
        self._ticks = 0
        self.frames = 0  # live refreshes drawn so far (tests wait for one after what they check)
        self.notified: list[str] = []  # every toast's message, as notify() was asked
        self._bars_shown = False
        self._rows_shown = 0  # the runner's rows the runs panel was last handed
        self.runs_parts = runs_panel(runner.sweep is not None)
        self.runs_table, self.comparison_table = self.runs_parts[0], self.runs_parts[1]
        self.live = LiveView(runner.sweep is not None)

    @property
    def session(self) -> Session:
        """The session of the run in progress (or the latest one)."""
        return self.runner.current

    # -- layout -----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        if self.banner:
            yield Static(self.banner, id="banner")
        yield TextLine(states.header_texts(self.session)[0], id="header")
        yield PhasePanel()
        yield Static("Δ: change since the baseline taken before the run", id="legend")
        yield self.live
        yield AnswerPanel(id="text")
        yield LogPanel(id="log-pane")
        yield from self.runs_parts
        yield Footer()

    def on_mount(self) -> None:
        # Panels are looked up once: the refresh timer and late messages from the session thread
        # (which may arrive while the app is closing) use these references.
        self.header = self.query_one("#header", TextLine)
        self.phase_panel = self.query_one(PhasePanel)
        self.answer = self.query_one(AnswerPanel)
        self.log_pane = self.query_one(LogPanel)
        if self.runner.sweep is not None:
            self._show_runs()
        self.live.lay_out(self.session)
        self.set_interval(REFRESH_S, partial(self._refresh_live, frame=True))
        self._signal_loop = asyncio.get_running_loop()
        if self._pending_stop is not None:
            self._stop(self._pending_stop)
            return
        self.runs_thread.start()
        self._refresh_live()

    # -- runs -------------------------------------------------------------------------------
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
            if self.live.sweep_chart is not None:
                self.live.sweep_chart.show_result(runs.sweep)
            if plan_done and not self._bars_shown:
                self._bars_shown = True  # the sweep is done: show its chart once (b toggles)
                self.live.show_bars(self.session, True)
            return
        self.live.tps_bars.show_bars(chart_bars(runs.rows))
        if len(runs.comparisons) > 1 and not self.runner.queue and not self._bars_shown:
            self._bars_shown = True  # the plan is done: show the article's graph once (b toggles)
            self.live.show_bars(self.session, True)

    # -- live refresh -------------------------------------------------------------------------
    def _refresh_live(self, frame: bool = False) -> None:
        """Each panel's state, made once and handed out; `frame`: the refresh timer's, counted in
        `frames` once drawn."""
        self._ticks += 1
        session = self.session
        record = session.last
        now = session.now()
        slow = self._ticks % SLOW_EVERY == 0 or (record is not None and record.ended_at is not None)
        next_mode = None if self.banner else ("CPU only" if self.settings.num_gpu == 0 else self.settings.mode)
        self.phase_panel.show(states.phase_state(self.runner, now, next_mode))
        answer = self._observer.drain()
        if answer.new_run:
            self.live.clear_run_charts()
        self.answer.show(answer)
        self.live.show(session, now, slow)
        if self.log_pane.display and self._ticks % SLOW_EVERY == 0:
            self.log_pane.show(states.log_pane_lines(session))
        if len(self.runner.rows) != self._rows_shown:  # the runner has kept a row since (a run's end comes first)
            self._show_runs()
        if frame:
            self.frames += 1  # what the state held before this frame is on the screen now

    # -- keys -------------------------------------------------------------------------------
    def action_toggle_log(self) -> None:
        self.log_pane.display = not self.log_pane.display
        if self.log_pane.display:
            self.log_pane.show(states.log_pane_lines(self.session))

    def action_toggle_bars(self) -> None:
        self.live.toggle_bars(self.session)

    def action_toggle_memory(self) -> None:
        self.live.toggle_memory(self.session)

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
        if self.runs_thread.running:
            self.notify(f"queued: {self.session.model} {self.settings.mode}")
        self.runs_thread.start()
        self._refresh_live()

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
