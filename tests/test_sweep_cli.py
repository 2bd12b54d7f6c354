"""`llmtop MODEL --sweep` as a user runs it, against the double on a machine whose GPU is too small
(tests/spilling_machine.py): the server log it writes, the amdgpu counters llmtop reads through
LLMTOP_SYSFS_ROOT, loads that fail past the shared memory."""

import json
import os
import signal
import subprocess
import time

import pytest

from helpers.cli import command, llmtop, no_traceback
from ollama_double import LLAMA33, DoubleConfig, OllamaDouble, ServerLog
from spilling_machine import SpillingMachine

SIZE, LAYERS = LLAMA33["size"], LLAMA33["block_count"] + 1


@pytest.fixture
def spilling(tmp_path):
    """(double, machine, the arguments that point llmtop at it, the environment) on the article's machine."""
    made = []

    def start(speedup=100.0, tokens=20, **config):
        machine = SpillingMachine(speedup=speedup)
        sysfs = machine.install(tmp_path / "sys")
        log_file = tmp_path / "server.log"
        log_file.write_text("")
        writer = open(log_file, "a", encoding="utf-8", buffering=1)
        double = OllamaDouble(
            DoubleConfig(tokens=tokens, machine=machine, **config), log=ServerLog(writer.write, library="rocm")
        ).start()
        made.append((double, writer))
        args = ("--host", double.url, "--log", str(log_file), "--no-record")
        return double, machine, args, {"LLMTOP_SYSFS_ROOT": str(sysfs)}

    yield start
    for double, writer in made:
        double.stop()
        writer.close()


def test_the_sweep_finds_the_fastest_layer_count_and_says_what_to_set(spilling, tmp_path):
    double, machine, args, env = spilling()
    out = tmp_path / "sweep.json"
    result = llmtop("llama3.3", *args, "--sweep", "--headless", "--export", str(out), env=env, timeout=120)
    no_traceback(result)
    assert result.returncode == 0, result.stderr  # points that failed to load are results, not failures
    assert "llmtop: sweep of GPU layers for llama3.3: 0 to 81, coarse then finer around the fastest" in result.stderr
    asked = [
        b["options"].get("num_gpu") for _, path, b in double.requests if path == "/api/generate" and b.get("prompt")
    ]
    assert asked[:6] == [None, 0, 20, 40, 61, 81]  # Ollama's choice, then the coarse grid
    sweep = json.loads(out.read_text(encoding="utf-8"))["sweep"]
    best = machine.best_layers(SIZE, LAYERS)
    found = next(p for p in sweep["points"] if p["mode"] == sweep["best"])
    assert abs(found["layers_offloaded"] - best) <= 6  # one step of the final grid (81 / 16, rounded up)
    assert sweep["recommended"] == sweep["best"] and sweep["finished"] is True
    assert len(sweep["points"]) == len(asked) and {p["mode"] for p in sweep["points"]} >= {"auto", "cpu", "gpu=81"}
    choice = sweep["ollama_choice"]
    assert choice["layers_offloaded"] == 27 and choice["spilled"] is True
    _, shared = machine.placement(SIZE, LAYERS, 27)
    assert choice["shared_delta_bytes"] == pytest.approx(shared, rel=0.001)  # read from the amdgpu counters
    failed = [p for p in sweep["points"] if p["error"]]
    assert [p["mode"] for p in failed] == ["gpu=61", "gpu=81"] and all(p["avg_ts"] is None for p in failed)
    layers = found["layers_offloaded"]
    assert sweep["conclusion"].startswith(f"num_gpu {layers} gives ")
    assert "faster than Ollama's choice (27 layers, 1.3GB spilled into shared memory)" in sweep["conclusion"]
    assert sweep["modelfile"] == f"FROM llama3.3\nPARAMETER num_gpu {layers}\n"
    assert (
        f"**{sweep['conclusion']}**" in result.stdout and "### Sweep of GPU layers (num_gpu): llama3.3" in result.stdout
    )

    listed = llmtop("history")
    assert listed.returncode == 0, listed.stderr
    assert "### Sweeps" in listed.stdout and f"llama3.3 num_gpu: {sweep['conclusion']}" in listed.stdout


def test_a_context_sweep_runs_each_context_at_ollamas_layer_choice(spilling, tmp_path):
    double, _, args, env = spilling()
    out = tmp_path / "ctx.md"
    result = llmtop(
        "llama3.3", *args, "--sweep", "num_ctx=4096,8k", "--headless", "--export", str(out), env=env, timeout=60
    )
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert "sweep of the context for llama3.3: 4096, 8192 and Ollama's own choice; 3 runs" in result.stderr
    options = [b["options"] for _, path, b in double.requests if path == "/api/generate" and b.get("prompt")]
    # After the first point, every point asks for the tokens the first generated: the same work.
    assert options == [
        {"seed": 42},
        {"num_ctx": 4096, "seed": 42, "num_predict": 20},
        {"num_ctx": 8192, "seed": 42, "num_predict": 20},
    ]
    text = out.read_text(encoding="utf-8")
    assert "### Sweep of context (num_ctx): llama3.3" in text
    for line in ("| auto | 27/81 | 2048 |", "| auto:ctx=4096 | 27/81 | 4096 |", "| auto:ctx=8192 | 27/81 | 8192 |"):
        assert line in text


@pytest.mark.parametrize(
    "arguments, message",
    [
        (("--sweep", "0,90"), "llmtop: llama3.3 has 81 layers: num_gpu 90 is past them (0 to 81)"),
        (("--sweep", "--modes", "cpu"), "argument --modes: not allowed with argument --sweep"),
        (("--sweep", "-3"), "argument --sweep: a layer count cannot be negative: -3"),
        (("--sweep", "--warm"), "argument --sweep: not allowed with --warm"),
    ],
)
def test_bad_sweeps_end_in_one_line(spilling, arguments, message):
    _, _, args, env = spilling()
    result = llmtop("llama3.3", *args, *arguments, "--headless", env=env)
    no_traceback(result)
    assert result.returncode == 2 and message in result.stderr.splitlines()[-1]


def test_a_model_without_a_layer_count_asks_for_the_points(double_factory):
    shapeless = dict(LLAMA33, block_count=None)
    double = double_factory(models={"mystery:latest": shapeless})
    result = llmtop("mystery", "--host", double.url, "--no-log", "--sweep", "--headless")
    no_traceback(result)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "llmtop: cannot find how many layers mystery has (/api/show gives no block_count): "
        "give the points, e.g. --sweep 0,10,20,30"
    )


def test_ctrl_c_halfway_keeps_the_points_done_concluded_exported_and_in_history(spilling, tmp_path):
    _, _, args, env = spilling(speedup=8.0, tokens=16)  # about 1.5 s a run
    out = tmp_path / "stopped.json"
    process = subprocess.Popen(
        command("llama3.3", *args, "--sweep", "--headless", "--export", str(out)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        seen.append(line)
        if "[run 4 of about" in line and "baseline" in line:
            break
    process.send_signal(signal.SIGINT)  # during the 4th point's baseline
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, "".join(seen) + stderr
    assert "Traceback" not in stderr
    sweep = json.loads(out.read_text(encoding="utf-8"))["sweep"]
    assert sweep["finished"] is False
    assert [p["mode"] for p in sweep["points"]][:3] == ["cpu", "gpu=20", "auto"]
    assert sweep["notes"][0].startswith("the sweep was stopped after 4 points")
    assert sweep["conclusion"] and "**" + sweep["conclusion"] + "**" in stdout
    listed = llmtop("history")
    assert "(stopped early)" in listed.stdout


@pytest.mark.parametrize("release_s", [0.0, 1.5])
def test_the_baseline_waits_for_gpu_memory_freed_after_the_unload(spilling, tmp_path, release_s):
    """The model is loaded when the sweep starts (its counters full), and the driver frees its memory
    over 1.5 s after Ollama has answered the unload: the baseline waits until the counters are
    steady, so Ollama's choice reads the 1.3 GB spill the machine's own model gives."""
    double, machine, args, env = spilling(preloaded=("llama3.3:latest",))
    machine.release_s = release_s
    _, shared = machine.placement(SIZE, LAYERS, 27)
    out = tmp_path / "sweep.json"
    result = llmtop("llama3.3", *args, "--sweep", "0,27", "--headless", "--export", str(out), env=env, timeout=120)
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    runs = json.loads(out.read_text(encoding="utf-8"))["runs"]
    auto = next(r for r in runs if r["mode"] == "auto")
    assert auto["shared_delta_bytes"] == pytest.approx(shared, rel=0.001)  # 1.3 GB, as the machine's model
    assert auto["gpu_baseline_note"] is None
    choice = json.loads(out.read_text(encoding="utf-8"))["sweep"]["ollama_choice"]
    assert choice["spilled"] is True and "1.3GB spilled" in json.loads(out.read_text())["sweep"]["conclusion"]


def test_a_baseline_read_before_memory_was_freed_is_no_figure():
    """A delta that falls below the baseline by more than the noise is n/a with the reason, never a
    figure (summary.unsettled_baseline)."""
    from llmtop.measure.summary import unsettled_baseline

    assert unsettled_baseline(1_200_000_000, -700_000_000) == (
        "n/a: the baseline was not settled (shared fell by 0.7GB during the run)"
    )
    assert unsettled_baseline(-20_000_000, 5_000_000) is None  # within the noise
    assert unsettled_baseline(None, None) is None


def test_the_machine_starts_idle_with_its_power_tree_too(tmp_path):
    """The stand-in card's counters read idle once installed, with or without power (the power tree
    once rewrote them with the recorded, loaded values, and the README's sweep read them as its baseline)."""
    from gpu_trees import AMD_CARD

    for power in (False, True):
        machine = SpillingMachine()
        root = machine.install(tmp_path / f"sys-{power}", power=power)
        device = root / "class/drm/card1/device"
        assert (
            int((device / "mem_info_vram_used").read_text()) == machine.vram_idle != int(AMD_CARD["mem_info_vram_used"])
        )
        assert int((device / "mem_info_gtt_used").read_text()) == machine.gtt_idle
