"""Real Ollama splitting a model between a GPU and the CPU: the newest Ollama, its llama-server built
with llama.cpp's Vulkan backend, on Mesa's software Vulkan driver (lavapipe: a CPU-type device with a
2 GiB heap; ../shared/vulkan-gpu.md). Every command a user runs meets a real split here: Ollama's own
partial choice, a sweep of real loads, the experts and the KV cache moving between the GPU and the
CPU, and another app's load seen by `llmtop watch`.

What a software GPU cannot show: a dedicated/shared split (the spill into shared GPU memory is proven
on recordings only), vendor counters (NVML, amdgpu sysfs), and a GPU faster than the CPU (lavapipe
runs on the same two cores, so the CPU alone wins here: the sweep says so).
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import threading

import pytest
from conftest import SOFTWARE_GPU

from helpers.cli import command
from helpers.real_runs import exported, run_llmtop, serve_env
from real_ollama import LONG_CONTEXT_LLAMA, LONG_CONTEXT_NUM_CTX, MOE_LLAMA, RealOllama
from waiting import eventually

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Ollama is built here for Linux")

DEVICE = "llvmpipe (LLVM 15.0.6, 256 bits)"  # lavapipe's name, as Ollama's discovery and llama-server say it
TOKENS = "8"  # lavapipe takes about 0.3 to 0.8 s a token with layers on it: short answers
LONG_CONTEXT = ("--num-ctx", str(LONG_CONTEXT_NUM_CTX), "--num-predict", TOKENS)


def gpu_bytes(run: dict) -> int:
    """The run's buffers on the GPU, as its memory by part (the server log) gives them."""
    return sum(p["bytes"] for p in run["memory_parts"] if p["device"] != "system memory")


def test_ollamas_own_split_on_the_software_gpu_against_the_cpu(real_ollama, tmp_path):
    """The article's situation: a model whose KV cache at num_ctx 32768 does not fit beside its weights
    in the GPU's 2 GiB, so Ollama (llama-server's fit) puts part of its layers on the GPU; against the
    CPU alone. The split from the real log agrees with /api/ps, the GPU's buffers stand for VRAM (no
    counter reads this GPU), and the backend and the device are named everywhere a run is shown."""
    server = real_ollama(SOFTWARE_GPU)
    report = tmp_path / "run.html"
    result = run_llmtop(
        server, tmp_path, LONG_CONTEXT_LLAMA, "--host", server.url, "--log", str(server.log_path),
        "--modes", "cpu,auto", *LONG_CONTEXT, "--report", str(report),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    cpu, auto = exported(tmp_path)
    assert (cpu["env"], cpu["layers_offloaded"], cpu["layers_total"], cpu["library"]) == ("CPU", 0, 81, "cpu")
    assert auto["env"] == "CPU+GPU" and 0 < auto["layers_offloaded"] < 81 == auto["layers_total"]
    assert auto["library"] == "vulkan" and auto["gpus"] == [DEVICE]
    assert auto["context"] == LONG_CONTEXT_NUM_CTX and auto["split_reason"].startswith(
        f"{auto['layers_offloaded']}/81 layers on the GPU: all 81 need "
    )
    # No counter reads lavapipe: VRAM is the engine's buffers on Vulkan0, which /api/ps reports too.
    assert auto["vram_delta_bytes"] is None and auto["vram_source"] == "server log"
    assert auto["vram_engine_bytes"] == gpu_bytes(auto) > 0
    assert abs(auto["ps_size_vram_bytes"] - auto["vram_engine_bytes"]) <= 2**20
    assert {p["device"] for p in auto["memory_parts"]} == {"Vulkan0", "system memory"}
    # The layers the log says are on the GPU hold their share of the weights (the blocks are all alike).
    weights = {p["device"]: p["bytes"] for p in auto["memory_parts"] if p["part"] == "weights"}
    assert abs(weights["Vulkan0"] / sum(weights.values()) - auto["layers_offloaded"] / 81) < 0.05
    table = result.stdout
    assert re.search(rf"\| CPU\+GPU \| auto \| {LONG_CONTEXT_NUM_CTX} \| {auto['layers_offloaded']}/81 \|", table)
    assert f"{auto['vram_engine_bytes'] / 1e9:.1f}GB (log)" in table
    assert f"vulkan: {DEVICE}" in table and "ran alike" not in table
    (verdict,) = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))["verdicts"]
    assert verdict["verdict"] in ("faster", "slower", "spread unknown") and verdict["speedup"] is not None
    page = html.unescape(report.read_text(encoding="utf-8"))
    assert f"vulkan: {DEVICE}" in page and "(log)" in page and "Vulkan0" in page


def test_the_screen_shows_the_split_the_device_and_its_buffers(real_ollama, tmp_path):
    """The TUI beside the software GPU: the layers gauge at N/81 from the log as Ollama writes it, the
    VRAM gauge from the engine's buffers with the device's name, the summary row."""
    from terminal import Terminal

    server = real_ollama(SOFTWARE_GPU)
    argv = command(
        LONG_CONTEXT_LLAMA, "--host", server.url, "--log", str(server.log_path), "--no-history", *LONG_CONTEXT,
        "--export", str(tmp_path / "run.json"), "--record", str(tmp_path / "run.jsonl"),
    )  # fmt: skip
    terminal = Terminal(argv, {k: v for k, v in os.environ.items() if k != "OLLAMA_HOST"}, columns=160, lines=50)
    try:
        layers = terminal.wait_for(lambda s: re.search(r"\b([1-9]\d?) / 81 +vulkan", s), 240, "N / 81 on vulkan")
        assert "Traceback" not in layers
        terminal.wait_for(lambda s: re.search(r"VRAM .* GB / 2\.1 GB .* buffers \(log\)", s), 120, "VRAM: buffers")
        shown = terminal.wait_for(lambda s: "(log)" in s and "CPU+GPU" in s, 300, "the summary row")
        terminal.press("t")  # the table's other columns: the GPU's backend and name
        terminal.wait_for(lambda s: f"vulkan: {DEVICE}" in s, 30, "the GPU column")
        terminal.press("q")
        status = terminal.finish()
    finally:
        terminal.kill()
    assert status == 0, terminal.screen()
    (run,) = exported(tmp_path)
    assert re.search(rf"\b{run['layers_offloaded']} / 81 +vulkan", layers) and 0 < run["layers_offloaded"] < 81
    assert f"{run['vram_engine_bytes'] / 1e9:.1f}GB (log)" in shown


def test_a_layer_sweep_on_the_software_gpu_loads_each_point_and_says_which_wins(real_ollama, tmp_path):
    """Each num_gpu point is a real load with its own split; Ollama's choice among them; the sentence is
    the measurement's: on this GPU, on the same two cores, the CPU alone is expected to win."""
    server = real_ollama(SOFTWARE_GPU)
    result = run_llmtop(
        server, tmp_path, LONG_CONTEXT_LLAMA, "--host", server.url, "--log", str(server.log_path),
        "--sweep", "0,20,81", *LONG_CONTEXT, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    runs = {r["mode"]: r for r in exported(tmp_path)}
    assert [runs[m]["layers_offloaded"] for m in ("cpu", "gpu=20", "gpu=81")] == [0, 20, 81]
    assert all(r["complete"] and r["layers_total"] == 81 for r in runs.values())
    assert 0 < runs["auto"]["layers_offloaded"] < 81  # Ollama's own partial choice, measured as a point
    on_gpu = [gpu_bytes(runs[m]) for m in ("gpu=20", "gpu=81")]
    assert 0 < on_gpu[0] < on_gpu[1]  # more layers, more of the model in the GPU's buffers
    sweep = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))["sweep"]
    fastest = max(sweep["points"], key=lambda p: p["avg_ts"] or 0)
    if fastest["layers_offloaded"] == 0:
        assert sweep["conclusion"].startswith("the CPU alone is the fastest here, every layer on this GPU made it")
        assert "PARAMETER num_gpu 0" in sweep["modelfile"]
    else:  # a faster machine's lavapipe: whatever won is what the sentence names
        assert "the CPU alone" not in sweep["conclusion"]


def test_experts_and_the_kv_cache_move_between_the_software_gpu_and_the_cpu(real_ollama, tmp_path):
    """`--serve` with the server's own settings on the GPU path: every layer on Vulkan0 (auto), the
    experts of every layer kept in system memory (moe=all), the KV cache in q8_0 (kv=q8_0): the real
    log's buffers move between Vulkan0 and the CPU, and the memory by part per device shows it."""
    server = real_ollama(SOFTWARE_GPU, start=False)
    result = run_llmtop(server, tmp_path, MOE_LLAMA, "--serve", "--modes", "auto,auto:kv=q8_0,moe=all",
                        "--num-predict", TOKENS, timeout=900, **serve_env(server))  # fmt: skip
    assert result.returncode == 0, result.stderr
    f16, q8, moe = exported(tmp_path)
    assert all(r["library"] == "vulkan" and r["layers_offloaded"] == r["layers_total"] for r in (f16, q8, moe))

    def on(run: dict, name: str, device: str) -> int:
        return sum(p["bytes"] for p in run["memory_parts"] if p["part"] == name and p["device"] == device)

    # The experts of every layer leave Vulkan0 for system memory (mapped from the file: llama.cpp's per-tensor
    # lines do not come on this path, so they show as weights in system memory, not as experts of their own).
    moved = on(f16, "weights", "Vulkan0") - on(moe, "weights", "Vulkan0")
    assert moved > 0.6 * on(f16, "weights", "Vulkan0")
    assert on(moe, "weights", "system memory") - on(f16, "weights", "system memory") >= 0.95 * moved
    assert on(f16, "kv_cache", "system memory") == on(q8, "kv_cache", "system memory") == 0
    assert 0.45 < on(q8, "kv_cache", "Vulkan0") / on(f16, "kv_cache", "Vulkan0") < 0.6  # q8_0 against f16
    assert moe["settings"]["cpu_moe"] == "all" and q8["settings"]["kv_cache"] == "q8_0"
    assert "### Settings and memory by part" in result.stdout and "Vulkan0" in result.stdout


def test_watch_sees_another_apps_split_load_its_device_and_its_buffers(real_ollama, tmp_path):
    """`llmtop watch` while another program loads the model at num_ctx 32768: the split with its
    reason, the layers left on the CPU, and where the buffers went, device by device."""
    server: RealOllama = real_ollama(SOFTWARE_GPU)
    env = {k: v for k, v in os.environ.items() if k != "OLLAMA_HOST"}
    watch = subprocess.Popen(
        command("watch", "--headless", "--host", server.url, "--log", str(server.log_path), "--no-history",
                "--no-record", "--duration", "600"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    seen: list[str] = []
    threading.Thread(target=lambda: seen.extend(iter(watch.stdout.readline, "")), daemon=True).start()  # type: ignore[union-attr]
    try:
        assert watch.stderr is not None and watch.stderr.readline().startswith("llmtop: watching ")
        server.api("/api/generate", {"model": LONG_CONTEXT_LLAMA, "prompt": "Hello", "stream": False,
                                     "options": {"num_ctx": LONG_CONTEXT_NUM_CTX, "num_predict": 4}})  # fmt: skip
        eventually(lambda: any(" (server log)" in line and "on Vulkan0" in line for line in seen), 120, "the buffers")
    finally:
        watch.terminate()
        watch.wait(30)
    text = "".join(seen)
    split = re.search(r"r81-64k:latest: (\d+)/81 layers on the GPU: all 81 need \d+ MiB", text)
    assert split is not None and 0 < int(split.group(1)) < 81, text
    assert f"r81-64k:latest: {81 - int(split.group(1))} layers run on the CPU" in text
    assert re.search(rf"on Vulkan0 \({re.escape(DEVICE)}\): weights \d+ MiB, KV cache \d+ MiB, compute", text), text
    assert "; in system memory: weights" in text


# The double's lines of a load Ollama splits (ServerLog era "llama-server", a Vulkan GPU) against real
# 0.34.4's on the software GPU: what each prints that llmtop takes and the other does not, and why.
GPU_LOAD_DIFFERENCES: dict[str, dict[str, str]] = {
    "only the double": {},
    "only the real": {
        "cmn  common_param: -": "the devices llama-server lists, with the GPU's name and memory (the double's "
        "discovery line names the GPU, which is what llmtop shows)",
        "common_memory_breakdown_print: |": "the fit step's tables: parse-log's `fit`, the split's reason",
        "common_params_fit_impl: projected": "the fit step's projection: the split's reason",
        "common_params_fit_impl: cannot": "the fit step's shortfall: the split's reason",
        "common_params_fit_impl: context": "the context the user set: parse-log's `fit`",
        "common_params_fit_impl: -": "the fit step's plan for the device: the split's reason",
        "llama_prepare_model_devices: using": "the device it loads on (`using device Vulkan0 (...)`): the backend, "
        "which the buffers' device names too",
        "slot launch_slot_: id": "a request's start: the double prints a request's timings only (test_watch.py)",
        "slot   operator(): id": "the prompt's length and its cached tokens (test_real_ollama.py holds them)",
        "slot      release: id": "a request's end: the same",
    },
}


def test_the_doubles_gpu_answers_are_the_real_ones_on_the_software_gpu(real_ollama, tmp_path):
    """The double of Ollama 0.30+ with a (Vulkan) GPU against real 0.34.4 splitting a model on the software
    GPU: the same discovery line's fields, the same lines of the load in the same order (each one only one
    of them prints is named in GPU_LOAD_DIFFERENCES), an `offloaded N/M` with 0 < N < M, and /api/ps's size
    and size_vram equal to the buffers the log names, all of them and those on the GPU."""
    from helpers.contract import api_get, in_order, normal_kind, parsed_kinds
    from llmtop.collectors.ollama_log import OllamaLogParser, logfmt
    from llmtop.measure.load_parts import memory_parts
    from ollama_double import DoubleConfig, OllamaDouble, ServerLog

    log = tmp_path / "double.log"
    with log.open("w") as out:
        writer = ServerLog(lambda t: (out.write(t), out.flush()), "llama-server", library="vulkan")
        double = OllamaDouble(
            DoubleConfig(tokens=4, gpu_name=DEVICE, vram_fraction=52 / 81, llama_server_log=True), log=writer
        ).start()
        try:
            api_get(double.url, "/api/generate", {"model": "llama3.3", "prompt": "Hello"})
            double_ps = api_get(double.url, "/api/ps")[1]["models"][0]
        finally:
            double.stop()
    server = real_ollama(SOFTWARE_GPU)
    options = {"num_ctx": LONG_CONTEXT_NUM_CTX, "num_predict": 4}
    server.api("/api/generate", {"model": LONG_CONTEXT_LLAMA, "prompt": "Hello", "stream": False, "options": options})
    real_ps = server.api("/api/ps")["models"][0]
    texts = {"double": log.read_text(), "real": server.log_text()}

    def discovery(text: str) -> set[str]:
        (line,) = [line for line in text.splitlines() if 'msg="inference compute"' in line]
        return set(logfmt(line)) - {"time", "level", "source"}

    assert discovery(texts["double"]) == discovery(texts["real"])
    for name, text, ps in (("double", texts["double"], double_ps), ("real", texts["real"], real_ps)):
        (load,) = [r for r in OllamaLogParser().feed_all(text.splitlines()) if r.layers_offloaded is not None]
        assert 0 < load.layers_offloaded < load.layers_total, name
        parts = memory_parts(load)
        assert abs(ps["size_vram"] - sum(p.bytes for p in parts if p.on_gpu)) <= 2**20, (name, ps, parts)
        assert abs(ps["size"] - sum(p.bytes for p in parts)) <= 2**20, (name, ps, parts)
    doubled, real = ([normal_kind(k) for k in parsed_kinds(texts[n])] for n in ("double", "real"))
    assert set(doubled) - set(real) == set(GPU_LOAD_DIFFERENCES["only the double"]), (doubled, real)
    assert set(real) - set(doubled) == set(GPU_LOAD_DIFFERENCES["only the real"]), (doubled, real)
    assert in_order([k for k in doubled if k in real], real) == [], (doubled, real)


def test_fit_forecasts_the_split_real_ollama_then_makes_and_each_run_is_held_to_its_limit(real_ollama, tmp_path):
    """`llmtop fit` before any load, from the server's tensor table and the GPU's 2 GiB, against the split
    llama-server's own fit then makes at num_ctx 32768 (a layer either way at most) and the memory /api/ps
    then reports on the GPU; then two CPU runs, the second held to the limit the first one's rate gives."""
    from helpers.cli import llmtop

    server = real_ollama(SOFTWARE_GPU)
    fit = llmtop("fit", LONG_CONTEXT_LLAMA, "--host", server.url, "--num-ctx", str(LONG_CONTEXT_NUM_CTX),
                 "--vram", "2048MiB", "--cpu-bandwidth", "20", "--no-probe", "--json")  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    forecast = json.loads(fit.stdout)
    assert forecast["source"] == f"{server.url}'s /api/show (its tensor table)" and forecast["layers"] == 81
    options = {"num_ctx": LONG_CONTEXT_NUM_CTX, "num_predict": 2}
    server.api("/api/generate", {"model": LONG_CONTEXT_LLAMA, "prompt": "Hello", "stream": False, "options": options})
    (on_gpu,) = [int(n) for n in re.findall(r"offloaded (\d+)/81 layers to GPU", server.log_text())]
    assert abs(forecast["choice"]["gpu_layers"] - on_gpu) <= 1, (forecast["choice"], on_gpu)
    size_vram = server.api("/api/ps")["models"][0]["size_vram"]
    at_real = forecast["splits"][on_gpu]["vram_bytes"]
    assert abs(at_real - size_vram) / size_vram < 0.05, (at_real, size_vram)  # the weights, KV cache and compute
    result = run_llmtop(server, tmp_path, LONG_CONTEXT_LLAMA, "--host", server.url, "--log", str(server.log_path),
                        "--modes", "cpu", "--repeat", "2", *LONG_CONTEXT)  # fmt: skip
    assert result.returncode == 0, result.stderr
    first, second = exported(tmp_path)
    assert first["limit_tps"] is None  # no run before it, no probe: the CPU's bandwidth is not known yet
    # The first run's rate: its bandwidth is its file's size a token, and a token reads all of that but the
    # header and the token embeddings (about 1% of this model).
    assert second["limit_tps"] == pytest.approx(first["eval_rate_tps"], rel=0.03)
    assert second["limit_note"].startswith(f"{second['eval_rate_tps']:.2f} tok/s, ")
    assert second["limit_share"] == pytest.approx(second["eval_rate_tps"] / second["limit_tps"], abs=0.001)
