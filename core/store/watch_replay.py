"""A recorded `llmtop watch` session, played again: the same inputs (each `/api/ps` listing, each
log line, each answer the proxy saw, each sample) fed on the recording's clock into fresh watch
states, so the screen, the headless lines and the export are what the live session gave."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

from llmtop.store.recording import SAMPLE_READERS
from llmtop.store.replay import Player, Recording, recorded_log, replayed_collectors
from llmtop.watch.state import WatchState


class WatchReplay:
    """Everything a watch replay needs, built from the recording."""

    def __init__(self, recording: Recording, speed: float | None = 1.0) -> None:
        head = recording.header
        self.recording = recording
        self.player = Player(recording, speed)
        self.hosts: list[str] = list(head["watch"].get("hosts") or [])
        self.states = {host: WatchState() for host in self.hosts}
        self.collectors = replayed_collectors(head, interval=0.5)
        self._samplers = self.collectors.by_source()  # fixed by the header: looked up per sample event
        self.log = recorded_log(head, self.player.now)
        first = self.states[self.hosts[0]] if self.hosts else WatchState()
        if self.log is not None:
            self.log.subscribe(lambda load: first.observe_load(self.player.now(), load))
        for host in head["watch"].get("proxied") or []:  # counted from the proxy, as they were live
            if host in self.states:
                self.states[host].proxied = True
        self._numbers: dict[tuple[str, int], int] = {}  # (host, recorded number) -> this replay's
        self._thread: threading.Thread | None = None

    def apply(self, event: dict[str, Any]) -> None:
        """One recorded event, fed where the live session fed it (its kind picks the feed: WATCH_FEEDS)."""
        feed = WATCH_FEEDS.get(event["event"])
        if feed is not None:
            feed(self, event, float(event["t"]))

    def _sample(self, event: dict[str, Any], t: float) -> None:
        reader = SAMPLE_READERS.get(event.get("source", ""))
        sampler = self._samplers.get(event.get("source", ""))
        if reader is not None and sampler is not None and event.get("sample") is not None:
            sampler.push(reader(event["sample"]))

    def _log(self, event: dict[str, Any], t: float) -> None:
        if self.log is not None:
            self.log.feed(event.get("line") or "", t)

    def _ps(self, event: dict[str, Any], t: float) -> None:
        if (state := self._state(event)) is not None:
            wall = event.get("wall")
            state.observe_ps(t, event.get("models") or [], dt.datetime.fromisoformat(wall) if wall else None)

    def _server_down(self, event: dict[str, Any], t: float) -> None:
        if (state := self._state(event)) is not None:
            state.server_down(t, event.get("problem") or "")

    def _proxy_start(self, event: dict[str, Any], t: float) -> None:
        if (state := self._state(event)) is not None:
            started = state.proxy_started(t, event.get("endpoint") or "", event.get("model"))
            self._numbers[(event["host"], int(event.get("number") or 0))] = started

    def _proxy_end(self, event: dict[str, Any], t: float) -> None:
        state = self._state(event)
        ended = self._numbers.get((event.get("host") or "", int(event.get("number") or 0)))
        if state is not None and ended is not None:
            state.proxy_finished(t, ended, event.get("final"), event.get("error"))

    def _state(self, event: dict[str, Any]) -> WatchState | None:
        """The watched server's state the event is about (None: a server this replay does not show)."""
        return self.states.get(event.get("host") or "")

    def play(self) -> None:
        """Every event, on the recording's clock (this thread waits between them)."""
        while (event := self.player.next()) is not None:
            self.apply(event)

    def start(self) -> WatchReplay:
        self._thread = threading.Thread(target=self.play, name="llmtop-watch-replay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.player.halt()
        if self._thread is not None:
            self._thread.join(2.0)


def recorded_wall(recording: Recording) -> Callable[[float], float]:
    """The time of day (epoch seconds) at a recorded monotonic time: the header's `wall` is its start."""
    head = recording.header
    try:
        start = dt.datetime.fromisoformat(str(head.get("wall"))).timestamp()
    except ValueError:
        start = 0.0
    t0 = float(head["t"])
    return lambda t: start + (t - t0)


# Each recorded kind of a watch, and where it is fed; the other kinds (the header, notes) feed nothing.
WATCH_FEEDS: dict[str, Callable[[WatchReplay, dict[str, Any], float], None]] = {
    "sample": WatchReplay._sample,
    "log": WatchReplay._log,
    "ps": WatchReplay._ps,
    "server-down": WatchReplay._server_down,
    "proxy-start": WatchReplay._proxy_start,
    "proxy-end": WatchReplay._proxy_end,
}
