"""A run's energy: the pure windows (energy.py), and whole runs against the double with counters that
advance in real time and wrap, read through the real powercap reader and an NVML fake; the exports."""

from __future__ import annotations

import csv
import io
import json
import threading
import time

import pynvml
import pytest
from power_trees import RunningCounter, amd_hwmon_tree, rapl_tree

from helpers.cli import llmtop, no_traceback
from helpers.fake_nvml import EnergyNvml
from helpers.sessions import collectors_watching
from llmtop.collectors.power_collector import power_unavailable, probe_power_sources
from llmtop.collectors.power_reading import PowerReading, PowerSample
from llmtop.measure.energy import Window, energy_between, run_energy
from llmtop.measure.session import IDLE_POWER_S, RunSettings, Session
from llmtop.ollama.api import OllamaServer
from llmtop.ollama.lean_stream import READS_PER_S
from llmtop.store.exports import to_csv, to_json, to_markdown
from summary_rows import as_recorded
from waiting import eventually


def _sample(t: float, energy: float | None, segment: int = 0, key: str = "rapl:intel-rapl:0") -> PowerSample:
    reading = PowerReading(key, "CPU package", "cpu", "powercap energy_uj", 40.0, energy, segment)
    return PowerSample(t, (reading,))


def test_energy_at_the_edges_is_the_counts_difference_and_between_samples_is_interpolated():
    samples = [_sample(0.0, 0.0), _sample(1.0, 40.0), _sample(1.2, 50.0), _sample(2.0, 90.0)]
    assert energy_between(samples, "rapl:intel-rapl:0", 1.0, 2.0) == (50.0, None)
    assert energy_between(samples, "rapl:intel-rapl:0", 1.02, 1.98) == (50.0, None)  # samples taken at the edges
    assert energy_between(samples, "rapl:intel-rapl:0", 0.5, 1.6) == (pytest.approx(50.0), None)
    assert energy_between(samples, "rapl:intel-rapl:0", 1.0, 3.0) == (None, "not read at that moment")


def test_no_energy_across_a_counter_that_started_over():
    samples = [_sample(0.0, 0.0), _sample(1.0, 40.0), _sample(2.0, 0.0, segment=1), _sample(3.0, 40.0, segment=1)]
    energy, why = energy_between(samples, "rapl:intel-rapl:0", 0.0, 3.0)
    assert energy is None and "started over" in why
    assert energy_between(samples, "rapl:intel-rapl:0", 2.0, 3.0) == (40.0, None)


def test_run_energy_sums_the_sources_and_says_what_is_left_out():
    cpu = [_sample(t, 40.0 * t) for t in (0.0, 1.0, 2.0, 3.0, 5.0)]
    gpu = [
        PowerSample(s.t, (*s.sources, PowerReading("nvml:0", "RTX 4090", "gpu", "NVML", 150.0, 150.0 * s.t)))
        for s in cpu
    ]
    energy = run_energy(gpu, Window(1.0, 5.0), Window(2.0, 5.0), Window(0.0, 1.0), tokens=57)
    assert energy.energy_j == pytest.approx(190 * 4) and energy.energy_generation_j == pytest.approx(190 * 3)
    assert energy.idle_w == pytest.approx(190) and energy.generation_w == pytest.approx(190)
    assert energy.joules_per_token == pytest.approx(190 * 3 / 57) and energy.tokens_per_joule == pytest.approx(57 / 570)
    assert [s.energy_generation_j for s in energy.sources] == [pytest.approx(120), pytest.approx(450)]
    assert energy.note is None
    cpu_only = run_energy(cpu, Window(1.0, 5.0), Window(2.0, 5.0), None, 57, {"gpu": "nvml: no NVIDIA driver"})
    assert cpu_only.joules_per_token == pytest.approx(120 / 57)
    assert cpu_only.note == "GPU not measured (nvml: no NVIDIA driver)"
    offloaded = run_energy(cpu, Window(1.0, 5.0), Window(2.0, 5.0), None, 57, {"gpu": "nvml: no NVIDIA driver"}, True)
    assert offloaded.energy_j is None and offloaded.joules_per_token is None  # the CPU's part alone is no total
    assert offloaded.sources[0].energy_generation_j == pytest.approx(120)  # but it is kept, apart
    assert offloaded.note == (
        "the GPU did part of this run's work but its power was not read, so there is no total; "
        "GPU not measured (nvml: no NVIDIA driver)"
    )
    nothing = run_energy([], Window(1.0, 5.0), None, None, None, {"cpu": "powercap: root only"})
    assert nothing.energy_j is None and nothing.note == "CPU not measured (powercap: root only)"


class TimedNvml(EnergyNvml):
    """An NVIDIA GPU drawing `watts` steadily: its total energy counter follows the clock."""

    def __init__(self, watts: float):
        super().__init__()
        self.watts, self.t0 = watts, time.monotonic()

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return int(self.watts * 1e3 * (time.monotonic() - self.t0))

    def nvmlDeviceGetPowerUsage(self, handle):
        return int(self.watts * 1e3)


CPU_W, GPU_W = 40.0, 150.0
RANGE_UJ = 30_000_000  # a 30 J range: at 40 W the counter wraps every 0.75 s, several times a run


def test_a_runs_energy_is_what_the_counters_say_over_its_phases_through_wraps(double_factory, tmp_path):
    root = rapl_tree(tmp_path, max_range=RANGE_UJ)
    double = double_factory(token_rate=25, tokens=80, load_delay_s=0.3, vram_fraction=0.36)
    with RunningCounter(root / "class/powercap/intel-rapl:0/energy_uj", CPU_W, wrap=RANGE_UJ) as counter:
        collectors = collectors_watching(double)
        power = probe_power_sources("linux", sysfs=root, nvml=TimedNvml(GPU_W))
        collectors.use_power(power, power_unavailable(power))
        session = Session(OllamaServer(double.url), "llama3.3", collectors)
        session.connect()
        collectors.start()
        try:
            row = session.run(RunSettings())
        finally:
            collectors.stop()
    clock = session.last.clock
    generation = clock.last_at - clock.first_at
    assert generation > 2.5  # so the CPU counter wrapped at least three times in it
    cpu, gpu = row.power_sources
    assert (cpu.name, cpu.method, gpu.method) == ("CPU package", "powercap energy_uj", "NVML total energy (counter)")
    # The counters are read at the first token and after the last: the phase's energy is their difference.
    # The file's value lags its writer's steps (5 ms, more on a busy machine): at most one step at each end.
    # The last token is read at most one read of the stream after it came (lean_stream.READS_PER_S):
    # the counters' reading then counts that much more.
    read_late = session.collectors.power.between(clock.last_at)[0].t - clock.last_at
    assert 0 <= read_late <= 1 / READS_PER_S + 0.05
    lag_j = CPU_W * (2 * counter.max_gap_s + 0.01 + read_late)
    assert cpu.energy_generation_j == pytest.approx(CPU_W * generation, abs=lag_j)
    assert gpu.energy_generation_j == pytest.approx(GPU_W * generation, abs=0.3 + GPU_W * read_late)
    assert row.energy_generation_j == pytest.approx(cpu.energy_generation_j + gpu.energy_generation_j)
    assert row.joules_per_token == pytest.approx(row.energy_generation_j / (clock.count - 1))
    assert row.tokens_per_joule == pytest.approx(1 / row.joules_per_token)
    run_s = session.last.ended_at - clock.request_at
    assert row.energy_j == pytest.approx((CPU_W + GPU_W) * run_s, abs=lag_j + 0.3)
    assert row.idle_power_w == pytest.approx(CPU_W + GPU_W, abs=lag_j / IDLE_POWER_S + 1.0)
    assert row.generation_power_w == pytest.approx(CPU_W + GPU_W, abs=lag_j / generation + 1.0)
    assert row.energy_note is None
    baseline = next(t for t, phase in session.last.phases if phase == "baseline")
    assert clock.request_at - baseline >= IDLE_POWER_S  # long enough to tell the idle power


def test_a_source_lost_mid_run_leaves_its_figures_null_with_the_reason(double_factory, tmp_path):
    root = amd_hwmon_tree(tmp_path, power_uw=100_000_000)
    power_file = root / "class/drm/card1/device/hwmon/hwmon3/power1_average"
    double = double_factory(token_rate=20, tokens=60, load_delay_s=0.2)
    collectors = collectors_watching(double)
    power = probe_power_sources("linux", sysfs=root, nvml=EnergyNvml(init_error=pynvml.NVMLError_LibraryNotFound()))
    collectors.use_power(power, power_unavailable(power))
    session = Session(OllamaServer(double.url), "llama3.3", collectors)
    session.connect()
    collectors.start()

    def reset_mid_generation():
        eventually(lambda: session.last is not None and session.last.clock.count >= 20, 60)
        power_file.unlink()  # the GPU was reset: its hwmon file is gone for over a second
        time.sleep(1.2)  # elapsed time is what is tested: the file gone for over a second, as in a GPU reset
        power_file.write_text("100000000\n")

    helper = threading.Thread(target=reset_mid_generation)
    helper.start()
    try:
        row = session.run(RunSettings())
    finally:
        helper.join()
        collectors.stop()
    assert row.complete
    [gpu] = row.power_sources
    assert gpu.energy_generation_j is None and row.joules_per_token is None and row.energy_generation_j is None
    assert "started over" in gpu.reason or "not read" in gpu.reason
    assert "gone" in gpu.reason  # the source's own words
    assert row.idle_power_w == pytest.approx(100.0)  # the baseline, before the reset, is still measured
    assert row.energy_note.startswith("CPU not measured (powercap: no RAPL package zone")
    assert "AMD Radeon RX 7600 XT: " in row.energy_note


def test_cpu_and_auto_compared_by_energy_per_token_in_every_export(double_factory, tmp_path):
    root = amd_hwmon_tree(rapl_tree(tmp_path), power_uw=120_000_000)
    double = double_factory(token_rate=40, cpu_token_rate=20, tokens=50, load_delay_s=0.2, vram_fraction=0.36)
    out = tmp_path / "out.json"
    with RunningCounter(root / "class/powercap/intel-rapl:0/energy_uj", CPU_W):
        result = llmtop(
            "llama3.3", "--host", double.url, "--headless", "--no-log", "--modes", "cpu,auto", "--export", str(out),
            env={"LLMTOP_SYSFS_ROOT": str(root)}, timeout=120,
        )  # fmt: skip
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text(encoding="utf-8"))
    cpu_run, auto_run = document["runs"]
    assert (
        f"llama3.3 cpu: {cpu_run['eval_rate_tps']:.2f} tokens/s, env CPU, {cpu_run['joules_per_token']:.3g} J/token"
        in (result.stderr)
    )
    for run in (cpu_run, auto_run):
        assert [s["name"] for s in run["power_sources"]] == ["CPU package", "AMD Radeon RX 7600 XT"]
        assert run["joules_per_token"] > 0 and run["energy_generation_j"] > 0 and run["energy_j"] > 0
        assert run["idle_power_w"] == pytest.approx(CPU_W + 120.0, rel=0.05)
    # Same power on both, twice the speed with the GPU: half the energy per token.
    assert auto_run["joules_per_token"] / cpu_run["joules_per_token"] == pytest.approx(0.5, rel=0.15)
    cpu_group, auto_group = document["comparison"]
    assert auto_group["energy_vs_cpu"] == pytest.approx(auto_run["joules_per_token"] / cpu_run["joules_per_token"])
    assert cpu_group["joules_per_token"] == cpu_run["joules_per_token"]

    from llmtop.measure.summary_row import SummaryRow

    rows = [SummaryRow.from_dict(r) for r in document["runs"]]
    assert rows[0].power_sources[0].energy_generation_j == cpu_run["power_sources"][0]["energy_generation_j"]
    markdown = to_markdown(rows).splitlines()
    header = [c.strip() for c in markdown[0].strip("|").split("|")]
    cells = [c.strip() for c in markdown[3].strip("|").split("|")]
    assert cells[header.index("J/token")] == f"{auto_run['joules_per_token']:.3g}"
    assert cells[header.index("energy vs cpu")] == f"{auto_group['energy_vs_cpu']:.2f}x"
    [line, _] = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert float(line["joules_per_token"]) == cpu_run["joules_per_token"]
    assert json.loads(line["power_sources"])[0]["method"] == "powercap energy_uj"
    assert json.loads(to_json(rows))["runs"][0]["power_sources"] == cpu_run["power_sources"]


def test_a_replay_gives_the_energy_the_live_session_measured():
    from llmtop.store.replay import load_recording, replay
    from scenes import SWEEP

    loaded = load_recording(SWEEP)  # a sweep recorded with the machine's power read by the real readers
    _, runner = replay(loaded, speed=None)
    rows = runner.run_all()
    assert as_recorded(rows) == loaded.summaries
    measured = [r for r in rows if r.joules_per_token is not None]
    assert len(measured) >= 5
    assert all(
        [s.method for s in r.power_sources] == ["powercap energy_uj", "hwmon power1_average (integrated)"] for r in rows
    )
    cpu = next(r for r in rows if r.mode == "cpu")
    assert cpu.generation_power_w == pytest.approx(18.0 + 72.0 + 9.0, rel=0.02)  # the machine's CPU-only draw
