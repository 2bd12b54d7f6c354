"""AMD and Intel on Linux from recorded sysfs and fdinfo trees; amdsmi's import quirk."""

import json
import os
import sys
from types import SimpleNamespace

import pytest

from gpu_trees import AMD_CARD, GiB, proc_tree, sysfs_tree
from helpers.cli import llmtop, no_traceback
from llmtop.collectors.drm_fdinfo import fdinfo_bytes, process_gpu_memory
from llmtop.collectors.gpu_linux_drm import (
    FDINFO_DENIED,
    AmdSmiReader,
    AmdSysfsReader,
    IntelFdinfoReader,
    load_amdsmi,
)

OLLAMA = frozenset({4242, 4243})


def test_amd_card_reads_exactly_what_the_files_say(tmp_path):
    reader = AmdSysfsReader(sysfs_tree(tmp_path / "sys"), proc_tree(tmp_path / "proc"), lambda: OLLAMA)
    [gpu] = reader.read()
    assert gpu.name == "AMD Radeon RX 7600 XT" and gpu.key == "amd:card1" and gpu.bus_id == "0000:03:00.0"
    assert (gpu.dedicated_used, gpu.dedicated_total) == (15932489728, 17163091968)
    assert (gpu.shared_used, gpu.shared_total) == (2147483648, 33554432000)
    assert gpu.utilization_pct == 97.0
    # Client 17 counted once (two fds), client 18 added; pid 999 is not Ollama's.
    assert gpu.ollama_dedicated == 14 * GiB + 512 * 1024 * 1024
    assert gpu.ollama_shared == 1536 * 1024 * 1024


def test_no_ollama_process_and_unreadable_fdinfo_say_why(tmp_path, monkeypatch):
    sysfs = sysfs_tree(tmp_path / "sys")
    [gpu] = AmdSysfsReader(sysfs, proc_tree(tmp_path / "proc")).read()
    assert gpu.ollama_dedicated is None and "no Ollama process" in gpu.reason("ollama")
    assert gpu.dedicated_used == 15932489728  # device-wide figures stay

    def denied(path):
        raise PermissionError(13, "Permission denied")

    reader = AmdSysfsReader(sysfs, tmp_path / "proc", lambda: OLLAMA)
    monkeypatch.setattr("llmtop.collectors.drm_fdinfo.os.listdir", denied)  # as for the `ollama` user's /proc
    [gpu] = reader.read()
    assert gpu.ollama_dedicated is None and gpu.reason("ollama") == FDINFO_DENIED
    assert gpu.dedicated_used == 15932489728


def test_missing_files_are_reasons_not_numbers(tmp_path):
    card = {k: v for k, v in AMD_CARD.items() if k not in ("mem_info_gtt_used", "gpu_busy_percent", "product_name")}
    [gpu] = AmdSysfsReader(sysfs_tree(tmp_path / "sys", card), tmp_path / "proc").read()
    assert gpu.shared_used is None and "mem_info_gtt_used" in gpu.reason("shared")
    assert gpu.utilization_pct is None
    assert gpu.name == "AMD GPU card1 (0x7480)"


def test_no_amd_card(tmp_path):
    (tmp_path / "class" / "drm").mkdir(parents=True)
    with pytest.raises(LookupError, match="no AMD GPU"):
        AmdSysfsReader(tmp_path, tmp_path)


def test_intel_shows_the_ollama_share_from_fdinfo(tmp_path):
    reader = IntelFdinfoReader(sysfs_tree(tmp_path / "sys", intel=True), proc_tree(tmp_path / "proc"), lambda: OLLAMA)
    [gpu] = reader.read()
    assert gpu.key == "intel:card0" and gpu.dedicated_used is None
    assert "publish no device-wide memory use" in gpu.reason("dedicated")
    assert (gpu.ollama_dedicated, gpu.ollama_shared) == (0, 2048 * 1024)


def test_fdinfo_units():
    assert fdinfo_bytes("8123456 KiB") == 8123456 * 1024
    assert fdinfo_bytes("1 MiB") == 1024**2
    assert fdinfo_bytes("512") == 512
    assert fdinfo_bytes("lots") is None


def test_fdinfo_of_a_vanished_process_is_skipped(tmp_path):
    usage = process_gpu_memory(proc_tree(tmp_path), {4243, 31337}, ("amdgpu",), "0000:03:00.0")
    assert usage.clients == 2 and not usage.denied


def test_amdsmi_import_without_rocm_is_quiet_and_explained(capsys):
    with pytest.raises(LookupError) as info:
        load_amdsmi()
    assert "libamd_smi" in str(info.value)
    assert capsys.readouterr().out == ""  # amdsmi's own print was captured


def fake_amdsmi():
    memory = SimpleNamespace(VRAM=0, VIS_VRAM=1, GTT=2)
    usage = {0: 15 * GiB, 2: 2 * GiB}
    total = {0: 16 * GiB, 2: 31 * GiB}
    return SimpleNamespace(
        AmdSmiMemoryType=memory,
        amdsmi_init=lambda: None,
        amdsmi_shut_down=lambda: None,
        amdsmi_get_processor_handles=lambda: ["h0"],
        amdsmi_get_gpu_asic_info=lambda h: {"market_name": "AMD Radeon RX 7600 XT"},
        amdsmi_get_gpu_memory_usage=lambda h, kind: usage[kind],
        amdsmi_get_gpu_memory_total=lambda h, kind: total[kind],
        amdsmi_get_gpu_activity=lambda h: {"gfx_activity": 88, "umc_activity": 10, "mm_activity": "N/A"},
        amdsmi_get_gpu_device_bdf=lambda h: "0000:03:00.0",
    )


def test_amdsmi_reader_and_merge_with_sysfs(tmp_path):
    from llmtop.collectors.gpu_collector import merge_readings

    [smi] = AmdSmiReader(fake_amdsmi()).read()
    assert (smi.dedicated_used, smi.shared_total, smi.utilization_pct) == (15 * GiB, 31 * GiB, 88.0)
    [sysfs] = AmdSysfsReader(sysfs_tree(tmp_path / "sys"), proc_tree(tmp_path / "proc"), lambda: OLLAMA).read()
    [merged] = merge_readings([smi, sysfs])
    assert merged.backend == "amdsmi+amd-sysfs"
    assert merged.dedicated_used == 15 * GiB  # amdsmi's figure wins
    assert merged.ollama_dedicated == sysfs.ollama_dedicated  # fdinfo's share fills the gap


@pytest.mark.skipif(sys.platform != "linux", reason="the Linux readers")
def test_doctor_json_on_an_amd_tree(tmp_path):
    env = {"LLMTOP_SYSFS_ROOT": str(sysfs_tree(tmp_path / "sys")), "LLMTOP_PROC_ROOT": str(tmp_path / "proc")}
    os.makedirs(tmp_path / "proc", exist_ok=True)
    result = llmtop("doctor", "--json", env=env)
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    [amd] = [b for b in report["gpu_backends"] if b["backend"] == "amd-sysfs"]
    assert amd["available"] is True
    [gpu] = amd["gpus"]
    assert gpu["dedicated_used"] == int(AMD_CARD["mem_info_vram_used"])
    assert gpu["dedicated_total"] == int(AMD_CARD["mem_info_vram_total"])
    assert gpu["shared_used"] == int(AMD_CARD["mem_info_gtt_used"])
    assert gpu["shared_total"] == int(AMD_CARD["mem_info_gtt_total"])
    assert report["gpu_readable"] is True
    text = llmtop("doctor", env=env).stdout
    assert "amd-sysfs     OK: reads AMD Radeon RX 7600 XT" in text
    assert "15.9 GB / 17.2 GB" in text and "2.1 GB / 33.6 GB" in text
