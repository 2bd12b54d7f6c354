"""llmtop against Ollama as it ships today (0.30 on): upstream llama.cpp's `llama-server` as the runner,
built here from the llama.cpp that llama-cpp-python vendors (tests/llama_server_build.py), started with
Ollama's flags by the `ollama serve` stand-in (tests/engine_double.py, tests/llama_server_engine.py).

Every `print_timing`, fit and context line these tests read is one the real llama-server printed.
The first run on a machine builds llama-server (about 8 minutes on 2 cores, then cached); a missing
engine or a failed build fails the tests with the reason, rather than skipping them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine_double import MODEL, EngineOllama
from helpers.cli import command, no_traceback, user_env
from llama_server_build import BuildFailed, llama_server_binary
from waiting import eventually

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the engine double's processes are read through /proc (Linux)"
)


@pytest.fixture(scope="module")
def llama_server(request: pytest.FixtureRequest) -> Path:
    request.getfixturevalue("engine_ready")  # the engine extra first: llama-cpp-python's version names the source
    try:
        return llama_server_binary(sys.stderr)
    except BuildFailed as exc:
        pytest.fail(f"llama-server could not be built: {exc}", pytrace=False)


def ollama_0_30(folder: Path, binary: Path, **settings) -> EngineOllama:
    (folder / "ollama").mkdir()
    return EngineOllama(folder / "ollama", llama_server=binary, **settings)


def test_a_headless_run_with_num_ctx_reads_the_request_the_context_and_the_reason(llama_server, tmp_path):
    with ollama_0_30(tmp_path, llama_server) as ollama:
        argv = [MODEL, "--host", ollama.url, "--log", str(ollama.log_path), "--headless", "--no-history"]
        result = subprocess.run(
            command(*argv, "--num-ctx", "8192", "--export", str(tmp_path / "run.json"), "--no-record"),
            capture_output=True,
            text=True,
            timeout=300,
            env=user_env(),
        )
        log = ollama.log_text()
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    run = json.loads((tmp_path / "run.json").read_text())["runs"][0]
    # The request asked for 8192 tokens of context, and llama-server was started with it.
    assert "-c 8192 -np 1 --log-verbosity 4 --no-log-prefix --no-log-timestamps" in log
    assert "llama_context: n_ctx_seq             = 8192" in log
    assert (run["context"], run["context_note"]) == (8192, "asked for (--num-ctx)")
    # A CPU-only machine: llama-server's buffers are all in host memory, 18 repeating layers + output.
    assert (run["layers_offloaded"], run["layers_total"], run["env"]) == (0, 19, "CPU")
    assert run["ollama_version"] == "0.33.2"
    # llmtop followed the log from its end: the reason is in llama-server's own lines of this load.
    assert (
        run["split_reason"]
        == "0/19 layers on the GPU: llama-server found no GPU (the only device it listed is the CPU)"
    )
    # The log's eval tokens over its eval time is the API's eval_count / eval_duration.
    timing = [line for line in log.splitlines() if "|        eval time =" in line]
    assert len(timing) == 1
    assert run["log_eval_tps"] == pytest.approx(run["eval_rate_tps"], rel=0.01)
    # parse-log reads the same log: the request's rates, the context, the fit step's projection.
    parsed = subprocess.run(command("parse-log", str(ollama.log_path), "--json"), capture_output=True, text=True)
    (load,) = [json.loads(line) for line in parsed.stdout.splitlines()]
    assert (load["context"], load["default_context"], load["layers_overflowing"]) == (8192, 4096, None)
    fit = load["fit"]
    assert fit["needed_mib"] > fit["model_mib"] > 0 and fit["context_mib"] > 0 and fit["free_mib"] > fit["needed_mib"]
    (request,) = load["requests"]
    assert request["eval_tokens"] == run["eval_count"]
    assert request["eval_ms"] / 1000 == pytest.approx(run["eval_count"] / run["eval_rate_tps"], rel=0.01)


async def test_the_screen_shows_the_prompts_progress_while_llama_server_reads_it(llama_server, tmp_path):
    from helpers.screens import one_run, until
    from llmtop.collectors.log_sources import FileFollower
    from llmtop.collectors.log_watch import LogWatcher
    from llmtop.collectors.system_collectors import SystemCollectors
    from llmtop.measure.session import Session
    from llmtop.measure.settings import RunSettings
    from llmtop.measure.time_left import prompt_left_s, prompt_time_left
    from llmtop.ollama.api import OllamaServer
    from llmtop.tui.app import LlmtopApp

    # once it has taken 3 s, so that two lines come before half-way (within the 4096 tokens Ollama 0.30
    # gives a machine without a GPU).
    prompt = "Summarize this list: " + " ".join(f"item{i}" for i in range(900))
    # As `llmtop --serve`: the log is read from the server's first line, its start-up lines included.
    watcher = LogWatcher(FileFollower(tmp_path / "ollama" / "server.log", poll_s=0.05))
    watcher.start()
    with ollama_0_30(tmp_path, llama_server, threads=1, max_tokens=4) as ollama:
        collectors = SystemCollectors(0.25)
        session = Session(OllamaServer(ollama.url), MODEL, collectors, log=watcher)
        try:
            session.connect()
            collectors.start()
            app = LlmtopApp(one_run(session, RunSettings(prompt=prompt)))
            seen: list[str] = []
            estimates: list[tuple[float, float, float]] = []  # (when, progress, time left as the screen had it)

            def estimate() -> bool:
                record = session.current
                request = session.log_request(record) if record is not None else None
                if request is not None and request.prompt_progress is not None:
                    now = time.monotonic()
                    left = prompt_left_s(prompt_time_left(request), request.progress_seen, now)
                    if left is not None and record.clock.first_at is None:
                        estimates.append((now, request.prompt_progress, left))
                return len(app.runner.rows) == 1

            async with app.run_test(size=(160, 44)) as pilot:

                def progress_shown() -> bool:
                    text = app.query_one("#tokens").text
                    if "tokens read" in text:
                        seen.append(text)
                    estimate()
                    return bool(seen)

                await until(pilot, progress_shown, timeout=240)
                await until(pilot, estimate, timeout=240)
                row = app.runner.rows[0]
                first_token = session.last.clock.first_at
                served = session.log_request(session.last)  # the server's own (tokens, seconds) at each line
        finally:
            collectors.stop()
            watcher.stop()
    log = ollama.log_path.read_text(encoding="utf-8")
    first = next(line for line in log.splitlines() if "prompt processing, n_tokens" in line)
    done = int(first.split("n_tokens =")[1].split(",")[0])
    assert f"prompt {done} of about " in seen[0] and "tokens read (" in seen[0] and "left (server log)" in seen[0]
    # Half-way through the prompt, the time left it showed was within 25% of the truth (the first token),
    # or within the change of pace the server's own lines show after that point: an estimate carried from
    # the rate so far cannot foresee a machine that speeds up or slows down (a busy 2-core CI machine).
    when, progress, left = min(estimates, key=lambda e: abs(e[1] - 0.5))
    truth = first_token - when
    assert 0.3 <= progress <= 0.7, (progress, estimates[::10])
    points, total = served.prompt_points, served.prompt_total or served.prompt_done
    (n1, t1) = min(points, key=lambda point: abs(point[0] / total - progress))
    (n2, t2) = points[-1]
    pace_change = abs(((n2 - n1) / (t2 - t1)) / (n1 / t1) - 1) if n2 > n1 and t2 > t1 else 0.0
    allowed = max(0.25, pace_change)
    assert abs(left - truth) <= allowed * truth, (progress, left, truth, pace_change, points, estimates[::10])
    assert row.complete and row.prompt_rate_tps and row.context == 4096
    assert row.context_note == "Ollama's VRAM-based default (/api/ps)"
    assert row.log_eval_tps == pytest.approx(row.eval_rate_tps, rel=0.01)
    assert row.split_reason == "0/19 layers on the GPU: Ollama found no GPU it can use"


def _run_until_tokens(ollama: EngineOllama, tmp_path: Path, name: str) -> tuple[subprocess.Popen[str], Path, Path]:
    """`llmtop MODEL --headless` against the engine, returned once three tokens have streamed."""

    out, record = tmp_path / f"{name}.json", tmp_path / f"{name}.jsonl"
    argv = [MODEL, "--host", ollama.url, "--log", str(ollama.log_path), "--headless", "--stall-timeout", "3"]
    process = subprocess.Popen(
        command(*argv, "--export", str(out), "--record", str(record)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=user_env(),
    )

    def tokens_flow() -> bool:
        assert process.poll() is None, process.communicate()[1]
        return record.exists() and record.read_text(errors="replace").count('"event": "token"') >= 3

    eventually(tokens_flow, 240, "tokens from the engine")
    return process, out, record


def _next_run_works(ollama: EngineOllama, tmp_path: Path) -> dict:
    result = subprocess.run(
        command(MODEL, "--host", ollama.url, "--log", str(ollama.log_path), "--headless", "--stall-timeout", "30",
                "--export", str(tmp_path / "next.json"), "--no-record"),
        capture_output=True, text=True, timeout=300, env=user_env(),
    )  # fmt: skip
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    return json.loads((tmp_path / "next.json").read_text())["runs"][0]


def test_a_stopped_engine_ends_the_run_within_the_stall_timeout_and_the_next_run_works(llama_server, tmp_path):
    """A hung driver looks like this: llama-server stopped (SIGSTOP) mid-generation, its connection open.
    The model was loaded when llmtop started, so it unloaded it first (the usual path)."""
    import os
    import signal
    import time

    with ollama_0_30(tmp_path, llama_server, threads=1, max_tokens=300) as ollama:
        _next_run_works(ollama, tmp_path)  # the model is loaded now
        process, out, record = _run_until_tokens(ollama, tmp_path, "stopped")
        (runner,) = ollama.runner_pids()
        os.kill(runner, signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            _, stderr = process.communicate(timeout=60)
            ended = time.monotonic() - stopped_at
        finally:
            os.kill(runner, signal.SIGCONT)
            if process.poll() is None:
                process.kill()
        assert "Traceback" not in stderr
        assert process.returncode == 1, stderr
        assert ended < 3 + 5, ended
        run = json.loads(out.read_text())["runs"][0]
        assert run["complete"] is False and run["error"] == "no token for 3 s (--stall-timeout)"
        assert run["load_kind"] == "cold" and run["client_rate_tps"] is not None  # it unloaded first, then streamed
        assert sum("no token for 3 s" in line for line in stderr.splitlines()) == 1
        assert '"event": "closed"' in record.read_text()
        after = _next_run_works(ollama, tmp_path)
        assert after["complete"] and after["eval_count"] > 0


def test_a_killed_runner_is_one_line_the_run_kept_and_the_next_run_starts_a_new_one(llama_server, tmp_path):
    import os
    import signal

    with ollama_0_30(tmp_path, llama_server, threads=1, max_tokens=300) as ollama:
        process, out, _ = _run_until_tokens(ollama, tmp_path, "killed")
        (runner,) = ollama.runner_pids()
        os.kill(runner, signal.SIGKILL)
        _, stderr = process.communicate(timeout=60)
        assert "Traceback" not in stderr
        assert process.returncode == 1, stderr
        run = json.loads(out.read_text())["runs"][0]
        assert run["complete"] is False and run["client_rate_tps"] is not None
        assert run["error"] == (  # Ollama's answer, and why from the server log
            "an error was encountered while running the model: unexpected EOF "
            "(server log: llama runner terminated: signal: 9)"
        )
        assert sum(run["error"] in line for line in stderr.splitlines()) == 1
        after = _next_run_works(ollama, tmp_path)
        assert after["complete"] and ollama.runner_pids() and runner not in ollama.runner_pids()
