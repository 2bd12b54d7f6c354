"""`llmtop watch` beside real Ollama while other programs use it: the official `ollama` Python client
and `ollama run --verbose` itself send requests, the server is restarted mid-watch, and every
request's tokens are what the client was told. On 0.30+ the requests come from llama-server's own
lines in the log; before 0.30 the log has no request timings, so the clients go through `--proxy`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import OLLAMA_VERSIONS

from helpers.cli import command
from helpers.watching import ready, sample_value, scrape
from llmtop.collectors.log_sources import free_port
from real_ollama import RANDOM_LLAMA, RealOllama
from waiting import eventually, give_up

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Ollama is built here for Linux")

MODEL = f"{RANDOM_LLAMA}:latest"


def python_client(url: str, prompt: str) -> dict:
    """What an app does with the official client: a streamed generate, read to its final chunk."""
    import ollama

    client = ollama.Client(host=url)
    try:
        chunks = list(client.generate(model=RANDOM_LLAMA, prompt=prompt, stream=True))
    finally:
        client.close()
    final = chunks[-1]
    return dict(final) if not hasattr(final, "model_dump") else final.model_dump()


def ollama_run(server: RealOllama, host: str, prompt: str) -> int:
    """`ollama run MODEL PROMPT --verbose` against `host`: the eval count it prints."""
    result = server.cli("run", "--verbose", RANDOM_LLAMA, prompt, timeout=300, OLLAMA_HOST=host)
    assert result.returncode == 0, result.stderr
    found = re.search(r"^eval count:\s+(\d+) token", result.stderr, re.M)
    assert found, result.stderr
    return int(found.group(1))


def requests_counted(port: int, watch: subprocess.Popen[str]) -> float:
    if watch.poll() is not None:
        give_up(f"watch ended: {watch.communicate()[1]}")
    try:
        return sample_value(scrape(port), "llmtop_requests_total", f'{{model="{MODEL}"}}') or 0.0
    except OSError:
        return 0.0


@pytest.mark.parametrize("kind", OLLAMA_VERSIONS)
def test_watch_sees_other_apps_requests_through_a_restart(real_ollama, tmp_path, kind):
    server = real_ollama(kind)
    through_log = server.build.era == "llama-server"
    metrics, out = free_port(), tmp_path / "watch.json"
    args = ["--host", server.url, "--log", str(server.log_path), "--metrics", str(metrics), "--export", str(out)]
    proxy_port = None
    if not through_log:
        proxy_port = free_port()
        args += ["--proxy", str(proxy_port)]
    env = {k: v for k, v in os.environ.items() if k != "OLLAMA_HOST"}
    watch = subprocess.Popen(
        command("watch", "--headless", "--no-history", "--record", str(tmp_path / "watch.jsonl"), *args),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    apps_url = server.url if through_log else f"http://127.0.0.1:{proxy_port}"
    try:
        ready(metrics)
        first = python_client(apps_url, "Why is the sky blue?")
        second = ollama_run(server, apps_url.removeprefix("http://"), "Tell me a story.")
        eventually(lambda: requests_counted(metrics, watch) >= 2, 60, "both requests counted")
        server.stop()  # the server goes away (watch says so) and comes back on the same port, its log appended
        recording = tmp_path / "watch.jsonl"
        eventually(lambda: '"event": "server-down"' in recording.read_text(encoding="utf-8"), 30, "the server down")
        server.start()
        third = python_client(apps_url, "And the sea?")
        eventually(lambda: requests_counted(metrics, watch) >= 3, 60, "the request after the restart")
        text = scrape(metrics)
        watch.send_signal(signal.SIGINT)
        stdout, stderr = watch.communicate(timeout=60)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.communicate()
    assert watch.returncode == 0, stderr
    assert "Traceback" not in stdout + stderr
    requests = json.loads(Path(out).read_text(encoding="utf-8"))["requests"]
    done = [r for r in requests if r["complete"]]
    assert [r["eval_tokens"] for r in done] == [first["eval_count"], second, third["eval_count"]], requests
    assert all(r["model"] == MODEL for r in done)
    assert {r["source"] for r in done} == ({"log"} if through_log else {"proxy"}), requests
    assert sample_value(text, "llmtop_eval_tokens_total", f'{{model="{MODEL}"}}') == sum(r["eval_tokens"] for r in done)
    assert sample_value(text, "llmtop_model_layers", f'{{model="{MODEL}"}}') == 81.0
    assert "the server does not answer: " in stdout and "the server answers again" in stdout, stdout


@pytest.mark.parametrize("kind", ["article", "newest"])
def test_live_progress_of_another_apps_request_from_llama_servers_slots(real_ollama, kind):
    """Without a proxy: on 0.30+ watch reads llama-server's own /slots (the port its start line
    names) and shows another app's request as it generates, tokens so far and their rate, then its
    final count from the log; before 0.30 it says that this needs --proxy."""
    import threading
    import time

    from llmtop.collectors.log_sources import FileFollower
    from llmtop.collectors.log_watch import LogWatcher
    from llmtop.watch.poller import PsPoller
    from llmtop.watch.slots import NOT_BEFORE_0_30, SlotsPoller
    from llmtop.watch.state import WatchState
    from real_ollama import LONG_LLAMA

    server = real_ollama(kind)
    state, log = WatchState(), LogWatcher(FileFollower(server.log_path))
    log.subscribe(lambda load: state.observe_load(time.monotonic(), load))
    log.start()
    assert log.wait_until_following(10)
    ps, slots = PsPoller(server.url, state).start(), SlotsPoller(state, log, interval=0.25).start()
    answers: list[dict] = []
    body = {"model": LONG_LLAMA, "prompt": "Once", "stream": False, "options": {"num_predict": 160}}
    app = threading.Thread(target=lambda: answers.append(server.api("/api/generate", body)))
    try:
        app.start()
        if kind == "article":
            eventually(lambda: any(NOT_BEFORE_0_30 in e.text for e in list(state.events)), 60, "the n/a note")
            app.join(120)
            return
        live = eventually(
            lambda: next(
                (r for r in state.snapshot().requests if not r.done and (r.eval_tokens or 0) > 5 and r.eval_tps), None
            ),
            120,
            "the request's tokens while it generates",
        )
        app.join(120)
        final = answers[0]
        assert live.eval_tokens < final["eval_count"] and live.eval_tps and live.eval_tps > 0
        done = eventually(
            lambda: next((r for r in state.snapshot().requests if r.done and r.number == live.number), None), 30
        )
        assert done.eval_tokens == final["eval_count"]  # the log's final count replaces the live one
        assert slots.servers() == [] or all(load.server_port for load in slots.servers())
    finally:
        slots.stop()
        ps.stop()
        log.stop()


def test_the_watch_screen_beside_a_real_server(real_ollama, tmp_path):
    """`llmtop watch` on a pseudo terminal while the official client uses the newest Ollama: the
    loaded model (from /api/ps) and the request with its tokens (from the log) on the screen; q ends it."""
    from terminal import Terminal

    server = real_ollama("newest")
    argv = command("watch", "--host", server.url, "--log", str(server.log_path), "--no-history", "--no-record")
    terminal = Terminal(argv, {k: v for k, v in os.environ.items() if k != "OLLAMA_HOST"})
    try:
        terminal.wait_for(lambda s: "watching" in s.lower() or "model" in s, 30, "the first frame")
        final = python_client(server.url, "Why is the sky blue?")
        tokens = str(final["eval_count"])
        screen = terminal.wait_for(
            lambda s: MODEL in s and any(MODEL in line and f" {tokens} " in f" {line} " for line in s.splitlines()),
            60,
            f"the request's {tokens} tokens beside {MODEL}",
        )
        assert "Traceback" not in screen
        terminal.press("q")
        status = terminal.finish()
    finally:
        terminal.kill()
    assert status == 0
