"""When a cool-down between runs may end early: the machine back near where it was before the plan,
by what is read of it. Power: back near the first run's idle power. Temperatures: every chip read
before the plan back within a few degrees of that reading. Where neither is read, the cool-down
waits its whole time (plan.PlanRunner)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llmtop.measure.summary_row import SummaryRow

NEAR_IDLE = (1.10, 2.0)  # power is back near idle within 10% and 2 W of the first run's idle power
NEAR_BASELINE_C = 3.0  # a chip is cool again within this many degrees of its reading before the plan


def near_idle(power: Any, rows: Sequence[SummaryRow]) -> bool | None:
    """Whether the machine's power now (`power`: the collectors' power sampler) is back near the first
    run's idle power; None where either is not read."""
    idle = next((r.idle_power_w for r in rows if r.idle_power_w), None)
    latest = power.latest() if power is not None else None
    watts = [r.watts for r in latest.sources if r.watts is not None] if latest is not None else []
    if idle is None or not watts:
        return None
    return bool(sum(watts) <= idle * NEAR_IDLE[0] + NEAR_IDLE[1])


def near_baseline(now: Mapping[str, float], baseline: Mapping[str, float]) -> bool | None:
    """Whether every chip read both before the plan and now is within NEAR_BASELINE_C of before;
    None where no chip is read both times."""
    common = [chip for chip in baseline if chip in now]
    if not common:
        return None
    return all(now[chip] <= baseline[chip] + NEAR_BASELINE_C for chip in common)


def gpu_temperatures(gpu: Any) -> dict[str, float]:
    """Each GPU's temperature in the GPU sampler's latest sample (`gpu`: None where no GPU is read)."""
    latest = gpu.latest() if gpu is not None else None
    if latest is None:
        return {}
    return {g.key: g.temperature_c for g in latest.gpus if g.temperature_c is not None}


class CoolDownCheck:
    """`check(rows)`: whether the machine is back near its rest, by power and temperatures where they
    are read (all of those read must be); False where none is. The temperatures' baseline is read
    when it is made: before the plan's first run."""

    def __init__(self, power: Any, temperatures: Callable[[], dict[str, float]]) -> None:
        self._power = power
        self._temperatures = temperatures
        self.baseline = temperatures()

    def __call__(self, rows: Sequence[SummaryRow]) -> bool:
        said = [near_idle(self._power, rows), near_baseline(self._temperatures(), self.baseline)]
        known = [s for s in said if s is not None]
        return bool(known) and all(known)

    @property
    def waits_on(self) -> str:
        """What the cool-down looks at, in words for its line."""
        what = (["the temperatures"] if self.baseline else []) + (["the power"] if self._power is not None else [])
        return " and ".join(what)
