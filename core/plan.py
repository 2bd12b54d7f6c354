"""A plan of runs (models x modes x repeats) and the runner that works through it.

Repeats are interleaved (cpu, auto, cpu, auto, ...) so a slow drift of the machine (heat, a
background job) falls on every mode alike rather than on the last one.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmtop.history import History, HistoryError
from llmtop.session import Session
from llmtop.session_settings import RunSettings
from llmtop.stopping import StopRequested
from llmtop.summary import SummaryRow


@dataclass(frozen=True)
class PlannedRun:
    model: str
    settings: RunSettings
    repeat: int = 1


def build_plan(models: Sequence[str], modes: Sequence[str], repeat: int, base: RunSettings) -> list[PlannedRun]:
    """For each model: repeat 1 of every mode, then repeat 2, and so on."""
    return [
        PlannedRun(model, base.with_mode(mode), r) for model in models for r in range(1, repeat + 1) for mode in modes
    ]


class PlanRunner:
    """Works through the queue of planned runs, one session per model; thread-safe to read."""

    def __init__(
        self,
        sessions: Mapping[str, Session],
        plan: Sequence[PlannedRun],
        history: History | None = None,
        machine: Callable[[], Mapping[str, Any]] = dict,
        on_note: Callable[[str], object] = lambda message: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = dict(sessions)
        self.queue: deque[PlannedRun] = deque(plan)
        self.total = len(plan)
        self.rows: list[SummaryRow] = []
        self.history = history
        self.history_problem: str | None = None
        self._machine = machine
        self._machine_facts: Mapping[str, Any] | None = None
        self.on_note = on_note
        self._clock = clock
        self._durations: list[float] = []
        self._started: float | None = None
        self._lock = threading.Lock()
        self.stopped = False
        self.stop_request: StopRequested | None = None  # what stopped the plan, if a signal did
        self.current: Session = next(iter(self.sessions.values()))
        self.current_item: PlannedRun | None = plan[0] if plan else None

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
        left = mean * len(self.queue)
        if self._started is not None:
            left += max(mean - (self._clock() - self._started), 0.0)
        return left

    def _remember(self, row: SummaryRow) -> None:
        if self.history is None:
            return
        try:
            self.history.add(row, self.machine)
        except HistoryError as exc:
            if self.history_problem is None:  # say it once; the runs go on
                self.on_note(f"{exc}; the run is kept in this session and its exports")
            self.history_problem = str(exc)

    def run_next(self) -> SummaryRow | None:
        """Run the next planned run; None when the queue is empty or the runner was stopped."""
        with self._lock:
            if self.stopped or not self.queue:
                return None
            item = self.queue.popleft()
            self.current = self.sessions[item.model]
            self.current_item = item
            self._started = self._clock()
        row = self.current.run(item.settings)
        with self._lock:
            if self._started is not None:
                self._durations.append(self._clock() - self._started)
            self._started = None
            if self.stopped:  # the user quit: abandon() has kept this run already
                return None
            self.rows.append(row)
        self._remember(row)
        if self.current.stopped_by is not None:  # Ctrl+C or a signal: the rest of the plan is dropped
            self.stopped = True
            self.stop_request = self.current.stopped_by
        return row

    def run_all(self) -> list[SummaryRow]:
        """Run until the queue is empty or the runner is stopped; return every row."""
        while self.run_next() is not None:
            pass
        return self.rows

    def abandon(self, reason: str) -> SummaryRow | None:
        """Stop: the run in progress is kept as far as it got, and the rest of the queue dropped."""
        with self._lock:
            self.stopped = True
            self.queue.clear()
            row = self.current.abandon(reason)
            if row is not None:
                self.rows.append(row)
        if row is not None:
            self._remember(row)
        return row
