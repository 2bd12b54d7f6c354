"""The server-log parser on real excerpts, in every shape logs reach users, and on garbage."""

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmtop.collectors.ollama_log import OllamaLogParser, logfmt, parse_lines, size_bytes, split_lines

FIXTURES = Path(__file__).parent / "fixtures" / "ollama-logs"
EXCERPTS = sorted(p.stem for p in FIXTURES.glob("*.log"))


def read_lines(name: str) -> list[str]:
    return (FIXTURES / f"{name}.log").read_text(encoding="utf-8").splitlines()


def expected(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))["expected"]


def only_load(lines) -> dict:
    records = parse_lines(lines)
    assert len(records) == 1
    return records[0].to_dict()


def assert_reads(found: dict, want: dict) -> None:
    assert {key: found.get(key) for key in want} == want


@pytest.mark.parametrize("name", EXCERPTS)
def test_every_real_excerpt_gives_what_a_careful_reader_takes(name):
    assert_reads(only_load(read_lines(name)), expected(name))


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
    assert_reads(only_load([shape(line) for line in read_lines(name)]), expected(name))


@pytest.mark.parametrize("name", EXCERPTS)
def test_crlf_line_ends_read_the_same(name):
    text = (FIXTURES / f"{name}.log").read_bytes().replace(b"\n", b"\r\n")
    assert_reads(only_load(split_lines([text])), expected(name))


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
