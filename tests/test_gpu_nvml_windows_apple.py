"""NVML fakes that fail the way NVML fails, Windows counters with real instance names, Apple ioreg."""

import plistlib
import subprocess

import pynvml
import pytest

from helpers.fake_nvml import FakeNvml
from llmtop.collectors.gpu_apple import IOREG, AppleIoregReader
from llmtop.collectors.gpu_collector import merge_readings, probe_gpu_backends
from llmtop.collectors.gpu_nvidia import NvmlReader, NvmlUnavailable
from llmtop.collectors.gpu_windows import (
    DxgiAdapter,
    WindowsCountersReader,
    engine_utilization,
    luid_key,
)

GiB = 1024**3


def test_memory_v2_gives_reserved_apart_and_used_is_total_minus_free():
    nvml = FakeNvml(processes=[(4243, 12 * GiB), (4243, 12 * GiB), (777, 1 * GiB)])
    [gpu] = NvmlReader(nvml, pids=lambda: frozenset({4242, 4243}), platform="linux").read()
    assert gpu.name == "NVIDIA GeForce RTX 4060 Ti" and gpu.bus_id == "00000000:01:00.0"
    assert (gpu.dedicated_used, gpu.dedicated_total, gpu.reserved) == (14 * GiB, 16 * GiB, 1 * GiB)
    assert gpu.utilization_pct == 93.0
    assert gpu.ollama_dedicated == 12 * GiB  # listed twice, counted once; pid 777 is not Ollama's
    assert gpu.shared_used is None and gpu.reason("shared").startswith("not applicable")


def test_what_holds_the_clock_down_is_named_from_nvmls_reasons():
    """A card at its power cap and hot (SwPowerCap | HwThermalSlowdown | GpuIdle): two limits, the idle
    bit is none; a driver before 535 answers only the old name; one with neither says so."""
    from llmtop.collectors.gpu_nvidia import clock_limits

    nvml = FakeNvml()
    nvml.nvmlDeviceGetCurrentClocksEventReasons = lambda handle: 0x4 | 0x40 | 0x1
    [gpu] = NvmlReader(nvml, platform="linux").read()
    assert gpu.clock_limits == ("power cap", "thermal slowdown") and "clock_limits" not in gpu.reasons
    old = FakeNvml()

    def not_found(handle):
        raise pynvml.NVMLError_FunctionNotFound()

    old.nvmlDeviceGetCurrentClocksEventReasons = not_found
    old.nvmlDeviceGetCurrentClocksThrottleReasons = lambda handle: 0x20
    assert NvmlReader(old, platform="linux").read()[0].clock_limits == ("thermal slowdown",)
    [bare] = NvmlReader(FakeNvml(), platform="linux").read()
    assert bare.clock_limits == () and bare.reasons["clock_limits"] == "this NVML has no clock event reasons"
    assert clock_limits(0x1 | 0x2 | 0x10 | 0x100) == ()  # idle, application clocks, sync boost, display


def test_a_driver_without_memory_v2_falls_back_to_v1():
    [gpu] = NvmlReader(FakeNvml(v2=False), platform="linux").read()
    assert (gpu.dedicated_used, gpu.reserved) == (14 * GiB, None)
    assert "nvmlDeviceGetMemoryInfo_v2" in gpu.reason("reserved")


def test_wddm_hides_per_process_memory_and_says_so():
    [gpu] = NvmlReader(FakeNvml(processes=[(4243, 0)], wddm=True), lambda: frozenset({4243}), "win32").read()
    assert gpu.ollama_dedicated is None and "WDDM" in gpu.reason("ollama")
    assert "performance counters" in gpu.reason("shared")


def test_unsupported_utilization_and_no_ollama_process():
    [gpu] = NvmlReader(FakeNvml(utilization_error=pynvml.NVMLError_NotSupported()), platform="linux").read()
    assert gpu.utilization_pct is None and "NotSupported" in gpu.reason("utilization")
    assert gpu.ollama_dedicated is None and "no Ollama process" in gpu.reason("ollama")


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (pynvml.NVMLError_LibraryNotFound(), "no NVIDIA driver"),
        (pynvml.NVMLError_DriverNotLoaded(), "not loaded"),
        (pynvml.NVMLError_Unknown(), "NVML failed to start"),
    ],
)
def test_nvml_that_cannot_start_says_why(error, text):
    with pytest.raises(NvmlUnavailable, match=text):
        NvmlReader(FakeNvml(init_error=error))


def test_no_nvidia_gpu_shuts_nvml_down():
    nvml = FakeNvml(count=0)
    with pytest.raises(NvmlUnavailable, match="no NVIDIA GPU"):
        NvmlReader(nvml)
    assert nvml.shutdown


# Windows: values as win32pdh.GetFormattedCounterArray returns them (instance -> value).
RADEON = DxgiAdapter("AMD Radeon RX 7600 XT", luid_key(0, 0xD1B8), 16 * GiB, 16 * GiB)
INTEL = DxgiAdapter("Intel(R) UHD Graphics 770", luid_key(0, 0xE2C4), 128 * 1024**2, 16 * GiB)
COUNTERS = {
    "adapter_dedicated": {
        "luid_0x00000000_0x0000D1B8_phys_0": 15.4 * GiB,
        "luid_0x00000000_0x0000E2C4_phys_0": 0.0,
    },
    "adapter_shared": {"luid_0x00000000_0x0000D1B8_phys_0": 2.1 * GiB, "luid_0x00000000_0x0000E2C4_phys_0": 0.3 * GiB},
    "process_dedicated": {
        "pid_4243_luid_0x00000000_0x0000D1B8_phys_0": 14.9 * GiB,
        "pid_1234_luid_0x00000000_0x0000D1B8_phys_0": 0.2 * GiB,
        "pid_42430_luid_0x00000000_0x0000D1B8_phys_0": 5 * GiB,
    },
    "process_shared": {"pid_4243_luid_0x00000000_0x0000D1B8_phys_0": 1.9 * GiB},
    "engine": {
        "pid_4243_luid_0x00000000_0x0000D1B8_phys_0_eng_0_engtype_Compute_0": 61.0,
        "pid_4243_luid_0x00000000_0x0000D1B8_phys_0_eng_1_engtype_Compute_0": 30.0,
        "pid_1234_luid_0x00000000_0x0000D1B8_phys_0_eng_2_engtype_3D": 12.0,
        "pid_1234_luid_0x00000000_0x0000E2C4_phys_0_eng_0_engtype_3D": 4.0,
    },
}


def test_windows_counters_per_adapter_and_for_ollama():
    reader = WindowsCountersReader(lambda: COUNTERS, [RADEON, INTEL], lambda: frozenset({4242, 4243}))
    radeon, intel = reader.read()
    assert radeon.key == "win:luid_0x00000000_0x0000D1B8"
    assert (radeon.dedicated_used, radeon.dedicated_total) == (int(15.4 * GiB), 16 * GiB)
    assert (radeon.shared_used, radeon.shared_total) == (int(2.1 * GiB), 16 * GiB)
    assert radeon.ollama_dedicated == int(14.9 * GiB)  # pid 42430 is not pid 4243
    assert radeon.ollama_shared == int(1.9 * GiB)
    assert radeon.utilization_pct == 91.0  # Compute summed over engines beats 3D
    assert intel.utilization_pct == 4.0 and intel.ollama_dedicated == 0


def test_lowercase_instances_and_missing_counters():
    lower = {k: {i.lower(): v for i, v in values.items()} for k, values in COUNTERS.items()}
    [radeon] = WindowsCountersReader(lambda: lower, [RADEON], lambda: frozenset({4243})).read()
    assert radeon.dedicated_used == int(15.4 * GiB)
    [empty] = WindowsCountersReader(lambda: {}, [RADEON]).read()
    assert empty.dedicated_used is None and "no GPU Adapter Memory counter" in empty.reason("dedicated")
    assert empty.ollama_dedicated is None and "no Ollama process" in empty.reason("ollama")
    assert engine_utilization({}, RADEON.luid) is None


def test_luid_key_formats_the_signed_high_part():
    assert luid_key(0, 0xD1B8) == "luid_0x00000000_0x0000D1B8"
    assert luid_key(-1, 5) == "luid_0xFFFFFFFF_0x00000005"


def test_nvidia_on_windows_takes_shared_from_the_counters():
    geforce = DxgiAdapter("NVIDIA GeForce RTX 4060 Ti", luid_key(0, 0xA1), 16 * GiB, 16 * GiB)
    counters = {
        "adapter_dedicated": {"luid_0x00000000_0x000000A1_phys_0": 14.0 * GiB},
        "adapter_shared": {"luid_0x00000000_0x000000A1_phys_0": 1.5 * GiB},
        "process_dedicated": {"pid_4243_luid_0x00000000_0x000000A1_phys_0": 13.0 * GiB},
    }
    pids = lambda: frozenset({4243})  # noqa: E731
    collector = probe_gpu_backends(
        "win32",
        pids,
        nvml=FakeNvml(processes=[(4243, 0)], wddm=True),
        pdh_read=lambda: counters,
        dxgi=lambda: [geforce],
    )
    [gpu] = collector(1.0).gpus
    assert gpu.backend == "nvml+windows-pdh"
    assert gpu.dedicated_used == 14 * GiB and gpu.reserved == 1 * GiB  # NVML's
    assert gpu.shared_used == int(1.5 * GiB)  # the counters'
    assert gpu.ollama_dedicated == 13 * GiB  # the counters', where WDDM hides NVML's
    assert [r.available for r in collector.reports] == [True, True]


def test_two_identical_cards_stay_two():
    a = NvmlReader(FakeNvml(count=2), platform="linux").read()
    assert len(merge_readings(a)) == 2


IOREG_PLIST = plistlib.dumps(
    [
        {
            "IOClass": "AGXAcceleratorG13X",
            "PerformanceStatistics": {
                "In use system memory (driver)": 0,
                "Alloc system memory": 23693385728,
                "Tiler Utilization %": 38,
                "recoveryCount": 0,
                "lastRecoveryTime": 0,
                "Renderer Utilization %": 74,
                "TiledSceneBytes": 1572864,
                "Device Utilization %": 75,
                "SplitSceneCount": 0,
                "Allocated PB Size": 251658240,
                "In use system memory": 19327352832,
            },
        }
    ]
)


def fake_mac(limit_mb="0"):
    answers = {
        "machdep.cpu.brand_string": b"Apple M1 Pro\n",
        "hw.memsize": b"34359738368\n",
        "iogpu.wired_limit_mb": f"{limit_mb}\n".encode(),
    }
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        if argv == IOREG:
            return subprocess.CompletedProcess(argv, 0, IOREG_PLIST, b"")
        return subprocess.CompletedProcess(argv, 0, answers.get(argv[-1], b""), b"")

    return run, calls


def test_apple_unified_memory_from_ioreg():
    run, calls = fake_mac()
    ticks = iter([0.0, 0.5, 2.0])
    reader = AppleIoregReader(run, clock=lambda: next(ticks))
    [gpu] = reader.read()
    assert gpu.unified and gpu.name == "Apple M1 Pro GPU"
    assert (gpu.dedicated_used, gpu.dedicated_total) == (19327352832, 34359738368)
    assert gpu.utilization_pct == 75.0
    assert "unified memory" in gpu.reason("shared") and "iogpu.wired_limit_mb" in gpu.reason("total")
    before = calls.count(IOREG)
    reader.read()  # half a second later: the cached reading, no new ioreg
    assert calls.count(IOREG) == before
    reader.read()
    assert calls.count(IOREG) == before + 1


def test_apple_wired_limit_is_the_total_when_set():
    run, _ = fake_mac(limit_mb="28672")
    [gpu] = AppleIoregReader(run).read()
    assert gpu.dedicated_total == 28672 * 1024 * 1024


def test_a_machine_without_a_gpu_reports_every_backend_and_never_crashes(tmp_path):
    (tmp_path / "class" / "drm").mkdir(parents=True)
    collector = probe_gpu_backends(
        "linux",
        nvml=FakeNvml(init_error=pynvml.NVMLError_LibraryNotFound()),
        sysfs=tmp_path,
        proc=tmp_path,
        amdsmi=None,
    )
    assert collector.readers == []
    assert [r.backend for r in collector.reports] == ["nvml", "amdsmi", "amd-sysfs", "intel-fdinfo"]
    assert "no NVIDIA driver" in collector.unavailable_reason
    assert collector(0.0).gpus == ()


def test_a_backend_failing_mid_run_is_a_problem_not_a_crash():
    nvml = FakeNvml()
    collector = probe_gpu_backends("linux", nvml=nvml, sysfs=None, proc=None)
    nvml.nvmlDeviceGetMemoryInfo = lambda handle, version=None: (_ for _ in ()).throw(pynvml.NVMLError_GpuIsLost())
    sample = collector(3.0)
    assert sample.gpus == () and "GpuIsLost" in sample.problems[0]
