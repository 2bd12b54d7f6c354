"""A difference of two groups' tokens/s with its 95% interval (Welch's, each group with its own spread),
the speed-up that interval gives over the baseline's mean, and the runs each that would tell a
difference of this size apart. Pure."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# Student's t, two-sided 95%, by degrees of freedom (between two rows, the smaller's: conservative).
_T95 = ((1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (5, 2.571), (6, 2.447), (7, 2.365), (8, 2.306),
        (9, 2.262), (10, 2.228), (12, 2.179), (15, 2.131), (20, 2.086), (30, 2.042), (60, 2.000))  # fmt: skip
MOST_RUNS = 100  # past this many runs each, a difference is as good as none


def ratio_text(ratio: float, interval: tuple[float, float] | None) -> str:
    """`1.33x (1.21-1.46x)`, or `1.33x` where the interval is not known."""
    if interval is None:
        return f"{ratio:.2f}x"
    return f"{ratio:.2f}x ({max(interval[0], 0.0):.2f}-{interval[1]:.2f}x)"


def t95(df: float) -> float:
    """Student's t for a two-sided 95% interval at `df` degrees of freedom (1.96 past 60)."""
    for limit, value in _T95:
        if df <= limit:
            return value
    return 1.96


@dataclass(frozen=True)
class Side:
    """One group's tokens/s: mean, sample standard deviation (None with one run), runs."""

    mean: float
    sd: float | None
    runs: int

    @property
    def variance_of_mean(self) -> float | None:
        return None if self.sd is None else self.sd**2 / self.runs

    @classmethod
    def of(cls, values: Sequence[float]) -> Side | None:
        """From the runs' tokens/s (None for none)."""
        if not values:
            return None
        return cls(statistics.fmean(values), statistics.stdev(values) if len(values) >= 2 else None, len(values))


@dataclass(frozen=True)
class Difference:
    """`subject` against `base`: the mean difference of tokens/s and its 95% interval (None: one run
    a side, the spread unknown), and the speed-up with the interval mapped onto it."""

    subject: Side
    base: Side
    low: float | None
    high: float | None

    @property
    def delta(self) -> float:
        return self.subject.mean - self.base.mean

    @property
    def speedup(self) -> float:
        return self.subject.mean / self.base.mean

    @property
    def speedup_interval(self) -> tuple[float, float] | None:
        if self.low is None or self.high is None:
            return None
        return 1 + self.low / self.base.mean, 1 + self.high / self.base.mean

    @property
    def known(self) -> bool:
        return self.low is not None

    @property
    def same(self) -> bool:
        """The interval holds no difference at all."""
        return self.low is not None and self.high is not None and self.low <= 0 <= self.high

    def runs_needed(self) -> int | None:
        """Runs each that would tell a difference of this size apart at these spreads (None: spread
        unknown, or no difference at all; MOST_RUNS + 1: more than MOST_RUNS)."""
        if self.subject.sd is None or self.base.sd is None or self.delta == 0:
            return None
        spread = self.subject.sd**2 + self.base.sd**2
        for runs in range(2, MOST_RUNS + 1):
            if t95(2 * runs - 2) * math.sqrt(spread / runs) < abs(self.delta):
                return runs
        return MOST_RUNS + 1


def difference(subject: Side, base: Side) -> Difference:
    """Welch's 95% interval for subject - base (none where either side has one run)."""
    a, b = subject.variance_of_mean, base.variance_of_mean
    if a is None or b is None:
        return Difference(subject, base, None, None)
    se = math.sqrt(a + b)
    if se == 0:
        return Difference(subject, base, subject.mean - base.mean, subject.mean - base.mean)
    df = (a + b) ** 2 / ((a**2 / (subject.runs - 1) if a else 0) + (b**2 / (base.runs - 1) if b else 0))
    half = t95(df) * se
    delta = subject.mean - base.mean
    return Difference(subject, base, delta - half, delta + half)
