"""System RAM: through a stand-in psutil module, and from recorded /proc files as Linux gives them."""

from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace

from llmtop.collectors.system_collectors import SystemCollectors
from llmtop.collectors.system_memory import SystemMemoryReader, parse_meminfo, percpu_free_bytes

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


PROC = Path(__file__).resolve().parent / "fixtures" / "proc"  # recorded on a 2-CPU Linux 6.18 VM


def test_linux_reads_meminfo_and_the_free_pages_on_the_per_cpu_lists():
    sample = SystemMemoryReader(proc_root=PROC)(3.0)
    assert sample.total_bytes == 24684084 * 1024 and sample.available_bytes == 24163188 * 1024
    assert sample.percpu_free_bytes == (2367 + 4937) * 4096  # each pageset's `count:` in zoneinfo
    assert sample.used_bytes == sample.total_bytes - sample.available_bytes - sample.percpu_free_bytes
    assert (sample.swap_used_bytes, sample.swap_total_bytes) == (0, 0)


def test_zoneinfo_counts_only_the_pagesets():
    text = b"Node 0, zone   Normal\n  pages free     138914\n        min      5602\n  pagesets\n    cpu: 0\n"
    text += b"              count:    51308\n              high:     51413\n    cpu: 1\n              count: 7\n"
    assert percpu_free_bytes(text) == (51308 + 7) * 4096


def test_meminfo_fields_are_bytes():
    assert parse_meminfo("MemTotal:       16 kB\nHugePages_Total:       3\n") == {
        "MemTotal": 16384,
        "HugePages_Total": 3,
    }


def test_without_zoneinfo_memavailable_alone(tmp_path):
    (tmp_path / "meminfo").write_text("MemTotal: 1000 kB\nMemAvailable: 400 kB\nSwapTotal: 100 kB\nSwapFree: 40 kB\n")
    sample = SystemMemoryReader(proc_root=tmp_path)(0.0)
    assert (sample.used_bytes, sample.percpu_free_bytes, sample.swap_used_bytes) == (600 * 1024, 0, 60 * 1024)
