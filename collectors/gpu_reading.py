"""What every GPU backend hands back: one GpuReading per GPU, in bytes, None with a reason when a
figure cannot be read. Never a made-up value."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

Pids = Callable[[], frozenset[int]]  # the Ollama process tree's PIDs, as the process reader last saw them


def no_pids() -> frozenset[int]:
    return frozenset()


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One GPU at one moment.

    dedicated: the GPU's own memory (VRAM); shared: system RAM the driver lends the GPU (Windows'
    "shared GPU memory", GTT on Linux AMD); unified (Apple): one pool, reported as dedicated.
    `ollama_*`: the part used by the Ollama process tree. `reasons` says why a figure is None.
    """

    key: str
    name: str
    backend: str
    dedicated_used: int | None = None
    dedicated_total: int | None = None
    shared_used: int | None = None
    shared_total: int | None = None
    reserved: int | None = None
    utilization_pct: float | None = None
    ollama_dedicated: int | None = None
    ollama_shared: int | None = None
    unified: bool = False
    bus_id: str | None = None  # PCI address, to tell that two backends see the same GPU
    clock_limits: tuple[str, ...] = ()  # what holds the clock down now ("power cap", "thermal slowdown")
    temperature_c: float | None = None  # the core's temperature (NVML), for a cool-down between runs
    reasons: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def reason(self, figure: str) -> str:
        """Why `figure` ("dedicated", "shared", "ollama", "utilization") is missing."""
        return self.reasons.get(figure, "not reported by this backend")

    def merged_with(self, other: GpuReading) -> GpuReading:
        """This reading with the figures it lacks taken from another backend's reading of the same GPU."""
        values = {}
        reasons = dict(self.reasons)
        for name in (
            "dedicated_used",
            "dedicated_total",
            "shared_used",
            "shared_total",
            "reserved",
            "utilization_pct",
            "ollama_dedicated",
            "ollama_shared",
        ):
            if getattr(self, name) is None and getattr(other, name) is not None:
                values[name] = getattr(other, name)
                reasons.pop(name.split("_")[0] if not name.startswith("ollama") else "ollama", None)
        backend = f"{self.backend}+{other.backend}" if values else self.backend
        return replace(self, backend=backend, reasons=reasons, **values)


@dataclass(frozen=True, slots=True)
class GpuSample:
    """Every GPU read at monotonic time t, and the backends that failed this tick."""

    t: float
    gpus: tuple[GpuReading, ...]
    problems: tuple[str, ...] = ()


class GpuReader(Protocol):
    """A backend: reads all the GPUs it knows; raises when the source fails."""

    name: str

    def read(self) -> list[GpuReading]: ...

    def close(self) -> None: ...


def same_gpu(a: GpuReading, b: GpuReading) -> bool:
    """Two backends' readings of one GPU: the same PCI address, or the same name when one lacks it."""
    if a.bus_id and b.bus_id:
        return _bus(a.bus_id) == _bus(b.bus_id)
    return a.name.casefold().strip() == b.name.casefold().strip()


def _bus(bus_id: str) -> str:
    """`00000000:01:00.0` and `0000:01:00.0` -> `01:00.0` (NVML pads the PCI domain to 8 digits)."""
    return bus_id.lower().rsplit(":", 2)[-2] + ":" + bus_id.lower().rsplit(":", 1)[-1] if ":" in bus_id else bus_id


def sum_known(values: list[int | None]) -> int | None:
    """Sum of the values, or None if none is known."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None
