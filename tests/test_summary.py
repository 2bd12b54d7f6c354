"""The summary row: deltas over the baseline, env from /api/ps, rates from the final chunk."""

import dataclasses
import json

import pytest

from llmtop.collectors.ollama_processes import OllamaProcessSample
from llmtop.collectors.system_memory import SystemMemorySample
from llmtop.collectors.token_timing import ServerTiming, TokenClock
from llmtop.figures import STABLE_KEYS
from llmtop.measure.summary import PsReading, RunRecord, env_from_vram, ram_with_mapped, steady_and_peak, summarize
from llmtop.measure.summary_row import SummaryRow
from llmtop.ollama.model_facts import ModelFacts

GB = 10**9
FACTS = ModelFacts("llama3.3", "70.6B", "Q4_K_M", "llama", 80, 42_520_413_916)


def ram(t, used, total=64 * GB):
    return SystemMemorySample(t, total, total - used, 0, 0)


def rss(t, value):
    return OllamaProcessSample(t, value, None, 1, ())


@pytest.mark.parametrize(
    ("size", "vram", "env"),
    [(44 * GB, 0, "CPU"), (44 * GB, 15 * GB, "CPU+GPU"), (44 * GB, 44 * GB, "GPU"), (10, 11, "GPU")],
)
def test_env_follows_ollama_ps(size, vram, env):
    assert env_from_vram(size, vram) == env


def test_steady_is_the_median_during_generation_and_peak_the_highest():
    assert steady_and_peak([50, 52, 51], [10, 30, 50, 52, 51, 60], 8) == (43, 52)
    assert steady_and_peak([], [10, 30], 8) == (22, 22)  # too short to sample generation
    assert steady_and_peak([], [], 8) == (None, None)
    assert steady_and_peak([1], [1], None) == (None, None)


def record(complete=True, with_server=True):
    clock = TokenClock(request_at=10.0)
    for i in range(31):
        clock.token(12.0 + i * 0.1)  # first token at 12.0, last at 15.0
    final = {
        "done": True,
        "done_reason": "stop",
        "eval_count": 31,
        "eval_duration": 3_100_000_000,
        "prompt_eval_count": 26,
        "prompt_eval_duration": 520_000_000,
        "load_duration": 1_800_000_000,
    }
    return RunRecord(
        facts=FACTS,
        mode="auto",
        host="http://127.0.0.1:11434",
        ollama_version="0.5.11",
        started_at="2026-11-24T10:00:00+00:00",
        clock=clock,
        baseline_memory=ram(9.5, 20 * GB),
        baseline_process=rss(9.5, 1 * GB),
        memory=[
            ram(8.0, 5 * GB),
            ram(11.0, 40 * GB),
            ram(12.5, 61 * GB),
            ram(13.5, 60 * GB),
            ram(14.5, 60 * GB),
            ram(20.0, 3 * GB),
        ],
        processes=[rss(11.0, 20 * GB), rss(13.0, 40 * GB), rss(14.0, 41 * GB)],
        ps=[PsReading(11.0, 44 * GB, 15 * GB), PsReading(14.0, 44 * GB, 16 * GB)],
        server=ServerTiming.from_final_chunk(final) if with_server else None,
        ended_at=15.0,
        complete=complete,
        error=None if complete else "the connection dropped mid-stream (RemoteProtocolError)",
    )


def test_a_complete_run():
    row = summarize(record())
    assert row.eval_rate_tps == pytest.approx(10.0)
    assert row.prompt_rate_tps == pytest.approx(50.0)
    assert row.load_s == pytest.approx(1.8)
    assert row.client_rate_tps == pytest.approx(10.0)
    assert row.ttft_s == pytest.approx(2.0)
    # Samples outside the run (8.0, 20.0) are ignored; generation runs from 12.0 to 15.0.
    assert row.ram_delta_bytes == 40 * GB  # median of 61, 60, 60 minus 20
    assert row.ram_peak_bytes == 41 * GB
    assert row.ollama_rss_delta_bytes == 39 * GB  # median_low of 40, 41 minus 1
    assert row.env == "CPU+GPU"
    assert (row.ps_size_bytes, row.ps_size_vram_bytes) == (44 * GB, 16 * GB)
    assert (row.layers_total, row.layers_offloaded) == (81, None)
    assert row.vram_delta_bytes is None and row.shared_delta_bytes is None
    assert row.complete is True and row.error is None


def test_what_held_the_gpus_clock_down_while_generating_and_the_cpus_use_are_the_rows():
    from llmtop.collectors.cpu_load import CpuReading
    from llmtop.collectors.gpu_reading import GpuReading, GpuSample

    def gpu(t, *limits):
        return GpuSample(t, (GpuReading("nvml:0", "RTX 4060 Ti", "nvml", clock_limits=limits),))

    run = record()
    # At the load (11.0) the card was at its power cap; from the first token (12.0) hot, then both.
    run.gpu = [gpu(11.0, "power cap"), gpu(12.5, "thermal slowdown"), gpu(14.0, "thermal slowdown", "power cap")]
    run.cpu = [CpuReading(12.0, 100.0, {7: 10.0}, 1.0, 8), CpuReading(15.0, 112.0, {7: 16.0}, 1.3, 8, 1800.0, 4200.0)]
    row = summarize(run)
    assert row.gpu_clock_limits == ("thermal slowdown", "power cap")
    # 12 s busy in 3 s: Ollama 6, llmtop 0.3, the rest 5.7 s (1.9 cores) other processes'.
    assert (row.other_cpu_cores, row.ollama_cpu_cores) == (pytest.approx(1.9), pytest.approx(2.0))
    assert (row.cpu_clock_mhz, row.cpu_clock_max_mhz) == (1800.0, 4200.0)
    assert SummaryRow.from_dict(json.loads(json.dumps(row.to_dict()))) == row
    assert summarize(record()).gpu_clock_limits == () and summarize(record()).other_cpu_cores is None


def test_an_interrupted_run_keeps_what_was_measured():
    row = summarize(record(complete=False, with_server=False))
    assert row.complete is False
    assert "dropped" in row.error
    assert row.eval_rate_tps is None and row.load_s is None
    assert row.client_rate_tps == pytest.approx(10.0)
    assert row.ram_delta_bytes == 40 * GB


def test_json_keys_are_the_stable_ones_first():
    keys = list(summarize(record()).to_dict())
    assert tuple(keys[: len(STABLE_KEYS)]) == STABLE_KEYS


def mapped(t, file_rss, rss_total=None):
    return OllamaProcessSample(t, rss_total or file_rss, None, 1, (2,), file_rss_bytes=file_rss)


def test_ram_adds_the_mapped_weights_that_linux_counts_as_cache():
    # Linux, weights mapped: in-use rises by the runner's private memory only (2 GB); its file-backed
    # memory (the mapped 40 GB) is page cache, which `total - available` counts as available.
    run = dataclasses.replace(
        record(),
        baseline_process=mapped(9.5, 1 * GB),
        memory=[ram(11.0, 21 * GB), ram(12.5, 22 * GB), ram(13.5, 22 * GB), ram(14.5, 22 * GB)],
        processes=[mapped(11.1, 20 * GB), mapped(12.4, 41 * GB), mapped(13.6, 41 * GB), mapped(14.4, 41 * GB)],
    )
    row = summarize(run)
    assert row.ram_in_use_delta_bytes == 2 * GB
    assert row.ram_mapped_delta_bytes == 40 * GB
    assert row.ram_delta_bytes == 42 * GB  # each RAM sample with the process sample nearest in time
    assert row.ram_peak_bytes == 42 * GB


def test_without_a_file_backed_figure_ram_is_in_use_alone():
    # Windows and macOS: their in-use figure already holds mapped pages in a working set.
    row = summarize(record())
    assert row.ram_delta_bytes == row.ram_in_use_delta_bytes == 40 * GB
    assert row.ram_mapped_delta_bytes is None


def test_pairing_takes_the_nearest_process_sample():
    memory = [ram(1.0, 10), ram(2.0, 10), ram(3.0, 10)]
    processes = [mapped(0.9, 1), mapped(2.2, 5), mapped(2.9, 7), OllamaProcessSample(3.0, None, None, None, ())]
    assert ram_with_mapped(memory, processes) == [(1.0, 11), (2.0, 15), (3.0, 17)]
    assert ram_with_mapped(memory, [rss(1.0, 5)]) == []


def test_overflowing_layers_make_the_env_cpu_and_gpu_and_the_context_says_where_it_comes_from():
    from llmtop.collectors.ollama_log import parse_lines

    plan = (
        "common_params_fit_impl:   - CUDA0 (NVIDIA GeForce RTX 4090): 41 layers (14 overflowing),  22001 MiB used,"
        "    512 MiB free"
    )
    start = (
        'time=2026-06-02T10:00:00.000Z level=INFO source=llama_server.go:431 msg="starting llama-server" '
        'cmd="/usr/lib/ollama/llama-server --model /m --port 1 --host 127.0.0.1 -c 16384 -np 2 --log-verbosity 4"'
    )
    (load,) = parse_lines([start, plan, "load_tensors: offloaded 41/41 layers to GPU"])
    run = dataclasses.replace(record(), log_load=load, ps=[PsReading(14.0, 44 * GB, 16 * GB)])
    row = summarize(run)
    assert (row.layers_offloaded, row.layers_total, row.layers_overflowing, row.env) == (41, 41, 14, "CPU+GPU")
    assert (row.context, row.context_note) == (8192, "Ollama's choice: the request set none (server log)")
    asked = summarize(dataclasses.replace(run, num_ctx=4096))
    assert (asked.context, asked.context_note) == (4096, "asked for (--num-ctx)")
    listed = summarize(dataclasses.replace(run, ps=[PsReading(14.0, 44 * GB, 16 * GB, 8192)]))
    assert (listed.context, listed.context_note) == (8192, "Ollama's choice: the request set none (/api/ps)")


def test_the_logs_eval_rate_and_the_apis_disagree_out_loud():
    from llmtop.measure.summary import rates_disagree

    assert rates_disagree(72.52, 72.52 * 1.009) is None  # rounding
    assert rates_disagree(72.52, None) is None and rates_disagree(None, 70.0) is None
    assert rates_disagree(72.52, 35.1) == (
        "the server log's eval rate (35.10 tokens/s) is not the API's (72.52): "
        "the log's request may be another client's"
    )


def test_a_run_during_which_the_server_also_served_another_app_is_marked_and_left_out_of_comparisons():
    """The server's access lines over the run (10.0 to 15.0): its own generate, another app's chat
    that overlapped it, and one that ended before it began. Without a log: nobody can tell."""
    from llmtop.collectors.ollama_log import served_request
    from llmtop.measure.comparison import compare
    from llmtop.tables import COMPARISON_COLUMNS, RUN_COLUMNS

    def line(when: str, latency: str, path: str) -> str:
        return f'[GIN] 2026/12/06 - {when} | 200 | {latency} |       127.0.0.1 | POST     "{path}"'

    own = served_request(line("13:43:24", "5.02s", "/api/generate"), 15.05)
    other = served_request(line("13:43:22", "3.5s", "/api/chat"), 13.5)
    before = served_request(line("13:43:18", "1.0s", "/api/chat"), 9.0)
    alone = summarize(dataclasses.replace(record(), served=(own, before)))
    assert (alone.concurrent_requests, alone.concurrent_note) == (0, None)
    shared = summarize(dataclasses.replace(record(), served=(own, other, before)))
    assert shared.concurrent_requests == 1
    assert shared.concurrent_note == (
        "1 other request(s) were served while this run ran (POST /api/chat from 127.0.0.1, 3.5 s; server log): "
        "its tokens/s is not this model's alone"
    )
    unknown = summarize(record())
    assert (unknown.concurrent_requests, unknown.concurrent_note) == (None, None)
    tps = next(c for c in RUN_COLUMNS if c.header == "tps")
    assert tps.text(shared) == "10.00 (shared server)" and tps.text(alone) == "10.00"
    clean = dataclasses.replace(alone, eval_rate_tps=8.0)
    (group,) = compare([clean, shared])
    assert group.tps == 8.0 and group.shared == 1  # the shared run's 10.00 is not in the mean
    runs = next(c for c in COMPARISON_COLUMNS if c.header == "runs")
    assert runs.text(group) == "2 (1 on a shared server, left out)"
    (only_shared,) = compare([shared])  # nothing clean to show: the shared rate, marked
    compared_tps = next(c for c in COMPARISON_COLUMNS if c.header == "tps")
    assert compared_tps.text(only_shared) == "10.00 (shared server)" and only_shared.tps is None
