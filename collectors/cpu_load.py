"""What else kept the CPU busy, and at what clock it ran: read at the generation's first token and
at its end, so a slow run can name "another process busy on the CPU" or "the CPU clock held down".

Two readings a run, not a sampler: the CPU seconds since boot of all CPUs (psutil.cpu_times), of the
Ollama processes (the process collector's pids) and of llmtop itself; the difference of two readings
over the seconds between them is the cores each kept busy, and what is left of the CPUs' busy time
is other processes'. The clock is psutil.cpu_freq() (Linux: the mean of the cores' scaling_cur_freq;
none in many virtual machines and on some Macs).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from types import ModuleType
from typing import Any

import psutil as _psutil

from llmtop.data_folder import guarded

# psutil.cpu_times' fields that are not this machine's processes at work: a CPU idle or waiting on a
# disk, time the hypervisor gave another machine (steal), and guests (Linux counts them in user already).
NOT_BUSY = frozenset({"idle", "iowait", "steal", "guest", "guest_nice"})
_READER = "the CPU load reader"
_GONE = (_psutil.Error, OSError)


@dataclass(frozen=True, slots=True)
class CpuReading:
    """One reading: CPU seconds since boot, all CPUs' busy time, each Ollama process's and llmtop's
    own; the clock in MHz (None: the platform does not say)."""

    t: float
    busy_s: float
    ollama_s: dict[int, float]  # by pid: a process that starts between two readings counts from 0
    own_s: float
    cores: int
    clock_mhz: float | None = None
    clock_max_mhz: float | None = None

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["ollama_s"] = {str(pid): seconds for pid, seconds in self.ollama_s.items()}
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> CpuReading:
        return cls(
            t=float(values["t"]),
            busy_s=float(values["busy_s"]),
            ollama_s={int(pid): float(s) for pid, s in (values.get("ollama_s") or {}).items()},
            own_s=float(values["own_s"]),
            cores=int(values["cores"]),
            clock_mhz=None if values.get("clock_mhz") is None else float(values["clock_mhz"]),
            clock_max_mhz=None if values.get("clock_max_mhz") is None else float(values["clock_max_mhz"]),
        )


def _process_seconds(process: Any) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


class CpuLoadReader:
    """Reads CpuReading with `psutil` (a module or a stand-in with cpu_times, cpu_count, cpu_freq and
    Process)."""

    def __init__(self, psutil: ModuleType | Any = _psutil, own_pid: int | None = None) -> None:
        self._psutil = psutil
        self._own = psutil.Process(own_pid if own_pid is not None else os.getpid())

    def _first_reading(self) -> tuple[dict[str, float], float, int]:
        return self._psutil.cpu_times()._asdict(), _process_seconds(self._own), int(self._psutil.cpu_count() or 1)

    def _process_seconds(self, pid: int) -> float:
        return _process_seconds(self._psutil.Process(pid))

    def read(self, t: float, ollama_pids: Iterable[int]) -> CpuReading | None:
        """A reading at monotonic time `t`; None where the system's CPU times cannot be read."""
        first = guarded(_READER, self._first_reading, None, _GONE)
        if first is None:  # a sandbox without /proc/stat, a platform psutil cannot read
            return None
        times, own, cores = first
        busy = sum(v for k, v in times.items() if k not in NOT_BUSY)
        ollama: dict[int, float] = {}
        for pid in ollama_pids:
            # a process that just exited, or belongs to another user (macOS), is not counted
            seconds = guarded(_READER, partial(self._process_seconds, pid), None, _GONE)
            if seconds is not None:
                ollama[pid] = seconds
        clock = clock_max = None
        # no clock on this platform (many virtual machines)
        freq = guarded(_READER, self._psutil.cpu_freq, None, (OSError, NotImplementedError))
        if freq is not None and freq.current:
            clock = float(freq.current)
            clock_max = float(freq.max) if freq.max else None
        return CpuReading(t, busy, ollama, own, cores, clock, clock_max)


@dataclass(frozen=True)
class CpuUse:
    """Between two readings: the cores other processes kept busy (all CPUs' busy time less Ollama's
    and llmtop's), Ollama's, and the clock at the end."""

    others_cores: float
    ollama_cores: float | None
    cores: int
    clock_mhz: float | None
    clock_max_mhz: float | None


def cpu_use(first: CpuReading, last: CpuReading) -> CpuUse | None:
    """The CPU's use from `first` to `last` (None over no time). Ollama's processes are those of the
    last reading; one absent from the first started since and counts from 0 (a runner started by
    the load). One that exited between them is lost: its seconds count as other processes'."""
    span = last.t - first.t
    if span <= 0:
        return None
    ollama = sum(max(0.0, s - first.ollama_s.get(pid, 0.0)) for pid, s in last.ollama_s.items())
    busy = max(0.0, last.busy_s - first.busy_s)
    own = max(0.0, last.own_s - first.own_s)
    others = max(0.0, busy - ollama - own) / span
    return CpuUse(
        others_cores=min(others, float(last.cores)),
        ollama_cores=ollama / span if last.ollama_s else None,
        cores=last.cores,
        clock_mhz=last.clock_mhz,
        clock_max_mhz=last.clock_max_mhz,
    )
