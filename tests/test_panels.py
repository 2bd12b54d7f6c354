"""The screens' panels (tui/panels/), each handed a state made by measure/screen_states.py: the
states from recorded readings (no app), then each panel drawn at 80, 120 and 160 columns, its n/a
reasons, and a state that does not change drawing nothing again."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from textual.app import App, ComposeResult
from textual.widget import Widget

from llmtop.collectors.gpu_reading import GpuReading, GpuSample
from llmtop.collectors.ollama_processes import OllamaProcessSample
from llmtop.collectors.power_reading import PowerReading, PowerSample
from llmtop.collectors.system_memory import SystemMemorySample
from llmtop.measure.comparison import compare
from llmtop.measure.screen_states import (
    GaugeState,
    GpuState,
    LayersState,
    MemoryState,
    PhaseState,
    PowerState,
    RunsState,
    gpu_state,
    memory_state,
    power_state,
)
from llmtop.tui.panels.gpu_panel import GpuPanel
from llmtop.tui.panels.layers_panel import LayersPanel
from llmtop.tui.panels.log_panel import LogPanel
from llmtop.tui.panels.memory_panel import MemoryPanel
from llmtop.tui.panels.phase_panel import PhasePanel
from llmtop.tui.panels.power_panel import PowerPanel
from llmtop.tui.panels.runs_panel import runs_panel
from llmtop.tui.screen_layout import after_memory_key, screen_layout
from llmtop.tui.widgets.gauge import Gauge
from llmtop.tui.widgets.summary_table import SummaryTable
from llmtop.tui.widgets.text_line import TextLine
from summary_rows import row

GB = 1_000_000_000
WIDTHS = (80, 120, 160)


class Buffer:
    """A sampler's buffer as the states read it: the latest reading, the last error, a window."""

    def __init__(self, *samples, last_error: str | None = None) -> None:
        self.samples, self.last_error = list(samples), last_error

    def latest(self):
        return self.samples[-1] if self.samples else None

    def between(self, start: float, end: float = float("inf")):
        return [s for s in self.samples if start <= s.t <= end]


def collectors(memory=(), processes=(), gpu=None, gpu_unavailable="", power=None, power_unavailable=None):
    return SimpleNamespace(
        memory=Buffer(*memory),
        processes=Buffer(*processes),
        gpu=gpu,
        gpu_unavailable=gpu_unavailable,
        power=power,
        power_unavailable=power_unavailable or {},
    )


def memory(t: float, available: float, swap: float = 0.0) -> SystemMemorySample:
    return SystemMemorySample(t, int(32 * GB), int(available * GB), int(swap * GB), int(8 * GB) if swap else 0)


def ollama(t: float, rss: float, mapped: float | None) -> OllamaProcessSample:
    return OllamaProcessSample(
        t, int(rss * GB), int(rss * GB) - GB, 100, (101,), file_rss_bytes=None if mapped is None else int(mapped * GB)
    )


def radeon(shared: float) -> GpuReading:
    return GpuReading(
        "gpu0", "Radeon RX 7600 XT", "sysfs", 15 * GB, 16 * GB, int(shared * GB), 16 * GB, utilization_pct=97.0
    )


# -- the states, from recorded readings -----------------------------------------------------------
def test_ram_counts_the_mapped_weights_once_and_each_gauge_says_its_increase():
    base = SimpleNamespace(baseline_memory=memory(0, 26), baseline_process=ollama(0, 0.1, 0.0))
    now = collectors([memory(5, 20, swap=1)], [ollama(5, 5, 4.0)])
    state = memory_state(now, base)
    assert state.ram == GaugeState("RAM", 16 * GB, 32 * GB, 10 * GB, note="in use 12.0 GB")  # 12 in use + 4 mapped
    assert state.mapped.used == 4 * GB and state.mapped.delta == 4 * GB and state.mapped.note == "Ollama's files"
    assert state.swap == GaugeState("Swap", GB, 8 * GB)
    assert state.rss.delta == pytest.approx(4.9 * GB) and state.rss.note == "runner 4.0 GB"
    assert memory_state(now, None).ram.delta is None  # the watch: no baseline, no Δ


def test_what_is_not_read_says_why_and_shows_no_figure():
    state = memory_state(collectors([], [], gpu_unavailable=""), None)
    assert state.ram.used is None and state.ram.reason == "waiting for the first sample"
    elsewhere = collectors([memory(1, 20)], [ollama(1, 2, None)])
    assert memory_state(elsewhere, None).mapped.reason == "counted apart on Linux only (see docs/measurement.md)"
    assert memory_state(elsewhere, None).swap.reason == "no swap configured"
    no_process = collectors([memory(1, 20)], [OllamaProcessSample(1, None, None, None, (), reason="no Ollama process")])
    assert memory_state(no_process, None).mapped.reason == "no Ollama process read (see Ollama RSS)"
    no_gpu = gpu_state(collectors(gpu_unavailable="nvml: no NVIDIA driver"), None, running=True)
    ((vram, shared),) = no_gpu.gauges
    assert vram.used is None and vram.reason == "no GPU read (nvml: no NVIDIA driver)"
    assert shared.used is None and "llmtop doctor" in shared.reason and no_gpu.spill is None


def test_a_spill_is_said_only_while_a_run_goes_on():
    base = SimpleNamespace(baseline_gpu=GpuSample(0, (radeon(0.5),)), phases=[(0.25, "baseline")])
    buffer = Buffer(GpuSample(5, (radeon(2.5),)))
    running = gpu_state(collectors(gpu=buffer), base, running=True)
    ((vram, shared),) = running.gauges
    assert shared.warning and shared.delta == 2 * GB and shared.note == "spilling into system RAM"
    assert running.spill == "Radeon RX 7600 XT" and running.run == 0.25 and vram.note == "Radeon RX 7600 XT · 97% busy"
    idle = gpu_state(collectors(gpu=buffer), base, running=False)
    assert idle.spill is None and not idle.gauges[0][1].warning


def test_power_gauges_one_per_source_then_the_kinds_not_measured():
    def sample(t, watts):
        return PowerSample(t, (PowerReading("rapl", "package-0", "cpu", "powercap", watts, limit_w=65.0),))

    buffer = Buffer(*(sample(t, 20.0 + t) for t in range(1, 9)))
    state = power_state(
        collectors(power=buffer, power_unavailable={"gpu": "no GPU power read"}), 8.0, {"rapl": 12.0}, ("",)
    )
    cpu, gpu = state.gauges
    assert cpu.label == "CPU power" and cpu.used == 28.0 and cpu.delta == 16.0 and cpu.note.endswith(" package-0")
    assert gpu == GaugeState.na("GPU power", "no GPU power read")
    waiting = power_state(collectors(power=Buffer(last_error="powercap: permission denied")), 8.0, {}, ("",))
    assert waiting.gauges == (GaugeState.na("Power", "powercap: permission denied"),)


def test_the_layout_for_the_terminal_and_the_memory_key():
    assert screen_layout(80, 24, "tps", False) == screen_layout(80, 24, "tps", False)
    narrow = screen_layout(80, 24, "tps", False)
    assert narrow.narrow and narrow.short and narrow.gauges and not (narrow.tps or narrow.memory or narrow.bars)
    wide = screen_layout(160, 48, "tps", False)
    assert wide.tps and wide.memory and wide.gauges and wide.reason_rows == 4
    steps, view, instead = [], "tps", False
    for _ in range(3):
        view, instead = after_memory_key(80, view, instead)
        steps.append((view, instead))
    assert steps == [("memory", True), ("tps", True), ("tps", False)]  # memory, tps, the gauges again
    assert after_memory_key(120, "tps", False) == ("memory", False)


# -- the panels, drawn --------------------------------------------------------------------------
class Host(App[None]):
    """One panel on a screen of its own; every toast kept."""

    def __init__(self, panel: Widget, *more: Widget) -> None:
        super().__init__()
        self.panel, self.more = panel, more
        self.toasts: list[str] = []

    def compose(self) -> ComposeResult:
        yield self.panel
        yield from self.more

    def notify(self, message, **kwargs) -> None:  # type: ignore[override]
        self.toasts.append(message)


def shown(panel: Widget) -> list[str]:
    """Each gauge's and line's row as drawn at its width."""
    rows = []
    for widget in panel.query("*"):
        if isinstance(widget, Gauge) and widget.display:
            rows.append(widget.render().plain)
        elif isinstance(widget, TextLine) and widget.display:
            rows.append(widget.render().plain)
    return rows


def counted(monkeypatch, cls, method: str) -> list[object]:
    calls: list[object] = []
    original = getattr(cls, method)

    def spy(self, *args, **kwargs):
        calls.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, spy)
    return calls


MEMORY = MemoryState(
    GaugeState("RAM", 16 * GB, 32 * GB, 10 * GB, note="in use 12.0 GB"),
    GaugeState("  mapped", 4 * GB, 32 * GB, 4 * GB, note="Ollama's files"),
    GaugeState.na("Swap", "no swap configured"),
    GaugeState.na("Ollama RSS", "no Ollama process on this machine (container?): its memory is not in these figures"),
)


@pytest.mark.parametrize("width", WIDTHS)
async def test_the_memory_panel_fits_each_width_and_keeps_the_figures(width):
    app = Host(MemoryPanel())
    async with app.run_test(size=(width, 12)) as pilot:
        app.panel.show(MEMORY)
        await pilot.pause()
        ram, mapped, swap, rss = shown(app.panel)
        assert all(len(line) <= width for line in (ram, mapped, swap, rss))
        assert ram.startswith("RAM") and "16.0 GB / 32.0 GB" in ram and "Δ +10.0 GB" in ram
        assert swap == "Swap        n/a: no swap configured"
        assert rss.startswith("Ollama RSS  n/a: no Ollama process")
        if width == 80:
            assert rss.endswith("…")  # a long reason is cut at a word
        else:
            assert "in use 12.0 GB" in ram and rss.endswith("not in these figures")


async def test_a_panel_handed_the_state_it_drew_draws_nothing_again(monkeypatch):
    calls = counted(monkeypatch, Gauge, "show_state")
    app = Host(MemoryPanel())
    async with app.run_test(size=(120, 12)) as pilot:
        app.panel.show(MEMORY)
        assert len(calls) == 4
        app.panel.show(MemoryState(*(GaugeState(**vars(g)) for g in vars(MEMORY).values())))  # equal, not the same
        assert len(calls) == 4
        app.panel.show(MemoryState(MEMORY.ram, MEMORY.mapped, GaugeState("Swap", GB, 8 * GB), MEMORY.rss))
        assert len(calls) == 8
        await pilot.pause()


async def test_the_gpu_panel_adds_a_pair_a_gpu_and_warns_of_a_spill_once_a_run():
    def two(shared: float, run: int) -> GpuState:
        vram = GaugeState("VRAM 0", 15 * GB, 16 * GB, 14 * GB, note="Radeon")
        spill = GaugeState(
            "Shared GPU 0", shared * GB, 16 * GB, (shared - 0.5) * GB, "spilling into system RAM", warning=True
        )
        other = (GaugeState("VRAM 1", GB, 8 * GB), GaugeState.na("Shared GPU 1", "not read by nvml"))
        return GpuState(((vram, spill), other), "Radeon", run)

    app = Host(GpuPanel())
    async with app.run_test(size=(120, 12)) as pilot:
        app.panel.show(two(2.0, run=1))
        await pilot.pause()
        app.panel.show(two(2.5, run=1))  # the same run spills on: said once
        await pilot.pause()
        rows = shown(app.panel)
        assert [r[:12].rstrip() for r in rows] == ["VRAM 0", "Shared GPU 0", "VRAM 1", "Shared GPU 1"]
        assert rows[1][12] == " "  # a label as wide as its column keeps a space before the bar
        assert "2.5 GB / 16.0 GB" in rows[1] and app.panel.pairs[0][1].has_class("-warning")
        assert rows[3].endswith("n/a: not read by nvml")
        assert len(app.toasts) == 1 and "spilling out of VRAM into system RAM" in app.toasts[0]
        app.panel.show(two(2.5, run=2))
        assert len(app.toasts) == 2


@pytest.mark.parametrize("width", WIDTHS)
async def test_the_power_panel_shows_its_sources_hides_the_spare_ones_and_an_empty_energy_line(width):
    cpu = GaugeState("CPU power", 28.0, 65.0, 16.0, note="▁▂▃▄ package-0")
    gpu = GaugeState("GPU power", 120.0, 165.0, 90.0, note="▅▆▇█ Radeon")
    app = Host(PowerPanel())
    async with app.run_test(size=(width, 12)) as pilot:
        app.panel.show(PowerState((cpu, gpu), ("energy 3.40 kJ since the request   ·   2.1 J/token while generating",)))
        await pilot.pause()
        rows = shown(app.panel)
        assert len(rows) == 3 and rows[1].startswith("GPU power") and "120 W" in rows[1]
        assert rows[2].startswith("energy 3.40 kJ") and all(len(r) <= width for r in rows)
        app.panel.show(PowerState((GaugeState.na("CPU power", "powercap: permission denied"),)))
        await pilot.pause()
        assert shown(app.panel) == ["CPU power   n/a: powercap: permission denied"]  # no empty energy row


@pytest.mark.parametrize("width", WIDTHS)
async def test_the_phase_and_layers_panels_take_the_longest_text_that_fits(width):
    line = "run 2 of 4 · llama3.3 auto  ·  generating  0:12  ·  about 1:40 left  ·  r adds a run: auto"
    tokens = "tokens 40   live 1.34 tok/s   TTFT 6.01s"
    phase = PhaseState((line, "run 2/4  ·  generating 0:12"), (f"{tokens}   ·   server 1.35 tok/s (log)", tokens))
    layers = LayersState(
        GaugeState("GPU layers", 27, 81, note="rocm · confirmed (log)"),
        ("Ollama's split (/api/ps): 36% GPU, 15.2 GB of 42.5 GB on GPU", "/api/ps: 36% GPU"),
        "why: 27 layers fit in the GPU's free memory (15.9 GiB); the other 54 run on the CPU",
    )
    app = Host(PhasePanel())
    async with app.run_test(size=(width, 12)) as pilot:
        app.panel.show(phase)
        await pilot.pause()
        line, tokens = shown(app.panel)
        assert line == (phase.phase[0] if width > 100 else phase.phase[1]) and tokens in phase.tokens
    app = Host(LayersPanel())
    async with app.run_test(size=(width, 12)) as pilot:
        app.panel.show(layers)
        await pilot.pause()
        gauge, split = shown(app.panel)
        assert gauge.startswith("GPU layers") and "27 / 81" in gauge
        assert split == (layers.split[0] if width >= 80 else layers.split[1])
        assert " ".join(app.panel.why.rows(width)) == layers.why  # wrapped, none of it lost


async def test_the_runs_panel_adds_rows_and_compares_from_two_runs_on(monkeypatch):
    rebuilt = counted(monkeypatch, SummaryTable, "replace_all")
    rows = (row("llama3.3", "cpu", 0.99), row("llama3.3", "auto", 1.34))
    said = ("auto: 1.35x the speed of cpu (1.34 against 0.99 tps), one run each: the noise is not measured",)
    table, comparison, verdicts, memory_parts = parts = runs_panel(sweep=False)
    app = Host(*parts)
    async with app.run_test(size=(160, 30)) as pilot:
        for part in parts:
            part.show(RunsState(rows[:1], tuple(compare(rows[:1]))))
        await pilot.pause()
        assert table.row_count == 1 and not comparison.display and not memory_parts.display and not verdicts.display
        for part in parts:
            part.show(RunsState(rows, tuple(compare(rows)), verdicts=said))
        await pilot.pause()
        assert table.row_count == 2 and comparison.display and comparison.row_count == 2
        assert verdicts.display and str(verdicts.render()) == said[0]  # under the comparison, a line each
        assert len(rebuilt) == 2  # the comparison, twice; the runs' rows were added to
        for part in parts:
            part.show(RunsState(rows, tuple(compare(rows)), verdicts=said))
        assert len(rebuilt) == 2


async def test_the_runs_panel_draws_each_runs_memory_by_part_where_a_mode_set_the_server():
    from dataclasses import replace

    from llmtop.measure.load_parts import MemoryPart
    from llmtop.measure.screen_states import parts_bars

    mib = 1024 * 1024

    def with_kv(mode: str, kv_mib: int, kv: str):
        parts = (
            MemoryPart("weights", "system memory", 60 * mib),
            MemoryPart("kv_cache", "system memory", kv_mib * mib),
        )
        return replace(row("r16-moe", mode), settings={"kv_cache": kv}, memory_parts=parts)

    rows = (with_kv("auto", 64, "f16"), with_kv("auto:kv=q8_0", 34, "q8_0"))
    assert parts_bars(rows[:1]) == ()  # a plain mode on the CPU alone: the table says it all
    bars = parts_bars(rows)
    assert bars[0].startswith("r16-moe auto (system memory)") and bars[1].startswith("r16-moe auto, KV q8_0")
    assert bars[0].count("▓") == 15 and bars[1].count("▓") == 8  # 64 and 34 MiB of 124, on 30 cells
    *_, memory_parts = parts = runs_panel(sweep=False)
    app = Host(*parts)
    async with app.run_test(size=(120, 30)) as pilot:
        for part in parts:
            part.show(RunsState(rows, tuple(compare(rows)), parts=bars))
        await pilot.pause()
        assert memory_parts.display and memory_parts.border_title == "memory by part (server log)"
        drawn = [line.rstrip() for line in str(memory_parts.render()).splitlines()]
        assert drawn == [line.rstrip() for line in bars]


async def test_the_log_panel_rewrites_only_new_lines(monkeypatch):
    clears = counted(monkeypatch, LogPanel, "clear")
    app = Host(LogPanel())
    async with app.run_test(size=(120, 14)) as pilot:
        app.panel.show(("offloaded 27/81 layers to GPU",))
        app.panel.show(("offloaded 27/81 layers to GPU",))
        await pilot.pause()
        assert len(clears) == 1 and list(app.panel.lines) == ["offloaded 27/81 layers to GPU"]
