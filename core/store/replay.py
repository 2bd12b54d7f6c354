"""Replaying a recording (recording.py) through the same session, runner and screen as a live run.

The replay rebuilds what the live session had: the collectors' buffers, the server-log parser, the
token clock, /api/ps readings, the final chunk; the rows are then summarised by the same code as a
live run's, so a replayed row equals the recorded one field for field. Time is the recording's own
clock, played at `speed` times real time, or at once (speed None). A recording cut short (a crash,
SIGKILL) or damaged replays up to the damage; the run it was in is kept as far as it got.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from llmtop.collectors.cpu_load import CpuReading
from llmtop.collectors.log_sources import LogSource
from llmtop.collectors.log_watch import LogWatcher
from llmtop.collectors.sampler import Sampler
from llmtop.collectors.system_collectors import SystemCollectors
from llmtop.measure import events
from llmtop.measure.events import Event, EventStream, Phase
from llmtop.measure.plan import PlannedRun, PlanRunner, SweepPlan
from llmtop.measure.session import Session
from llmtop.measure.settings import RunSettings
from llmtop.measure.summary import RunRecord
from llmtop.measure.summary_row import SummaryRow
from llmtop.measure.sweep_plan import SweepSpec
from llmtop.store.recording import (
    FORMAT_VERSION,
    SAMPLE_READERS,
    RecordingError,
    gpu_sample,
    memory_sample,
    process_sample,
    ps_reading,
    recorded_facts,
    run_settings,
    summary_row,
)


class RecordedEvents(Sequence[dict[str, Any]]):
    """A recording's events, kept as their JSON lines and parsed again when read: a two-hour
    recording takes about its size on disk in memory, not the several times more its parsed
    dicts would (bench/long_run.py)."""

    def __init__(self, lines: list[str], kinds: list[str]) -> None:
        self._lines = lines
        self._kinds = kinds  # each line's event name, to find events without parsing them all
        self._head = json.loads(lines[0]) if lines else None

    def __len__(self) -> int:
        return len(self._lines)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [json.loads(line) for line in self._lines[index]]
        if index in (0, -len(self._lines)) and self._head is not None:
            return self._head
        return json.loads(self._lines[index])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (json.loads(line) for line in self._lines)

    def of_kind(self, kind: str) -> Iterator[dict[str, Any]]:
        """The events named `kind`, in order."""
        return (json.loads(line) for line, name in zip(self._lines, self._kinds, strict=True) if name == kind)


def _of_kind(events: Sequence[dict[str, Any]], kind: str) -> Iterator[dict[str, Any]]:
    if isinstance(events, RecordedEvents):
        return events.of_kind(kind)
    return (e for e in events if e["event"] == kind)


@dataclass
class Recording:
    """A recording's events, up to the first damaged line (`damage` says where and what)."""

    events: Sequence[dict[str, Any]]
    damage: str | None = None
    source: str = "recording"

    @property
    def header(self) -> dict[str, Any]:
        return self.events[0]

    @property
    def summaries(self) -> list[SummaryRow]:
        """The rows the live session computed, as recorded."""
        return [summary_row(e["row"]) for e in _of_kind(self.events, "summary")]

    @property
    def closed(self) -> bool:
        return bool(self.events) and self.events[-1]["event"] == "closed"

    def first(self, event: str) -> dict[str, Any] | None:
        return next(_of_kind(self.events, event), None)


def parse_recording(lines: Iterable[str], source: str = "recording") -> Recording:
    """Read the events of a recording; stop at the first line that is not a whole event.

    RecordingError when there is nothing to replay: not a recording, or one made by a newer llmtop.
    """
    kept: list[str] = []
    kinds: list[str] = []
    first: dict[str, Any] | None = None
    damage = None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            cut = "" if line.endswith("\n") else " (the line is cut short: the recording was not closed)"
            damage = f"line {number} of {source} is not JSON{cut}"
            break
        if not isinstance(event, dict) or not isinstance(event.get("event"), str) or not _is_number(event.get("t")):
            damage = f"line {number} of {source} is not an llmtop event"
            break
        first = first or event
        kept.append(line)
        kinds.append(sys.intern(event["event"]))
    if first is None or first["event"] != "recording":
        raise RecordingError(
            damage or f"{source} is not an llmtop recording (its first line is not the `recording` event)"
        )
    version = first.get("v")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise RecordingError(
            f"{source} is in recording format {version}; this llmtop reads format {FORMAT_VERSION} "
            "(a newer llmtop made it)"
        )
    if "model" not in kinds and not first.get("watch"):  # a watch session's recording has no model of its own
        raise RecordingError(
            f"{source} ends before any model was connected: nothing to replay" + (f" ({damage})" if damage else "")
        )
    return Recording(RecordedEvents(kept, kinds), damage, source)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_recording(path: str | Path) -> Recording:
    """parse_recording() on a file; RecordingError when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as handle:
            return parse_recording(handle, str(path))
    except OSError as exc:
        raise RecordingError(f"cannot read {path}: {exc.strerror or exc}") from None


class Player:
    """Walks through the events in order on the recording's clock, `speed` times real time (None:
    at once). `now()` is that clock; it is what the replayed session and samplers read."""

    def __init__(
        self,
        recording: Recording,
        speed: float | None = 1.0,
        clock: Callable[[], float] = time.monotonic,
        pause_at: float | None = None,
    ) -> None:
        self.recording = recording
        self.speed = speed
        self._wall = clock
        self._events: Iterator[dict[str, Any]] = iter(recording.events)
        self._peeked: dict[str, Any] | None = None
        self.t0 = float(recording.header["t"])
        self.at = self.t0  # time of the latest event played
        self._wall0: float | None = None
        self.stopped = threading.Event()
        self.pause_at = pause_at  # the replay halts here (for pictures taken at a given moment)
        self.resumed = threading.Event()
        self.by_user = False

    def now(self) -> float:
        if self.speed is None or self._wall0 is None:
            return self.at
        return self.t0 + (self._wall() - self._wall0) * self.speed

    def peek(self) -> dict[str, Any] | None:
        if self._peeked is None:
            self._peeked = next(self._events, None)
        return self._peeked

    def next(self) -> dict[str, Any] | None:
        """The next event, once its time has come; None at the end or when stopped."""
        event = self.peek()
        if event is None or self.stopped.is_set():
            return None
        t = float(event["t"])
        if self.pause_at is not None and t > self.pause_at:
            self.at = max(self.at, self.pause_at)
            self.resumed.wait()
        if self._wall0 is None:
            self._wall0 = self._wall()
        if self.speed is not None:
            while (left := (t - self.now()) / self.speed) > 0:
                if self.stopped.wait(min(left, 0.1)):
                    return None
        self._peeked = None
        self.at = max(self.at, t)
        return event

    def stop(self) -> None:
        """The user stopped the replay."""
        self.by_user = True
        self.halt()

    def halt(self) -> None:
        """Play no further event."""
        self.stopped.set()
        self.resumed.set()


NOT_RECORDED = "power is not in this recording (made before llmtop read power)"


def _never(now: float) -> Any:
    """The reader of a replayed sampler: its samples come from the recording."""
    return None


def replayed_collectors(head: Mapping[str, Any], interval: float = 0.25) -> SystemCollectors:
    """The collectors of a replay, as the recording's header says they were: their samples come
    from the recording, and what was not read keeps its recorded reason."""
    collectors = SystemCollectors(float(head.get("interval") or interval), memory_reader=_never, process_reader=_never)
    gpu = head.get("gpu") or {}
    collectors.use_gpus(_never if gpu.get("available") else None, gpu.get("reason") or "GPUs not probed")
    power = head.get("power") or {"available": False, "unavailable": {k: NOT_RECORDED for k in ("cpu", "gpu")}}
    collectors.use_power(_never if power.get("available") else None, power.get("unavailable") or {})
    return collectors


def recorded_log(head: Mapping[str, Any], clock: Callable[[], float]) -> LogWatcher | None:
    """The server log of a replay (its lines come from the recording), where one was read."""
    description = (head.get("log") or {}).get("description")
    return LogWatcher(_RecordedSource(description), clock=clock) if description else None


class _RecordedSource(LogSource):
    """The log source of a replay: its lines come from the recording."""

    def __init__(self, description: str) -> None:
        self.description = description

    def lines(self) -> Iterator[str]:
        return iter(())


class _RecordedServer:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def close(self) -> None:
        pass


class ReplaySession(Session):
    """A Session whose runs are played from the recording instead of asked of a server."""

    def __init__(self, world: Replay, model: str, facts: Mapping[str, Any], version: str | None, host: str) -> None:
        super().__init__(
            _RecordedServer(host),  # type: ignore[arg-type]
            model,
            world.collectors,
            events=world.events,
            clock=world.player.now,
            log_reason=world.log_reason,
            connected=(version, recorded_facts(facts)),
        )
        self.world = world
        self.log = world.log  # not subscribed: the recorded phases already say when the runner started

    def run(self, settings: Any) -> SummaryRow:
        return self.world.play_run(self)


class ReplayRunner(PlanRunner):
    """The plan as it was recorded: one planned run per recorded run; nothing new can run."""

    def __init__(self, world: Replay) -> None:
        super().__init__(world.sessions, world.planned, machine=world.machine, clock=world.player.now)
        self.world = world
        swept = world.header.get("sweep")
        if isinstance(swept, dict) and world.sessions:  # a sweep's replay concludes as the sweep did
            model, session = next(iter(world.sessions.items()))
            layers = session.facts.layers_total if session.facts else None
            context = swept.get("num_ctx") if isinstance(swept.get("num_ctx"), int) else None
            self.sweep = SweepPlan(model, SweepSpec.from_dict(swept), layers, 1, RunSettings(num_ctx=context))
            self._sweep_kept = True  # it is in the history already, if it was kept

    def run_next(self) -> SummaryRow | None:
        if self.world.player.stopped.is_set():  # damaged, or stopped by the user: nothing more to play
            self.stopped = True
            return None
        return super().run_next()

    def run_all(self) -> list[SummaryRow]:
        rows = super().run_all()
        if not self.stopped:
            self.world.play_rest()
        return rows

    def add(self, item: PlannedRun) -> None:
        raise RecordingError("a replay cannot run anything new")

    def abandon(self, reason: str) -> SummaryRow | None:
        self.world.player.stop()
        return super().abandon(reason)


@dataclass
class _Pending:
    session: ReplaySession
    record: RunRecord | None = None
    row: SummaryRow | None = None
    done: bool = False


class Replay:
    """Everything a replay needs, built from a recording: collectors, log, sessions, the plan."""

    def __init__(self, recording: Recording, speed: float | None = 1.0, pause_at: float | None = None) -> None:
        self.recording = recording
        self.player = Player(recording, speed, pause_at=pause_at)
        head = recording.header
        self.header = head
        self.collectors = replayed_collectors(head)
        self._samplers = self.collectors.by_source()  # fixed by the header: looked up per sample event
        self.log = recorded_log(head, self.player.now)
        self.log_reason = (head.get("log") or {}).get("reason")
        self.events = EventStream()  # the sessions' and the runner's, as live
        self.sessions: dict[str, ReplaySession] = {}
        for event in _of_kind(recording.events, "model"):
            if event["model"] not in self.sessions:
                self.sessions[event["model"]] = ReplaySession(
                    self, event["model"], event["facts"], event.get("ollama_version"), event.get("host") or "recorded"
                )
        self.planned = [
            PlannedRun(e["model"], run_settings(e.get("settings")))
            for e in _of_kind(recording.events, "run")
            if e["model"] in self.sessions
        ]
        machine = recording.first("machine")
        self._machine = dict(machine["machine"]) if machine else {}
        self._told = False  # the note on where the replay stopped has been given

    def machine(self) -> dict[str, Any]:
        return self._machine

    @property
    def where(self) -> str:
        return f"{self.player.at - self.player.t0:.1f} s into the recording"

    # -- playing ------------------------------------------------------------------------------
    def _sampler(self, source: str) -> Sampler[Any] | None:
        """The replayed sampler of a recorded `source` (ram, ollama-rss, gpu, power)."""
        return self._samplers.get(source)

    def _apply_shared(self, event: dict[str, Any]) -> bool:
        """Samples, errors and log lines: the collectors' part (SHARED_FEEDS). True when the event was one."""
        kind = event["event"]
        if kind not in SHARED_FEEDS:
            return False
        feed = SHARED_FEEDS[kind]
        if feed is not None:
            feed(self, event)
        return True

    def _sample(self, event: dict[str, Any]) -> None:
        reader = SAMPLE_READERS.get(event.get("source", ""))
        sampler = self._sampler(event.get("source", ""))
        if reader is not None and sampler is not None and event.get("sample") is not None:
            sampler.push(reader(event["sample"]))

    def _error(self, event: dict[str, Any]) -> None:
        sampler = self._sampler(event.get("source", ""))
        if sampler is not None:
            sampler.last_error = event.get("error")

    def _log(self, event: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.feed(event.get("line", ""), float(event["t"]))

    def play_run(self, session: ReplaySession) -> SummaryRow:
        """Play events until the run of `session` that comes next has ended; its row."""
        pending = _Pending(session)
        while not pending.done:
            event = self.player.peek()
            if event is None or self.player.stopped.is_set() or (event["event"] == "run" and pending.record):
                break  # the recording ends, or the next run begins
            event = self.player.next()
            if event is None:
                break
            try:
                if self._apply_shared(event):
                    continue
                owner = self.sessions.get(event.get("model", ""))
                if owner is session:
                    self._apply_run_event(pending, event)
                elif owner is not None and event["event"] == "note":
                    owner.take(events.Noted(float(event["t"]), owner.model, event.get("message", "")))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                self._broken(event, exc)
                break
        return self._close_run(pending)

    def _broken(self, event: dict[str, Any], exc: Exception) -> None:
        """An event that parses as JSON but not as llmtop wrote it: the replay stops there."""
        self.recording.damage = (
            f"the `{event.get('event')}` event at {float(event['t']) - self.player.t0:.1f} s of "
            f"{self.recording.source} cannot be read ({type(exc).__name__}: {exc})"
        )
        self.player.halt()

    def _apply_run_event(self, pending: _Pending, event: dict[str, Any]) -> None:
        """A recorded event of the run being played, handed to its session as the live run took it."""
        session = pending.session
        decode = RUN_EVENTS.get(event["event"])
        if decode is None:  # the live row (`summary`): the replay makes its own, by the same code
            return
        taken = decode(event, session.model)
        opens = isinstance(taken, events.RunOpened)
        if pending.record is None and not isinstance(taken, (events.RunOpened, events.PhaseChanged, events.Noted)):
            return  # a run's event before its `run` event: the recording's start was lost
        if isinstance(taken, events.RunEnded) and session.current is not pending.record:
            return  # the run was closed already
        session.take(taken)
        if opens:
            pending.record = session.current
        elif isinstance(taken, events.RunEnded):
            pending.row = session.rows[-1]
        elif isinstance(taken, events.PhaseChanged) and pending.row is not None:
            pending.done = taken.phase in (Phase.DONE, Phase.FAILED)

    def _close_run(self, pending: _Pending) -> SummaryRow:
        """The run's row; a run the recording cut short is kept as far as it got."""
        session, record = pending.session, pending.record
        if pending.row is None:
            if record is None:  # the recording ends before this run began
                session.take(events.RunOpened(self.player.at, session.model, RunSettings(), "auto", None, None, None))
                record = session.current
                assert record is not None
            record.error = record.error or f"replay stopped: {self.stopped_reason()}"
            record.ended_at = self.player.at
            pending.row = session.close_run(record, self.player.at)
            self._note(f"replay stopped {self.where}: {self.stopped_reason()}")
            self._told = True
        if not pending.done:
            phase = Phase.DONE if pending.row.complete else Phase.FAILED
            session.take(events.PhaseChanged(self.player.at, session.model, phase, pending.row.error or ""))
        session.take(events.RunFinished(self.player.at, session.model, pending.row))
        return pending.row

    def _note(self, message: str) -> None:
        self.events.publish(events.PlanNote(self.player.at, message))

    def stopped_reason(self) -> str:
        if self.player.by_user:
            return "stopped by the user"
        return self.recording.damage or "the recording ends here, without its `closed` event (was llmtop killed?)"

    def play_rest(self) -> None:
        """The events after the last run (samples until the session closed)."""
        while (event := self.player.next()) is not None:
            try:
                self._apply_shared(event)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                self._broken(event, exc)
        if self.recording.damage and not self.player.by_user and not self._told:
            self._note(f"replay stopped {self.where}: {self.recording.damage}")


def replay(
    recording: Recording, speed: float | None = 1.0, pause_at: float | None = None
) -> tuple[Replay, ReplayRunner]:
    """The replay world and its runner, ready for the app or the headless reporter."""
    world = Replay(recording, speed, pause_at)
    return world, ReplayRunner(world)


def _run_opened(event: Mapping[str, Any], model: str) -> events.RunOpened:
    return events.RunOpened(
        float(event["t"]),
        model,
        run_settings(event.get("settings")),
        event.get("mode") or "auto",
        event.get("host"),
        event.get("ollama_version"),
        event.get("started_at"),
    )


def _baseline_taken(event: Mapping[str, Any], model: str) -> events.BaselineTaken:
    return events.BaselineTaken(
        float(event["t"]),
        model,
        event.get("load_kind"),
        memory_sample(event.get("memory")),
        process_sample(event.get("process")),
        gpu_sample(event.get("gpu")),
    )


# The recorded kinds every run shares, and where each is fed (None: it feeds nothing while playing).
SHARED_FEEDS: dict[str, Callable[[Replay, dict[str, Any]], None] | None] = {
    "sample": Replay._sample,
    "error": Replay._error,
    "log": Replay._log,
    "recording": None,
    "model": None,
    "machine": None,
    "closed": None,
}

# A recorded run event (its kind) back into the typed event the live session published.
RUN_EVENTS: dict[str, Callable[[Mapping[str, Any], str], Event]] = {
    "run": _run_opened,
    "phase": lambda e, model: events.PhaseChanged(float(e["t"]), model, Phase(e["phase"]), e.get("detail") or ""),
    "note": lambda e, model: events.Noted(float(e["t"]), model, e.get("message", "")),
    "baseline": _baseline_taken,
    "request": lambda e, model: events.RequestSent(float(e["t"]), model),
    "token": lambda e, model: events.TokenArrived(float(e["t"]), model, e.get("text") or "", bool(e.get("thinking"))),
    "ps": lambda e, model: events.PsRead(float(e["t"]), model, ps_reading(e["sample"])),
    "cpu": lambda e, model: events.CpuRead(float(e["t"]), model, CpuReading.from_dict(e["reading"])),
    "final": lambda e, model: events.FinalChunk(float(e["t"]), model, e.get("chunk") or {}),
    "end": lambda e, model: events.RunEnded(
        float(e["t"]), model, bool(e.get("complete")), e.get("error"), e.get("load_kind")
    ),
}
