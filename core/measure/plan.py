"""A plan of runs (models x modes x repeats) and the runner that works through it.

Repeats are interleaved by default (cpu, auto, cpu, auto, ...) so a slow drift of the machine (heat, a
background job) falls on every mode alike rather than on the last one; `random` shuffles each
model's runs (seeded), and `latin` rotates the modes each round (cpu, auto; auto, cpu; ...) so that
every mode runs in every place of a round equally often. The same work in every run: a plan of
several runs asks each run after the first for as many tokens as the first generated (num_predict),
unless the user set the count, and a cool-down between runs lets the machine's power come back.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from llmtop.measure.events import CoolingDown, EventStream, PlanNote, RunKept, ServerRestarting
from llmtop.measure.mode import Mode
from llmtop.measure.server_settings import ServerSettings
from llmtop.measure.session import Session
from llmtop.measure.settings import ORDERS, RunSettings
from llmtop.measure.stopping import StopRequested
from llmtop.measure.summary_row import SummaryRow
from llmtop.measure.sweep import SweepPlanner, SweepResult, conclude
from llmtop.measure.sweep_plan import SweepSpec
from llmtop.measure.timeline import RunCurves


class RestartFailed(Exception):
    """The server llmtop started could not be restarted with a run's settings; the text says why."""


class KeepingFailed(Exception):
    """Where finished runs are kept (the history) could not take one; the text says why and where."""


class RunKeeper(Protocol):
    """Where each finished run and each sweep's result is kept (store.history.History); a failure
    raises KeepingFailed, which costs no run."""

    def add(self, row: SummaryRow, machine: Mapping[str, Any]) -> object: ...

    def add_sweep(self, result: SweepResult, machine: Mapping[str, Any]) -> object: ...


@dataclass(frozen=True)
class PlannedRun:
    model: str
    settings: RunSettings
    repeat: int = 1


def build_plan(
    models: Sequence[str],
    modes: Sequence[Mode],
    repeat: int,
    base: RunSettings,
    order: str = "interleaved",
    seed: int | None = None,
) -> list[PlannedRun]:
    """For each model: repeat 1 of every mode, then repeat 2, and so on (`interleaved`); `latin`: round
    r runs the modes rotated by r - 1; `random`: each model's runs shuffled by `seed`."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}: one of {', '.join(ORDERS)}")
    shuffle = random.Random(seed)
    plan: list[PlannedRun] = []
    for model in models:
        runs: list[PlannedRun] = []
        for r in range(1, repeat + 1):
            turn = (r - 1) % len(modes) if order == "latin" and modes else 0
            runs.extend(PlannedRun(model, base.with_mode(mode), r) for mode in [*modes[turn:], *modes[:turn]])
        if order == "random":
            shuffle.shuffle(runs)
        plan.extend(runs)
    return plan


class SweepPlan:
    """A sweep as a plan that grows: its first points, then more around the fastest (sweep.py)."""

    def __init__(self, model: str, spec: SweepSpec, layers_total: int | None, repeat: int, base: RunSettings) -> None:
        self.model = model
        self.spec = spec
        self.repeat = repeat
        self.base = base
        self.planner = SweepPlanner(spec, layers_total)

    def first(self) -> list[PlannedRun]:
        return build_plan([self.model], self.planner.first_modes(), self.repeat, self.base)

    def more(self, rows: Sequence[SummaryRow]) -> list[PlannedRun]:
        """The next points, from the runs so far; [] when the sweep is done."""
        return build_plan([self.model], self.planner.next_modes(rows), self.repeat, self.base)

    def expected_runs(self) -> int:
        return self.planner.expected_runs() * self.repeat

    def result(self, rows: Sequence[SummaryRow], finished: bool) -> SweepResult:
        num_ctx = self.base.num_ctx if self.spec.parameter == "num_gpu" else None
        return conclude(self.model, self.spec, rows, finished, num_ctx)


COOLDOWN_POLL_S = 0.25  # how often a cool-down looks at the machine's power


class PlanRunner:
    """Works through the queue of planned runs, one session per model; thread-safe to read."""

    def __init__(
        self,
        sessions: Mapping[str, Session],
        plan: Sequence[PlannedRun],
        history: RunKeeper | None = None,
        machine: Callable[[], Mapping[str, Any]] = dict,
        clock: Callable[[], float] = time.monotonic,
        sweep: SweepPlan | None = None,
        restart_server: Callable[[ServerSettings], object] | None = None,
        server_settings: ServerSettings | None = None,
        same_work: bool = False,
        cooldown_s: float = 0.0,
        cooled: Callable[[Sequence[SummaryRow]], bool] | None = None,
        plan_facts: Mapping[str, Any] | None = None,
    ) -> None:
        """`sweep`: the plan grows with the sweep's next points each time its queue runs dry.
        `restart_server`: restarts the `ollama serve` llmtop started with other settings (raises
        RestartFailed), called before a run whose settings differ from `server_settings`, those
        the server runs with now. `same_work`: every run after the first that asks no num_predict
        asks for as many tokens as the first generated. `cooldown_s`: between two runs, wait this
        long, or until `cooled(rows)` says the machine is back near its rest (cool_down.CoolDownCheck).
        `plan_facts`: how the plan was ordered and paced, for the JSON export. The runner publishes its
        notes, restarts, cool-downs and kept runs on the first session's event stream, `events`, and
        brings the other sessions' events there: a subscriber to `events` sees the whole plan."""
        self.sessions = dict(sessions)
        self.events: EventStream = next(iter(self.sessions.values())).events
        for stream in {id(s.events): s.events for s in self.sessions.values() if s.events is not self.events}.values():
            stream.subscribe(self.events.publish)
        self.queue: deque[PlannedRun] = deque(plan)
        self.total = len(plan)
        self.rows: list[SummaryRow] = []
        self.history = history
        self.history_problem: str | None = None
        self._machine = machine
        self._machine_facts: Mapping[str, Any] | None = None
        self._clock = clock
        self._durations: list[float] = []
        self._started: float | None = None
        self._lock = threading.Lock()
        self._kept = threading.Condition(self._lock)  # notified when a row ended and was kept everywhere
        self._keeping = 0  # rows in `rows` not yet in the history and told to the listeners
        self.stopped = False
        self.stop_request: StopRequested | None = None  # what stopped the plan, if a signal did
        self.current: Session = next(iter(self.sessions.values()))
        self.current_item: PlannedRun | None = plan[0] if plan else None
        self.sweep = sweep
        self.sweep_done = sweep is None or not sweep.planner.grows  # no more points will come
        self._sweep_kept = False
        self._abandon_kept = False  # abandon() kept the run in progress itself
        self._restart_server = restart_server
        self.server_settings = server_settings or ServerSettings()
        self.restarting: str | None = None  # what the server is being restarted with, while it is
        self.failure: str | None = None  # why the plan could not go on (a restart failed)
        self.same_work = same_work
        self.answer_tokens: int | None = None  # what the first run generated: the others' num_predict
        self.cooldown_s = cooldown_s
        self.cooled = cooled
        self.cooling_until: float | None = None  # while the machine cools down between runs (the clock's time)
        self._wake = threading.Event()  # set to end a cool-down at once (a stop)
        self.plan_facts: dict[str, Any] = dict(plan_facts or {})

    @property
    def total_text(self) -> str:
        """`8`, or `about 10` while a sweep may still add points."""
        return str(self.total) if self.sweep_done else f"about {self.expected_total}"

    @property
    def expected_total(self) -> int:
        """The runs the plan will make, as far as can be told: a sweep's guess until it is done."""
        if self.sweep is None or self.sweep_done:
            return self.total
        return max(self.total, self.sweep.expected_runs())

    def sweep_result(self) -> SweepResult | None:
        """What the sweep found so far (None: not a sweep); `finished` once no point is left."""
        if self.sweep is None:
            return None
        with self._lock:
            rows = list(self.rows)
            finished = self.sweep_done and not self.queue  # every point ran, whether the user quit after or not
        return self.sweep.result(rows, finished)

    def keep_sweep(self) -> SweepResult | None:
        """The sweep's result, added to the history once (at its end, or when it is stopped)."""
        result = self.sweep_result()
        if result is None or not result.points:
            return result
        with self._lock:
            if self._sweep_kept:
                return result
            self._sweep_kept = True
        if self.history is not None:
            try:
                self.history.add_sweep(result, self.machine)
            except KeepingFailed as exc:
                if self.history_problem is None:
                    self._note(f"{exc}; the sweep is kept in this session and its exports")
                self.history_problem = str(exc)
        return result

    def _note(self, message: str) -> None:
        self.events.publish(PlanNote(self._clock(), message))

    @property
    def machine(self) -> Mapping[str, Any]:
        if self._machine_facts is None:
            self._machine_facts = self._machine()
        return self._machine_facts

    @property
    def done(self) -> int:
        return len(self._durations)

    @property
    def running(self) -> bool:
        return self._started is not None

    def add(self, item: PlannedRun) -> None:
        """Queue one more run (the app's `r`)."""
        with self._lock:
            self.queue.append(item)
            self.total += 1
            self.stopped = False

    def time_left(self) -> float | None:
        """Seconds until the queue is done, from the mean duration of the runs so far."""
        if not self._durations:
            return None
        mean = statistics.fmean(self._durations)
        waiting = len(self.queue)
        if not self.sweep_done:  # a sweep's points to come are not queued yet
            waiting = max(waiting, self.expected_total - self.done - (1 if self._started is not None else 0))
        left = mean * waiting
        if self._started is not None:
            left += max(mean - (self._clock() - self._started), 0.0)
        return left

    def _remember(self, row: SummaryRow) -> None:
        if self.history is None:
            return
        try:
            self.history.add(row, self.machine)
        except KeepingFailed as exc:
            if self.history_problem is None:  # say it once; the runs go on
                self._note(f"{exc}; the run is kept in this session and its exports")
            self.history_problem = str(exc)

    def keep_curves(self) -> None:
        """Keep each run's memory timeline and tokens/s from now on, for a report (curves_of)."""
        for session in self.sessions.values():
            session.keep_curves = True

    def curves_of(self, row: SummaryRow) -> RunCurves | None:
        """The memory timeline and tokens/s of one of `rows` (None for a row no session made, or
        one that ended before keep_curves())."""
        for session in self.sessions.values():
            for made, curves in zip(session.rows, session.curves, strict=False):
                if made is row:
                    return curves
        return None

    def run_next(self) -> SummaryRow | None:
        """Run the next planned run; None when the queue is empty or the runner was stopped."""
        with self._lock:
            self._extend_sweep()
            if self.stopped or not self.queue:
                return None
            item = self.queue.popleft()
            self.current = self.sessions[item.model]
            self.current_item = item
        if self._durations:
            self._cool_down()
        if not self._serve_with(item.settings.server):
            return None
        with self._lock:
            if self.stopped:  # the user quit while the server restarted or the machine cooled: the run never began
                return None
            self._started = self._clock()
        settings = item.settings
        if self.same_work and settings.num_predict is None and self.answer_tokens:
            settings = replace(settings, num_predict=self.answer_tokens)
        row = self.current.run(settings)
        if self.same_work and self.answer_tokens is None and row.complete and row.eval_count:
            self.answer_tokens = row.eval_count
        with self._lock:
            if self._started is not None:
                self._durations.append(self._clock() - self._started)
            self._started = None
            if self.stopped and self._abandon_kept:  # the user quit: abandon() has kept this run already
                return None
            self.rows.append(row)  # (a quit just after the run ended keeps it here)
            self._keeping += 1
            self._extend_sweep()  # at once: a sweep whose last point just ended has concluded, quit or not
        try:
            self._remember(row)
            self.events.publish(RunKept(self._clock(), row))
        finally:
            with self._lock:
                self._keeping -= 1
                self._kept.notify_all()
        if self.current.stopped_by is not None:  # Ctrl+C or a signal: the rest of the plan is dropped
            self.stopped = True
            self.stop_request = self.current.stopped_by
        return row

    def _cool_down(self) -> None:
        """Wait `cooldown_s` between two runs, or less where `cooled(rows)` says the machine is back near
        its idle; a stop ends the wait at once."""
        if self.cooldown_s <= 0:
            return
        self.events.publish(CoolingDown(self._clock(), self.cooldown_s))
        self.cooling_until = self._clock() + self.cooldown_s
        try:
            while not self.stopped and (left := self.cooling_until - self._clock()) > 0:
                if self.cooled is not None and self.cooled(self.rows):
                    break
                self._wake.wait(min(left, COOLDOWN_POLL_S))
        finally:
            self.cooling_until = None

    def _serve_with(self, settings: ServerSettings) -> bool:
        """Restart the server with `settings` when they are not those it runs with (only a server
        llmtop started is ever restarted); False, with the plan stopped, when that failed."""
        if self._restart_server is None or settings == self.server_settings:
            return True
        self.restarting = ", ".join(settings.label_parts()) or "its own settings"
        self.events.publish(ServerRestarting(self._clock(), settings))
        try:
            self._restart_server(settings)
        except RestartFailed as exc:
            with self._lock:
                self.failure = str(exc)
                self.stopped = True
                self.queue.clear()
            self._note(f"{exc}; the runs so far are kept")
            return False
        finally:
            self.restarting = None
        self.server_settings = settings
        return True

    def _extend_sweep(self) -> None:
        """Queue a sweep's next points once the queue is empty; none left: the sweep is done (also
        when the user has just quit: the last point had ended)."""
        if self.queue or self.sweep_done or self.sweep is None:
            return
        more = self.sweep.more(self.rows)
        if not more:
            self.sweep_done = True
        elif not self.stopped:
            self.queue.extend(more)
            self.total += len(more)

    def run_all(self) -> list[SummaryRow]:
        """Run until the queue is empty or the runner is stopped; return every row. A sweep's result
        goes to the history at the end, whether it ran all its points or was stopped."""
        try:
            while self.run_next() is not None:
                pass
        finally:
            if self.sweep is not None and self.rows:
                self.keep_sweep()
        return self.rows

    def wait_kept(self, timeout: float) -> bool:
        """Block until every row in `rows` is in the history too (a run that ended just as the user
        quit is kept there before llmtop exits); False if `timeout` seconds pass first."""
        with self._lock:
            return self._kept.wait_for(lambda: self._keeping == 0, timeout)

    def abandon(self, reason: str) -> SummaryRow | None:
        """Stop: the run in progress is kept as far as it got, and the rest of the queue dropped."""
        self._wake.set()  # a cool-down ends at once
        with self._lock:
            self.stopped = True
            self.queue.clear()
            row = self.current.abandon(reason)
            self._abandon_kept = row is not None
            if row is not None:
                self.rows.append(row)
        if row is None:  # no run in progress (or one that has just ended: run_next keeps it, and the sweep)
            return None
        self._remember(row)
        if self.sweep is not None and self.rows:
            self.keep_sweep()
        return row
