"""The CPU's use at a run's edges (collectors/cpu_load.py): all CPUs' busy seconds less Ollama's and
llmtop's are other processes'; read from a stand-in psutil with recorded values, and from the real one."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import namedtuple
from types import SimpleNamespace

import psutil
import pytest

from llmtop.collectors.cpu_load import CpuLoadReader, CpuReading, cpu_use
from waiting import eventually

# psutil.cpu_times() on Linux, as this machine gave it (seconds since boot, both CPUs summed).
Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")
Freq = namedtuple("Freq", "current min max")
ProcessTimes = namedtuple("ProcessTimes", "user system children_user children_system")


class RecordedPsutil:
    """psutil as far as CpuLoadReader reads it, from values a test sets."""

    def __init__(self) -> None:
        self.times = Times(28545.79, 3388.29, 3523.15, 64995.72, 1493.32, 0.0, 93.67, 66.03, 0.0, 0.0)
        self.processes = {1: (10.0, 2.0), 100: (500.0, 20.0), 101: (30.0, 1.0)}  # llmtop, ollama serve, runner
        self.freq: Freq | None = Freq(2596.146, 0.0, 0.0)

    def cpu_times(self):
        return self.times

    def cpu_count(self):
        return 2

    def cpu_freq(self):
        return self.freq

    def Process(self, pid):  # noqa: N802 (psutil's name)
        if pid not in self.processes:
            raise ProcessLookupError(pid)
        return SimpleNamespace(cpu_times=lambda: ProcessTimes(*self.processes[pid], 0.0, 0.0))


def advance(psutil: RecordedPsutil, **seconds: float) -> None:
    psutil.times = psutil.times._replace(**{k: getattr(psutil.times, k) + v for k, v in seconds.items()})


def test_what_is_left_of_the_cpus_busy_time_is_other_processes():
    psutil = RecordedPsutil()
    reader = CpuLoadReader(psutil, own_pid=1)
    first = reader.read(10.0, [100, 101])
    assert first.busy_s == pytest.approx(28545.79 + 3388.29 + 3523.15 + 93.67)  # idle, iowait, steal left out
    # 4 s later: the runner used 4.0 s of CPU (one core), llmtop 0.4 s, the system 7.6 s busy in all.
    psutil.processes[101] = (33.5, 1.5)
    psutil.processes[1] = (10.3, 2.1)
    advance(psutil, user=6.0, system=1.6, idle=0.4, steal=3.0)
    psutil.freq = Freq(1200.0, 400.0, 3400.0)
    last = reader.read(14.0, [100, 101])
    use = cpu_use(first, last)
    assert use.ollama_cores == pytest.approx(1.0)
    assert use.others_cores == pytest.approx((7.6 - 4.0 - 0.4) / 4)  # 0.8 of a core: another process
    assert (use.clock_mhz, use.clock_max_mhz, use.cores) == (1200.0, 3400.0, 2)
    assert CpuReading.from_dict(last.to_dict()) == last  # as a recording keeps it


def test_a_runner_that_started_between_the_readings_counts_from_zero_and_nothing_is_negative():
    first = CpuReading(0.0, 1000.0, {100: 50.0}, 5.0, 2)
    last = CpuReading(2.0, 1003.0, {100: 50.5, 102: 2.0}, 5.1, 2)  # 102: the runner the load started
    use = cpu_use(first, last)
    assert use.ollama_cores == pytest.approx(1.25) and use.others_cores == pytest.approx(0.2)
    busy_ollama = CpuReading(2.0, 1001.0, {100: 60.0}, 5.0, 2)  # counters of another granularity
    assert cpu_use(first, busy_ollama).others_cores == 0.0
    assert cpu_use(first, first) is None  # no time between them


def test_a_platform_without_cpu_times_or_clock_reads_none_not_zero():
    psutil = RecordedPsutil()
    psutil.freq = None  # many virtual machines
    reader = CpuLoadReader(psutil, own_pid=1)
    reading = reader.read(0.0, [100, 999])  # 999: gone
    assert reading.clock_mhz is None and set(reading.ollama_s) == {100}

    def no_stat():
        raise PermissionError("/proc/stat")

    psutil.cpu_times = no_stat
    assert reader.read(1.0, [100]) is None


def test_the_real_psutil_sees_a_busy_process_as_another_process():
    reader = CpuLoadReader()
    burner = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 3\nwhile time.time() < end: pass"]
    )
    try:
        eventually(lambda: sum(psutil.Process(burner.pid).cpu_times()[:2]) > 0.1, 10, "the burner at work")
        first = reader.read(time.monotonic(), [])
        time.sleep(1.5)  # elapsed time is what is tested: the window the burner's core is measured over
        last = reader.read(time.monotonic(), [])
    finally:
        burner.kill()
        burner.wait()
    use = cpu_use(first, last)
    assert use.others_cores > 0.6, use  # the burner kept about a core busy
    assert use.ollama_cores is None
