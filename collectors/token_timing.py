"""Token timing: the client's clock on streamed chunks, and the server's own figures.

Ollama streams one token per chunk. The client sees when each chunk arrives; the final chunk
carries the server's counts and durations (integers in nanoseconds), from which
`ollama run --verbose` prints its "eval rate" and "prompt eval rate".
"""

from __future__ import annotations

import bisect
import threading
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NS = 1_000_000_000
DEFAULT_WINDOW_S = 2.0


def _rate(count: Any, duration_ns: Any) -> float | None:
    if isinstance(count, int) and isinstance(duration_ns, int) and count > 0 and duration_ns > 0:
        return count / (duration_ns / NS)
    return None


@dataclass(frozen=True)
class ServerTiming:
    """The final chunk's figures; None for any the server left out."""

    total_duration_ns: int | None
    load_duration_ns: int | None
    prompt_eval_count: int | None
    prompt_eval_duration_ns: int | None
    eval_count: int | None
    eval_duration_ns: int | None
    done_reason: str | None

    @classmethod
    def from_final_chunk(cls, chunk: Mapping[str, Any]) -> ServerTiming:
        def integer(key: str) -> int | None:
            value = chunk.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        return cls(
            total_duration_ns=integer("total_duration"),
            load_duration_ns=integer("load_duration"),
            prompt_eval_count=integer("prompt_eval_count"),
            prompt_eval_duration_ns=integer("prompt_eval_duration"),
            eval_count=integer("eval_count"),
            eval_duration_ns=integer("eval_duration"),
            done_reason=chunk.get("done_reason") if isinstance(chunk.get("done_reason"), str) else None,
        )

    @property
    def eval_rate_tps(self) -> float | None:
        """eval_count / eval_duration: the "eval rate" of `ollama run --verbose`."""
        return _rate(self.eval_count, self.eval_duration_ns)

    @property
    def prompt_rate_tps(self) -> float | None:
        """prompt_eval_count / prompt_eval_duration: the "prompt eval rate"."""
        return _rate(self.prompt_eval_count, self.prompt_eval_duration_ns)

    @property
    def load_s(self) -> float | None:
        return None if self.load_duration_ns is None else self.load_duration_ns / NS


BURST_GAP_S = 0.0005  # tokens closer than this (2,000 a second) came in one delivery, not one by one
BURST_SAMPLE_GAPS = 8
"""Fewer gaps than this cannot tell a buffering proxy from chance."""
BURST_TOKENS_PER_DELIVERY = 8
"""Tokens to a delivery, on average, from which the stream came in bursts. A buffering proxy hands on
a buffer of 4 KiB or more at a time: 40 of Ollama's chunks. A busy machine's late wake-ups give 2 to 7
(real Ollama 0.34 under a CPU burner on 2 cores: deliveries of 4, 2 and 7 tokens among single ones)."""


class TokenClock:
    """Arrival times of streamed tokens, measured on the client's monotonic clock.

    `request_at` is when the request was sent. Thread-safe: the session thread records, the
    screen reads. Every time is kept, in an array of doubles (8 bytes a token: 1.7 MB for two
    hours at 30 tokens/s), and read in place by bisection, so reading the live rate or the
    chart's points costs the same after two hours as after two seconds.
    """

    def __init__(self, request_at: float, window_s: float = DEFAULT_WINDOW_S) -> None:
        self.request_at = request_at
        self.window_s = window_s
        self._times = array("d")
        self._lock = threading.Lock()
        self.count = 0
        self.first_at: float | None = None
        self.last_at: float | None = None

    def token(self, t: float) -> None:
        """Record one token chunk that arrived at monotonic time t."""
        with self._lock:
            if self.first_at is None:
                self.first_at = t
            self.last_at = t
            self.count += 1
            self._times.append(t)

    @property
    def ttft_s(self) -> float | None:
        """Time to first token: request sent to first token received (includes the model load)."""
        return None if self.first_at is None else self.first_at - self.request_at

    @property
    def client_rate_tps(self) -> float | None:
        """Tokens per second between the first and the last token, as the client saw them.

        (count - 1) intervals over the span from first to last: the first token's time belongs to
        the prompt, as in the server's eval rate.
        """
        if self.first_at is None or self.last_at is None or self.count < 2 or self.last_at <= self.first_at:
            return None
        return (self.count - 1) / (self.last_at - self.first_at)

    def in_bursts(self) -> bool:
        """Whether the tokens arrived in bursts, as a buffering proxy delivers them: all at once, or
        (given BURST_SAMPLE_GAPS gaps or more) BURST_TOKENS_PER_DELIVERY or more to a delivery on
        average, a delivery being tokens within BURST_GAP_S of the one before. Then the client's
        clock cannot time the generation."""
        with self._lock:
            times = self._times
            if len(times) < 2:
                return False
            if times[-1] - times[0] < BURST_GAP_S:
                return True
            if len(times) <= BURST_SAMPLE_GAPS:
                return False
            deliveries = 1 + sum(1 for a, b in zip(times, times[1:], strict=False) if b - a >= BURST_GAP_S)
        return len(times) >= BURST_TOKENS_PER_DELIVERY * deliveries

    def marks(self) -> tuple[tuple[int, float], ...]:
        """`token_marks` of the arrivals so far: (count, seconds from the first token to that one) at
        each of MARK_COUNTS the run reached, and at its last token."""
        with self._lock:
            return token_marks(self._times)

    def count_until(self, t: float) -> int:
        """Tokens that had arrived by `t`."""
        with self._lock:
            return bisect.bisect_right(self._times, t)

    def live_rate_tps(self, now: float) -> float | None:
        """Tokens per second over the last `window_s` seconds (shorter just after the first token)."""
        with self._lock:
            return windowed_rate(self._times, now, self.window_s)

    def series(self, end: float, points: int, window_s: float | None = None) -> list[tuple[float, float]]:
        """`rate_series` from the request to `end` (the chart's points), over `window_s` (default
        the live window)."""
        with self._lock:
            return rate_series(self._times, self.request_at, end, points, window_s or self.window_s)


def _mark_counts(limit: int) -> list[int]:
    counts, step = [], 8
    while step < limit:
        counts += [step, step * 3 // 2]
        step *= 2
    return counts


MARK_COUNTS = tuple(_mark_counts(1 << 24))
"""The token counts at which a run keeps its arrival time: 8, 12, 16, 24, 32, 48 ... (half steps
of a doubling), so any count is within a third of one of them and a run keeps a few dozen marks."""


def token_marks(times: Sequence[float]) -> tuple[tuple[int, float], ...]:
    """(count, seconds from the first token to the count-th) at each MARK_COUNTS within `times`, and
    at the last: from these, two runs' rates over the same first tokens (rate_over_first), however
    many each generated."""
    if len(times) < 2:
        return ()
    first = times[0]
    marks = [(n, round(times[n - 1] - first, 6)) for n in MARK_COUNTS if n < len(times)]
    return (*marks, (len(times), round(times[-1] - first, 6)))


def rate_over_first(marks: Sequence[Sequence[float]], count: int) -> float | None:
    """Tokens per second over a run's first `count` tokens (from its `token_marks`), as
    client_rate_tps counts: count - 1 intervals from the first token to the count-th; None where the
    run kept no mark at `count`."""
    for n, seconds in marks:
        if int(n) == count and seconds > 0:
            return (count - 1) / seconds
    return None


def windowed_rate(times: Sequence[float], now: float, window_s: float) -> float | None:
    """Tokens per second over (now - window_s, now] for sorted arrival `times`.

    The window is clipped to start at the first token; None before the first token or when the
    clipped window is empty.
    """
    if not times or now < times[0]:
        return None
    start = max(now - window_s, times[0])
    span = now - start
    if span <= 0:
        return None
    hi = bisect.bisect_right(times, now)
    lo = bisect.bisect_right(times, start)
    return (hi - lo) / span


def rate_series(
    times: Sequence[float], start: float, end: float, points: int, window_s: float = DEFAULT_WINDOW_S
) -> list[tuple[float, float]]:
    """At most `points` (seconds since start, tokens/s) pairs evenly spread over [start, end].

    A long run is downsampled to the same number of points as a short one, so a chart costs the
    same after two hours as after two seconds. Points before the first token are left out.
    """
    if points < 1 or end <= start or not times:
        return []
    step = (end - start) / points
    series = []
    for i in range(1, points + 1):
        now = start + i * step
        value = windowed_rate(times, now, max(window_s, step))
        if value is not None:
            series.append((now - start, value))
    return series
