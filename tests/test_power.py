"""Power sources on recorded trees and NVML fakes: counters, their wrap, integrated power, sources
that fail or vanish mid-run, and what `llmtop doctor` says of each."""

from __future__ import annotations

import json
import os
import struct

import pynvml
import pytest
from power_trees import RAPL_RANGE_UJ, amd_hwmon_tree, intel_hwmon_tree, rapl_tree, write_value

from helpers.cli import llmtop, no_traceback
from helpers.fake_nvml import EnergyNvml
from llmtop.collectors.power_collector import APPLE, power_unavailable, probe_power_sources
from llmtop.collectors.power_linux import RAPL_DENIED, AmdHwmonPower, IntelHwmonEnergy, RaplPackages
from llmtop.collectors.power_nvidia import ENERGY_COUNTER, POWER_INTEGRATED, NvmlPower
from llmtop.collectors.power_reading import MAX_GAP_S, CounterMeter, PowerMeter
from llmtop.collectors.power_windows import (
    IOCTL_EMI_GET_MEASUREMENT,
    IOCTL_EMI_GET_VERSION,
    NO_EMI,
    OTHER_GPUS,
    EmiPackages,
    channel_name_v1,
    channel_names_v2,
    measurements,
)


def test_a_counter_that_wraps_keeps_counting():
    meter = CounterMeter(1e-6, wrap=1_000_000)
    assert meter.update(0.0, 900_000) == (0.0, None, 0)
    energy, watts, segment = meter.update(0.5, 100_000)  # 100 000 to the wrap, 100 000 after it
    assert energy == pytest.approx(0.2) and watts == pytest.approx(0.4) and segment == 0
    assert meter.update(1.0, 300_000)[:2] == (pytest.approx(0.4), pytest.approx(0.4))


def test_a_counter_without_a_range_that_goes_back_was_reset():
    meter = CounterMeter(1e-3)
    meter.update(0.0, 5000)
    assert meter.update(1.0, 7000)[0] == pytest.approx(2.0)
    assert meter.update(2.0, 100) == (0.0, None, 1)  # a driver reload: a new segment, never a negative step


def test_integrated_power_starts_a_new_segment_after_a_gap_or_a_lost_reading():
    meter = PowerMeter()
    meter.update(0.0, 100.0)
    assert meter.update(0.5, 200.0) == (pytest.approx(75.0), 0)  # the trapezoid
    assert meter.update(0.5 + MAX_GAP_S + 0.1, 200.0) == (0.0, 1)
    meter.lost()
    assert meter.update(3.0, 200.0) == (0.0, 2)


# -- RAPL (powercap) ----------------------------------------------------------------------------
def test_rapl_reads_the_package_only_and_undoes_its_wrap(tmp_path):
    root = rapl_tree(tmp_path, energy_uj=RAPL_RANGE_UJ - 10_000_000)
    reader = RaplPackages(root)
    [first] = reader.read(0.0)
    assert (first.key, first.name, first.kind, first.limit_w) == ("rapl:intel-rapl:0", "CPU package", "cpu", 125.0)
    assert first.energy_j == 0.0 and first.watts is None
    write_value(root / "class/powercap/intel-rapl:0/energy_uj", 30_000_000)  # wrapped: 40 J later
    [second] = reader.read(1.0)
    assert second.energy_j == pytest.approx(40.0) and second.watts == pytest.approx(40.0)
    assert second.segment == 0 and second.reason is None


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads a file of mode 0400 anyway")
def test_rapl_readable_by_root_only_says_how_to_grant_it(tmp_path):
    root = rapl_tree(tmp_path)
    (root / "class/powercap/intel-rapl:0/energy_uj").chmod(0)  # the kernel's 0400 root:root, for this user
    with pytest.raises(LookupError) as caught:
        RaplPackages(root)
    assert str(caught.value) == RAPL_DENIED
    assert "sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj" in RAPL_DENIED
    collector = probe_power_sources("linux", sysfs=root, nvml=EnergyNvml(init_error=pynvml.NVMLError_LibraryNotFound()))
    assert power_unavailable(collector)["cpu"] == f"powercap: {RAPL_DENIED}"


def test_rapl_denied_mid_run_is_a_reason_and_the_count_goes_on_after(tmp_path, monkeypatch):
    from llmtop.collectors import power_linux

    root = rapl_tree(tmp_path, energy_uj=1_000_000)
    reader = RaplPackages(root)
    reader.read(0.0)
    real = power_linux._int

    def denied(path):
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(power_linux, "_int", denied)  # as the kernel answers a user after a chmod
    [reading] = reader.read(0.5)
    assert reading.energy_j is None and reading.reason == RAPL_DENIED
    monkeypatch.setattr(power_linux, "_int", real)
    write_value(root / "class/powercap/intel-rapl:0/energy_uj", 21_000_000)
    [again] = reader.read(1.0)
    assert again.energy_j == pytest.approx(20.0) and again.segment == 0  # a counter loses nothing meanwhile
    monkeypatch.setattr(power_linux, "_int", denied)
    collector = probe_power_sources("linux", sysfs=root, nvml=EnergyNvml(init_error=pynvml.NVMLError_LibraryNotFound()))
    assert power_unavailable(collector)["cpu"] == f"powercap: {RAPL_DENIED}"


def test_no_powercap_says_so(tmp_path):
    (tmp_path / "class").mkdir()
    with pytest.raises(LookupError, match="no RAPL package zone"):
        RaplPackages(tmp_path)


# -- hwmon ----------------------------------------------------------------------------------------
def test_amd_power_is_integrated_and_a_vanished_hwmon_file_is_said_not_guessed(tmp_path):
    root = amd_hwmon_tree(tmp_path, power_uw=100_000_000)
    reader = AmdHwmonPower(root)
    [first] = reader.read(0.0)
    assert (first.key, first.name, first.method) == (
        "amd:card1",
        "AMD Radeon RX 7600 XT",
        "hwmon power1_average (integrated)",
    )
    assert first.watts == 100.0 and first.limit_w == 190.0 and first.energy_j == 0.0
    power = root / "class/drm/card1/device/hwmon/hwmon3/power1_average"
    write_value(power, 200_000_000)
    [second] = reader.read(0.5)
    assert second.energy_j == pytest.approx(75.0) and second.segment == 0
    power.unlink()  # a GPU reset takes the hwmon folder away
    [gone] = reader.read(1.0)
    assert gone.watts is None and gone.energy_j is None and "gone" in gone.reason
    # It comes back under another number: counted again, in a new segment (the gap is not made up).
    moved = root / "class/drm/card1/device/hwmon/hwmon3"
    moved.rename(moved.with_name("hwmon7"))
    write_value(moved.with_name("hwmon7") / "power1_input", 150_000_000)
    [back] = reader.read(1.5)
    assert back.watts == 150.0 and back.segment == 1 and back.method == "hwmon power1_input (integrated)"


def test_intel_energy_counter(tmp_path):
    root = intel_hwmon_tree(tmp_path, energy_uj=7_000_000)
    reader = IntelHwmonEnergy(root)
    reader.read(0.0)
    write_value(root / "class/drm/card0/device/hwmon/hwmon5/energy1_input", 37_000_000)
    [reading] = reader.read(0.5)
    assert reading.energy_j == pytest.approx(30.0) and reading.watts == pytest.approx(60.0)
    assert reading.kind == "gpu" and reading.limit_w == 190.0


# -- NVML ------------------------------------------------------------------------------------------
def test_nvml_total_energy_is_a_counter_and_power_usage_gives_the_watts():
    nvml = EnergyNvml(energy_mj=1_000_000, power_mw=250_000)
    reader = NvmlPower(nvml)
    [first] = reader.read(0.0)
    assert first.method == ENERGY_COUNTER and first.watts == 250.0 and first.limit_w == 450.0
    nvml.energy_mj += 120_000  # 120 J in 0.5 s
    [second] = reader.read(0.5)
    assert second.energy_j == pytest.approx(120.0) and second.watts == 250.0


def test_nvml_without_energy_support_integrates_power_and_a_lost_gpu_is_a_reason():
    nvml = EnergyNvml(energy_mj=None, power_mw=100_000)
    reader = NvmlPower(nvml)
    reader.read(0.0)
    nvml.power_mw = 300_000
    [reading] = reader.read(1.0)
    assert reading.method == POWER_INTEGRATED and reading.energy_j == pytest.approx(200.0)
    nvml.lost = True
    [lost] = reader.read(1.5)
    assert lost.energy_j is None and lost.reason == "NVML: GpuIsLost"


def test_nvml_that_reads_neither_energy_nor_power_says_so():
    with pytest.raises(LookupError, match=r"NVML reads neither its energy \(NotSupported\) nor its power"):
        NvmlPower(EnergyNvml(energy_mj=None, power_mw=None))


# -- Windows: the Energy Meter Interface ---------------------------------------------------------
def _wide(text: str, size: int | None = None) -> bytes:
    data = (text + "\0").encode("utf-16-le")
    return data if size is None else data.ljust(size, b"\0")


def metadata_v2(channels: list[str]) -> bytes:
    """EMI_METADATA_V2 as emi.h lays it out."""
    data = _wide("INTEL", 32) + _wide("RAPL", 32) + struct.pack("<HH", 1, len(channels))
    for name in channels:
        encoded = _wide(name)
        data += struct.pack("<IH", 0, len(encoded)) + encoded
    return data


class FakeEmi:
    def __init__(self, channels, energies):
        self.path, self.channels, self.energies = (
            r"\\?\ACPI#INTC1040#0#{45bd8344-7ed6-49cf-a440-c276c933b053}",
            channels,
            energies,
        )

    def measure(self):
        return [(e, 10_000_000) for e in self.energies]


def test_emi_layouts_and_control_codes():
    assert channel_names_v2(metadata_v2(["RAPL_Package0_PKG", "RAPL_Package0_PP0"])) == [
        "RAPL_Package0_PKG",
        "RAPL_Package0_PP0",
    ]
    v1 = struct.pack("<I", 0) + _wide("OEM", 32) + _wide("MODEL", 32) + struct.pack("<HH", 1, 14) + _wide("Battery")
    assert channel_name_v1(v1) == "Battery"
    assert measurements(struct.pack("<QQQQ", 5, 6, 7, 8), 2) == [(5, 6), (7, 8)]
    assert (IOCTL_EMI_GET_VERSION, IOCTL_EMI_GET_MEASUREMENT) == (0x224000, 0x22400C)


def test_emi_reads_the_package_channel_in_picowatt_hours():
    device = FakeEmi(["RAPL_Package0_PKG", "RAPL_Package0_PP0", "RAPL_Package0_PP1"], [0, 0, 0])
    reader = EmiPackages(lambda: [device])
    [first] = reader.read(0.0)
    assert (first.name, first.kind, first.method) == ("CPU package", "cpu", "Windows EMI RAPL_Package0_PKG")
    device.energies = [10_000_000_000, 1, 1]  # 10^10 pWh = 36 J
    [second] = reader.read(1.0)
    assert second.energy_j == pytest.approx(36.0) and second.watts == pytest.approx(36.0)


def test_windows_without_emi_says_there_is_no_documented_counter():
    collector = probe_power_sources("win32", nvml=EnergyNvml(init_error=pynvml.NVMLError_LibraryNotFound()), emi=list)
    reasons = power_unavailable(collector)
    assert reasons["cpu"] == f"windows-emi: {NO_EMI}"
    assert reasons["gpu"].endswith(f"windows: {OTHER_GPUS}")
    assert "ADLX" in OTHER_GPUS  # AMD's SDK documents the board power: said, not claimed read
    with pytest.raises(LookupError, match=r"no EMI channel is the CPU package \(channels: Battery\)"):
        EmiPackages(lambda: [FakeEmi(["Battery"], [0])])


def test_macos_has_no_power_without_root():
    collector = probe_power_sources("darwin")
    assert power_unavailable(collector) == {"cpu": f"powermetrics: {APPLE}", "gpu": f"powermetrics: {APPLE}"}
    assert collector.sources == []


def test_a_linux_machine_with_every_source(tmp_path):
    root = intel_hwmon_tree(amd_hwmon_tree(rapl_tree(tmp_path)))
    collector = probe_power_sources("linux", sysfs=root, nvml=EnergyNvml(energy_mj=5))
    assert [r.backend for r in collector.reports if r.available] == ["powercap", "nvml", "amd-hwmon", "intel-hwmon"]
    sample = collector(1.0)
    assert [r.kind for r in sample.sources] == ["cpu", "gpu", "gpu", "gpu"]
    assert power_unavailable(collector) == {}


# -- doctor --------------------------------------------------------------------------------------------
def test_doctor_lists_each_power_source_and_why_one_is_unavailable(tmp_path):
    root = amd_hwmon_tree(tmp_path)
    (root / "class/powercap").mkdir(parents=True)
    env = {"LLMTOP_SYSFS_ROOT": str(root), "LLMTOP_PROC_ROOT": str(tmp_path / "proc")}
    result = llmtop("doctor", env=env)
    no_traceback(result)
    assert result.returncode == 0
    text = result.stdout
    assert "Power sources (energy per token):" in text
    assert f"  powercap      CPU not available: no RAPL package zone under {root / 'class' / 'powercap'}" in text
    assert "  amd-hwmon     GPU OK: reads AMD Radeon RX 7600 XT" in text
    assert "    AMD Radeon RX 7600 XT: hwmon power1_average (integrated), limit 190 W" in text
    assert "Energy: CPU n/a, GPU measured" in text
    report = json.loads(llmtop("doctor", "--json", env=env).stdout)
    assert report["energy_readable"] == {"cpu": False, "gpu": True}
    [amd] = [p for p in report["power_sources"] if p["backend"] == "amd-hwmon"]
    assert amd["sources"][0]["watts"] == 154.0
