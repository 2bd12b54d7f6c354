"""llmtop against real Ollama: the article's 0.5.11, 0.24.0 (the last release before llama-server)
and the newest release the Go module proxy serves, each built by tests/ollama_build.py and run as
`ollama serve` (tests/real_ollama.py), with real models imported by `ollama create`.

Every figure is checked against the real thing: the eval count and durations against Ollama's own
final chunk, the layers against the log Ollama wrote and `/api/ps`, the model facts against
`/api/show` and `/api/tags`, RAM and the Ollama processes' RSS against /proc at the same moment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import OLLAMA_VERSIONS, SOFTWARE_GPU

from helpers.cli import command
from helpers.real_runs import events, exported, run_llmtop, runner_pids, server_processes
from ollama_build import OllamaBuild
from real_ollama import RANDOM_LLAMA

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Ollama is built here for Linux")


def resident_bytes(pids: list[int]) -> int:
    """The processes' resident memory as /proc/PID/smaps_rollup sums it."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                total += int(line.split()[1]) * 1024
    return total


@pytest.mark.parametrize("kind", OLLAMA_VERSIONS)
def test_a_run_against_a_real_server_with_nothing_loaded(real_ollama, tmp_path, kind):
    server = real_ollama(kind)
    result = run_llmtop(server, tmp_path, RANDOM_LLAMA, "--host", server.url, "--log", str(server.log_path))
    assert result.returncode == 0, result.stderr
    (run,) = exported(tmp_path)
    ps = server.loaded()  # the model stays loaded after the run (keep_alive), as it was at its end
    pids = server.process_tree()
    resident = resident_bytes(pids)
    show = server.api("/api/show", {"model": RANDOM_LLAMA})
    tags = {m["name"]: m for m in server.api("/api/tags")["models"]}
    log = server.log_text()

    # The rate is Ollama's own: eval_count / eval_duration of its final chunk, as it sent it.
    (final,) = events(tmp_path, "final")
    chunk = final["chunk"]
    assert run["complete"] and run["eval_count"] == chunk["eval_count"] > 1
    assert run["eval_rate_tps"] == pytest.approx(chunk["eval_count"] / (chunk["eval_duration"] / 1e9), rel=1e-9)
    assert run["prompt_eval_count"] == chunk["prompt_eval_count"]
    assert run["load_s"] == pytest.approx(chunk["load_duration"] / 1e9)
    # The server's version, as it answers it; and nobody else used it meanwhile (its access lines).
    assert run["ollama_version"] == server.version
    assert (run["concurrent_requests"], run["concurrent_note"]) == (0, None)
    # The model's facts are /api/show's and /api/tags'.
    assert run["parameter_size"] == show["details"]["parameter_size"]
    assert run["quantization"] == show["details"]["quantization_level"]
    assert run["size_bytes"] == tags[f"{RANDOM_LLAMA}:latest"]["size"]
    # No GPU here: /api/ps says none of it is in VRAM, and llmtop's split says the same, from the log.
    (listed,) = ps
    assert listed["size_vram"] == 0 and run["ps_size_vram_bytes"] == 0
    assert run["layers_offloaded"] == 0 and run["layers_total"] == 81
    assert run["env"] == "CPU" and run["env_source"].startswith("server log")
    # What the log says of the layers, in each era's words: 0.5.11's plan, 0.24's "model layers",
    # llama-server's own n_layer (blocks; the output layer makes 81).
    assert re.search(r'layers\.model=81 |"model layers"=81 |print_info: n_layer\s+= 80\n', log), log[-2000:]
    # The Ollama processes llmtop read are the real ones, and their RSS is what /proc shows now.
    samples = [e["sample"] for e in events(tmp_path, "sample") if e["source"] == "ollama-rss"]
    last = samples[-1]
    assert {last["server_pid"], *last["runner_pids"]} == set(pids), (last, pids)
    assert last["rss_bytes"] == pytest.approx(resident, rel=0.05, abs=32 * 2**20)
    # RAM grew by at least the weights (loaded into memory or mapped) on every version.
    assert run["ram_delta_bytes"] > 0.9 * run["size_bytes"]
    assert run["ollama_rss_delta_bytes"] > 0.9 * run["size_bytes"]


@pytest.mark.parametrize("kind", OLLAMA_VERSIONS)
def test_a_model_already_loaded_is_unloaded_before_the_baseline(real_ollama, tmp_path, kind):
    """The state most users are in: another app (or `ollama run`) left the model loaded. llmtop
    unloads it, so its runner goes and the baseline is taken without it; the run loads afresh."""
    server = real_ollama(kind)
    server.load(RANDOM_LLAMA)
    (before,) = runner_pids(server)
    result = run_llmtop(server, tmp_path, RANDOM_LLAMA, "--host", server.url, "--log", str(server.log_path))
    assert result.returncode == 0, result.stderr
    (run,) = exported(tmp_path)
    assert run["complete"] and run["load_kind"] == "cold"
    assert [e["phase"] for e in events(tmp_path, "phase")][:2] == ["unloading", "baseline"]
    after = runner_pids(server)
    assert after and before not in after  # a new runner: the model was unloaded, then loaded again
    (baseline,) = events(tmp_path, "baseline")
    assert baseline["process"]["runner_pids"] == []  # nothing of the model left when the baseline was taken
    assert run["ram_delta_bytes"] > 0.9 * run["size_bytes"]
    # parse-log on the log this server wrote: both loads, in order, each as the log says it.
    parsed = subprocess.run(
        command("parse-log", str(server.log_path), "--json"), capture_output=True, text=True, timeout=60
    )
    assert parsed.returncode == 0, parsed.stderr
    loads = [json.loads(line) for line in parsed.stdout.splitlines()]
    assert len(loads) == 2 and loads[0]["started_at"] < loads[1]["started_at"]
    for load in loads:  # a llama model is llama.cpp's on every version (0.24 too: its runner, not its engine)
        assert (load["layers_offloaded"], load["layers_total"], load["library"]) == (0, 81, "cpu"), load
        assert load["engine"] == "llama.cpp" and load["ollama_version"] in (server.version, None)
        assert load["kv_cache"] and ", " not in load["kv_cache"], load["kv_cache"]  # one figure, not the plan and it
    assert (run["layers_offloaded"], run["context"]) == (loads[1]["layers_offloaded"], loads[1]["context"])


@pytest.mark.parametrize("kind", OLLAMA_VERSIONS)
def test_llmtop_serve_starts_the_real_server_and_stops_it_on_the_way_out(real_ollama, tmp_path, kind):
    """`--serve`: llmtop starts `ollama serve` itself (the one first on PATH, with the user's
    OLLAMA_MODELS), reads its output as the log, and stops it and its runner when it ends."""
    server = real_ollama(kind, start=False)
    env = server.env()
    env.pop("OLLAMA_HOST")  # --serve chooses a free port itself
    result = run_llmtop(server, tmp_path, RANDOM_LLAMA, "--serve", **env)
    assert result.returncode == 0, result.stderr
    (run,) = exported(tmp_path)
    assert run["complete"] and run["ollama_version"] == server.version
    assert (run["layers_offloaded"], run["layers_total"]) == (0, 81)
    assert "llmtop: server log: `ollama serve` started by llmtop on port" in result.stderr
    log_lines = [e["line"] for e in events(tmp_path, "log")]
    assert any('msg="starting ' in line for line in log_lines)  # its output: the runner it started
    assert server_processes(server) == []  # nothing of it left running


@pytest.mark.parametrize("kind", ["article", "newest"])
def test_the_articles_comparison_cpu_and_auto_twice_each(real_ollama, tmp_path, kind):
    server = real_ollama(kind)
    result = run_llmtop(
        server, tmp_path, RANDOM_LLAMA, "--host", server.url, "--log", str(server.log_path),
        "--modes", "cpu,auto", "--repeat", "2", "--report", str(tmp_path / "report.html"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    runs = exported(tmp_path)
    assert [(r["mode"], r["complete"], r["load_kind"]) for r in runs] == [
        ("cpu", True, "cold"),
        ("auto", True, "cold"),
    ] * 2
    assert all((r["layers_offloaded"], r["env"]) == (0, "CPU") for r in runs)
    finals = [e["chunk"] for e in events(tmp_path, "final")]
    assert [r["eval_count"] for r in runs] == [c["eval_count"] for c in finals]
    table = result.stdout
    assert "| speed-up |" in table.splitlines()[0] or "speed-up" in table
    assert (tmp_path / "report.html").stat().st_size > 10_000


@pytest.mark.parametrize("kind", ["article", "newest"])
def test_the_context_asked_for_and_warm_runs(real_ollama, tmp_path, kind):
    """--num-ctx reaches the runner (its own line says so), and --warm keeps the model loaded
    between the runs of a plan: the second run is a warm one, with no load."""
    server = real_ollama(kind)
    result = run_llmtop(
        server, tmp_path, RANDOM_LLAMA, "--host", server.url, "--log", str(server.log_path),
        "--num-ctx", "1024", "--repeat", "2", "--warm",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    first, second = exported(tmp_path)
    assert (first["load_kind"], second["load_kind"]) == ("cold", "warm")
    assert first["context"] == second["context"] == 1024
    log = server.log_text()
    assert re.search(r"--ctx-size 4096 |(?<![\w-])-c 1024 |KvSize:1024 ", log), (
        "the runner's context"
    )  # 0.5.11: 4 slots
    assert second["load_s"] < first["load_s"]
    if kind == "newest":  # llama-server's prompt cache: the same prompt again, on the loaded model
        assert first["prompt_cached_tokens"] == 0 and first["prompt_tokens_total"] > 0
        assert 0 < second["prompt_cached_tokens"] < second["prompt_tokens_total"] == first["prompt_tokens_total"]
        assert (
            f"run 2 ({RANDOM_LLAMA} auto): warm prompt: {second['prompt_cached_tokens']} of its "
            f"{second['prompt_tokens_total']} tokens from the server's cache" in result.stdout
        )


@pytest.mark.parametrize("kind", ["article", "newest"])
def test_the_screen_beside_a_real_server(real_ollama, tmp_path, kind):
    """The TUI on a pseudo terminal, as a user runs it: the first frame, the layer count read from
    the log while Ollama writes it, the summary row; `c` then `r` runs again on the CPU alone."""
    from terminal import Terminal

    server = real_ollama(kind)
    argv = command(
        RANDOM_LLAMA, "--host", server.url, "--log", str(server.log_path), "--no-history",
        "--export", str(tmp_path / "run.json"), "--record", str(tmp_path / "run.jsonl"),
    )  # fmt: skip
    environment = {k: v for k, v in os.environ.items() if k != "OLLAMA_HOST"}
    terminal = Terminal(argv, environment)
    try:
        first = terminal.wait_for(lambda s: RANDOM_LLAMA in s and "RAM" in s, 30, "the first frame")
        assert "Traceback" not in first
        terminal.wait_for(lambda s: re.search(r"\b0/81\b|\b0 / 81\b", s), 120, "the layers read from the log: 0/81")
        terminal.wait_for(lambda s: _summary_rows(s) >= 1, 180, "the summary row")
        terminal.press("c")
        terminal.press("r")
        terminal.wait_for(lambda s: _summary_rows(s) >= 2, 180, "a second run, on the CPU")
        terminal.press("q")
        status = terminal.finish()
    finally:
        terminal.kill()
    assert status == 0, terminal.screen()
    runs = exported(tmp_path)
    assert [(r["mode"], r["complete"]) for r in runs] == [("auto", True), ("cpu", True)]
    assert all((r["layers_offloaded"], r["layers_total"]) == (0, 81) for r in runs)
    assert b"Traceback" not in terminal.raw


def _summary_rows(screen: str) -> int:
    """Rows of the summary table on the screen: lines that name the model and its env."""
    return sum(
        1 for line in screen.splitlines() if RANDOM_LLAMA in line and re.search(r"\bCPU\b", line) and "F16" in line
    )


def test_a_layer_sweep_on_a_machine_without_a_gpu_says_so_and_ends_well(real_ollama, tmp_path):
    """Every point runs on the CPU here: llmtop says so before the sweep, runs it, and concludes."""
    server = real_ollama("newest")
    result = run_llmtop(
        server, tmp_path, RANDOM_LLAMA, "--host", server.url, "--log", str(server.log_path), "--sweep", "0,40,81"
    )
    assert result.returncode == 0, result.stderr
    assert "llmtop: note: no GPU found on this machine (" in result.stderr
    assert "the layer sweep compares runs of the same thing" in result.stderr
    runs = exported(tmp_path)
    assert len(runs) == 4 and all(r["complete"] and r["env"] == "CPU" for r in runs)
    assert [r["mode"] for r in runs] == ["auto", "cpu", "gpu=40", "gpu=81"]
    sweep = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))["sweep"]
    assert sweep["conclusion"] == (
        "every point ran on the CPU alone (0 of 81 layers on a GPU): "
        "there is no layer setting to choose on this machine"
    )
    assert sweep["recommended"] is None and sweep["modelfile"] is None


REAL_OLLAMA_MODULES = ("test_real_ollama", "test_real_ollama_faults", "test_real_ollama_watch", "test_ollama_contract")
UNPARAMETRIZED = {  # the real-Ollama tests that name their versions in their body
    "test_a_layer_sweep_on_a_machine_without_a_gpu_says_so_and_ends_well": ("newest",),
    "test_the_doubles_log_lines_come_in_the_real_order": ("article",),
    "test_the_doubles_go_engine_log_against_real_0_24": ("last Go engine",),
    "test_with_another_ollama_on_the_machine_llmtop_measures_the_one_it_talks_to": ("article", "newest"),
    "test_the_watch_screen_beside_a_real_server": ("newest",),
}
HOW_BUILT = {
    "llama.cpp runner": "`go install`; llama.cpp compiled in by cgo",
    "Go engine beside the runner": "`go install`; llama.cpp's header-only libraries from llama-cpp-python's sdist",
    "llama-server": "`go install`; upstream `llama-server` (llama-cpp-python's llama.cpp) in `../lib/ollama/`",
}


GPU_MODULE = "test_real_ollama_gpu"  # every test of it runs against the newest Ollama on the software GPU


def version_tests() -> dict[str, list[str]]:
    """The tests each version runs, read from the parametrize marks of the real-Ollama modules (and
    every test of the software GPU's module)."""
    import importlib

    found: dict[str, list[str]] = {kind: [] for kind in (*OLLAMA_VERSIONS, SOFTWARE_GPU)}
    found[SOFTWARE_GPU] = [name for name in vars(importlib.import_module(GPU_MODULE)) if name.startswith("test_")]
    for name in REAL_OLLAMA_MODULES:
        module = importlib.import_module(name)
        for attribute, function in vars(module).items():
            if not attribute.startswith("test_"):
                continue
            for mark in getattr(function, "pytestmark", []):
                if mark.name == "parametrize" and mark.args[0] == "kind":
                    for kind in mark.args[1]:
                        found[kind].append(attribute)
            for kind in UNPARAMETRIZED.get(attribute, ()):
                found[kind].append(attribute)
    return found


SOFTWARE_GPU_ERA = "llama-server on a software GPU"
SOFTWARE_GPU_HOW = (
    "as the newest, with `llama-server` built with llama.cpp's Vulkan backend (`-DGGML_VULKAN=ON`), run on Mesa's "
    "lavapipe (`GGML_VK_VISIBLE_DEVICES=0`)"
)


def version_table(builds: dict[str, Any]) -> str:
    """README's table of the Ollama versions llmtop is tested against, from the builds and the tests."""
    tests = version_tests()
    lines = [
        "| Ollama | inference | how the tests build it | tests run against it |",
        "|---|---|---|---:|",
    ]
    for kind, build in builds.items():
        era = SOFTWARE_GPU_ERA if kind == SOFTWARE_GPU else build.era
        how = HOW_BUILT[build.era] if build.binary is not None else f"not built here: {build.why_not}"
        if kind == SOFTWARE_GPU:
            how = SOFTWARE_GPU_HOW if build.binary is not None else f"not set up here: {build.why_not}"
        elif build.why_not and build.binary is not None:
            how += f" (newer releases skipped: {build.why_not})"
        lines.append(f"| {build.version} | {era} | {how} | {len(tests[kind])} |")
    return "\n".join(lines) + "\n"


def test_the_readme_says_which_ollama_versions_are_tested(ollama_builds, request):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    try:
        software_gpu = request.getfixturevalue("software_gpu_build")
    except pytest.skip.Exception as skipped:  # a machine without the software GPU: the row says why
        software_gpu = OllamaBuild(ollama_builds["newest"].version, None, str(skipped))
    builds = {**ollama_builds, SOFTWARE_GPU: software_gpu}
    table = version_table(builds)
    assert table in readme, f"README.md's table of tested Ollama versions is not the tests' own: paste in\n{table}"
    assert all(build.binary is not None for build in builds.values()), table  # a polyglot machine builds all


@pytest.mark.parametrize("kind", ["article", "newest"])
def test_a_run_during_which_another_app_used_the_server_is_marked_shared(real_ollama, tmp_path, kind):
    """Another app's request reaches the same server while llmtop measures: the server works on both
    (0.5.11's four slots; OLLAMA_NUM_PARALLEL=2 on the newest), so the run's tokens/s is not the
    model's alone. It is marked in the row, the table, the report and a replay of the recording."""
    import threading

    from waiting import eventually, give_up

    server = real_ollama(kind, OLLAMA_NUM_PARALLEL="2") if kind == "newest" else real_ollama(kind)
    # 400 tokens: the run still generates when the other request arrives, however late a busy 2-core
    # machine lets the test see the recording's first tokens (64 once ended before it on CI)
    argv = command(
        RANDOM_LLAMA, "--num-predict", "400", "--host", server.url, "--log", str(server.log_path), "--headless",
        "--no-history", "--export", str(tmp_path / "run.json"), "--record", str(tmp_path / "run.jsonl"),
        "--report", str(tmp_path / "run.html"),
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "OLLAMA_HOST"}
    llmtop = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    other: list[dict] = []

    def tokens_flowing() -> bool:
        if llmtop.poll() is not None:
            give_up("llmtop ended before the other app's request")
        path = tmp_path / "run.jsonl"
        return path.exists() and path.read_text(encoding="utf-8").count('"event": "token"') >= 3

    try:
        eventually(tokens_flowing, 180, "llmtop's tokens")
        app = threading.Thread(
            target=lambda: other.append(
                server.api(
                    "/api/generate",
                    {"model": RANDOM_LLAMA, "prompt": "Hi", "stream": False, "options": {"num_predict": 4}},
                )  # fmt: skip
            )
        )
        app.start()
        stdout, stderr = llmtop.communicate(timeout=240)
        app.join(60)
    finally:
        if llmtop.poll() is None:
            llmtop.kill()
    assert llmtop.returncode == 0, stderr
    assert other and other[0]["done"]
    (run,) = exported(tmp_path)
    assert run["concurrent_requests"] >= 1, run
    assert "POST /api/generate from 127.0.0.1" in run["concurrent_note"]
    assert "(shared server)" in stdout  # the table's tps, never shown as a clean one
    assert "other request(s) were served while this run ran" in (tmp_path / "run.html").read_text(encoding="utf-8")
    replayed = subprocess.run(
        command("replay", str(tmp_path / "run.jsonl"), "--headless", "--export", str(tmp_path / "again.json")),
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr
    (again,) = json.loads((tmp_path / "again.json").read_text(encoding="utf-8"))["runs"]
    assert (again["concurrent_requests"], again["concurrent_note"]) == (
        run["concurrent_requests"],
        run["concurrent_note"],
    )


def test_with_another_ollama_on_the_machine_llmtop_measures_the_one_it_talks_to(real_ollama, tmp_path):
    """Two real servers, another one with a model loaded: the process tree llmtop reads is the one
    listening on the port it talks to, with its own runner alone (it once took the first server found
    and every runner on the machine)."""
    other = real_ollama("article")
    other.load(RANDOM_LLAMA)
    server = real_ollama("newest")
    result = run_llmtop(server, tmp_path, RANDOM_LLAMA, "--host", server.url, "--log", str(server.log_path))
    assert result.returncode == 0, result.stderr
    ours, theirs = server.process_tree(), other.process_tree()
    samples = [e["sample"] for e in events(tmp_path, "sample") if e["source"] == "ollama-rss"]
    last = samples[-1]
    assert {last["server_pid"], *last["runner_pids"]} == set(ours) and not set(theirs) & set(last["runner_pids"])
    assert last["note"].endswith(f"the one listening on port {server.port}")
    assert last["rss_bytes"] == pytest.approx(resident_bytes(ours), rel=0.05, abs=32 * 2**20)


def _pytest_where_ollama_cannot_be_built(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """One real-Ollama test in a pytest of its own, on a machine where no Ollama can be built: an empty
    build cache and Go module cache, a Go module proxy that refuses every connection, no package index."""
    environment = {k: v for k, v in os.environ.items() if k not in ("CI", "OLLAMA_HOST")}
    environment.update(
        LLMTOP_ENGINE_CACHE=str(tmp_path / "cache"), GOMODCACHE=str(tmp_path / "gomod"), GOPROXY="http://127.0.0.1:9",
        GOFLAGS="-modcacherw", PIP_NO_INDEX="1", **env,
    )  # fmt: skip
    test = f"{Path(__file__).name}::test_a_run_against_a_real_server_with_nothing_loaded[article]"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", test],
        cwd=Path(__file__).parent, env=environment, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.mark.skipif(shutil.which("go") is None, reason="the rule is for a machine with Go")
def test_on_ci_an_ollama_that_cannot_be_built_fails_the_run_and_says_why(tmp_path):
    result = _pytest_where_ollama_cannot_be_built(tmp_path, CI="true")
    assert result.returncode == 1, result.stdout[-3000:]
    assert "real Ollama 0.5.11 could not be built: 0.5.11: go install failed" in result.stdout
    assert "(on CI, with Go installed, the real-Ollama tests must run)" in result.stdout
    assert " skipped" not in result.stdout.splitlines()[-1]


def test_without_go_on_a_contributors_machine_the_real_ollama_tests_are_skipped_in_one_line(tmp_path):
    no_go = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "go").exists())
    result = _pytest_where_ollama_cannot_be_built(tmp_path, PATH=no_go)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 skipped" in result.stdout.splitlines()[-1]
    assert "Ollama 0.5.11 was not built here: no `go` on PATH" in result.stdout
