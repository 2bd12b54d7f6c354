"""A recorded `llmtop watch` session, played again: the same inputs (each `/api/ps` listing, each
log line, each answer the proxy saw, each sample) fed on the recording's clock into fresh watch
states, so the screen, the headless lines and the export are what the live session gave."""

from __future__ import annotations

import datetime as dt
import sys
import threading
from pathlib import Path
from typing import Any

from llmtop.recording import SAMPLE_READERS
from llmtop.replay import Player, Recording, recorded_log, replayed_collectors
from llmtop.watch import WatchState

EXIT_OK = 0
EXIT_FAILED = 1


class WatchReplay:
    """Everything a watch replay needs, built from the recording."""

    def __init__(self, recording: Recording, speed: float | None = 1.0) -> None:
        head = recording.header
        self.recording = recording
        self.player = Player(recording, speed)
        self.hosts: list[str] = list(head["watch"].get("hosts") or [])
        self.states = {host: WatchState() for host in self.hosts}
        self.collectors = replayed_collectors(head, interval=0.5)
        self.log = recorded_log(head, self.player.now)
        first = self.states[self.hosts[0]] if self.hosts else WatchState()
        if self.log is not None:
            self.log.subscribe(lambda load: first.observe_load(self.player.now(), load))
        for host in head["watch"].get("proxied") or []:  # counted from the proxy, as they were live
            if host in self.states:
                self.states[host].proxied = True
        self._numbers: dict[tuple[str, int], int] = {}  # (host, recorded number) -> this replay's
        self._thread: threading.Thread | None = None

    def _sampler(self, source: str) -> Any:
        return {
            "ram": self.collectors.memory,
            "ollama-rss": self.collectors.processes,
            "gpu": self.collectors.gpu,
            "power": self.collectors.power,
        }.get(source)

    def apply(self, event: dict[str, Any]) -> None:
        """One recorded event, fed where the live session fed it."""
        kind, t = event["event"], float(event["t"])
        state = self.states.get(event.get("host") or "")
        if kind == "sample":
            reader, sampler = SAMPLE_READERS.get(event.get("source", "")), self._sampler(event.get("source", ""))
            if reader is not None and sampler is not None and event.get("sample") is not None:
                sampler.push(reader(event["sample"]))
        elif kind == "log" and self.log is not None:
            self.log.feed(event.get("line") or "", t)
        elif state is None:
            return
        elif kind == "ps":
            wall = event.get("wall")
            state.observe_ps(t, event.get("models") or [], dt.datetime.fromisoformat(wall) if wall else None)
        elif kind == "server-down":
            state.server_down(t, event.get("problem") or "")
        elif kind == "proxy-start":
            started = state.proxy_started(t, event.get("endpoint") or "", event.get("model"))
            self._numbers[(event["host"], int(event.get("number") or 0))] = started
        elif kind == "proxy-end":
            ended = self._numbers.get((event["host"], int(event.get("number") or 0)))
            if ended is not None:
                state.proxy_finished(t, ended, event.get("final"), event.get("error"))

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


def recorded_wall(recording: Recording):
    """The time of day (epoch seconds) at a recorded monotonic time: the header's `wall` is its start."""
    head = recording.header
    try:
        start = dt.datetime.fromisoformat(str(head.get("wall"))).timestamp()
    except ValueError:
        start = 0.0
    t0 = float(head["t"])
    return lambda t: start + (t - t0)


def replay_watch(recording: Recording, args: Any, banner: str) -> int:
    """`llmtop replay FILE` of a watch session: on screen, or its events as lines with --headless."""
    from llmtop.watch_command import headless_printer

    speed = getattr(args, "speed", None if args.headless else 1.0)
    world = WatchReplay(recording, speed)
    wall = recorded_wall(recording)
    several = len(world.hosts) > 1
    if args.headless:
        sys.stderr.write(f"llmtop: {banner}\n")
        for host, state in world.states.items():
            state.listeners.append(headless_printer(sys.stdout, host if several else None, wall))
        world.play()
    else:
        from llmtop.tui.watch_app import WatchApp

        world.start()
        servers = [(host, state, None) for host, state in world.states.items()]
        try:
            WatchApp(servers, world.collectors, world.log, banner=banner, clock=world.player.now, wall=wall).run()
        finally:
            world.stop()
    if args.export:
        from llmtop.exports import write_requests

        requests = [r for state in world.states.values() for r in state.snapshot()[0]]
        try:
            path = write_requests(requests, Path(args.export))
        except OSError as exc:
            sys.stderr.write(f"llmtop: cannot write {args.export}: {exc.strerror or exc}\n")
            return EXIT_FAILED
        sys.stderr.write(f"llmtop: wrote {path}\n")
    if recording.damage:
        sys.stderr.write(f"llmtop: note: {recording.damage}; replayed up to there\n")
        return EXIT_FAILED
    return EXIT_OK
