"""The live part of the run screen: the gauges (memory, GPUs, power, layers) and the chart beside them
(tokens/s, the memory timeline, the runs' bars or a sweep's chart), laid out for the terminal's size
(screen_layout.py) and switched by `m` and `b`. It draws the states measure/screen_states.py makes;
the app hands it the session each refresh."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual_plotext import PlotextPlot

from llmtop.measure import screen_states as states
from llmtop.measure.session import Session
from llmtop.measure.summary import RunRecord
from llmtop.tui.panels.gpu_panel import GpuPanel
from llmtop.tui.panels.layers_panel import LayersPanel
from llmtop.tui.panels.memory_panel import MemoryPanel
from llmtop.tui.panels.power_panel import PowerPanel
from llmtop.tui.screen_layout import after_memory_key, screen_layout
from llmtop.tui.widgets.memory_chart import MemoryTimelineChart
from llmtop.tui.widgets.sweep_chart import SweepChart
from llmtop.tui.widgets.token_rate import TokenRateChart, TpsBarChart

CHART_POINTS = 80


class LiveView(Horizontal):
    """The gauges and the chart views beside them."""

    def __init__(self, sweep: bool) -> None:
        super().__init__(id="live")
        self.chart_view = "tps"  # the chart beside the gauges: "tps", "memory" or "bars" (m and b switch)
        self.charts_instead = False  # a narrow screen shows the chart view in place of the gauges
        self.laid_out_size: object = None  # the size the layout was made for
        self._idle: dict[str, float] = {}  # each power source's idle watts in the run's baseline
        self._energy: tuple[str, ...] = ("",)
        # Made here, so that the app's first messages find them before they are mounted.
        self.memory_panel = MemoryPanel()
        self.gpu_panel = GpuPanel(id="gpu")
        self.power_panel = PowerPanel(id="power")
        self.layers_panel = LayersPanel()
        self.gauges_box = Vertical(self.memory_panel, self.gpu_panel, self.power_panel, self.layers_panel, id="gauges")
        self.chart = TokenRateChart(id="chart", classes="chart")
        self.memory_chart = MemoryTimelineChart(id="memory", classes="chart")
        self.tps_bars = TpsBarChart(id="bars", classes="chart")
        # A sweep's chart (tps and memory by layers) takes the place of the bar chart: `b` shows it.
        self.sweep_chart = SweepChart(id="sweep-chart", classes="chart") if sweep else None
        self.bars: PlotextPlot = self.sweep_chart or self.tps_bars

    def compose(self) -> ComposeResult:
        yield self.gauges_box
        yield from (self.chart, self.memory_chart, self.tps_bars)
        if self.sweep_chart is not None:
            yield self.sweep_chart

    def show(self, session: Session, now: float, slow: bool) -> None:
        """The gauges from `session` at `now`; the energy and the charts too where `slow` (every 4 s,
        and at a run's end): the baseline's idle power changes once a run, the energy slowly."""
        if self.app.size != self.laid_out_size:  # the terminal was resized: the layout for its new size
            self.lay_out(session)
        record, collectors = session.last, session.collectors
        self.memory_panel.show(states.memory_state(collectors, record))
        load = session.log_load(record)
        self.gpu_panel.show(states.gpu_state(collectors, record, session.current is not None, load))
        if slow:
            self._idle = states.run_idle_power(session, record)
            self._energy = states.energy_texts(session, record, now)
        self.power_panel.show(states.power_state(collectors, now, self._idle, self._energy))
        self.layers_panel.show(states.layers_state(session))
        if record is not None and slow:
            self.show_run_charts(session, record, now)

    def clear_run_charts(self) -> None:
        """A new run: its charts start empty."""
        self.chart.show_series([])
        self.memory_chart.show_timeline(None)

    def show_run_charts(self, session: Session, record: RunRecord, now: float) -> None:
        """The tokens/s chart and the memory timeline, where they are shown."""
        if self.chart.display and record.clock.first_at is not None:
            self.chart.show_series(states.chart_points(record, now, CHART_POINTS))
        if self.memory_chart.display:
            self.memory_chart.show_timeline(states.run_timeline(session.collectors, record, now))

    def lay_out(self, session: Session) -> None:
        """The gauges and the chart view beside them, for the terminal's size (screen_layout)."""
        width, height = self.laid_out_size = self.app.size
        layout = screen_layout(width, height, self.chart_view, self.charts_instead)
        self.screen.set_class(layout.narrow, "-narrow")
        self.screen.set_class(layout.short, "-short")
        self.layers_panel.set_max_rows(layout.reason_rows)
        self.gauges_box.display = layout.gauges
        self.bars.display, self.chart.display, self.memory_chart.display = layout.bars, layout.tps, layout.memory
        if session.last is not None:
            self.show_run_charts(session, session.last, session.now())

    def show_bars(self, session: Session, show: bool) -> None:
        """The runs' bars (a sweep's chart) in place of the live chart, or the live chart again."""
        self.chart_view = "bars" if show else "tps"
        self.charts_instead = show
        self.lay_out(session)

    def toggle_bars(self, session: Session) -> None:
        """`b`."""
        self.show_bars(session, self.chart_view != "bars" or not self.charts_instead)

    def toggle_memory(self, session: Session) -> None:
        """`m`: tps <-> memory beside the gauges; on a narrow screen, in their place: memory, tps, gauges."""
        self.chart_view, self.charts_instead = after_memory_key(
            self.app.size.width, self.chart_view, self.charts_instead
        )
        self.lay_out(session)
