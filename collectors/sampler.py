"""A sampler thread: calls one reader at a fixed interval and keeps its samples in a ring buffer."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Timed(Protocol):
    """Every sample carries `t`, a `time.monotonic()` reading taken when it was read."""

    @property
    def t(self) -> float: ...


S = TypeVar("S", bound=Timed)

DEFAULT_CAPACITY = 28_800  # two hours at the default 0.25 s interval


class Sampler(Generic[S]):
    """Runs `read(now)` every `interval` seconds on its own thread until stopped.

    The schedule is fixed-rate (ticks at start + k*interval), so a slow read does not make the
    timeline drift; a tick that is missed entirely is skipped, not run twice. A reader that
    raises does not stop the thread: the exception text is kept in `last_error` and the tick
    produces no sample, so nothing made-up enters the buffer.
    """

    def __init__(
        self,
        name: str,
        read: Callable[[float], S | None],
        interval: float,
        capacity: int = DEFAULT_CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.name = name
        self.interval = interval
        self._read = read
        self._clock = clock
        self._samples: deque[S] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.listeners: list[Callable[[S], None]] = []  # called with each new sample (a recorder)
        self.error_listeners: list[Callable[[float, str], None]] = []  # called when a read fails anew

    def start(self) -> None:
        """Start sampling; the first sample is taken at once."""
        if self._thread is not None:
            raise RuntimeError(f"sampler {self.name} already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"llmtop-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop sampling and wait for the thread to end (samples are kept)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def sample_now(self) -> S | None:
        """Take one sample on the calling thread and add it to the buffer."""
        return self._take()

    def _take(self) -> S | None:
        now = self._clock()
        try:
            sample = self._read(now)
        except Exception as exc:  # a reader's failure is reported, never fatal to the thread
            error = f"{type(exc).__name__}: {exc}"
            if error != self.last_error:
                for listener in self.error_listeners:
                    listener(now, error)
            self.last_error = error
            return None
        self.last_error = None
        if sample is not None:
            self.push(sample)
        return sample

    def push(self, sample: S) -> None:
        """Add a sample taken elsewhere (a replay) and tell the listeners."""
        with self._lock:
            self._samples.append(sample)
        for listener in self.listeners:
            listener(sample)

    def _loop(self) -> None:
        next_tick = self._clock()
        while not self._stop.is_set():
            self._take()
            next_tick += self.interval
            now = self._clock()
            if now > next_tick:  # fell behind: skip the missed ticks
                next_tick += ((now - next_tick) // self.interval + 1) * self.interval
            self._stop.wait(next_tick - now)

    def latest(self) -> S | None:
        """The newest sample, or None before the first."""
        with self._lock:
            return self._samples[-1] if self._samples else None

    def between(self, start: float, end: float = float("inf")) -> list[S]:
        """Samples with start <= t <= end, oldest first."""
        with self._lock:
            return [s for s in self._samples if start <= s.t <= end]

    def all(self) -> list[S]:
        """Every sample still in the buffer, oldest first."""
        with self._lock:
            return list(self._samples)
