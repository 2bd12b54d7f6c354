"""VRAM where no counter reads the GPU (a Vulkan-only GPU, a software one): the engine's own buffers on
it from the server log, else /api/ps size_vram, each marked with its source; beside a counter, both
kept as a check on it. Pure: rows, log lines and states."""

from __future__ import annotations

from dataclasses import replace

from llmtop.collectors.ollama_log import parse_lines
from llmtop.measure.load_parts import buffers_text
from llmtop.measure.screen_states import engine_vram
from llmtop.measure.summary import VRAM_FROM_COUNTER, VRAM_FROM_LOG, VRAM_FROM_PS, vram_cross_check, vram_source
from llmtop.tables import RUN_COLUMNS
from summary_rows import row

# Real Ollama 0.34.4 on Mesa's lavapipe (fixture 13's second load): what llama-server printed of its devices
# and its buffers, in the order it printed them.
VULKAN_LOAD = [
    'time=2026-12-07T14:24:56.400Z level=INFO source=llama_server.go:436 msg="starting llama-server" '
    'cmd="/usr/lib/ollama/llama-server --model /m/blobs/sha256-8f0a --port 41233 -c 32768 -np 1"',
    "cmn  common_param:   - Vulkan0 : llvmpipe (LLVM 15.0.6, 256 bits) (2048 MiB, 2048 MiB free)",
    "cmn  common_param:   - CPU     : AMD EPYC (24105 MiB, 24105 MiB free)",
    "load_tensors: offloaded 52/81 layers to GPU",
    "load_tensors:   CPU_Mapped model buffer size =    90.08 MiB",
    "load_tensors:      Vulkan0 model buffer size =   156.15 MiB",
    "llama_kv_cache:        CPU KV buffer size =   464.00 MiB",
    "llama_kv_cache:    Vulkan0 KV buffer size =   816.00 MiB",
    "sched_reserve:    Vulkan0 compute buffer size =    51.28 MiB",
    "sched_reserve: Vulkan_Host compute buffer size =    33.51 MiB",
]
ON_VULKAN = int((156.15 + 816.00 + 51.28) * 2**20)


def cell(name: str, r) -> str:
    return next(c for c in RUN_COLUMNS if c.header == name).text(r)


def test_a_counter_wins_then_the_engines_buffers_then_api_ps():
    assert vram_source(15 * 10**9, ON_VULKAN, 10**9) == VRAM_FROM_COUNTER
    assert vram_source(None, ON_VULKAN, 10**9) == VRAM_FROM_LOG
    assert vram_source(None, None, 10**9) == VRAM_FROM_PS
    assert vram_source(None, None, 0) is None  # /api/ps's 0 B on the GPU is a CPU-only load, not a reading


def test_the_vram_cell_says_where_its_figure_comes_from():
    base = row("m", "auto")
    from_log = replace(base, vram_engine_bytes=ON_VULKAN, vram_source=VRAM_FROM_LOG)
    from_ps = replace(base, ps_size_vram_bytes=1_073_144_135, vram_source=VRAM_FROM_PS)
    counted = replace(base, vram_delta_bytes=15_200_000_000, vram_engine_bytes=ON_VULKAN, vram_source=VRAM_FROM_COUNTER)
    assert [cell("VRAM", r) for r in (from_log, from_ps, counted, base)] == [
        "1.1GB (log)",
        "1.1GB (ps)",
        "15.2GB",
        "n/a",
    ]


def test_beside_a_counter_the_engines_buffers_and_api_ps_are_a_check_on_it():
    assert vram_cross_check(15_200_000_000, 15_000_000_000, 15_100_000_000) == (
        "beside the counter's 15.2 GB: the engine's buffers on the GPU 15.0 GB (server log), /api/ps size_vram 15.1 GB"
    )
    assert vram_cross_check(None, ON_VULKAN, 10**9) is None and vram_cross_check(10**9, None, 0) is None


def test_the_gpu_cell_names_the_backend_and_the_device():
    base = row("m", "auto")
    assert cell("GPU", replace(base, library="vulkan", gpus=("llvmpipe (LLVM 15.0.6, 256 bits)",))) == (
        "vulkan: llvmpipe (LLVM 15.0.6, 256 bits)"
    )
    assert cell("GPU", replace(base, library="cpu", gpus=("llvmpipe (LLVM 15.0.6, 256 bits)",))) == "cpu"
    assert cell("GPU", base) == "n/a"


def test_the_screens_vram_gauge_is_the_engines_buffers_against_the_devices_memory():
    (load,) = parse_lines(VULKAN_LOAD)
    gauge = engine_vram(load)
    assert gauge is not None and (gauge.used, gauge.total) == (ON_VULKAN, 2048 * 2**20)
    assert gauge.note == "buffers (log) · llvmpipe (LLVM 15.0.6, 256 bits)"
    (cpu_only,) = parse_lines([VULKAN_LOAD[0], "load_tensors:   CPU_Mapped model buffer size =   246.00 MiB"])
    assert engine_vram(cpu_only) is None  # no buffer on a GPU: n/a with its reason, never a made-up 0


def test_where_a_loads_memory_went_device_by_device():
    (load,) = parse_lines(VULKAN_LOAD)
    assert buffers_text(load) == (
        "on Vulkan0 (llvmpipe (LLVM 15.0.6, 256 bits)): weights 156 MiB, KV cache 816 MiB, compute 51 MiB; "
        "in system memory: weights 90 MiB, KV cache 464 MiB, compute 34 MiB"
    )


def test_a_counter_that_read_the_gpu_keeps_its_n_a_where_its_baseline_was_not_settled():
    assert vram_source(None, ON_VULKAN, 10**9, counter_read=True) is None
