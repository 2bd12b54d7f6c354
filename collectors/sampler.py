"""Samplers: each calls one reader at a fixed interval and keeps its samples in a ring buffer, on a
thread of its own or on a timer shared by several (SharedTimer)."""

from __future__ import annotations

import threading
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from itertools import islice
from typing import Any, Generic, Protocol, TypeVar

from llmtop.collectors.sample_sharing import share_unchanged
from llmtop.data_folder import Failed, attempt


class Timed(Protocol):
    """Every sample carries `t`, a `time.monotonic()` reading taken when it was read."""

    @property
    def t(self) -> float: ...


S = TypeVar("S", bound=Timed)

DEFAULT_CAPACITY = 28_800  # two hours at the default 0.25 s interval
SLOW_READ_S = 0.05  # a reader this slow twice running leaves a SharedTimer for a thread of its own


class _Looping:
    """A daemon thread named `thread_name` that runs `_loop` until stopped (`_stop` is set)."""

    thread_name = "llmtop-loop"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once; again only after stop())."""
        if self._thread is not None:
            raise RuntimeError(f"{self.thread_name} already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread and wait for it to end (samples are kept)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        raise NotImplementedError


class Sampler(_Looping, Generic[S]):
    """Runs `read(now)` every `interval` seconds until stopped: on a thread of its own (start) or on
    a SharedTimer's.

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
        super().__init__()
        self.thread_name = f"llmtop-{name}"
        self.name = name
        self.interval = interval
        self._read = read
        self._clock = clock
        self._samples: deque[S] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.last_error: str | None = None
        self.listeners: list[Callable[[S], None]] = []  # called with each new sample (a recorder)
        self.error_listeners: list[Callable[[float, str], None]] = []  # called when a read fails anew

    def sample_now(self) -> S | None:
        """Take one sample on the calling thread and add it to the buffer."""
        return self._take()

    def _take(self) -> S | None:
        now = self._clock()
        sample = attempt(partial(self._read, now))  # a reader's failure is reported, never fatal to the thread
        if isinstance(sample, Failed):
            error = sample.text
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
        """Add a sample taken elsewhere (a replay) and tell the listeners. The buffer stays in time
        order (a sample taken on another thread may come in after a later one), and what a sample
        repeats from the one before it is kept once (llmtop.collectors.sample_sharing)."""
        with self._lock:
            samples = self._samples
            if not samples or samples[-1].t <= sample.t:
                sample = share_unchanged(samples[-1] if samples else None, sample)
                samples.append(sample)
            else:
                if len(samples) == samples.maxlen:
                    samples.popleft()
                samples.insert(bisect_right(samples, sample.t, key=_time), sample)
        for listener in self.listeners:
            listener(sample)

    def _loop(self) -> None:
        next_tick = self._clock()
        while not self._stop.is_set():
            self._take()
            now = self._clock()
            next_tick = _next_tick(next_tick, self.interval, now)  # fell behind: missed ticks skipped
            self._stop.wait(next_tick - now)

    def latest(self) -> S | None:
        """The newest sample, or None before the first."""
        with self._lock:
            return self._samples[-1] if self._samples else None

    def between(self, start: float, end: float = float("inf")) -> list[S]:
        """Samples with start <= t <= end, oldest first."""
        with self._lock:
            samples = self._samples
            first = bisect_left(samples, start, key=_time)
            return list(islice(samples, first, bisect_right(samples, end, lo=first, key=_time)))

    def all(self) -> list[S]:
        """Every sample still in the buffer, oldest first."""
        with self._lock:
            return list(self._samples)


class SharedTimer(_Looping):
    """One thread that takes the samples of several samplers, each on its own fixed-rate schedule
    (the first at once, as Sampler.start): samplers with the same interval are read one after the
    other on one wake-up, not one wake-up each. A reader that takes longer than SLOW_READ_S twice
    running is moved to a thread of its own (Sampler.start), so that it cannot delay the others."""

    thread_name = "llmtop-samplers"

    def __init__(self, samplers: Sequence[Sampler[Any]], clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._samplers = list(samplers)
        self._clock = clock
        self.moved: list[Sampler[Any]] = []  # samplers whose readers were too slow to share

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the timer, and the samplers moved to threads of their own (samples are kept)."""
        super().stop(timeout)
        for sampler in self.moved:
            sampler.stop(timeout)

    def _loop(self) -> None:
        start = self._clock()
        due = {id(s): start for s in self._samplers}
        slow = {id(s): 0 for s in self._samplers}
        while not self._stop.is_set() and self._samplers:
            now = self._clock()
            for sampler in list(self._samplers):
                key = id(sampler)
                if due[key] > now:
                    continue
                began = self._clock()
                sampler.sample_now()
                slow[key] = slow[key] + 1 if self._clock() - began > SLOW_READ_S else 0
                if slow[key] >= 2:
                    self._samplers.remove(sampler)
                    self.moved.append(sampler)
                    sampler.start()
                    continue
                due[key] = _next_tick(due[key], sampler.interval, self._clock())
            if self._samplers:
                self._stop.wait(max(0.0, min(due[id(s)] for s in self._samplers) - self._clock()))


def _time(sample: Timed) -> float:
    return sample.t


def _next_tick(tick: float, interval: float, now: float) -> float:
    """The fixed-rate schedule's next tick after `tick`, missed ticks skipped, not run twice."""
    tick += interval
    if now > tick:
        tick += ((now - tick) // interval + 1) * interval
    return tick
