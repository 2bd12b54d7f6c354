"""The memory timeline: each figure over the run from the collectors' samples, on one time axis from the
baseline, with the phases marked."""

from llmtop.collectors.gpu_reading import GpuReading, GpuSample
from llmtop.collectors.ollama_processes import OllamaProcessSample
from llmtop.collectors.system_memory import SystemMemorySample
from llmtop.collectors.token_timing import TokenClock
from llmtop.measure.summary import RunRecord
from llmtop.measure.timeline import downsample, memory_timeline
from llmtop.ollama.model_facts import ModelFacts

GB = 10**9
FACTS = ModelFacts("llama3.3", "70.6B", "Q4_K_M", "llama", 80, 42 * GB)


def ram(t, used):
    return SystemMemorySample(t, 64 * GB, 64 * GB - used, 0, 0)


def proc(t, rss, mapped=None):
    return OllamaProcessSample(t, rss, None, 1, (), file_rss_bytes=mapped)


def gpu(t, dedicated, shared=None):
    return GpuSample(t, (GpuReading("k", "Radeon", "sysfs", dedicated, 16 * GB, shared, 16 * GB),))


def record(**fields):
    clock = TokenClock(request_at=11.0)
    for t in (16.0, 17.0, 18.0):
        clock.token(t)
    phases = [(10.0, "unloading"), (10.5, "baseline"), (11.0, "loading"), (14.0, "prompt"), (16.0, "generating")]
    return RunRecord(
        facts=FACTS,
        mode="auto",
        host=None,
        ollama_version=None,
        started_at=None,
        clock=clock,
        baseline_memory=ram(10.9, 14 * GB),
        baseline_process=proc(10.9, GB),
        baseline_gpu=gpu(10.9, GB, GB // 2),
        phases=phases,
        ended_at=18.5,
        **fields,
    )


def test_each_figure_from_the_baseline_on_with_its_baseline_and_the_phases():
    memory = [ram(9.0, 13 * GB), ram(11.0, 14 * GB), ram(13.0, 30 * GB), ram(16.0, 44 * GB), ram(19.0, 44 * GB)]
    processes = [proc(11.0, GB), proc(13.0, 17 * GB), proc(16.0, 31 * GB)]
    gpus = [gpu(11.0, GB, GB // 2), gpu(13.0, 9 * GB, GB), gpu(16.0, 16 * GB, 3 * GB)]
    line = memory_timeline(record(), memory, processes, gpus, until=18.5)
    by_name = {s.name: s for s in line.series}
    assert list(by_name) == ["RAM", "Ollama RSS", "VRAM", "shared"]
    # Seconds since the baseline (10.5); samples before it and after `until` are left out.
    assert by_name["RAM"].points == ((0.5, 14 * GB), (2.5, 30 * GB), (5.5, 44 * GB))
    assert by_name["RAM"].baseline == 14 * GB
    assert by_name["Ollama RSS"].peak == 31 * GB
    assert by_name["VRAM"].points[-1] == (5.5, 16 * GB) and by_name["VRAM"].baseline == GB
    assert by_name["shared"].points[-1] == (5.5, 3 * GB) and by_name["shared"].baseline == GB // 2
    assert line.marks == ((0.0, "base"), (0.5, "load"), (3.5, "prompt"), (5.5, "gen"), (8.0, "end"))
    assert line.missing == () and line.end == 8.0


def test_ram_counts_the_mapped_weights_as_the_summary_row_does():
    """On Linux the Ollama processes' mapped files are added to in-use memory, the baseline's too."""
    rec = record()
    rec.baseline_process = proc(10.9, GB, mapped=GB // 10)
    memory = [ram(11.0, 14 * GB), ram(16.0, 15 * GB)]
    processes = [proc(11.0, GB, GB // 10), proc(16.0, 30 * GB, 29 * GB)]
    ram_line = memory_timeline(rec, memory, processes, [], until=18.5).series[0]
    assert ram_line.points == ((0.5, 14 * GB + GB // 10), (5.5, 44 * GB))
    assert ram_line.baseline == 14 * GB + GB // 10


def test_what_was_never_read_is_left_out_with_its_reason_never_drawn_as_zero():
    memory = [ram(11.0, 14 * GB)]
    processes = [OllamaProcessSample(11.0, None, None, None, (), reason="no Ollama process")]
    gpus = [gpu(11.0, GB, None)]  # NVIDIA on Linux: no shared figure
    line = memory_timeline(record(), memory, processes, gpus, until=18.5)
    assert [s.name for s in line.series] == ["RAM", "VRAM"]
    assert line.missing == ("Ollama RSS: no Ollama process read", "shared: not read on this GPU")
    no_gpu = memory_timeline(record(), memory, [], [], until=18.5)
    assert "VRAM: no GPU read" in no_gpu.missing


def test_a_run_in_progress_ends_at_now_and_its_end_is_not_marked_yet():
    line = memory_timeline(record(), [ram(11.0, 14 * GB), ram(15.0, 20 * GB)], [], [], until=15.0)
    assert line.marks[-1] == (3.5, "prompt")
    assert line.series[0].points[-1] == (4.5, 20 * GB)


def test_downsampling_keeps_each_buckets_highest_reading():
    points = [(float(t), 100 if t == 37 else t) for t in range(1000)]
    kept = downsample(points, 50)
    assert len(kept) == 50
    assert (37.0, 100) in kept  # a spike survives
    assert kept == sorted(kept) and kept[-1][0] >= 980
    assert downsample(points[:10], 50) == points[:10]
