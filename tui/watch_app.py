"""`llmtop watch`'s screen: the loaded models, the memory and power gauges, every request as it
happens and the events (loads with their layers and why, unloads, evictions, spills)."""

from __future__ import annotations

import datetime as dt
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Log, Static

from llmtop import units
from llmtop.collectors.log_watch import LogWatcher
from llmtop.collectors.system_collectors import SystemCollectors
from llmtop.measure.screen_states import gpu_state, memory_state
from llmtop.measure.timeline import recent_timeline
from llmtop.tables import REQUEST_COLUMNS
from llmtop.tui.help_screen import HelpScreen, unavailable_gauges
from llmtop.tui.help_text import WATCH_FIGURES, WATCH_KEY_HELP
from llmtop.tui.panels.gpu_panel import GpuPanel
from llmtop.tui.panels.memory_panel import MemoryPanel
from llmtop.tui.widgets.memory_chart import MemoryTimelineChart
from llmtop.tui.widgets.text_line import TextLine
from llmtop.units import NA
from llmtop.watch.load_progress import load_progress
from llmtop.watch.state import LoadedModel, WatchEvent, WatchState, live_wall

REFRESH_S = 1.0
LOAD_LOOKBACK_S = 5.0  # a load's bytes so far count from the samples this long before its first log line
LOAD_STALE_S = 1800.0  # a load the log began this long ago and never ended is not said to be going on
TIMELINE_S = 600.0  # the memory chart's window
CHART_EVERY = 2  # the chart is redrawn every second refresh (plotext is the costliest draw)
SHOWN_REQUESTS = 200
WARNINGS = ("spill", "evicted", "cpu-layers", "server")


@dataclass(frozen=True)
class WatchedScreen:
    """One server as the watch screen shows it: its URL, its state, and the URL of its proxy."""

    url: str
    state: WatchState
    proxy_url: str | None = None


def loaded_cells(model: LoadedModel, now: dt.datetime) -> tuple[str, ...]:
    share = model.vram_share
    unloads = model.unloads_in_s(now)
    return (
        model.name,
        units.human_bytes(model.size_bytes),
        NA if share is None else f"{100 * share:.0f}% GPU",
        str(model.context) if model.context else NA,
        "never" if unloads is None else units.clock(max(unloads, 0.0)),
    )


class WatchApp(App[int]):
    """The watch screen; everything it shows is read from the state and the collectors."""

    CSS = """
    #banner { height: auto; background: $warning; color: $background; text-style: bold; padding: 0 1; }
    #header { height: 1; background: $primary; color: $text; text-style: bold; padding: 0 1; }
    #server { height: 1; padding: 0 1; color: $accent; }
    #live { height: auto; }
    #gauges { height: auto; width: 1fr; padding: 0 1; border: round $primary-darken-2; }
    #memory { display: block; height: 12; width: 1fr; }
    #loaded { height: auto; max-height: 8; border-top: solid $primary-darken-2; }
    #requests { height: 1fr; border-top: solid $primary-darken-2; }
    #events { height: 8; border: round $secondary; }
    """
    TITLE = "llmtop watch"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("f1", "help", "Help", show=False),
    ]
    ENABLE_COMMAND_PALETTE = False

    def __init__(
        self,
        servers: list[WatchedScreen],
        collectors: SystemCollectors,
        log: LogWatcher | None = None,
        metrics_url: str | None = None,
        duration: float = 0.0,
        banner: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[float], float] | None = None,
    ) -> None:
        """`servers`: each server watched, the first the one whose log and machine are read;
        `metrics_url`: where --metrics serves them."""
        super().__init__()
        self.servers = servers
        self.state = servers[0].state
        self.collectors = collectors
        self.log_watcher = log
        self.metrics_url = metrics_url
        self.duration = duration
        self.banner = banner
        self.clock = clock  # the session's clock (a replay's own)
        self.wall = wall or live_wall  # its time of day
        self._ticks = 0
        self.frames = 0  # refreshes drawn so far (tests wait for one after what they check)
        self.several = len(servers) > 1
        # Events from the pollers' threads to the screen: a queue, so that none is lost between them.
        self._pending: queue.SimpleQueue[tuple[str, WatchEvent]] = queue.SimpleQueue()
        for server in servers:  # what happened before the screen opened, then each new event
            for event in server.state.subscribe(self._queue_for(server.url)):
                self._pending.put((server.url, event))

    def _queue_for(self, url: str) -> Callable[[WatchEvent], None]:
        def put(event: WatchEvent) -> None:
            self._pending.put((url, event))

        return put

    def pending_events(self) -> list[tuple[str, WatchEvent]]:
        """The events that came since the last call, in order: each exactly once."""
        events = []
        while True:
            try:
                events.append(self._pending.get_nowait())
            except queue.Empty:
                return events

    def compose(self) -> ComposeResult:
        if self.banner:
            yield Static(self.banner, id="banner", markup=False)
        yield TextLine(f"llmtop watch  ·  {'  ·  '.join(server.url for server in self.servers)}", id="header")
        yield TextLine(id="server")
        with Horizontal(id="live"):
            with Vertical(id="gauges"):
                yield MemoryPanel()
                yield GpuPanel(id="gpu")
            yield MemoryTimelineChart(
                id="memory", title=f"memory GB, last {TIMELINE_S // 60:.0f} minutes", since="the window's start"
            )
        yield DataTable(id="loaded", show_cursor=False, zebra_stripes=True)
        yield DataTable(id="requests", show_cursor=False, zebra_stripes=True)
        yield Log(id="events", max_lines=500)
        yield Footer()

    def on_mount(self) -> None:
        self.loaded_table = self.query_one("#loaded", DataTable)
        self.loaded_table.border_title = "loaded models (/api/ps)"
        host = ("server",) if self.several else ()
        self.loaded_table.add_columns(*host, "model", "size", "in VRAM", "context", "unloads in")
        self.requests_table = self.query_one("#requests", DataTable)
        self.requests_table.border_title = "requests, newest first"
        self.requests_table.add_columns(*host, *(c.header for c in REQUEST_COLUMNS))
        self.events = self.query_one("#events", Log)
        self.events.border_title = "events"
        parts = []
        if self.log_watcher is not None:
            parts.append(f"log: {self.log_watcher.description}")
        else:
            parts.append("no server log: requests only through --proxy")
        for server in self.servers:
            if server.proxy_url is not None:
                parts.append(f"proxy {server.proxy_url}" + (f" -> {server.url}" if self.several else ""))
            elif server is not self.servers[0]:  # the log is the first server's
                parts.append(f"{server.url}: requests {NA} without --proxy")
        if self.metrics_url is not None:
            parts.append(f"metrics {self.metrics_url}")
        self.query_one("#server", TextLine).show("  ·  ".join(parts))
        self._started = time.monotonic()
        self.set_interval(REFRESH_S, self._refresh)
        self._refresh()

    def action_help(self) -> None:
        """Every key, what each part of the screen shows and where it is read from, what is n/a and why."""
        if isinstance(self.screen, HelpScreen):
            return
        shown = [b for b in self.BINDINGS if isinstance(b, Binding) and b.show]
        keys = [(b.key_display or b.key, WATCH_KEY_HELP.get(b.action, b.description)) for b in shown]
        self.push_screen(HelpScreen(keys, unavailable_gauges(self), WATCH_FIGURES))

    def _refresh(self) -> None:
        if self.duration and time.monotonic() - self._started >= self.duration:
            self.exit(0)
            return
        for url, event in self.pending_events():
            text = f"[{url}] {event.text}" if self.several else event.text
            stamp = time.strftime("%H:%M:%S", time.localtime(self.wall(event.t)))
            self.events.write_line(f"{stamp}  {text}")
            if event.kind in WARNINGS:
                self.notify(text, severity="warning", timeout=10)
        now = dt.datetime.fromtimestamp(self.wall(self.clock()), dt.timezone.utc)  # a replay's time of day
        self.loaded_table.clear()
        rows: list[tuple[float, tuple[str, ...], Any]] = []
        for server in self.servers:
            url = server.url
            requests, loaded, _ = server.state.snapshot(self.clock())  # prompts' time left counted down
            host: tuple[str, ...] = (url,) if self.several else ()
            for model in loaded.values():
                self.loaded_table.add_row(*host, *loaded_cells(model, now))
            rows.extend((request.started, host, request) for request in requests[-SHOWN_REQUESTS:])
        self.loaded_table.border_title = "  ·  ".join(["loaded models (/api/ps)", *self._loads_under_way()])
        rows.sort(key=lambda row: row[0], reverse=True)
        self.requests_table.clear()
        for _, host, request in rows[:SHOWN_REQUESTS]:
            self.requests_table.add_row(*host, *(c.text(request) for c in REQUEST_COLUMNS))
        self._refresh_gauges()
        self._ticks += 1
        if self._ticks % CHART_EVERY == 1:
            self._refresh_chart()
        self.frames += 1

    def _loads_under_way(self) -> list[str]:
        """Each load the first server's log shows going on: its bytes so far and time left."""
        collectors, now = self.collectors, self.clock()
        said = []
        for load, model in self.state.loads_under_way(since=now - LOAD_STALE_S):
            since = load.first_seen - LOAD_LOOKBACK_S
            gpu = collectors.gpu.between(since, now) if collectors.gpu is not None else []
            progress = load_progress(load, model, collectors.processes.between(since, now), gpu, now)
            if progress is not None:
                said.append(progress.text)
        return said

    def _refresh_chart(self) -> None:
        """Memory over the last TIMELINE_S, the loads marked."""
        collectors, now = self.collectors, self.clock()
        start = now - TIMELINE_S
        memory = collectors.memory.between(start, now)
        if memory:
            start = max(start, memory[0].t)
        marks = [(t, "load") for t in self.state.load_times()]
        self.query_one(MemoryTimelineChart).show_timeline(
            recent_timeline(
                memory,
                collectors.processes.between(start, now),
                collectors.gpu.between(start, now) if collectors.gpu is not None else [],
                start,
                now,
                marks,
            )
        )

    def _refresh_gauges(self) -> None:
        """The run screen's memory and GPU panels, without a baseline (no Δ) or a run (no spill
        warning: the events say a spill)."""
        self.query_one(MemoryPanel).show(memory_state(self.collectors, None))
        self.query_one(GpuPanel).show(gpu_state(self.collectors, None, running=False))
