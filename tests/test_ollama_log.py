"""The server-log parser on real excerpts, in every shape logs reach users, and on garbage."""

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.log_lines import LLAMA_SERVER_LOAD, REQUEST
from llmtop.collectors.ollama_log import OllamaLogParser, logfmt, parse_lines, size_bytes, split_lines
from llmtop.commands.parse_log_command import load_facts
from llmtop.measure.split_reason import split_reason

FIXTURES = Path(__file__).parent / "fixtures" / "ollama-logs"
EXCERPTS = sorted(p.stem for p in FIXTURES.glob("*.log"))


def read_lines(name: str) -> list[str]:
    return (FIXTURES / f"{name}.log").read_text(encoding="utf-8").splitlines()


def expected(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))["expected"]


def only_load(lines) -> dict:
    records = parse_lines(lines)
    assert len(records) == 1
    return load_facts(records[0])


def loads(lines) -> list[dict]:
    """Each load's readings as `llmtop parse-log --json` prints them."""
    return [load_facts(record) for record in parse_lines(lines)]


def assert_reads(found: dict | list[dict], want: dict | list[dict]) -> None:
    """`want` is one load's readings, or a list of them for a log of several loads."""
    if isinstance(want, list):
        assert isinstance(found, list) and len(found) == len(want)
        for one, wanted in zip(found, want, strict=True):
            assert_reads(one, wanted)
        return
    assert isinstance(found, dict)
    assert {key: found.get(key) for key in want} == want


def read(name: str, lines=None) -> dict | list[dict]:
    lines = read_lines(name) if lines is None else lines
    return loads(lines) if isinstance(expected(name), list) else only_load(lines)


@pytest.mark.parametrize("name", EXCERPTS)
def test_every_real_excerpt_gives_what_a_careful_reader_takes(name):
    assert_reads(read(name), expected(name))


def journald(line: str) -> str:
    return f"Nov 24 10:00:01 gpu-box ollama[1234]: {line}"


def kubectl(line: str) -> str:
    return f"[pod/ollama-0/ollama] {line}"


def docker_timestamps(line: str) -> str:
    return f"2024-09-27T14:58:29.785123456Z {line}"


def colour(line: str) -> str:
    return line.replace("level=INFO", "\x1b[32mlevel=INFO\x1b[0m").replace("llm_load", "\x1b[0mllm_load")


@pytest.mark.parametrize("shape", [journald, kubectl, docker_timestamps, colour])
@pytest.mark.parametrize("name", EXCERPTS)
def test_prefixes_and_colour_codes_do_not_matter(name, shape):
    assert_reads(read(name, [shape(line) for line in read_lines(name)]), expected(name))


@pytest.mark.parametrize("name", EXCERPTS)
def test_crlf_line_ends_read_the_same(name):
    text = (FIXTURES / f"{name}.log").read_bytes().replace(b"\n", b"\r\n")
    assert_reads(read(name, list(split_lines([text]))), expected(name))


def test_two_loads_one_after_the_other_carry_the_server_version():
    lines = [
        'time=2025-01-10T22:00:00.000+08:00 level=INFO source=routes.go:1238 msg="Listening on 127.0.0.1:11434 '
        '(version 0.5.7)"',
        *read_lines("02_windows_cuda_0_5_phi4_estimate"),
        *read_lines("07_macos_metal_0_4_granite_full_offload"),
    ]
    first, second = parse_lines(lines)
    assert (first.layers_offloaded, first.layers_total, first.library) == (29, 41, "cuda")
    assert (second.layers_offloaded, second.layers_total, second.library) == (37, 37, "metal")
    assert first.ollama_version == second.ollama_version == "0.5.7"


def test_interleaved_loads_are_told_apart_by_their_layer_counts():
    plan = (
        'time=2024-08-30T04:40:18.461Z level=INFO source=memory.go:309 msg="offload to cuda" layers.requested=-1 '
        'layers.model={total} layers.offload={offload} layers.split="" memory.required.full="6.2 GiB"'
    )
    lines = [
        plan.format(total=81, offload=27),
        plan.format(total=33, offload=33),
        "llm_load_tensors: offloaded 33/33 layers to GPU",
        "llm_load_tensors: offloaded 27/81 layers to GPU",
    ]
    big, small = parse_lines(lines)
    assert big.confirmed == (27, 81) and small.confirmed == (33, 33)
    assert not big.estimate_only and not small.estimate_only


def test_the_new_engine_load_request_gives_the_plan():
    lines = [
        'time=2026-06-03T14:31:30.274+02:00 level=INFO source=runner.go:1290 msg=load request="{Operation:commit '
        "LibraryPath:[/usr/lib/ollama/cuda_v12] Parallel:1 BatchSize:512 FlashAttention:false KvSize:4096 "
        'GPULayers:27[ID:GPU-3f1c Layers:27(0..26)] MultiUserCache:false UseMmap:true}"',
    ]
    load = only_load(lines)
    assert load["layers_offloaded"] == 27 and load["estimate_only"] is True and load["engine"] == "ollama"


def test_out_of_memory_and_an_error_quoted_before_the_load_are_kept():
    load = only_load(read_lines("03_linux_cpu_runner_exit127_quoted"))
    assert load["error"] == "llama runner process has terminated: exit status 127"
    oom = parse_lines(
        [
            *read_lines("02_windows_cuda_0_5_phi4_estimate"),
            "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 6963.00 MiB on device 0: cudaMalloc failed: "
            "out of memory",
        ]
    )
    assert "cudaMalloc failed: out of memory" in oom[0].error


def test_sizes_and_logfmt():
    assert size_bytes("16.2 GiB") == int(16.2 * 2**30)
    assert size_bytes("0 B") == 0
    assert size_bytes("448.0 MiB") == 448 * 2**20
    assert size_bytes("lots") is None
    assert logfmt('a=1 b="two words" c="esc \\"q\\"" d=') == {"a": "1", "b": "two words", "c": 'esc "q"', "d": ""}


def test_split_lines_across_chunks_long_lines_and_bad_bytes():
    chunks = [b"ab", b"c\nde", b"\xff\xfe\n", b"x" * 25, b"\nlast"]
    assert list(split_lines(chunks, max_line=10)) == ["abc", "de\ufffd\ufffd", "x" * 10, "x" * 10, "x" * 5, "last"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=300), max_size=40))
def test_fuzz_any_text_never_raises(lines):
    parser = OllamaLogParser()
    for line in lines:
        parser.feed(line)
    for record in parser.records:
        json.dumps(record.to_dict())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4000), st.integers(min_value=1, max_value=64))
def test_fuzz_binary_garbage_in_any_chunking(blob, chunk):
    pieces = [blob[i : i + chunk] for i in range(0, len(blob), chunk)]
    parse_lines(split_lines(pieces, max_line=512))


def test_fuzz_truncated_and_shuffled_real_lines_still_parse():
    rng = random.Random(20261124)
    corpus = [line for name in EXCERPTS for line in read_lines(name)]
    for _ in range(300):
        lines = [line[: rng.randint(0, len(line))] for line in rng.sample(corpus, k=rng.randint(1, 30))]
        for record in parse_lines(lines):
            assert record.layers_offloaded is None or record.layers_offloaded >= 0
            json.dumps(record.to_dict())


def test_an_enormous_line_is_cut_not_choked_on():
    huge = 'time=2024-01-01T00:00:00Z level=INFO source=x.go:1 msg="offload to cuda" layers.model=81 layers.offload=27 '
    huge += "memory.x=" + "9" * 5_000_000
    load = only_load([huge])
    assert (load["layers_offloaded"], load["layers_total"]) == (27, 81)


# -- llama.cpp's confirmation against Ollama's plan, in the formats each version prints --------------
PLAN_CUDA_29 = (
    'time=2025-01-28T07:32:59.510+03:00 level=INFO source=memory.go:356 msg="offload to cuda" layers.requested=-1 '
    'layers.model=29 layers.offload=29 layers.split="" memory.available="[10.8 GiB]" memory.gpu_overhead="0 B" '
    'memory.required.full="5.6 GiB" memory.required.partial="5.6 GiB" memory.required.kv="896.0 MiB"'
)
START_29 = (
    'time=2025-01-28T07:32:59.511+03:00 level=INFO source=server.go:376 msg="starting llama server" '
    'cmd="/usr/bin/ollama runner --model /var/lib/ollama/models/blobs/sha256-234e --ctx-size 8192 '
    '--batch-size 512 --n-gpu-layers 29 --threads 8 --parallel 4 --port 35651"'
)


def test_host_only_buffers_overrule_a_plan_that_put_every_layer_on_the_gpu():
    # A runner built without GPU support: Ollama planned 29 layers on CUDA (and `ollama ps` says
    # 100% GPU), llama.cpp names 28 repeating layers and puts every weight in CPU memory.
    lines = [
        PLAN_CUDA_29,
        START_29,
        "llm_load_print_meta: n_layer          = 28",
        "llm_load_tensors:   CPU_Mapped model buffer size =  8566.04 MiB",
        "llama_kv_cache_init:        CPU KV buffer size =   896.00 MiB",
    ]
    assert_reads(
        only_load(lines),
        {"layers_offloaded": 0, "layers_total": 29, "library": "cpu", "estimate_only": False},
    )


def test_a_cpu_only_load_counts_its_layers_from_llamacpps_description():
    # llama.cpp of 2026 on the CPU: `print_info:` lines, mapped and repacked weights, no "offloaded".
    lines = [
        START_29.replace("--n-gpu-layers 29 ", ""),
        "print_info: n_layer               = 18",
        "print_info: n_layer_all           = 18",
        "load_tensors: loading model tensors, this can take a while... (load_mode = mmap)",
        "load_tensors:   CPU_Mapped model buffer size =   235.16 MiB",
        "load_tensors:   CPU_REPACK model buffer size =    12.66 MiB",
    ]
    assert_reads(only_load(lines), {"layers_offloaded": 0, "layers_total": 19, "library": "cpu"})


def test_the_device_of_a_gpu_buffer_wins_over_the_plans_library():
    lines = [
        PLAN_CUDA_29.replace('"offload to cuda"', '"offload to rocm"').replace(
            "layers.offload=29", "layers.offload=20"
        ),
        START_29,
        "load_tensors: offloaded 12/29 layers to GPU",
        "load_tensors:      Vulkan0 model buffer size =  2100.00 MiB",
        "load_tensors:   CPU_Mapped model buffer size =  2500.00 MiB",
    ]
    assert_reads(only_load(lines), {"layers_offloaded": 12, "layers_total": 29, "library": "vulkan"})


@pytest.mark.parametrize(
    ("line", "library"),
    [
        ("load_backend: loaded CUDA backend from /usr/lib/ollama/cuda_v12/libggml-cuda.so", "cuda"),
        ("ggml_cuda_init: found 1 ROCm devices:", "rocm"),
        ("ggml_vulkan: Found 1 Vulkan devices:", "vulkan"),
        ("llama_model_load_from_file_impl: using device CUDA0 (NVIDIA GeForce RTX 4090) - 23000 MiB free", "cuda"),
        ("load_backend: loaded CPU backend from /usr/lib/ollama/libggml-cpu-alderlake.so", None),
    ],
)
def test_the_backend_is_read_from_any_line_that_names_it_even_before_the_load(line, library):
    start = START_29.replace("--n-gpu-layers 29", "--n-gpu-layers 20")
    before = only_load([line, start, "load_tensors: offloaded 20/29 layers to GPU"])
    during = only_load([start, line, "load_tensors: offloaded 20/29 layers to GPU"])
    assert before["library"] == during["library"] == library


def test_a_host_only_load_is_cpu_even_where_a_gpu_backend_was_loaded():
    lines = [
        "load_backend: loaded CUDA backend from /usr/lib/ollama/cuda_v12/libggml-cuda.so",
        START_29.replace("--n-gpu-layers 29", "--n-gpu-layers 0"),
        "load_tensors: offloaded 0/29 layers to GPU",
        "load_tensors:    CUDA_Host model buffer size =  4100.00 MiB",
    ]
    assert only_load(lines)["library"] == "cpu"


def test_llama_server_start_line_of_0_30_ends_the_load():
    lines = [START_29, "load_tensors: offloaded 29/29 layers to GPU"]
    lines.append(
        'time=2026-06-02T10:00:00.000Z level=INFO source=server.go:1332 msg="llama-server started in 15.37 seconds"'
    )
    assert only_load(lines)["runner_started_s"] == 15.37


# -- requests, from llama-server's print_timing lines (Ollama 0.30 on copies them into its log) --------


def test_a_requests_progress_and_timings_are_kept_with_its_load():
    (load,) = parse_lines(LLAMA_SERVER_LOAD + REQUEST)
    (request,) = load.requests
    assert (request.task, request.prompt_done, request.prompt_progress, request.prompt_live_tps) == (
        79,
        2560,
        0.35,
        776.33,
    )
    assert (request.decoded, request.tg_tps, request.tg_3s_tps) == (100, 3.44, None)
    assert (request.prompt_tokens, request.prompt_ms, request.prompt_printed_tps) == (7303, 10950.33, 666.92)
    assert (request.eval_tokens, request.eval_ms, request.eval_printed_tps) == (64, 20840.36, 3.07)
    assert request.eval_tps == pytest.approx(64 / 20.84036)  # Ollama's way: tokens over the time
    assert load.to_dict()["requests"] == [
        {
            "task": 79,
            "prompt_tokens": 7303,
            "prompt_ms": 10950.33,
            "prompt_tps": 666.92,
            "eval_tokens": 64,
            "eval_ms": 20840.36,
            "eval_tps": 3.07,
            "cancelled": False,
            "prompt_total": None,
            "prompt_cached": None,
        }
    ]
    assert load.runner_started_s == 15.37 and load.layers_offloaded == 15


def test_newer_builds_rate_over_the_last_3_s_and_a_cancelled_task():
    lines = LLAMA_SERVER_LOAD + [
        "slot print_timing: id  0 | task 5 | n_gen =     64, tg =  71.39 t/s, tg_3s =  70.12 t/s",
        "srv          stop: cancel task, id_task = 5",
    ]
    (request,) = parse_lines(lines)[0].requests
    assert (request.decoded, request.tg_tps, request.tg_3s_tps, request.cancelled) == (64, 71.39, 70.12, True)
    assert request.eval_tps is None  # its timing never came


def test_a_task_id_used_again_after_a_restart_is_a_new_request():
    done = REQUEST[2:4]
    again = ["slot print_timing: id  0 | task 79 | n_decoded =     10, tg =   9.00 t/s"]
    (load,) = parse_lines(LLAMA_SERVER_LOAD + done + again)
    assert [(r.eval_tokens, r.decoded) for r in load.requests] == [(64, None), (None, 10)]


def test_a_timing_line_cut_short_is_not_read_as_numbers():
    (load,) = parse_lines(LLAMA_SERVER_LOAD + ["slot print_timing: id  0 | task 7 |        eval time =   208"])
    assert [(r.task, r.eval_ms, r.eval_tokens) for r in load.requests] == [(7, None, None)]


def test_the_llama_server_start_line_of_0_30():
    (load,) = parse_lines([LLAMA_SERVER_LOAD[0].replace(" --log-verbosity", " -ngl 20 --log-verbosity")])
    assert (load.engine, load.requested_gpu_layers) == ("llama.cpp", 20)


# -- why the layers landed where they did: llama.cpp's fit step (common/fit.cpp's formats) ----------
FIT = [
    'time=2026-06-02T10:00:00.000Z level=INFO source=server.go:210 msg="vram-based default context" '
    'total_vram="6.0 GiB" default_num_ctx=32768',
    LLAMA_SERVER_LOAD[0].replace("-c 4096", "-c 32768"),
    "common_memory_breakdown_print: | memory breakdown [MiB]   | total   free    self   model   context   compute    "
    "unaccounted |",
    "common_memory_breakdown_print: |   - CUDA0 (RTX 2060)     |  5738 = 5141 + (8392 =  4155 +    4096 +     140) + "
    "-7795 |",
    "common_params_fit_impl: projected to use 8392 MiB of device memory vs. 5141 MiB of free device memory",
    "common_params_fit_impl: cannot meet free memory target of 1024 MiB, need to reduce device memory by 4274 MiB",
    "common_params_fit_impl: context size set by user to 32768 -> no change",
    "common_memory_breakdown_print: |   - CUDA0 (RTX 2060)     |  5738 = 5141 + ( 140 =     0 +       0 +     140) + "
    "457 |",
    "common_params_fit_impl:   - CUDA0 (NVIDIA GeForce RTX 2060): 15 layers ( 0 overflowing),   4089 MiB used,   "
    "1052 MiB free",
    "llama_context: n_ctx_seq             = 32768",
    "load_tensors: offloaded 15/33 layers to GPU",
]


def test_the_fit_step_says_why_15_of_33_layers_are_on_the_gpu():
    (load,) = parse_lines(FIT)
    assert load.to_dict()["fit"] == {
        "needed_mib": 8392,
        "free_mib": 5141,
        "reserve_mib": 1024,
        "model_mib": 4155,
        "context_mib": 4096,
        "compute_mib": 140,
    }
    assert (load.layers_offloaded, load.layers_overflowing, load.context, load.default_context) == (15, 0, 32768, 32768)
    assert split_reason(load) == (
        "15/33 layers on the GPU: all 33 need 8392 MiB (weights 4155, KV cache for 32768 tokens 4096, compute 140) "
        "and 5141 MiB were free, 1024 kept in reserve. Estimate: at num_ctx 8192 the KV cache takes about 1024 MiB"
    )


def test_overflowing_layers_of_a_mixture_of_experts_model():
    plan = (
        "common_params_fit_impl:   - CUDA0 (NVIDIA GeForce RTX 4090): 41 layers (14 overflowing),  22001 MiB used,"
        "    512 MiB free"
    )
    (load,) = parse_lines([LLAMA_SERVER_LOAD[0], plan, "load_tensors: offloaded 41/41 layers to GPU"])
    assert (load.layers_offloaded, load.layers_total, load.layers_overflowing) == (41, 41, 14)


def test_why_no_gpu_at_all():
    old_driver = (
        'time=2026-07-01T08:00:00.000Z level=WARN source=cuda_compat.go:65 msg="NVIDIA driver too old" '
        'device="NVIDIA GeForce RTX 3060 Laptop GPU" compute=8.6 driver=546 required_driver="550 or newer"'
    )
    cpu_only = (
        'time=2026-07-01T08:00:00.100Z level=INFO source=types.go:42 msg="inference compute" id=cpu library=cpu '
        'compute="" name=cpu description=cpu libdirs=ollama driver="" pci_id="" type="" total="31.2 GiB" '
        'available="29.0 GiB"'
    )
    start = LLAMA_SERVER_LOAD[0].replace("-c 4096 -np 1", "-c 4096 -np 1 -ngl 0").replace("-ngl 0", "")
    lines = [
        old_driver,
        cpu_only,
        start,
        "print_info: n_layer = 26",
        "load_tensors:          CPU model buffer size =  1500.00 MiB",
    ]
    (load,) = parse_lines(lines)
    assert (load.layers_offloaded, load.layers_total, load.library) == (0, 27, "cpu")
    assert split_reason(load) == (
        "0/27 layers on the GPU: the NVIDIA driver is too old for NVIDIA GeForce RTX 3060 Laptop GPU "
        "(driver 546; Ollama needs 550 or newer)"
    )
    (asked,) = parse_lines(
        [
            LLAMA_SERVER_LOAD[0].replace("-np 1", "-np 1 -ngl 0"),
            "print_info: n_layer = 26",
            "load_tensors:          CPU model buffer size =  1500.00 MiB",
        ]
    )
    assert split_reason(asked) == "0/27 layers on the GPU: num_gpu 0 asked for the CPU alone"


def test_the_older_formats_explain_with_ollamas_estimate():
    (load,) = parse_lines(read_lines("02_windows_cuda_0_5_phi4_estimate"))
    assert split_reason(load).startswith(
        f"{load.layers_offloaded}/{load.layers_total} layers on the GPU: Ollama's estimate for all of them is "
    )


def test_the_breakdown_llama_server_prints_as_it_exits_is_not_a_new_load():
    # Lines of upstream llama-server (the build tests/llama_server_build.py makes) on a CPU-only machine.
    host = [
        "common_memory_breakdown_print: | memory breakdown [MiB] | total   free    self   model   context   compute    "
        "unaccounted |",
        "common_memory_breakdown_print: |   - Host               |                  288 =   222 +      39 +      26"
        "                |",
        "common_memory_breakdown_print: |   - CPU_REPACK         |                   12 =    12 +       0 +       0"
        "                |",
    ]
    lines = [
        LLAMA_SERVER_LOAD[0].replace("-c 4096", "-c 8192"),
        *host,
        "common_params_fit_impl: projected to use 288 MiB of host memory vs. 24105 MiB of total host memory",
        "common_params_fit_impl: will leave 23817 >= 1024 MiB of system memory, no changes needed",
        "print_info: n_layer               = 18",
        "load_tensors:          CPU model buffer size =   222.51 MiB",
        "llama_context: n_ctx_seq             = 8192",
        LLAMA_SERVER_LOAD[-1],
        "srv    operator(): operator(): cleaning up before exit...",
        *host,
    ]
    (load,) = parse_lines(lines)
    assert (load.layers_offloaded, load.layers_total, load.context) == (0, 19, 8192)
    assert load.to_dict()["fit"] == {
        "needed_mib": 288,
        "free_mib": 24105,
        "reserve_mib": 1024,
        "model_mib": 222,
        "context_mib": 39,
        "compute_mib": 26,
    }


def test_a_gpu_library_that_failed_in_discovery_is_why_no_gpu():
    lines = [  # the first line verbatim from a user's log (2026-03, an AMD GPU whose ROCm runner crashed)
        'time=2026-03-11T12:00:16.598Z level=INFO source=runner.go:464 msg="failure during GPU discovery" '
        'OLLAMA_LIBRARY_PATH="[/usr/lib/ollama /usr/lib/ollama/rocm]" extra_envs="map[GGML_CUDA_INIT:1 '
        'ROCR_VISIBLE_DEVICES:0]" error="runner crashed"',
        'time=2026-03-11T12:00:16.598Z level=INFO source=types.go:60 msg="inference compute" id=cpu library=cpu '
        'compute="" name=cpu description=cpu libdirs=ollama driver="" pci_id="" type="" total="31.2 GiB" '
        'available="29.0 GiB"',
        LLAMA_SERVER_LOAD[0],
        "print_info: n_layer               = 26",
        "load_tensors:          CPU model buffer size =  1500.00 MiB",
    ]
    (load,) = parse_lines(lines)
    assert (
        split_reason(load) == "0/27 layers on the GPU: GPU discovery failed with /usr/lib/ollama/rocm (runner crashed)"
    )


def test_a_requests_timing_goes_to_the_server_that_had_it_under_way_when_another_model_loaded():
    first = LLAMA_SERVER_LOAD
    second = [
        LLAMA_SERVER_LOAD[0].replace("sha256-6a0", "sha256-bge").replace("40123", "40999"),
        "print_info: n_layer               = 24",
        "load_tensors:          CPU model buffer size =  1097.52 MiB",
        LLAMA_SERVER_LOAD[-1],
    ]
    lines = [*first, REQUEST[0], *second, *REQUEST[1:]]  # the second model loads mid-prompt of task 79
    chat, embedding = parse_lines(lines)
    assert [r.task for r in chat.requests] == [79] and chat.requests[0].eval_tokens == 64
    assert embedding.requests == []


# -- what each load ran with, and its compute buffers (server settings as modes) -----------------------
@pytest.mark.parametrize(
    ("name", "settings"),
    [
        # 0.4 on a Mac: the runner's `--parallel 4`, llama.cpp's `flash_attn = 0` and `K (f16)` sizes
        ("07_macos_metal_0_4_granite_full_offload", [{"parallel": "4", "flash_attention": "off", "kv_cache": "f16"}]),
        # 0.33: `-np 2`, llama-server's `--flash-attn auto` with nothing after it to say what it chose
        (
            "09_docker_cpu_0_33_driver_too_old",
            [
                {"parallel": "2", "flash_attention": "auto", "kv_cache": "f16"},
                {"parallel": "1", "flash_attention": "auto"},
            ],
        ),
        # 0.24: llama.cpp's runner, then Ollama's engine, whose load request says Parallel:1 FlashAttention:Enabled
        (
            "10_linux_cpu_real_0_24_two_engines",
            [{"parallel": "1", "flash_attention": "on", "kv_cache": "f16"}, {"parallel": "1", "flash_attention": "on"}],
        ),
    ],
)
def test_each_load_says_what_it_ran_with_as_the_log_tells_it(name, settings):
    assert [load["settings"] for load in loads(read_lines(name))] == settings


def test_the_kv_cache_type_and_flash_attention_come_from_what_llamacpp_did_not_from_the_request():
    """0.34: `--flash-attn auto` on the command line, then llama.cpp's own word (`Flash Attention enabled`);
    `--cache-type-k q8_0`, then the cache's own `K (q8_0)`; a bare `--flash-attn` is 0.5's `on`."""
    name = "11_linux_cpu_real_0_34_three_server_settings"
    second = loads(read_lines(name))[1]
    assert second["settings"]["kv_cache"] == "q8_0" and second["settings"]["flash_attention"] == "on"
    start = (
        'time=2026-06-02T10:00:00.000Z level=INFO source=server.go:376 msg="starting llama server" '
        'cmd="/usr/bin/ollama runner --model /m --ctx-size 8192 --batch-size 512 --threads 8 --flash-attn '
        '--kv-cache-type q4_0 --parallel 4 --port 40615"'
    )
    assert only_load([start])["settings"] == {"parallel": "4", "kv_cache": "q4_0", "flash_attention": "on"}
    mixed = only_load([start, "llama_kv_cache: size =  480.00 MiB (  4096 cells,  80 layers,  1/1 seqs), K (q8_0):  "
                              "240.00 MiB, V (f16):  240.00 MiB"])  # fmt: skip
    assert mixed["settings"]["kv_cache"] == "K q8_0, V f16"
    moe = only_load([START_LLAMA_SERVER.replace("-np 1", "-np 1 --n-cpu-moe 12")])
    assert moe["settings"]["cpu_moe"] == "12"
    assert only_load([START_LLAMA_SERVER.replace("-np 1", "-np 1 --cpu-moe")])["settings"]["cpu_moe"] == "all"


def test_compute_buffers_add_up_across_a_loads_contexts_but_the_engine_reports_its_graph_once_settled():
    """llama-server's model and its vision projector each reserve a compute buffer (both count);
    Ollama's engine logs its graph twice as it settles, and the last figure is the one that stays."""
    (first, _) = loads(read_lines("09_docker_cpu_0_33_driver_too_old"))
    assert first["compute"] == "168.03 MiB on CPU, 64.49 MiB on CPU"
    assert (
        only_load(read_lines("01_windows_rocm_newengine_gemma3_27b"))["compute"] == "1.1 GiB on ROCm0, 10.5 MiB on CPU"
    )


START_LLAMA_SERVER = LLAMA_SERVER_LOAD[0]


# -- a load the scheduler gives up, retried at once on a new runner, in each era's words ---------------
BLOB = "/var/lib/ollama/models/blobs/sha256-4824460d29f2058aaf6e1118a63a7a197a09bed509f0e7d4e2efb1ee273b447d"
STAMP = "time=2026-01-22T09:22:05.012+09:00"
FAILED_AND_RETRIED = {
    "0.5 (the llama.cpp runner)": [
        f'{STAMP} level=INFO source=server.go:376 msg="starting llama server" cmd="/usr/bin/ollama runner '
        f'--model {BLOB} --ctx-size 8192 --batch-size 512 --n-gpu-layers 27 --threads 8 --parallel 4 --port 35651"',
        f'{STAMP} level=ERROR source=sched.go:455 msg="error loading llama server" '
        'error="llama runner process has terminated: cudaMalloc failed: out of memory"',
        f'{STAMP} level=INFO source=server.go:376 msg="starting llama server" cmd="/usr/bin/ollama runner '
        f'--model {BLOB} --ctx-size 8192 --batch-size 512 --n-gpu-layers 27 --threads 8 --parallel 4 --port 35677"',
        "llm_load_tensors: offloaded 27/81 layers to GPU",
        "llm_load_tensors:      CUDA0 model buffer size = 14210.42 MiB",
        f'{STAMP} level=INFO source=server.go:594 msg="llama runner started in 21.30 seconds"',
    ],
    "0.6 to 0.24 (Ollama's engine)": [
        f'{STAMP} level=INFO source=server.go:433 msg="starting runner" cmd="/usr/bin/ollama runner --ollama-engine '
        f'--model {BLOB} --port 35651"',
        f'{STAMP} level=INFO source=sched.go:511 msg="Load failed" model={BLOB} error="context canceled"',
        f'{STAMP} level=INFO source=server.go:433 msg="starting runner" cmd="/usr/bin/ollama runner --ollama-engine '
        f'--model {BLOB} --port 35677"',
        f'{STAMP} level=INFO source=runner.go:1284 msg=load request="{{Operation:commit LoraPath:[] Parallel:1 '
        "BatchSize:512 FlashAttention:Auto KvSize:8192 KvCacheType: NumThreads:8 GPULayers:27[ID:GPU-a1 "
        'Layers:27(54..80)] MultiUserCache:false ProjectorPath: MainGPU:0 UseMmap:false}}"',
        f'{STAMP} level=INFO source=ggml.go:482 msg="offloaded 27/81 layers to GPU"',
        f'{STAMP} level=INFO source=device.go:245 msg="model weights" device=CUDA0 size="13.9 GiB"',
        f'{STAMP} level=INFO source=server.go:1432 msg="llama runner started in 21.30 seconds"',
    ],
    "0.30 on (llama-server)": [
        f'{STAMP} level=INFO source=llama_server.go:433 msg="starting llama-server" cmd="/usr/lib/ollama/llama-server '
        f'--model {BLOB} --port 35651 --host 127.0.0.1 --no-webui --offline -c 8192 -np 1 --log-verbosity 4"',
        f'{STAMP} level=INFO source=sched.go:641 msg="Load failed" model={BLOB} '
        'error="llama-server process has terminated: exit status 1: failed to allocate CUDA0 buffer"',
        f'{STAMP} level=INFO source=llama_server.go:433 msg="starting llama-server" cmd="/usr/lib/ollama/llama-server '
        f'--model {BLOB} --port 35677 --host 127.0.0.1 --no-webui --offline -c 8192 -np 1 --log-verbosity 4"',
        "load_tensors: offloaded 27/81 layers to GPU",
        "load_tensors:        CUDA0 model buffer size = 14210.42 MiB",
        f'{STAMP} level=INFO source=llama_server.go:1362 msg="llama-server started in 21.30 seconds"',
    ],
}


@pytest.mark.parametrize("era", list(FAILED_AND_RETRIED))
def test_a_load_given_up_closes_its_runner_and_the_retry_keeps_its_own_lines(era):
    failed, retried = loads(FAILED_AND_RETRIED[era])
    assert failed["error"] is not None and failed["layers_offloaded"] is None and failed["runner_started_s"] is None
    assert failed["gpu_weights"] is None
    assert (retried["layers_offloaded"], retried["layers_total"], retried["library"]) == (27, 81, "cuda")
    assert retried["runner_started_s"] == 21.3 and retried["error"] is None and not retried["estimate_only"]


def test_a_load_given_up_closes_the_load_of_the_model_it_names_not_another_one_under_way():
    other = BLOB.replace("4824", "9999")
    lines = FAILED_AND_RETRIED["0.6 to 0.24 (Ollama's engine)"]
    started_other = lines[0].replace(BLOB, other).replace("35651", "35999")
    first, second = loads([started_other, lines[0], lines[1].replace(BLOB, other), *lines[4:]])
    assert first["error"] == "Load failed: context canceled" and first["layers_offloaded"] is None
    assert (second["layers_offloaded"], second["layers_total"], second["error"]) == (27, 81, None)


def test_the_engines_buffers_on_the_gpu_are_what_api_ps_said_was_on_it():
    """Fixture 13's three loads on the software GPU, and /api/ps's size_vram after each, as real Ollama
    0.34.4 answered in the same session: the buffers llama.cpp logged on Vulkan0 are that figure to the
    byte (so with no counter to read, they are the GPU's memory, and beside a counter, a check on it)."""
    from llmtop.measure.load_parts import memory_parts

    on_gpu = [sum(p.bytes for p in memory_parts(load) if p.on_gpu) for load in parse_lines(read_lines(FIXTURE_13))]
    assert on_gpu == [56402902, 1073144135, 98870231]


FIXTURE_13 = "13_linux_software_gpu_real_0_34_vulkan_split"
