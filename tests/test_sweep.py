"""`--sweep`: the points it plans, how it refines around the fastest, and what it concludes. Pure logic,
on rows made the way the session makes them; the command end to end is in test_sweep_cli.py."""

import json
from dataclasses import replace

import pytest

from llmtop.measure.events import EventStream
from llmtop.measure.plan import PlanRunner, SweepPlan
from llmtop.measure.settings import RunSettings
from llmtop.measure.sweep import SweepPlanner, announce, conclude
from llmtop.measure.sweep_plan import SweepError, SweepSpec, check_layers, coarse_values, final_step, parse_sweep
from llmtop.store.exports import session_markdown, to_csv, to_json
from llmtop.store.history import History
from spilling_machine import SpillingMachine
from summary_rows import row

SIZE, LAYERS = 42_520_413_916, 81


def point_row(mode, tps, layers=None, shared=0, vram=None, complete=True, error=None, context=2048, total=LAYERS):
    return replace(
        row("llama3.3", mode),
        eval_rate_tps=tps,
        layers_offloaded=layers,
        layers_total=total,
        shared_delta_bytes=shared,
        vram_delta_bytes=vram,
        complete=complete,
        error=error,
        context=context,
    )


def names(modes) -> list[str]:
    """The modes' canonical names, as rows keep them."""
    return [mode.name for mode in modes]


def machine_rows(machine, modes, auto_layers=27, repeat=1):
    """Rows of runs on the spilling machine: its rate, layers and spill for each mode."""
    rows = []
    for _ in range(repeat):
        for mode in (getattr(m, "name", m) for m in modes):  # a planner's Modes, or names
            layers = auto_layers if mode == "auto" else (0 if mode == "cpu" else int(mode.split("=")[1]))
            if not machine.fits(SIZE, LAYERS, layers):
                rows.append(point_row(mode, None, layers, complete=False, error="unable to allocate ROCm0 buffer"))
                continue
            dedicated, shared = machine.placement(SIZE, LAYERS, layers)
            tps = machine.machine_tps(SIZE, LAYERS, layers)
            machine.draw(SIZE, LAYERS, layers)  # the stand-in power it draws meanwhile
            point = point_row(mode, tps, layers, shared, dedicated)
            rows.append(replace(point, joules_per_token=(machine.cpu_w + machine.gpu_w) / tps))
    return rows


# -- the command line's words -------------------------------------------------------------------------
def test_parse_sweep_reads_every_form():
    assert parse_sweep("") == SweepSpec("num_gpu", None)
    assert parse_sweep("27, 0,10,20,10") == SweepSpec("num_gpu", (0, 10, 20, 27))
    assert parse_sweep("num_gpu=5,3") == SweepSpec("num_gpu", (3, 5))
    assert parse_sweep("num_ctx=32768,2048,8k") == SweepSpec("num_ctx", (2048, 8192, 32768))
    assert parse_sweep("moe=24,0,8") == SweepSpec("moe", (0, 8, 24))


@pytest.mark.parametrize(
    "text, message",
    [
        ("0,-4", "a layer count cannot be negative: -4"),
        ("0,,10", "empty value"),
        ("llama3.3", "not a layer count: 'llama3.3'"),
        ("num_ctx", "give the contexts to try"),
        ("num_ctx=100", "between 256 and"),
        ("temperature=1", "cannot sweep 'temperature'"),
        ("moe", "give the layers whose experts stay in system memory"),
        ("moe=all", "not a layer count: 'all'"),
    ],
)
def test_parse_sweep_says_what_is_wrong(text, message):
    with pytest.raises(SweepError, match=message):
        parse_sweep(text)


def test_check_layers_refuses_points_past_the_model_and_asks_for_a_list_without_a_count():
    with pytest.raises(SweepError, match=r"llama3.3 has 81 layers: num_gpu 90, 100 is past them \(0 to 81\)"):
        check_layers(SweepSpec("num_gpu", (0, 90, 100)), "llama3.3", 81)
    with pytest.raises(SweepError, match=r"cannot find how many layers m has .* --sweep 0,10,20,30"):
        check_layers(SweepSpec(), "m", None)
    check_layers(SweepSpec("num_gpu", (0, 10)), "m", None)  # a list by hand needs no count
    check_layers(SweepSpec("num_ctx", (2048,)), "m", None)
    with pytest.raises(SweepError, match=r"tanuki has 32 repeating layers: moe=40 is past them"):
        check_layers(SweepSpec("moe", (0, 16, 40)), "tanuki", 33)


# -- the plan -----------------------------------------------------------------------------------------
def test_the_first_points_are_ollamas_choice_then_the_coarse_grid():
    planner = SweepPlanner(SweepSpec(), LAYERS)
    assert names(planner.first_modes()) == ["auto", "cpu", "gpu=20", "gpu=40", "gpu=61", "gpu=81"]
    assert coarse_values(19) == [0, 5, 10, 14, 19]
    assert final_step(81) == 6 and final_step(19) == 2 and final_step(8) == 1
    by_hand = SweepPlanner(SweepSpec("num_gpu", (0, 27, 30)), LAYERS)
    assert names(by_hand.first_modes()) == ["auto", "cpu", "gpu=27", "gpu=30"]
    assert by_hand.next_modes(machine_rows(SpillingMachine(), ["auto", "cpu", "gpu=27", "gpu=30"])) == []
    contexts = SweepPlanner(SweepSpec("num_ctx", (2048, 8192)), None)
    assert names(contexts.first_modes()) == ["auto", "auto:ctx=2048", "auto:ctx=8192"]
    experts = SweepPlanner(SweepSpec("moe", (0, 16)), 33)  # every layer on the GPU, the experts of N on the CPU
    assert names(experts.first_modes()) == ["auto", "gpu=33:moe=0", "gpu=33:moe=16"] and not experts.grows
    assert names(SweepPlanner(SweepSpec("moe", (8,)), None).first_modes()) == ["auto", "auto:moe=8"]


def test_refining_finds_the_machines_fastest_layer_count_within_one_final_step():
    machine = SpillingMachine()
    best = machine.best_layers(SIZE, LAYERS)
    assert best == 24  # VRAM is full at 24 layers; from 25 on, layers spill into shared memory
    planner = SweepPlanner(SweepSpec(), LAYERS)
    modes = planner.first_modes()
    rows = machine_rows(machine, modes)
    rounds = 0
    while more := planner.next_modes(rows):
        rows += machine_rows(machine, more)
        rounds += 1
    assert rounds <= 4 and len(planner.asked) <= planner.expected_runs()
    result = conclude("llama3.3", SweepSpec(), rows)
    assert abs(result.best.x - best) <= final_step(LAYERS)
    assert result.recommended is result.best


@pytest.mark.parametrize("vram_gb", [8, 12, 20, 24, 48])
def test_refining_finds_the_peak_on_other_cards_too(vram_gb):
    machine = SpillingMachine(vram_total=vram_gb * 10**9, shared_limit=10**12)
    best = machine.best_layers(SIZE, LAYERS)
    planner = SweepPlanner(SweepSpec(), LAYERS)
    rows = machine_rows(machine, planner.first_modes(), auto_layers=min(LAYERS, best + 3))
    while more := planner.next_modes(rows):
        rows += machine_rows(machine, more, auto_layers=min(LAYERS, best + 3))
    found = conclude("llama3.3", SweepSpec(), rows).best.x
    assert abs(found - best) <= final_step(LAYERS), (found, best)


def test_a_failed_point_is_never_the_best_and_refining_stops_when_nothing_ran():
    planner = SweepPlanner(SweepSpec(), 8)
    planner.first_modes()
    failed = [point_row(m, None, complete=False, error="boom", total=9) for m in ("auto", "cpu", "gpu=2", "gpu=4")]
    assert planner.next_modes(failed) == []
    result = conclude("m", SweepSpec(), failed)
    assert result.best is None and result.recommended is None and not result.concluded
    assert result.conclusion == "no point of the sweep finished: nothing to conclude (boom)"


def test_the_announcement_says_the_runs_and_a_time_guessed_from_the_size():
    planner = SweepPlanner(SweepSpec(), LAYERS)
    text = announce(SweepSpec(), "llama3.3", planner, 2, SIZE)
    # 6 first points and two for each of the 2 halvings (20 -> 10 -> 5): 10 points, 2 runs each.
    assert text.startswith("sweep of GPU layers for llama3.3: 0 to 81, coarse then finer around the fastest")
    assert "about 20 runs (2 each)" in text
    per_run = 10 + SIZE / 2e9 + 150 * SIZE / 40e9  # overhead, load and 150 tokens at 40 GB/s
    minutes = round(per_run * 20 / 60)
    assert f"about {minutes // 60} h {minutes % 60:02d} min guessed from the model's size" in text
    by_hand = announce(
        SweepSpec("num_ctx", (2048, 8192)), "m", SweepPlanner(SweepSpec("num_ctx", (2048, 8192)), 9), 1, None
    )
    assert by_hand == "sweep of the context for m: 2048, 8192 and Ollama's own choice; 3 runs"


# -- the conclusion -----------------------------------------------------------------------------------
def test_the_conclusion_names_the_setting_its_gain_over_ollamas_choice_and_the_modelfile():
    rows = [
        point_row("auto", 1.34, 27, shared=2_100_000_000, vram=15_200_000_000),
        point_row("cpu", 0.99, 0),
        point_row("gpu=24", 1.52, 24, shared=0, vram=14_900_000_000),
    ]
    result = conclude("llama3.3", SweepSpec(), rows)
    assert result.conclusion == (
        "num_gpu 24 gives 1.52 tps, 13% faster than Ollama's choice (27 layers, 2.1GB spilled into shared memory)"
    )
    assert result.modelfile == "FROM llama3.3\nPARAMETER num_gpu 24\n"
    assert result.create_command == "ollama create llama3.3-gpu24 -f Modelfile && ollama run llama3.3-gpu24"
    assert [result.marks(p) for p in result.points] == ["", "fastest, recommended", "Ollama's choice"]
    assert result.notes == (
        "one run per point: differences of a few percent may be noise (--repeat 3 tells them apart)",
    )
    with_context = conclude("hf.co/org/Repo-GGUF:Q4_K_M", SweepSpec(), rows, num_ctx=8192)
    assert with_context.modelfile == "FROM hf.co/org/Repo-GGUF:Q4_K_M\nPARAMETER num_gpu 24\nPARAMETER num_ctx 8192\n"
    assert with_context.create_command.startswith("ollama create repo-gguf-q4_k_m-gpu24 -f Modelfile")


def test_within_the_noise_the_fewest_layers_without_spill_are_recommended():
    rows = []
    for tps_auto, tps_20, tps_24 in ((1.50, 1.47, 1.53), (1.44, 1.49, 1.45)):
        rows += [
            point_row("auto", tps_auto, 27, shared=2_000_000_000),
            point_row("gpu=20", tps_20, 20),
            point_row("gpu=24", tps_24, 24),
        ]
    result = conclude("llama3.3", SweepSpec(), rows)
    assert result.best.mode == "gpu=24"
    assert result.recommended.mode == "gpu=20"
    assert {p.mode for p in result.within_noise} == {"gpu=20", "auto"}
    assert result.conclusion.startswith("num_gpu 20 gives 1.48 tps, as fast as Ollama's choice within the noise (1.47")
    assert "2 other point(s) are within the noise of the fastest" in result.notes[0]


def test_ollamas_choice_when_it_is_the_fastest_and_a_stopped_sweep():
    rows = [point_row("auto", 1.4, 27), point_row("cpu", 0.9, 0), point_row("gpu=20", 1.2, 20)]
    result = conclude("llama3.3", SweepSpec(), rows, finished=False)
    assert (
        result.conclusion == "Ollama's own choice (27 layers, no spill) is the fastest here at 1.40 tps: nothing to set"
    )
    assert result.modelfile is None and not result.concluded
    assert result.notes[0] == "the sweep was stopped after 3 points: this is as far as it went"


def test_a_sweep_where_no_point_put_a_layer_on_a_gpu_recommends_nothing():
    """A machine without a GPU (as the real Ollama of tests/test_real_ollama.py shows): every point is
    the same CPU run, so the fastest of them is noise, not a setting to keep."""
    rows = [point_row("auto", 61.0, 0), point_row("cpu", 55.9, 0), point_row("gpu=40", 63.3, 0)]
    result = conclude("r81", SweepSpec(), rows)
    assert result.conclusion == (
        "every point ran on the CPU alone (0 of 81 layers on a GPU): "
        "there is no layer setting to choose on this machine"
    )
    assert result.recommended is None and result.modelfile is None and result.create_command is None
    assert result.concluded


def test_failed_points_are_results_named_once_per_reason():
    rows = machine_rows(SpillingMachine(), ["auto", "cpu", "gpu=20", "gpu=40", "gpu=61", "gpu=81"])
    result = conclude("llama3.3", SweepSpec(), rows)
    assert "gpu=61, gpu=81 failed: unable to allocate ROCm0 buffer" in result.notes
    failed = [p for p in result.points if p.failed]
    assert [p.mode for p in failed] == ["gpu=61", "gpu=81"] and all(p.spilled is None for p in failed)
    assert result.concluded


def test_an_experts_sweep_concludes_on_the_environment_to_set_and_the_serve_line():
    """The issue's MoE case on a 16 GB card (figures made up for the test): every layer asked for the GPU;
    with the experts of 16 layers in system memory the model fits and runs fastest; fewer spill."""
    spec = SweepSpec("moe", (0, 16, 24))
    rows = [
        point_row("auto", 5.1, 20, total=33),
        point_row("gpu=33:moe=0", 1.2, 33, shared=6_000_000_000, total=33),
        point_row("gpu=33:moe=16", 6.4, 33, total=33),
        point_row("gpu=33:moe=24", 5.9, 33, total=33),
        point_row("gpu=20", 9.9, 20),  # another kind of run: not a point of this sweep
        point_row("auto:kv=q8_0", 9.9, 20),  # another server setting: not a point either
    ]
    result = conclude("tanuki-8x8b", spec, rows)
    assert [p.mode for p in result.points] == ["gpu=33:moe=0", "gpu=33:moe=16", "gpu=33:moe=24", "auto"]
    assert result.best.mode == "gpu=33:moe=16" and result.points[0].spilled
    assert result.conclusion == (
        "moe=16 gives 6.40 tps, 25% faster than Ollama's choice (20/33 layers on the GPU, no spill). Start the "
        "server with LLAMA_ARG_N_CPU_MOE=16 (`LLAMA_ARG_N_CPU_MOE=16 ollama serve`) and set num_gpu 33 (the "
        "Modelfile below)"
    )
    assert result.modelfile == "FROM tanuki-8x8b\nPARAMETER num_gpu 33\n"
    assert result.create_command == "ollama create tanuki-8x8b-moe16 -f Modelfile && ollama run tanuki-8x8b-moe16"
    on_cpu = conclude("tanuki-8x8b", spec, [point_row("auto", 5.1, 0, total=33), point_row("gpu=33:moe=16", 5.3, 0)])
    assert on_cpu.conclusion.endswith("there is no place for the experts to choose on this machine")
    assert "Sweep of the experts' place" in session_markdown(rows, sweep=result)


def test_a_context_sweep_concludes_on_the_context_and_the_largest_that_keeps_every_layer():
    spec = SweepSpec("num_ctx", (2048, 8192, 32768))
    rows = [
        point_row("auto", 3.6, 15, context=32768, total=33),
        point_row("auto:ctx=2048", 45.0, 33, context=2048, total=33),
        point_row("auto:ctx=8192", 41.0, 33, context=8192, total=33),
        point_row("auto:ctx=32768", 3.6, 15, context=32768, total=33),
        point_row("gpu=20", 9.9, 20),  # another kind of run: not a point of this sweep
    ]
    result = conclude("qwen3:8b", spec, rows)
    assert [p.mode for p in result.points] == ["auto:ctx=2048", "auto:ctx=8192", "auto", "auto:ctx=32768"]
    assert result.conclusion == (
        "num_ctx 2048 gives 45.00 tps, 1150% faster than Ollama's choice (32768 tokens, 15/33 layers on the GPU, "
        "no spill); the largest context here with every layer on the GPU and no spill: 8192"
    )
    assert result.modelfile == "FROM qwen3:8b\nPARAMETER num_ctx 2048\n"
    assert result.create_command == "ollama create qwen3-8b-ctx2048 -f Modelfile && ollama run qwen3-8b-ctx2048"


# -- the exports and the history ----------------------------------------------------------------------
def test_every_export_carries_the_sweep():
    rows = machine_rows(SpillingMachine(), ["auto", "cpu", "gpu=20", "gpu=24", "gpu=61"])
    result = conclude("llama3.3", SweepSpec(), rows)
    markdown = session_markdown(rows, "en", result)
    assert "### Sweep of GPU layers (num_gpu): llama3.3" in markdown
    header = "| point | GPU layers | ctx | tps | VRAM | shared | J/token | limit tps | spilled | runs | found |"
    assert header in markdown
    [gpu24] = [r.joules_per_token for r in rows if r.mode == "gpu=24"]
    assert (
        f"| gpu=24 | 24/81 | 2048 | 1.26 | 16.3GB | 0.0GB | {gpu24:.3g} | n/a | no | 1 | fastest, recommended |"
        in markdown
    )
    assert "| gpu=61 | 61/81 | 2048 | failed | n/a | 0.0GB | n/a | n/a | n/a | 1 (1 incomplete) | failed |" in markdown
    assert f"**{result.conclusion}**" in markdown and "```\nFROM llama3.3\nPARAMETER num_gpu 24\n```" in markdown
    assert (
        "| 設定 | GPU層 | コンテキスト | tps | VRAM | 共有GPUメモリ | J/トークン | 上限tps | スピル | 回数 | 判定 |"
        in session_markdown(rows, "ja", result)
    )
    document = json.loads(to_json(rows, {}, result))
    sweep = document["sweep"]
    assert sweep["parameter"] == "num_gpu" and sweep["finished"] is True
    assert sweep["best"] == sweep["recommended"] == "gpu=24"
    assert sweep["ollama_choice"]["layers_offloaded"] == 27 and sweep["ollama_choice"]["spilled"] is True
    assert [p["mode"] for p in sweep["points"]] == ["cpu", "gpu=20", "gpu=24", "auto", "gpu=61"]
    assert sweep["points"][2]["joules_per_token"] == gpu24
    assert sweep["modelfile"] == "FROM llama3.3\nPARAMETER num_gpu 24\n"
    assert "sweep" not in json.loads(to_json(rows, {}))
    lines = to_csv(rows, result).splitlines()
    assert lines[0].endswith(",sweep_found,sweep_conclusion")
    gpu24 = next(line for line in lines if line.split(",")[0] == "llama3.3" and ",gpu=24," in line)
    assert "fastest, recommended" in gpu24 and "num_gpu 24 gives 1.26 tps" in gpu24


def test_the_runner_grows_the_sweep_and_keeps_its_result_in_the_history(tmp_path):
    machine = SpillingMachine()

    class Session:
        """Runs on the spilling machine, as the session would return them."""

        def __init__(self):
            self.stopped_by = None
            self.events = EventStream()

        def run(self, settings):
            return machine_rows(machine, [settings.mode])[0]

    history = History(tmp_path / "history.sqlite3")
    sweep = SweepPlan("llama3.3", SweepSpec(), LAYERS, 1, RunSettings())
    runner = PlanRunner({"llama3.3": Session()}, sweep.first(), history=history, sweep=sweep)
    assert runner.total_text == f"about {sweep.expected_runs()}"
    rows = runner.run_all()
    assert runner.sweep_done and runner.total == len(rows) == runner.expected_total
    assert [r.mode for r in rows][:6] == ["auto", "cpu", "gpu=20", "gpu=40", "gpu=61", "gpu=81"]
    result = runner.sweep_result()
    assert result.finished and result.recommended.mode == "gpu=24"
    kept = history.sweeps("llama3.3:latest")
    assert len(kept) == 1 and kept[0]["conclusion"] == result.conclusion and kept[0]["model"] == "llama3.3"
    assert len(history.runs()) == len(rows)


def test_a_layer_sweep_that_measured_both_ends_draws_each_splits_limit_and_says_who_fell_under_it():
    """A token reads each layer once: with 27 of 81 layers on the GPU it takes 54/81 of the CPU-only
    point's time and 27/81 of the all-GPU point's. The point that spilled into shared memory fell under."""
    rows = [
        point_row("cpu", 1.0, 0),
        point_row("gpu=27", 0.9, 27, shared=2 * 10**9),  # spilled: read over the bus
        point_row("gpu=81", 10.0, 81),
        point_row("auto", 1.4, 27),
    ]
    result = conclude("llama3.3", parse_sweep("0,27,81"), rows)
    assert result.limit_at(0) == pytest.approx(1.0) and result.limit_at(81) == pytest.approx(10.0)
    assert result.limit_at(27) == pytest.approx(1 / (54 / 81 / 1.0 + 27 / 81 / 10.0))  # 1.43
    assert (
        "the limit (the table's `limit tps`): each split's layers read at the CPU-only and all-GPU points' rates; "
        "well under it: gpu=27 (63%)"
    ) in result.notes
    exported = json.loads(to_json(rows, sweep=result))["sweep"]
    assert exported["forecast"][27] == {"layers": 27, "tps": pytest.approx(1.4286, abs=1e-4)}
    table = session_markdown(rows, sweep=result)
    assert "| limit tps |" in table and "| 1.43 |" in table


def test_no_limit_is_drawn_where_an_end_was_not_measured_or_spilled():
    half = [point_row("cpu", 1.0, 0), point_row("gpu=40", 2.0, 40)]
    assert conclude("llama3.3", parse_sweep("0,40"), half).forecast == ()
    spilled = [point_row("cpu", 1.0, 0), point_row("gpu=81", 3.0, 81, shared=5 * 10**9)]
    assert conclude("llama3.3", parse_sweep("0,81"), spilled).forecast == ()
