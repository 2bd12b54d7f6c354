"""System RAM read through a stand-in psutil module."""

from collections import namedtuple
from types import SimpleNamespace

from llmtop.collectors.system_collectors import SystemCollectors
from llmtop.collectors.system_memory import SystemMemoryReader

VirtualMemory = namedtuple("VirtualMemory", "total available percent used free")
Swap = namedtuple("Swap", "total used free percent sin sout")


def fake_psutil(available, swap_error=False):
    def swap_memory():
        if swap_error:
            raise RuntimeError("no swap accounting")
        return Swap(8 * 2**30, 2**30, 7 * 2**30, 12.5, 0, 0)

    return SimpleNamespace(
        virtual_memory=lambda: VirtualMemory(64 * 2**30, available, 0.0, 1, 1),
        swap_memory=swap_memory,
    )


def test_used_is_total_minus_available():
    sample = SystemMemoryReader(fake_psutil(available=20 * 2**30))(12.5)
    assert sample.t == 12.5
    assert sample.used_bytes == 44 * 2**30
    assert (sample.swap_used_bytes, sample.swap_total_bytes) == (2**30, 8 * 2**30)


def test_missing_swap_accounting_reads_as_no_swap():
    sample = SystemMemoryReader(fake_psutil(available=2**30, swap_error=True))(0.0)
    assert (sample.swap_used_bytes, sample.swap_total_bytes) == (0, 0)


def test_real_psutil_gives_plausible_figures():
    collectors = SystemCollectors(interval=0.05)
    sample = collectors.memory.sample_now()
    assert sample is not None
    assert 0 < sample.used_bytes < sample.total_bytes
    assert collectors.processes.sample_now() is not None
