"""Whether to keep waiting (core/measure/time_left.py): a load's, a prompt's and an answer's time left,
and the prompt's estimate from llama-server's progress lines, which counts down between them and
allows for each token costing a little more than the one before."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from llmtop.collectors.ollama_log import OllamaLogParser
from llmtop.measure.time_left import answer_left_s, carried, load_left_s, prompt_left_s, prompt_time_left


def test_the_rate_so_far_carried_to_the_end():
    assert carried(10.0, 40.0, 5.0) == pytest.approx(15.0)  # 2 a second, 30 to go
    assert carried(0.0, 40.0, 5.0) is None and carried(40.0, 40.0, 5.0) is None and carried(1.0, 4.0, 0.0) is None
    # A 42.5 GB model of which 12.75 GB was read in 6 s: 14 s more.
    assert load_left_s(42_500_000_000, 12_750_000_000, 6.0) == pytest.approx(14.0)
    assert load_left_s(None, 1, 1.0) is None and load_left_s(10, None, 1.0) is None
    assert answer_left_s(64, 16, 8.0) == pytest.approx(6.0) and answer_left_s(None, 16, 8.0) is None
    assert answer_left_s(64, 64, 8.0) is None and answer_left_s(64, 10, None) is None


def test_the_prompts_estimate_counts_down_between_the_logs_lines():
    assert prompt_left_s(9.0, 100.0, 104.0) == pytest.approx(5.0)
    assert prompt_left_s(9.0, 100.0, 112.0) == 0.0  # past it: the prompt is about to end
    assert prompt_left_s(None, 100.0, 104.0) is None and prompt_left_s(9.0, None, 104.0) is None


FIXTURES = Path(__file__).parent / "fixtures" / "ollama-logs"


def progress(tokens: int, share: float, seconds: float) -> str:
    return (
        f"slot print_timing: id  0 | task 7 | prompt processing, n_tokens = {tokens:6d}, progress = {share:.2f}, "
        f"t = {seconds:7.2f} s / {tokens / seconds:.2f} tokens per second"
    )


def test_a_prompt_that_slows_as_it_goes_is_fitted_and_one_that_does_not_is_carried_on():
    parser = OllamaLogParser()
    # As a real 3504-token prompt on one thread (tests/test_llama_server.py): 1024 tokens in 4.63 s,
    # 1536 in 6.96 s, the rate falling as the context grows.
    parser.feed(progress(1024, 0.29, 4.63), now=10.0)
    (load,) = parser.records
    (request,) = load.requests
    assert prompt_time_left(request) == pytest.approx(4.63 * 0.71 / 0.29)  # one line: the rate so far
    parser.feed(progress(1536, 0.44, 6.96), now=12.3)
    assert request.progress_seen == 12.3 and request.prompt_points == [(1024, 4.63), (1536, 6.96)]
    # a*n + b*n^2 through both lines, carried to 1536 / 0.44 = 3491 tokens.
    b = (6.96 / 1536 - 4.63 / 1024) / (1536 - 1024)
    a = 4.63 / 1024 - b * 1024
    total = 1536 / 0.44
    assert prompt_time_left(request) == pytest.approx(a * total + b * total**2 - 6.96)
    assert prompt_time_left(request) > 6.96 * 0.56 / 0.44  # more than the rate so far would say
    steady = OllamaLogParser()
    steady.feed(progress(1024, 0.25, 4.0), now=1.0)
    steady.feed(progress(2048, 0.50, 7.8), now=4.8)  # faster now: the rate so far
    assert prompt_time_left(steady.records[0].requests[0]) == pytest.approx(7.8)


async def test_the_screen_says_when_the_answer_will_be_ready_at_most(double_factory):
    """A run that asks for 60 tokens at 20 tokens/s: while it generates, the token line says how long
    the answer has left at most, counting down."""
    import re

    from helpers.screens import one_run, until
    from llmtop.collectors.system_collectors import SystemCollectors
    from llmtop.measure.session import Session
    from llmtop.measure.settings import RunSettings
    from llmtop.ollama.api import OllamaServer
    from llmtop.tui.app import LlmtopApp

    double = double_factory(token_rate=20, tokens=80, vram_fraction=0.5)
    collectors = SystemCollectors(0.05)
    session = Session(OllamaServer(double.url), "llama3.3", collectors)
    session.connect()
    collectors.start()
    app = LlmtopApp(one_run(session, RunSettings(num_predict=60)))
    said: list[int] = []
    try:
        async with app.run_test(size=(160, 44)) as pilot:

            def counting_down() -> bool:
                text = app.query_one("#tokens").text
                found = re.search(r"answer ready in about (\d+):(\d\d) at most \(60 tokens asked\)", text)
                if found:
                    said.append(int(found.group(1)) * 60 + int(found.group(2)))
                return len(set(said)) >= 2

            await until(pilot, counting_down, timeout=20)
            await until(pilot, lambda: len(app.runner.rows) == 1, timeout=20)
            assert "answer ready" not in app.query_one("#tokens").text  # over: nothing left to wait for
    finally:
        collectors.stop()
    assert said[0] <= 3 and said == sorted(said, reverse=True)  # 60 tokens at 20/s: 3 s at most, counting down
    assert app.runner.rows[0].eval_count == 60


async def test_the_screen_says_how_long_a_load_has_left_from_the_bytes_loaded_so_far(double_factory, tmp_path):
    """An 8B model (4.9 GB) loading onto the spilling machine's 16 GB Radeon, its weights filling VRAM
    over 4 s, then its KV cache at once (read through the real amdgpu reader): while it loads, the
    token line says how much is loaded of the model's size and about how long is left, growing and
    counting down, near the truth (the screen draws once a second, in whole seconds)."""
    import re
    import time

    from helpers.screens import one_run, until
    from llmtop.collectors.gpu_collector import GpuCollector
    from llmtop.collectors.gpu_linux_drm import AmdSysfsReader
    from llmtop.collectors.system_collectors import SystemCollectors
    from llmtop.measure.session import Session
    from llmtop.ollama.api import OllamaServer
    from llmtop.tui.app import LlmtopApp
    from ollama_double import LLAMA33
    from spilling_machine import SpillingMachine

    small = dict(LLAMA33, name="llama3.1:8b", size=4_900_000_000, parameter_size="8.0B", block_count=32, auto_layers=33)
    machine = SpillingMachine(load_s=4.0)
    root = machine.install(tmp_path / "sys")
    double = double_factory(models={"llama3.1:8b": small}, tokens=10, machine=machine)
    collectors = SystemCollectors(0.05)
    collectors.use_gpus(GpuCollector([AmdSysfsReader(root)], []))
    session = Session(OllamaServer(double.url), "llama3.1:8b", collectors)
    session.connect()
    collectors.start()
    app = LlmtopApp(one_run(session))
    seen: list[tuple[float, int]] = []  # (GB loaded, seconds left)
    at: list[float] = []  # when each was seen
    try:
        async with app.run_test(size=(160, 44)) as pilot:

            def loading() -> bool:
                text = app.query_one("#tokens").text
                found = re.search(r"loading: ([\d.]+) GB of 4\.9 GB, about (\d+):(\d\d) left", text)
                if found:
                    seen.append((float(found.group(1)), int(found.group(2)) * 60 + int(found.group(3))))
                    at.append(time.monotonic())
                return len({s for _, s in seen}) >= 3

            await until(pilot, loading, timeout=20)
            await until(pilot, lambda: len(app.runner.rows) == 1, timeout=20)
            assert "loading:" not in app.query_one("#tokens").text  # loaded: nothing left to wait for
    finally:
        collectors.stop()
    loaded = [gb for gb, _ in seen]
    left = [s for _, s in seen]
    assert loaded == sorted(loaded) and left == sorted(left, reverse=True)  # growing, counting down
    loaded_at = session.last.clock.first_at  # the first token: the load (and a short prompt) is over
    for (_, said), when in zip(seen, at, strict=True):
        assert abs(said - (loaded_at - when)) < 2.0, (seen, [loaded_at - w for w in at])
    assert app.runner.rows[0].complete


def test_another_apps_load_is_measured_from_the_bytes_taken_since_the_log_showed_it_begin():
    """Real 0.24 log lines of a load (fixture 10: its CPU model buffer of 270.99 MiB) begun at t=100;
    the Ollama processes' RSS grew by half of that by t=101: about 1 s left. Once the runner has
    started, the load is over."""
    from llmtop.collectors.gpu_reading import GpuReading, GpuSample
    from llmtop.collectors.ollama_processes import OllamaProcessSample
    from llmtop.watch.load_progress import load_progress
    from llmtop.watch.state import WatchState

    MiB = 2**20
    lines = (FIXTURES / "10_linux_cpu_real_0_24_two_engines.log").read_text(encoding="utf-8").splitlines()
    parser = OllamaLogParser()
    started = next(i for i, line in enumerate(lines) if "runner started in" in line)
    parser.feed_all(lines[:started], now=100.0)
    load = parser.records[-1]
    assert load.weights_bytes == round(270.99 * MiB) and not load.closed

    def rss(t, mib):
        return OllamaProcessSample(t, int(mib * MiB), None, 1, ())

    def gpu(t, used):
        return GpuSample(t, (GpuReading("amd:card1", "Radeon", "sysfs", dedicated_used=used),))

    processes = [rss(99.5, 40), rss(100.2, 45), rss(101.0, 40 + 270.99 / 2)]
    progress = load_progress(load, None, processes, [gpu(99.5, 0), gpu(101.0, 0)], now=101.0)
    assert progress.loaded_bytes == round(270.99 / 2 * MiB) and progress.left_s == pytest.approx(1.0, rel=0.01)
    assert progress.text == "loading a model: 142 MB of 284 MB, about 0:01 left"
    on_gpu = load_progress(load, "tiny", processes[:1] * 2, [gpu(99.5, 0), gpu(101.0, 200 * MiB)], now=101.0)
    assert on_gpu.loaded_bytes == 200 * MiB and on_gpu.text.startswith("loading tiny: 210 MB of 284 MB")
    assert load_progress(load, None, [], [], now=101.0) is None  # nothing read: nothing said
    state = WatchState()
    state.observe_load(100.0, load)
    assert state.loads_under_way(since=0.0) == [(load, None)]
    assert state.loads_under_way(since=200.0) == []  # begun long ago, its end never logged: not going on
    parser.feed(lines[started], now=101.2)
    assert load.closed and load_progress(load, None, processes, [], now=101.2) is None
    assert state.loads_under_way(since=0.0) == []


async def test_the_watch_screen_says_how_long_another_apps_load_has_left(tmp_path):
    """Another app asks for a model that loads over 4 s onto the spilling machine's Radeon (the double's
    log says the load begin, its buffers, then the runner started): the watch screen's loaded-models
    title says how much is loaded and the time left while it goes, and nothing once it is over."""
    import re
    import threading
    import time

    from helpers.screens import until
    from helpers.watching import generate
    from llmtop.collectors.gpu_collector import GpuCollector
    from llmtop.collectors.gpu_linux_drm import AmdSysfsReader
    from llmtop.collectors.log_sources import FileFollower
    from llmtop.collectors.log_watch import LogWatcher
    from llmtop.collectors.system_collectors import SystemCollectors
    from llmtop.tui.watch_app import WatchApp, WatchedScreen
    from llmtop.watch.state import WatchState
    from ollama_double import LLAMA33, DoubleConfig, OllamaDouble, ServerLog
    from spilling_machine import SpillingMachine

    small = dict(LLAMA33, name="llama3.1:8b", size=4_900_000_000, parameter_size="8.0B", block_count=32, auto_layers=33)
    machine = SpillingMachine(load_s=4.0)
    root = machine.install(tmp_path / "sys")
    log_file = tmp_path / "server.log"
    log_file.write_text("")
    writer = open(log_file, "a", encoding="utf-8", buffering=1)
    config = DoubleConfig(models={"llama3.1:8b": small}, tokens=5, machine=machine, llama_server_log=True)
    double = OllamaDouble(config, log=ServerLog(writer.write, era="llama-server", library="rocm")).start()
    state = WatchState()
    log = LogWatcher(FileFollower(log_file, poll_s=0.05))
    log.subscribe(lambda load: state.observe_load(time.monotonic(), load))
    log.start()
    collectors = SystemCollectors(0.1)
    collectors.use_gpus(GpuCollector([AmdSysfsReader(root)], []))
    collectors.start()
    app = WatchApp([WatchedScreen(double.url, state)], collectors, log)
    said: list[str] = []
    try:
        assert log.wait_until_following(5)
        async with app.run_test(size=(140, 44)) as pilot:
            asked = threading.Thread(target=generate, args=(double.url,), kwargs={"model": "llama3.1:8b"}, daemon=True)
            asked.start()

            def loading() -> bool:
                title = str(app.loaded_table.border_title)
                if "loading" in title and title not in said:
                    said.append(title)
                return len(said) >= 2

            await until(pilot, loading, timeout=20)
            asked.join(20)
            await until(pilot, lambda: "loading" not in str(app.loaded_table.border_title), timeout=10)
    finally:
        collectors.stop()
        log.stop()
        double.stop()
        writer.close()
    found = [re.search(r"loading a model: ([\d.]+) (MB|GB) of 4\.9 GB, about (\d+):(\d\d) left", t) for t in said]
    assert all(found), said
    loaded = [float(f.group(1)) * (1 if f.group(2) == "GB" else 0.001) for f in found]
    assert loaded == sorted(loaded)  # growing
    assert int(found[0].group(4)) <= 4  # a 4 s load


async def test_a_run_that_asks_no_count_says_its_answer_time_from_the_models_usual_length_here(double_factory):
    """No num_predict: this machine's history says llama3.3's answers here are usually 80 tokens (three
    past runs that ended at the model's end of text; one cut at a count asked does not count), so a
    run at 20 tokens/s says when its answer will be ready, counting down."""
    import re

    from helpers.screens import one_run, until
    from llmtop.collectors.system_collectors import SystemCollectors
    from llmtop.commands.run_parts import MachineHistory
    from llmtop.measure.session import Session
    from llmtop.measure.settings import RunSettings
    from llmtop.ollama.api import OllamaServer
    from llmtop.tui.app import LlmtopApp
    from summary_rows import row

    def past(tokens, reason="stop"):
        return replace(row("llama3.3:latest", "auto", 20.0), eval_count=tokens, done_reason=reason)

    class History:
        asked = 0

        def runs_on(self, machine):
            History.asked += 1
            return [past(70), past(80), past(90), past(400, "length"), replace(past(10), model="qwen3:8b")]

    history = MachineHistory(History(), dict)
    double = double_factory(token_rate=20, tokens=80, vram_fraction=0.5)
    collectors = SystemCollectors(0.05)
    session = Session(OllamaServer(double.url), "llama3.3", collectors, usual_answer=history.usual_answer)
    session.connect()
    collectors.start()
    app = LlmtopApp(one_run(session, RunSettings()))
    said: list[int] = []
    try:
        async with app.run_test(size=(160, 44)) as pilot:

            def counting_down() -> bool:
                text = app.query_one("#tokens").text
                usual = r"\(its answers here are usually 80 tokens\)"
                found = re.search(r"answer ready in about (\d+):(\d\d) " + usual, text)
                if found:
                    said.append(int(found.group(1)) * 60 + int(found.group(2)))
                return len(set(said)) >= 2

            await until(pilot, counting_down, timeout=20)
            await until(pilot, lambda: len(app.runner.rows) == 1, timeout=20)
    finally:
        collectors.stop()
    assert said[0] <= 4 and said == sorted(said, reverse=True)  # 80 tokens at 20/s: 4 s at most, counting down
    assert session.last.usual_tokens == 80 and History.asked == 1
    assert history.judge(past(80)) == past(80) and History.asked == 1  # the same history, read once


def test_watch_says_another_apps_prompts_time_left_as_of_the_logs_last_line():
    from llmtop.tables import REQUEST_COLUMNS
    from llmtop.watch.state import FROM_LOG, WatchedRequest

    (result,) = [c for c in REQUEST_COLUMNS if c.header == "result"]
    reading = WatchedRequest(1, "llama3.3", FROM_LOG, 0.0, prompt_progress=0.54, prompt_left_s=3.8)
    assert result.text(reading) == "prompt 54% read, about 0:03 left"  # whole seconds, as the phase line
    assert result.text(WatchedRequest(2, "llama3.3", FROM_LOG, 0.0, prompt_progress=0.2)) == "prompt 20% read"


def test_watch_counts_another_apps_prompt_down_between_the_logs_lines():
    """The log's progress line at t=10 s gives 11.3 s left; the watch screen's snapshot 4 s later says
    7.3 s, and 0 (about to end) once that time has passed; the next line sets it again."""
    from llmtop.tables import REQUEST_COLUMNS
    from llmtop.watch.state import WatchState

    (result,) = [c for c in REQUEST_COLUMNS if c.header == "result"]
    parser, state = OllamaLogParser(), WatchState()
    parser.feed(progress(1024, 0.29, 4.63), now=10.0)
    state.observe_load(10.0, parser.records[0])
    left = 4.63 * 0.71 / 0.29
    (request,) = state.snapshot().requests
    assert request.prompt_left_s == pytest.approx(left)  # no time given: as of the line
    (later,) = state.snapshot(now=14.0).requests
    assert later.prompt_left_s == pytest.approx(left - 4.0)
    assert result.text(later) == "prompt 29% read, about 0:07 left"
    assert state.snapshot(now=30.0).requests[0].prompt_left_s == 0.0
    parser.feed(progress(2048, 0.58, 9.26), now=14.63)
    state.observe_load(14.63, parser.records[0])
    (next_line,) = state.snapshot(now=15.63).requests
    assert next_line.prompt_seen_at == 14.63 and next_line.prompt_progress == 0.58
    assert next_line.prompt_left_s == pytest.approx(prompt_time_left(parser.records[0].requests[0]) - 1.0)
    assert state.requests[0].prompt_left_s == prompt_time_left(
        parser.records[0].requests[0]
    )  # the state keeps the line's


def test_watch_says_when_another_apps_answer_will_be_ready_from_the_models_usual_length_here():
    """Three answers of qwen3 seen (200, 240, 260 tokens): a fourth at 40 tokens, 20 tokens/s, has about
    10 s left to the usual 240; one past it says so; a model seen twice has no usual yet."""
    from llmtop.measure.time_left import usual_length
    from llmtop.tables import REQUEST_COLUMNS
    from llmtop.watch.state import FROM_LOG, WatchedRequest, WatchState

    (result,) = [c for c in REQUEST_COLUMNS if c.header == "result"]
    state = WatchState()
    for number, tokens in enumerate((200, 240, 260), 1):
        state.requests.append(
            WatchedRequest(number, "qwen3:8b", FROM_LOG, 0.0, ended=9.0, eval_tokens=tokens, eval_tps=20.0)
        )
    state.requests.append(WatchedRequest(4, "qwen3:8b", FROM_LOG, 0.0, ended=9.0, eval_tokens=5, cancelled=True))
    state.requests.append(WatchedRequest(5, "qwen3:8b", FROM_LOG, 10.0, eval_tokens=40, eval_tps=20.0))
    state.requests.append(WatchedRequest(6, "qwen3:8b", FROM_LOG, 10.0, eval_tokens=300, eval_tps=20.0))
    state.requests.append(WatchedRequest(7, "gemma3", FROM_LOG, 0.0, ended=5.0, eval_tokens=90, eval_tps=50.0))
    state.requests.append(WatchedRequest(8, "gemma3", FROM_LOG, 10.0, eval_tokens=10, eval_tps=50.0))
    requests = {r.number: r for r in state.snapshot(now=12.0).requests}
    assert (requests[5].usual_tokens, requests[5].answer_left_s) == (
        240,
        pytest.approx(10.0),
    )  # the cancelled one left out
    assert result.text(requests[5]) == "generating, about 0:10 left (usually 240 tokens)"
    assert result.text(requests[6]) == "generating, past its usual 240 tokens"
    assert requests[8].usual_tokens is None and result.text(requests[8]) == "generating"  # one gemma3 answer seen
    assert state.snapshot().requests[4].usual_tokens is None  # the exports' and metrics' snapshot: as kept
    assert usual_length([200, 240]) is None and usual_length([200, 240, 260, 0]) == 240


def test_a_warm_prompt_counts_only_the_tokens_left_to_read():
    parser = OllamaLogParser()
    for line in (
        "slot   operator(): id  0 | task 7 | new prompt, n_ctx_slot = 4096, n_keep = 4, task.n_tokens = 3000",
        "slot   operator(): id  0 | task 7 | cached n_tokens = 1000, memory_seq_rm [1000, end)",
        "slot   operator(): id  0 | task 7 | cached n_tokens = 1512, memory_seq_rm [1512, end)",  # after a batch
        progress(2000, 0.67, 2.0),
    ):
        parser.feed(line, now=1.0)
    (request,) = parser.records[0].requests
    assert (request.prompt_total, request.prompt_cached) == (3000, 1000)
    # 1000 tokens read in 2 s, 1000 left: 2 s (counting the cached ones as read would say 1 s).
    assert prompt_time_left(request) == pytest.approx(2.0)
