"""The server's own settings, end to end on a GPU too small for the model: `llmtop --serve` starts the
stand-in `ollama` (tests/stand_in_ollama.py) playing Ollama 0.34 on the spilling machine (a 16 GB
Radeon, tests/spilling_machine.py), restarts it with each mode's settings, and reads the GPU through
the real amdgpu sysfs reader. What real Ollama shows of the same modes without a GPU is held in
tests/test_real_ollama_modes.py; here is what only a GPU shows: the spill each setting causes or
saves, and the speed it costs or buys."""

from __future__ import annotations

import html
import json
import sys

import pytest

from helpers.cli import llmtop, no_traceback, stand_in_path
from ollama_double import LLAMA33, TANUKI
from spilling_machine import Shape, SpillingMachine

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="a shell-script stand-in")


@pytest.fixture
def too_small_gpu(tmp_path):
    """The environment that runs llmtop --serve against the stand-in Ollama 0.34.4 on the article's machine."""
    sysfs = tmp_path / "sys"
    SpillingMachine().install(sysfs)
    return {
        "PATH": stand_in_path(tmp_path),
        "STAND_IN_VERSION": "0.34.4",
        "STAND_IN_SYSFS": str(sysfs),
        "LLMTOP_SYSFS_ROOT": str(sysfs),
    }


def part(run: dict, name: str, on_gpu: bool | None = None) -> int:
    return sum(
        p["bytes"]
        for p in run["memory_parts"]
        if p["part"] == name and (on_gpu is None or (p["device"] != "system memory") == on_gpu)
    )


def test_a_q8_0_kv_cache_shrinks_the_spill_and_two_slots_grow_it(too_small_gpu, tmp_path):
    """Three settings of the server on the 70B that spills (27 of 81 layers, Ollama's choice): the KV
    cache in q8_0 is about half of f16's and the spill into shared GPU memory shrinks by what it saved;
    two slots double the KV cache, and the spill grows by as much."""
    out = tmp_path / "s.json"
    result = llmtop("llama3.3", "--serve", "--modes", "auto,auto:kv=q8_0,auto:np=2", "--headless", "--no-record",
                    "--export", str(out), env=too_small_gpu, timeout=120)  # fmt: skip
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    f16, q8, two = json.loads(out.read_text(encoding="utf-8"))["runs"]
    assert (f16["settings"]["kv_cache"], q8["settings"]["kv_cache"], two["settings"]["parallel"]) == (
        "f16",
        "q8_0",
        "2",
    )
    assert part(q8, "kv_cache") / part(f16, "kv_cache") == pytest.approx(34 / 64, rel=0.01)
    assert part(two, "kv_cache") == pytest.approx(2 * part(f16, "kv_cache"), rel=0.01)  # a cache for each slot
    machine, size, layers = SpillingMachine(), LLAMA33["size"], LLAMA33["block_count"] + 1
    kv_f16 = 0.3125 * 4096 * 2**20  # the 70B's KV cache at Ollama 0.34's 4096 tokens, in f16
    for run, extra in ((f16, 0), (q8, kv_f16 * (34 / 64 - 1)), (two, kv_f16)):
        _, spilled = machine.placement(size, layers, 27, Shape(kv_extra=int(extra)))
        assert run["shared_delta_bytes"] == pytest.approx(spilled, rel=0.01)  # read from the amdgpu counters
    assert q8["shared_delta_bytes"] < f16["shared_delta_bytes"] < two["shared_delta_bytes"]
    # What the GPU holds, by part, adds up to what its counters show (dedicated and shared).
    for run in (f16, q8, two):
        on_gpu = sum(p["bytes"] for p in run["memory_parts"] if p["device"] == "ROCm0")
        assert on_gpu == pytest.approx(run["vram_delta_bytes"] + run["shared_delta_bytes"], rel=0.01)
    assert "| auto, KV q8_0 |" in result.stdout and "| auto, 2 slots |" in result.stdout


def test_the_experts_sweep_on_a_too_small_gpu_finds_where_the_spill_stops_and_says_what_to_set(too_small_gpu, tmp_path):
    """`--serve --sweep moe=0,8,20,32` on the MoE model: every layer asked for the GPU, the experts of N
    layers in system memory. Few layers of experts on the CPU spill gigabytes into shared memory; the
    fastest point is where the spill stops; more layers of experts move reading to the slower CPU."""
    out, report = tmp_path / "sweep.json", tmp_path / "sweep.html"
    result = llmtop("tanuki-8x8b", "--serve", "--sweep", "moe=0,8,20,32", "--headless", "--no-record",
                    "--export", str(out), "--report", str(report), env=too_small_gpu, timeout=180)  # fmt: skip
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    runs, sweep = data["runs"], data["sweep"]
    assert [r["mode"] for r in runs] == ["auto", "gpu=33:moe=0", "gpu=33:moe=8", "gpu=33:moe=20", "gpu=33:moe=32"]
    assert [r["settings"].get("cpu_moe") for r in runs] == [None, None, "8", "20", "all"]  # from llama.cpp's lines
    machine, size, total = SpillingMachine(), TANUKI["size"], TANUKI["block_count"] + 1
    share = Shape(expert_share=0.95, experts_read=0.25)
    for run in runs[1:]:
        kept = int(run["mode"].rsplit("=", 1)[1])
        shape = Shape(share.expert_share, share.experts_read, kept)
        _, spilled = machine.placement(size, total, total, shape)
        assert run["shared_delta_bytes"] == pytest.approx(spilled, rel=0.01, abs=1e6)
        assert part(run, "experts", on_gpu=False) == pytest.approx(
            machine.experts_kept(size, total, total, shape), rel=0.01
        )
    assert runs[1]["shared_delta_bytes"] > 10e9 and runs[3]["shared_delta_bytes"] == 0  # 14.5 GB spilled; none
    best = machine.best_moe(size, total, share, [0, 8, 20, 32])
    assert best == 20 and sweep["best"] == f"gpu=33:moe={best}" == sweep["recommended"]
    assert sweep["conclusion"].startswith(f"moe={best} gives ")
    assert f"LLAMA_ARG_N_CPU_MOE={best} ollama serve" in sweep["conclusion"]
    assert sweep["modelfile"] == "FROM tanuki-8x8b\nPARAMETER num_gpu 33\n"
    page = html.unescape(report.read_text(encoding="utf-8"))
    assert sweep["conclusion"] in page  # the sentence, with the environment to set
    assert 'aria-labelledby="memory-by-part' in page or "Memory by part" in page  # the chart of the parts
    assert "tanuki-8x8b gpu=33, experts of 20 layers on CPU (system memory)" in page
    assert "experts" in page.split("Memory by part", 1)[1]  # the key names the experts' part
