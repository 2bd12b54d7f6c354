"""A thread that follows a log source and feeds the parser; the session asks it for its run's load."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from llmtop.collectors.log_sources import LogSource, LogUnavailable
from llmtop.collectors.ollama_log import (
    LoadRecord,
    OllamaLogParser,
    RequestTiming,
    ServedRequest,
    clean_line,
    served_request,
)
from llmtop.data_folder import Failed, attempt

PANE_LINES = 300
KEEP_RECORDS = 50  # older loads are dropped, so a long session keeps constant memory
KEEP_SERVED = 2000  # the generating requests the server finished most recently


class LogWatcher:
    """Follows `source` on a daemon thread. Thread-safe for readers."""

    def __init__(self, source: LogSource, clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.parser = OllamaLogParser()
        self._clock = clock
        self._lock = threading.Lock()
        self._pane: deque[str] = deque(maxlen=PANE_LINES)
        self._served: deque[ServedRequest] = deque(maxlen=KEEP_SERVED)
        self._listeners: list[Callable[[LoadRecord], None]] = []
        self.taps: list[Callable[[str, float], None]] = []  # called with every line read and its time (a recorder)
        self._thread: threading.Thread | None = None
        self.problem: str | None = None  # why the log stopped being read, if it did

    @property
    def description(self) -> str:
        return self.source.description

    @property
    def waiting(self) -> str | None:
        """What the source waits for before it gives lines (a log file that does not exist yet)."""
        return self.source.waiting

    def wait_until_following(self, timeout: float = 10.0) -> bool:
        """Block until the source reads (a file opened at its end, a command started); see LogSource."""
        return self.source.wait_until_following(timeout)

    def subscribe(self, listener: Callable[[LoadRecord], None]) -> None:
        """Call `listener(record)` (on the watcher's thread) each time a line adds to a load."""
        self._listeners.append(listener)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, name="llmtop-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.source.stop()
        if self._thread is not None:
            self._thread.join(2.0)

    def feed(self, line: str, now: float) -> None:
        """Parse one line that arrived at `now` (the follower thread, or a replay)."""
        with self._lock:
            for tap in self.taps:
                tap(line, now)
            record = self.parser.feed(line, now)
            if record is not None:
                self._pane.append(clean_line(line))
            elif (served := served_request(line, now)) is not None and served.generating:
                self._served.append(served)
            records = self.parser.records
            if len(records) > KEEP_RECORDS:
                del records[: len(records) - KEEP_RECORDS]
        if record is not None:
            for listener in self._listeners:
                listener(record)

    def _follow(self) -> None:
        try:
            followed = attempt(self._read_to_the_end)  # a reader's failure must not take the app down
            if isinstance(followed, Failed):
                failed = followed.exc
                text = f"reading {self.source.description} failed: {followed.text}"
                self.problem = str(failed) if isinstance(failed, LogUnavailable) else text
            elif self.problem is None:
                self.problem = f"{self.source.description} ended"
        finally:
            self.source.following.set()  # nobody waits for a source that ended

    def _read_to_the_end(self) -> None:
        for line in self.source.lines():
            self.feed(line, self._clock())

    def request_since(self, t: float) -> RequestTiming | None:
        """The first request (llama-server task) the log showed at or after monotonic time t."""
        with self._lock:
            found = [r for load in self.parser.records for r in load.requests if r.first_seen >= t]
        return min(found, key=lambda r: r.first_seen) if found else None

    def served_between(self, start: float, end: float) -> list[ServedRequest]:
        """The generating requests the server finished whose time overlaps [start, end] (its access lines)."""
        with self._lock:
            return [r for r in self._served if r.overlaps(start, end)]

    def tasks_between(self, start: float, end: float) -> list[RequestTiming]:
        """llama-server's requests (Ollama 0.30 on) whose first line came within [start, end]."""
        with self._lock:
            return [q for load in self.parser.records for q in load.requests if start <= q.first_seen <= end]

    def loads(self) -> list[LoadRecord]:
        """The loads kept, oldest first."""
        with self._lock:
            return list(self.parser.records)

    def latest_load(self) -> LoadRecord | None:
        """The newest load the log showed."""
        with self._lock:
            return self.parser.records[-1] if self.parser.records else None

    def load_since(self, t: float) -> LoadRecord | None:
        """The first load whose first line arrived at or after monotonic time t (our run's load)."""
        with self._lock:
            return next((r for r in self.parser.records if r.first_seen >= t), None)

    def pane_lines(self) -> list[str]:
        """The lines that mattered, oldest first (for the log pane)."""
        with self._lock:
            return list(self._pane)
