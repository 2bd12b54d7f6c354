"""What every power source hands back: one PowerReading per source (a CPU package, a GPU) with its
watts now and the energy counted since it was opened; None with a reason where nothing was read.

Two kinds of source exist. A counter (RAPL's `energy_uj`, NVML's total energy, hwmon `energy1_input`,
Windows' EMI) counts joules itself: the energy between two readings is their difference, exact,
whatever happened in between (a wrap is undone with the counter's range). A power figure (NVML's
power usage, hwmon `power1_average`) is integrated over time by the trapezoid rule, which holds only
while readings come close together: a gap longer than MAX_GAP_S starts a new `segment`, and energy
is never computed across two segments (core/measure/energy.py), so a lost stretch is never made up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

MAX_GAP_S = 2.0  # integrated power across a longer gap between readings would be a guess
COUNTER_GAP_S = 600.0  # a wrapping counter unread this long may have wrapped twice: start over


@dataclass(frozen=True, slots=True)
class PowerReading:
    """One source at one moment. `energy_j` counts from when llmtop opened the source, within
    `segment` (a new one where the count had to start over); `watts` is the power since the
    previous reading (a counter) or as read (a power figure)."""

    key: str
    name: str
    kind: str  # "cpu" or "gpu"
    method: str  # where it comes from, e.g. "powercap energy_uj" or "NVML power usage (integrated)"
    watts: float | None = None
    energy_j: float | None = None
    segment: int = 0
    limit_w: float | None = None  # the source's power limit (TDP, power cap), for a gauge's bar
    reason: str | None = None  # why watts or energy is None


@dataclass(frozen=True, slots=True)
class PowerSample:
    """Every power source read at monotonic time t, and the sources that failed this tick."""

    t: float
    sources: tuple[PowerReading, ...]
    problems: tuple[str, ...] = ()


class PowerSource(Protocol):
    """A backend: reads the sources it knows at `t`; raises when its source fails as a whole."""

    name: str

    def read(self, t: float) -> list[PowerReading]: ...

    def close(self) -> None: ...


class CounterMeter:
    """Energy from a hardware counter: `scale_j` joules per count, wrapping at `wrap` counts (the
    counter's range; None: it never wraps, so a decrease means it was reset)."""

    def __init__(self, scale_j: float, wrap: int | None = None) -> None:
        self.scale_j = scale_j
        self.wrap = wrap
        self.energy_j = 0.0
        self.segment = 0
        self._last: tuple[float, int] | None = None

    def update(self, t: float, raw: int) -> tuple[float, float | None, int]:
        """(energy so far, watts since the previous reading or None, segment) after reading `raw` at `t`."""
        last = self._last
        self._last = (t, raw)
        if last is None:
            return self.energy_j, None, self.segment
        last_t, last_raw = last
        counts = raw - last_raw
        if counts < 0 and self.wrap is not None:
            counts += self.wrap
        if counts < 0 or (self.wrap is not None and t - last_t > COUNTER_GAP_S):
            self.segment += 1  # reset (a driver reload), or unread long enough to hide a second wrap
            self.energy_j = 0.0
            return self.energy_j, None, self.segment
        joules = counts * self.scale_j
        self.energy_j += joules
        return self.energy_j, joules / (t - last_t) if t > last_t else None, self.segment


FIRST_READING = "the first reading: watts come with the second"


def counted(meter: CounterMeter, t: float, raw: int, limit_w: float | None, **identity: str) -> PowerReading:
    """The reading of a counter source (`identity`: key, name, kind, method) whose counter read `raw` at `t`."""
    energy, watts, segment = meter.update(t, raw)
    reason = None if watts is not None else FIRST_READING
    return PowerReading(**identity, watts=watts, energy_j=energy, segment=segment, limit_w=limit_w, reason=reason)


class PowerMeter:
    """Energy from a power figure, integrated by the trapezoid rule between readings."""

    def __init__(self) -> None:
        self.energy_j = 0.0
        self.segment = 0
        self._last: tuple[float, float] | None = None
        self._broken = False

    def update(self, t: float, watts: float) -> tuple[float, int]:
        """(energy so far, segment) after reading `watts` at `t`."""
        last = self._last
        self._last = (t, watts)
        if last is None:
            return self.energy_j, self.segment
        last_t, last_w = last
        if self._broken or t - last_t > MAX_GAP_S:
            self._broken = False
            self.segment += 1
            self.energy_j = 0.0
        elif t > last_t:
            self.energy_j += (last_w + watts) / 2 * (t - last_t)
        return self.energy_j, self.segment

    def lost(self) -> None:
        """A reading failed: the next one cannot be joined to the last."""
        self._broken = self._last is not None
