"""`llmtop watch` against the double: requests sent by another program, seen from the server log's
llama-server timings (Ollama 0.30 on) or through the proxy, counted on the metrics endpoint."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from helpers.cli import command, llmtop, no_traceback
from helpers.watching import generate, ready, sample_value, scrape
from llmtop.collectors.log_sources import free_port
from llmtop.ollama.hosts import parse_address
from llmtop.watch.proxy import FinalChunk, OllamaProxy
from llmtop.watch.state import FROM_PROXY, WatchState, canonical
from ollama_double import DoubleConfig, OllamaDouble, ServerLog
from waiting import eventually, on_screen


@pytest.fixture
def logged_double(tmp_path):
    """The double in its 0.30+ mode: its log has llama-server's request timings."""
    made = []

    def make(**config):
        log_file = tmp_path / "server.log"
        log_file.write_text("")
        writer = open(log_file, "a", encoding="utf-8", buffering=1)
        double = OllamaDouble(DoubleConfig(llama_server_log=True, **config), log=ServerLog(writer.write)).start()
        made.append((double, writer))
        return double, log_file

    yield make
    for double, writer in made:
        double.stop()
        writer.close()


def start_watch(*args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "OLLAMA_HOST"}
    return subprocess.Popen(
        command("watch", "--headless", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def test_watch_sees_two_requests_of_another_program_in_the_log_and_counts_them_for_prometheus(logged_double):
    double, log_file = logged_double(token_rate=60, tokens=30, load_delay_s=0.3, vram_fraction=27 / 81)
    port = free_port()
    watch = start_watch("--host", double.url, "--log", str(log_file), "--metrics", str(port), "--duration", "12")
    try:
        ready(port)
        first = generate(double.url)
        second = generate(double.url, "again")
        tokens = first[-1]["eval_count"] + second[-1]["eval_count"]
        eventually(lambda: sample_value(scrape(port), "llmtop_requests_total", '{model="llama3.3:latest"}') == 2.0)
        text = scrape(port)
    finally:
        out, err = watch.communicate(timeout=30)
    no_traceback(subprocess.CompletedProcess([], watch.returncode, out, err))
    assert watch.returncode == 0, err
    assert 'llmtop_requests_total{model="llama3.3:latest"} 2.0' in text
    assert sample_value(text, "llmtop_eval_tokens_total", '{model="llama3.3:latest"}') == tokens
    assert sample_value(text, "llmtop_prompt_tokens_total", '{model="llama3.3:latest"}') == (
        first[-1]["prompt_eval_count"] + second[-1]["prompt_eval_count"]
    )
    assert sample_value(text, "llmtop_model_layers_offloaded", '{model="llama3.3:latest"}') == 27.0
    assert sample_value(text, "llmtop_model_layers", '{model="llama3.3:latest"}') == 81.0
    assert "# TYPE llmtop_ram_used_bytes gauge" in text and sample_value(text, "llmtop_server_up") == 1.0
    rates = [final[-1]["eval_count"] / (final[-1]["eval_duration"] / 1e9) for final in (first, second)]
    assert sample_value(text, "llmtop_eval_tokens_per_second", '{model="llama3.3:latest"}') == pytest.approx(
        rates[1], rel=1e-3
    )
    done = [line for line in out.splitlines() if re.search(r"request \d to llama3\.3:latest: prompt", line)]
    assert len(done) == 2, out
    for line, rate in zip(done, rates, strict=True):
        shown = float(re.search(r", \d+ tokens at ([\d.]+) tokens/s \(server log\)$", line).group(1))
        assert shown == pytest.approx(rate, abs=0.01)
    assert "llama3.3:latest: 27/81 layers on the GPU" in out
    assert f"metrics: http://127.0.0.1:{port}/metrics" in err


def test_the_metrics_port_in_use_is_one_line_and_exit_2(double):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = llmtop("watch", "--headless", "--host", double.url, "--no-log", "--metrics", str(port))
    no_traceback(result)
    assert result.returncode == 2
    assert result.stderr == f"llmtop: --metrics: port {port} on 127.0.0.1 is in use\n"


@pytest.mark.parametrize("text, expected", [("9464", ("127.0.0.1", 9464)), ("0.0.0.0:9464", ("0.0.0.0", 9464)),
                                            ("[::]:9464", ("::", 9464))])  # fmt: skip
def test_metrics_addresses(text, expected):
    assert parse_address(text) == expected


def test_a_bad_metrics_address_is_a_usage_error():
    result = llmtop("watch", "--metrics", "99999")
    assert result.returncode == 2 and "is not [ADDRESS:]PORT with a port from 1 to 65535" in result.stderr


# -- the proxy ---------------------------------------------------------------------------------------
@pytest.fixture
def proxied(double_factory):
    started = []

    def make(**config):
        double = double_factory(**config)
        state = WatchState(proxied=True)
        proxy = OllamaProxy(double.url, 0, state).start()
        started.append(proxy)
        return double, proxy, state

    yield make
    for proxy in started:
        proxy.stop()


def _raw(url: str, path: str, body: bytes | None = None, method: str = "POST") -> tuple[int, dict, bytes]:
    request = urllib.request.Request(f"{url}{path}", body, {"Content-Type": "application/json"}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_the_proxy_gives_the_app_what_the_server_gives_and_measures_it(proxied):
    double, proxy, state = proxied(token_rate=200, tokens=40)
    direct = generate(double.url)
    through = generate(proxy.url)
    assert [c["response"] for c in through[:-1]] == [c["response"] for c in direct[:-1]]
    assert through[-1].keys() == direct[-1].keys() and through[-1]["eval_count"] == direct[-1]["eval_count"]
    single = generate(proxy.url, stream=False)
    assert len(single) == 1 and single[0]["done"] is True
    for path in ("/api/tags", "/api/version"):
        assert _raw(proxy.url, path, method="GET") == _raw(double.url, path, method="GET")
    through_ps, direct_ps = (json.loads(_raw(url, "/api/ps", method="GET")[2]) for url in (proxy.url, double.url))
    for listing in (through_ps, direct_ps):
        for model in listing["models"]:
            model.pop("expires_at")  # the server writes the time of the answer
    assert through_ps == direct_ps
    status, _, body = _raw(proxy.url, "/api/show", json.dumps({"model": "no-such-model"}).encode())
    assert (status, body) == _raw(double.url, "/api/show", json.dumps({"model": "no-such-model"}).encode())[::2]
    requests, _, totals = state.snapshot()
    assert [(r.source, r.endpoint, r.model) for r in requests] == [(FROM_PROXY, "/api/generate", "llama3.3:latest")] * 2
    assert requests[0].eval_tokens == through[-1]["eval_count"]
    assert requests[0].eval_tps == pytest.approx(through[-1]["eval_count"] / (through[-1]["eval_duration"] / 1e9))
    assert requests[1].eval_tokens == single[0]["eval_count"]  # an answer that is not streamed is measured too
    assert totals["llama3.3:latest"].requests == 2


def test_the_proxy_streams_chunk_by_chunk(proxied):
    double, proxy, _ = proxied(token_rate=10, tokens=20)
    body = json.dumps({"model": "llama3.3", "prompt": "x"}).encode()
    request = urllib.request.Request(f"{proxy.url}/api/generate", body, {"Content-Type": "application/json"})
    times = []
    with urllib.request.urlopen(request, timeout=60) as response:
        for _ in response:
            times.append(time.monotonic())
    spread = times[-2] - times[0]
    assert spread > 1.2  # 20 tokens at 10/s arrive over about 2 s, not all at once at the end


def test_a_large_body_goes_through_whole(proxied):
    double, proxy, _ = proxied()
    big = json.dumps({"model": "llama3.3", "prompt": "y" * (12 * 1024 * 1024), "stream": False}).encode()
    status, _, answer = _raw(proxy.url, "/api/generate", big)
    assert status == 200 and json.loads(answer)["done"] is True
    assert double.prompts[-1] == "y" * (12 * 1024 * 1024)


def test_a_client_that_goes_away_mid_stream_is_a_cancelled_request(proxied):
    double, proxy, state = proxied(token_rate=20, tokens=400)
    host, port = proxy.server.server_address[:2]
    body = json.dumps({"model": "llama3.3", "prompt": "x"}).encode()
    with socket.create_connection((host, port)) as client:
        client.sendall(
            b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        client.recv(4096)
        eventually(lambda: state.snapshot().requests, 15, "the request seen by the proxy")
    eventually(lambda: state.snapshot().requests and state.snapshot().requests[-1].done, timeout=15)
    [request] = state.snapshot().requests
    assert request.cancelled and request.eval_tokens is None
    assert (
        state.snapshot().totals.get("llama3.3:latest") is None
        or state.snapshot().totals["llama3.3:latest"].requests == 0
    )


def test_a_server_that_is_down_or_breaks_off(proxied, closed_port_url):
    state = WatchState(proxied=True)
    proxy = OllamaProxy(closed_port_url, 0, state).start()
    try:
        status, _, body = _raw(proxy.url, "/api/generate", json.dumps({"model": "m", "prompt": "x"}).encode())
    finally:
        proxy.stop()
    assert status == 502 and json.loads(body)["error"].startswith(
        f"llmtop proxy: cannot reach Ollama at {closed_port_url}"
    )
    assert state.snapshot().requests[0].error.startswith("llmtop proxy: cannot reach Ollama")

    double, proxy, state = proxied(token_rate=100, tokens=200, fault="drop", fault_after=10)
    with pytest.raises(http.client.IncompleteRead):
        generate(proxy.url)  # the app sees the stream cut, as it would without the proxy
    with pytest.raises(http.client.IncompleteRead):
        generate(double.url)
    eventually(lambda: state.snapshot().requests[-1].done)
    assert state.snapshot().requests[0].error is not None


def test_final_chunk_reader_takes_the_last_done_object_across_pieces():
    reader = FinalChunk()
    text = b'{"response":"a","done":false}\n{"response":"","done":true,"eval_count":5,"eval_duration":1000000000}\n'
    for cut in range(0, len(text), 7):
        reader.feed(text[cut : cut + 7])
    reader.close()
    assert reader.final["eval_count"] == 5
    assert canonical("llama3.3") == "llama3.3:latest" and canonical("hf.co/u/m:Q4") == "hf.co/u/m:Q4"


def test_watch_through_the_proxy_with_no_log_and_an_export(double_factory, tmp_path):
    double = double_factory(token_rate=80, tokens=20)
    proxy_port = free_port()
    out = tmp_path / "requests.json"
    watch = start_watch("--host", double.url, "--no-log", "--proxy", str(proxy_port), "--duration", "10",
                        "--export", str(out))  # fmt: skip
    try:
        eventually(lambda: _port_open(proxy_port))
        finals = [generate(f"http://127.0.0.1:{proxy_port}")[-1] for _ in range(2)]
    finally:
        stdout, stderr = watch.communicate(timeout=30)
    assert watch.returncode == 0, stderr
    assert f"proxy: point apps at http://127.0.0.1:{proxy_port}" in stderr
    document = json.loads(out.read_text(encoding="utf-8"))
    assert [r["eval_tokens"] for r in document["requests"]] == [f["eval_count"] for f in finals]
    assert all(r["complete"] and r["source"] == "proxy" for r in document["requests"])
    assert len(re.findall(r"request \d to llama3\.3:latest: .* \(/api/generate\)", stdout)) == 2
    kept = tmp_path / "kept.json"
    history = llmtop("history", "--watched", "--export", str(kept))
    assert history.returncode == 0, history.stderr
    requests = json.loads(kept.read_text(encoding="utf-8"))["requests"]
    assert [(r["kind"], r["host"], r["model"], r["eval_tokens"]) for r in requests] == [
        ("watch", double.url, "llama3.3:latest", f["eval_count"]) for f in finals
    ]
    assert "| date | server | model | prompt | prompt tps | tokens | tps |" in history.stdout


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_without_log_or_proxy_the_requests_say_why(double):
    result = llmtop("watch", "--headless", "--host", double.url, "--no-log", "--duration", "1.5")
    assert result.returncode == 0
    assert "requests n/a: without the log's timings or --proxy, no request can be measured" in result.stderr


# -- Prometheus and Grafana -------------------------------------------------------------------------------
DASHBOARD = Path(__file__).resolve().parent.parent / "core" / "data" / "grafana-dashboard.json"


def exported_names() -> set[str]:
    """Every series name llmtop's endpoint can give, from a state and collectors that have everything."""
    from llmtop.collectors.gpu_reading import GpuReading, GpuSample
    from llmtop.collectors.ollama_processes import OllamaProcessSample
    from llmtop.collectors.power_reading import PowerReading, PowerSample
    from llmtop.collectors.system_collectors import SystemCollectors
    from llmtop.collectors.system_memory import SystemMemorySample
    from llmtop.watch.metrics import LlmtopMetrics

    collectors = SystemCollectors(0.5, memory_reader=lambda t: None, process_reader=lambda t: None)
    collectors.memory.push(SystemMemorySample(1.0, 64 * 10**9, 30 * 10**9, 0, 0))
    collectors.processes.push(OllamaProcessSample(1.0, 10**9, 10**9, 1, (2,)))
    collectors.use_gpus(lambda t: None)
    collectors.gpu.push(GpuSample(1.0, (GpuReading("k", "GPU", "nvml", 1, 2, 3, 4),)))
    collectors.use_power(lambda t: None, {})
    collectors.power.push(PowerSample(1.0, (PowerReading("rapl", "CPU package", "cpu", "m", 40.0, 5.0),)))
    state = WatchState()
    state.observe_ps(1.0, [{"name": "m:latest", "size": 10, "size_vram": 5, "context_length": 4096}])
    state.totals["m:latest"].layers_offloaded, state.totals["m:latest"].layers_total = 27, 81  # as a load's log tells
    number = state.proxy_started(1.0, "/api/generate", "m")
    state.proxy_finished(2.0, number, {"done": True, "model": "m", "eval_count": 5, "eval_duration": 10**9})
    names = set()
    for family in LlmtopMetrics(state, collectors).collect():
        names.update(sample.name for sample in family.samples)
    return names


def test_the_grafana_dashboard_loads_and_asks_only_for_what_llmtop_exports():
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exported = exported_names()
    assert {"llmtop_requests_total", "llmtop_eval_tokens_total", "llmtop_gpu_memory_used_bytes"} <= exported
    asked = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            asked.update(re.findall(r"\bllmtop_[a-z_]+", target["expr"]))
    for variable in dashboard["templating"]["list"]:
        asked.update(re.findall(r"\bllmtop_[a-z_]+", json.dumps(variable)))
    assert asked and asked <= exported, asked - exported


def test_a_real_prometheus_scrapes_watch_and_counts_the_requests(logged_double, tmp_path):
    import shutil

    prometheus = shutil.which("prometheus")
    if prometheus is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is not installed: .ci/run installs Debian's package")
        pytest.skip("prometheus is not installed here (apt-get install prometheus); CI installs it")
    double, log_file = logged_double(token_rate=80, tokens=25, load_delay_s=0.2, vram_fraction=27 / 81)
    metrics_port, web_port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: llmtop\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
    )
    server = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{web_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    watch = start_watch(
        "--host", double.url, "--log", str(log_file), "--metrics", str(metrics_port), "--duration", "40"
    )
    try:
        ready(metrics_port)
        finals = [generate(double.url)[-1], generate(double.url, "again")[-1]]

        def query(expr: str) -> list[dict]:
            url = f"http://127.0.0.1:{web_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return json.loads(response.read())["data"]["result"]
            except OSError:
                return []

        def counted() -> bool:
            result = query("llmtop_requests_total")
            return bool(result) and float(result[0]["value"][1]) == 2.0

        eventually(counted, timeout=40)
        [requests] = query("llmtop_requests_total")
        [tokens] = query("llmtop_eval_tokens_total")
        [layers] = query("llmtop_model_layers_offloaded")
    finally:
        watch.terminate()
        watch.communicate(timeout=20)
        server.terminate()
        server.wait(20)
    assert requests["metric"]["model"] == "llama3.3:latest" and requests["metric"]["job"] == "llmtop"
    assert float(tokens["value"][1]) == sum(f["eval_count"] for f in finals)
    assert float(layers["value"][1]) == 27


async def test_the_watch_screen_shows_the_loaded_model_the_requests_and_the_events(logged_double):
    from llmtop.collectors.log_sources import FileFollower
    from llmtop.collectors.log_watch import LogWatcher
    from llmtop.collectors.system_collectors import SystemCollectors
    from llmtop.tui.watch_app import WatchApp, WatchedScreen
    from llmtop.watch.poller import PsPoller

    double, log_file = logged_double(token_rate=60, tokens=30, load_delay_s=0.3, vram_fraction=27 / 81)
    state = WatchState()
    log = LogWatcher(FileFollower(log_file, poll_s=0.05))
    log.subscribe(lambda load: state.observe_load(time.monotonic(), load))
    log.start()
    assert log.wait_until_following(5)
    collectors = SystemCollectors(0.25)
    collectors.start()  # before the poller, as llmtop watch does: the chart begins before any load
    watcher = PsPoller(double.url, state).start()
    app = WatchApp([WatchedScreen(double.url, state)], collectors, log)
    try:
        async with app.run_test(size=(140, 44)) as pilot:
            finals = [generate(double.url)[-1] for _ in range(2)]
            await on_screen(pilot, lambda: _done(app) and _shown_done(app), 15)
            newest = app.requests_table.get_row_at(0)
            assert newest[:2] == ["2", "llama3.3:latest"]
            assert newest[4] == str(finals[1]["eval_count"])
            # The log's rate: its eval time is printed to 0.01 ms, so it may differ from the API's in the last digit.
            api_rate = finals[1]["eval_count"] / (finals[1]["eval_duration"] / 1e9)
            assert float(newest[5]) == pytest.approx(api_rate, abs=0.011)
            assert newest[-2:] == ["server log", "complete"]
            [listed] = json.loads(_raw(double.url, "/api/ps", method="GET")[2])["models"]
            share = f"{100 * listed['size_vram'] / listed['size']:.0f}% GPU"
            assert app.loaded_table.get_row_at(0)[:4] == [
                "llama3.3:latest",
                f"{listed['size'] / 1e9:.1f} GB",
                share,
                str(listed["context_length"]),
            ]
            from llmtop.tui.widgets.memory_chart import MemoryTimelineChart

            chart = app.query_one(MemoryTimelineChart)  # its load marks: the replay's test below
            drawn = await on_screen(pilot, lambda: chart.drawn)
            assert drawn.series[0].name == "RAM"
            events = "\n".join(app.events.lines)
            assert "llama3.3:latest: 27/81 layers on the GPU" in events and "54 layers run on the CPU" in events
            await pilot.press("q")
    finally:
        watcher.stop()
        log.stop()
        collectors.stop()


def _shown_done(app) -> bool:
    table = app.requests_table
    return table.row_count == 2 and all(table.get_row_at(i)[-1] == "complete" for i in range(2))


def _done(app) -> bool:
    requests = app.state.snapshot().requests
    return len(requests) == 2 and all(r.done for r in requests)


def test_llmtop_model_serves_its_runs_to_prometheus_while_they_go(double_factory):
    double = double_factory(token_rate=25, tokens=40, load_delay_s=0.2)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "OLLAMA_HOST"}
    process = subprocess.Popen(
        command("llama3.3", "--host", double.url, "--headless", "--no-log", "--no-record", "--repeat", "2",
                "--metrics", str(port)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    seen = []

    def scraped_until_the_end() -> bool:
        try:
            seen.append(sample_value(scrape(port), "llmtop_requests_total", '{model="llama3.3:latest"}'))
        except OSError:
            pass
        return process.poll() is not None

    try:
        eventually(scraped_until_the_end, 60, "llmtop MODEL --metrics to end")
    finally:
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert 1.0 in seen  # after the first run, while the second one went
    assert f"llmtop: metrics: http://127.0.0.1:{port}/metrics" in err


def test_thousands_of_requests_keep_memory_flat_and_every_count():
    from llmtop.collectors.ollama_log import LoadRecord, RequestTiming
    from llmtop.watch.state import MAX_REQUESTS

    state = WatchState()
    load = LoadRecord()
    state.observe_load(0.0, load)
    state.observe_ps(0.5, [{"name": "qwen2.5:7b", "size": 5, "size_vram": 5}])
    for task in range(5000):
        load.requests.append(RequestTiming(task, task, prompt_tokens=10, prompt_ms=5.0, eval_tokens=20, eval_ms=400.0))
        state.observe_load(task + 0.5, load)
        del load.requests[:-10]  # as the parser keeps a load's last requests only
    requests, _, totals = state.snapshot()
    assert len(requests) == MAX_REQUESTS and state.tasks_tracked <= 2 * MAX_REQUESTS
    assert (totals["qwen2.5:7b"].requests, totals["qwen2.5:7b"].eval_tokens) == (5000, 100_000)
    assert requests[-1].eval_tps == pytest.approx(50.0)


def test_a_server_that_goes_away_is_said_and_watched_until_it_returns():
    from llmtop.watch.poller import PsPoller

    double = OllamaDouble(DoubleConfig(preloaded=("llama3.3",))).start()
    port = double.port
    state = WatchState()
    events = []
    state.listeners.append(events.append)
    watcher = PsPoller(double.url, state).start()
    try:
        eventually(lambda: state.snapshot().loaded)
        double.go_away()
        eventually(lambda: state.server_problem is not None, timeout=10)
        back = OllamaDouble(DoubleConfig(preloaded=("llama3.3",)), port=port).start()
        try:
            eventually(lambda: state.server_problem is None, timeout=10)
        finally:
            back.stop()
    finally:
        watcher.stop()
    assert any(e.kind == "load" and e.text.startswith("llama3.3:latest loaded: ") for e in events)
    assert any(e.kind == "server" and "does not answer" in e.text and "still watching" in e.text for e in events)
    back_at = next(i for i, e in enumerate(events) if e.text == "the server answers again")
    # A new process: its model is a new load (its expiry is not the old one's), said after the return.
    assert [e.text.split(":")[0] for e in events[back_at + 1 :]] == ["llama3.3"]
    assert events[-1].kind == "load" and events[-1].text.startswith("llama3.3:latest loaded: ")


def test_several_servers_side_by_side_each_through_its_proxy(double_factory):
    first, second = double_factory(token_rate=100, tokens=10), double_factory(token_rate=100, tokens=15)
    proxies, metrics = [free_port(), free_port()], free_port()
    watch = start_watch("--host", first.url, "--host", second.url, "--no-log", "--proxy", str(proxies[0]),
                        "--proxy", str(proxies[1]), "--metrics", str(metrics), "--duration", "12")  # fmt: skip
    try:
        ready(metrics)
        generate(f"http://127.0.0.1:{proxies[0]}")
        generate(f"http://127.0.0.1:{proxies[1]}")
        eventually(
            lambda: (
                "llmtop_requests_total{host=" in scrape(metrics)
                and scrape(metrics).count("llmtop_requests_total{") == 2
            )
        )
        text = scrape(metrics)
    finally:
        out, err = watch.communicate(timeout=30)
    assert watch.returncode == 0, err
    assert sample_value(text, "llmtop_eval_tokens_total", f'{{host="{first.url}",model="llama3.3:latest"}}') == 10
    assert sample_value(text, "llmtop_eval_tokens_total", f'{{host="{second.url}",model="llama3.3:latest"}}') == 15
    assert sample_value(text, "llmtop_server_up", f'{{host="{second.url}"}}') == 1.0
    assert re.search(rf"\[{re.escape(first.url)}\] request 1 to llama3\.3:latest: .* 10 tokens", out), out
    assert re.search(rf"\[{re.escape(second.url)}\] request 1 to llama3\.3:latest: .* 15 tokens", out), out
    assert f"watching {second.url}; proxy: point apps at http://127.0.0.1:{proxies[1]}" in err


def test_more_proxies_than_hosts_is_a_usage_error():
    result = llmtop("watch", "--proxy", "11435", "--proxy", "11436")
    assert result.returncode == 2 and "argument --proxy: one per --host at most" in result.stderr


def test_a_watch_session_is_recorded_and_replays_to_the_same_requests(logged_double, tmp_path):
    double, log_file = logged_double(token_rate=80, tokens=20, load_delay_s=0.2, vram_fraction=27 / 81)
    recording, live, replayed = tmp_path / "watch.jsonl", tmp_path / "live.json", tmp_path / "replayed.json"
    metrics = free_port()
    watch = start_watch("--host", double.url, "--log", str(log_file), "--metrics", str(metrics), "--duration", "10",
                        "--record", str(recording), "--export", str(live))  # fmt: skip
    try:
        ready(metrics)
        generate(double.url)
        generate(double.url, "again")
    finally:
        out, err = watch.communicate(timeout=30)
    assert watch.returncode == 0, err
    assert f"llmtop: recorded to {recording} (llmtop replay {recording})" in err
    result = llmtop("replay", str(recording), "--headless", "--export", str(replayed))
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    first, again = (json.loads(p.read_text(encoding="utf-8"))["requests"] for p in (live, replayed))
    keys = ("number", "model", "source", "prompt_tokens", "eval_tokens", "eval_tps", "complete")
    assert [{k: r[k] for k in keys} for r in again] == [{k: r[k] for k in keys} for r in first]
    assert len(first) == 2 and all(r["complete"] for r in first)
    done = [line.split(" ", 3)[3] for line in out.splitlines() if " request " in line and ": prompt" in line]
    assert done and all(text in result.stdout for text in done)  # the same lines, replayed
    assert "REPLAY of watch.jsonl" in result.stderr
    for option in (["--chart", str(tmp_path / "tps.svg")], ["--lang", "ja"]):  # a watch has no runs to chart
        refused = llmtop("replay", str(recording), "--headless", *option)
        no_traceback(refused)
        assert (
            refused.returncode == 2
            and f"argument {option[0]}: watch.jsonl is a recording of `llmtop watch`"
            in (refused.stderr.strip().splitlines()[-1])
        )
        assert not (tmp_path / "tps.svg").exists()


async def test_a_watch_replay_on_screen(logged_double, tmp_path):
    from llmtop.store.replay import load_recording
    from llmtop.store.watch_replay import WatchReplay
    from llmtop.tui.watch_app import WatchApp, WatchedScreen

    double, log_file = logged_double(token_rate=80, tokens=20, load_delay_s=0.2, vram_fraction=27 / 81)
    recording, metrics = tmp_path / "watch.jsonl", free_port()
    watch = start_watch("--host", double.url, "--log", str(log_file), "--metrics", str(metrics), "--duration", "8",
                        "--record", str(recording))  # fmt: skip
    try:
        ready(metrics)
        generate(double.url)
    finally:
        watch.communicate(timeout=30)
    world = WatchReplay(load_recording(recording), speed=None)
    world.play()
    servers = [WatchedScreen(h, s) for h, s in world.states.items()]
    app = WatchApp(servers, world.collectors, world.log, banner="REPLAY", clock=world.player.now)
    async with app.run_test(size=(140, 40)) as pilot:
        await on_screen(pilot, lambda: app.requests_table.row_count == 1, 15)
        assert app.requests_table.get_row_at(0)[-1] == "complete"
        assert str(app.query_one("#banner").render()) == "REPLAY"
        # The memory chart: RAM over the session, the load marked where /api/ps first listed it.
        from llmtop.tui.widgets.memory_chart import MemoryTimelineChart

        chart = app.query_one(MemoryTimelineChart)
        loads = [e.t for s in world.states.values() for e in s.events if e.kind == "load" and e.model]
        assert len(loads) == 1
        drawn = await on_screen(pilot, lambda: chart.drawn)
        assert drawn.series[0].name == "RAM"
        assert [word for _, word in drawn.marks] == ["load"], (drawn.marks, loads, drawn.series[0].points[:2])
        await pilot.press("q")


def test_an_unload_before_the_keep_alive_ran_out_is_an_eviction():
    import datetime as dt

    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)
    state = WatchState()
    later = (now + dt.timedelta(minutes=5)).isoformat()
    state.observe_ps(1.0, [{"name": "a:latest", "size": 9, "size_vram": 3, "expires_at": later}], now)
    state.observe_ps(2.0, [{"name": "b:latest", "size": 9, "size_vram": 9}], now + dt.timedelta(seconds=30))
    state.observe_ps(3.0, [], now + dt.timedelta(minutes=30))
    kinds = [(e.kind, e.model) for e in state.events]
    assert kinds == [("load", "a:latest"), ("load", "b:latest"), ("evicted", "a:latest"), ("unload", "b:latest")]
    assert state.events[2].text == "a:latest unloaded before its keep-alive ran out (evicted to make room?)"


def test_no_event_is_lost_between_the_pollers_and_the_screen():
    """Eight threads report requests while the screen drains its queue as fast as it can: every
    event reaches it exactly once, in each thread's order."""
    import threading

    from llmtop.collectors.system_collectors import SystemCollectors
    from llmtop.tui.watch_app import WatchApp, WatchedScreen

    state = WatchState()
    state.proxy_started(0.0, "/api/generate", "before")  # before the screen opened: shown too
    app = WatchApp([WatchedScreen("http://127.0.0.1:1", state)], SystemCollectors(0.25))
    seen: list[str] = []
    stop = threading.Event()

    def screen() -> None:
        while not stop.is_set():
            seen.extend(event.text for _, event in app.pending_events())
        seen.extend(event.text for _, event in app.pending_events())

    def poller(k: int) -> None:
        for i in range(500):
            state.proxy_started(float(i), "/api/generate", f"m{k}-{i}")

    drain = threading.Thread(target=screen)
    drain.start()
    pollers = [threading.Thread(target=poller, args=(k,)) for k in range(8)]
    for thread in pollers:
        thread.start()
    for thread in pollers:
        thread.join()
    stop.set()
    drain.join()
    assert len(seen) == 1 + 8 * 500 and len(set(seen)) == len(seen)
    assert "before:latest" in seen[0]
    for k in range(8):
        mine = [int(text.split(f"m{k}-")[1].split(":")[0]) for text in seen if f" m{k}-" in text]
        assert mine == list(range(500))


# -- what llmtop opens to the network -------------------------------------------------------------------
def test_a_proxy_beyond_loopback_with_credentials_is_refused(double):
    port = free_port()
    result = llmtop(
        "watch", "--headless", "--host", double.url, "--no-log", "--duration", "1",
        "--proxy", f"0.0.0.0:{port}", "--header", "Authorization: Bearer s3cret",
    )  # fmt: skip
    no_traceback(result)
    reason = [line for line in result.stderr.splitlines() if "error:" in line]  # after argparse's usage lines
    assert result.returncode == 2 and len(reason) == 1
    assert "reachable from other machines" in reason[0] and "--proxy-shares-credentials" in reason[0]
    assert "s3cret" not in result.stderr and not _port_open(port)


def test_a_proxy_and_metrics_beyond_loopback_say_who_can_reach_them(double):
    proxy_port, metrics_port = free_port(), free_port()
    result = llmtop(
        "watch", "--headless", "--host", double.url, "--no-log", "--duration", "1",
        "--proxy", f"0.0.0.0:{proxy_port}", "--metrics", f"0.0.0.0:{metrics_port}",
    )  # fmt: skip
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert (
        f"llmtop: note: the proxy listens on 0.0.0.0:{proxy_port}: any machine that can reach this one can use it: "
        f"it forwards requests to the server ({double.url})" in lines
    )
    assert any(
        line.startswith(f"llmtop: note: --metrics listens on 0.0.0.0:{metrics_port}: any machine") for line in lines
    )
    # The start line names an address an app can connect to (Windows apps cannot connect to 0.0.0.0).
    assert f"proxy: point apps at http://127.0.0.1:{proxy_port}" in result.stderr
    assert "http://0.0.0.0" not in result.stderr


def test_another_machine_gets_no_credentials_added_unless_they_are_shared(double_factory):
    double = double_factory(require_header=("Authorization", "Bearer s3cret"), token_rate=500, tokens=5)
    body = json.dumps({"model": "llama3.3", "prompt": "hi", "stream": False}).encode()
    answers = {}
    for name, share, local in (("this machine", False, True), ("another", False, False), ("shared", True, False)):
        proxy = OllamaProxy(
            double.url, 0, WatchState(proxied=True), "127.0.0.1",
            headers={"Authorization": "Bearer s3cret"}, share_credentials=share,
            local_peer=lambda peer, local=local: local,
        ).start()  # fmt: skip
        try:
            answers[name] = _raw(proxy.url, "/api/generate", body)[0]
        finally:
            proxy.stop()
    assert answers == {"this machine": 200, "another": 401, "shared": 200}


def _outcome(url: str, timeout: float = 5.0) -> tuple[int | str, list[str]]:
    """What an app gets for one streamed generate: (status, or the exception's name, the keys of each line)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    body = json.dumps({"model": "llama3.3", "prompt": "hello"}).encode()
    try:
        connection.request("POST", "/api/generate", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        lines = [line for line in response.read().split(b"\n") if line.strip()]
        shapes = []
        for line in lines:
            try:
                shapes.append(",".join(sorted(json.loads(line))))
            except ValueError:
                shapes.append("not JSON")
        return response.status, shapes
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__, []
    finally:
        connection.close()


@pytest.mark.parametrize(
    "fault", ["drop", "reset", "stall", "malformed", "stream_error", "huge_line", "oom", "404", "proxy_502"]
)
def test_an_app_streaming_through_the_proxy_meets_each_fault_as_without_it(proxied, fault):
    """Every fault the run's tests inject, for an app streaming through `llmtop watch --proxy`: the app
    gets what it gets from the server directly, the request is kept as ended, and the next one works."""
    double, proxy, state = proxied(token_rate=400, tokens=30, fault=fault, fault_after=5)
    direct = _outcome(double.url, timeout=1.5)
    through = _outcome(proxy.url, timeout=1.5)
    if fault == "reset":  # the server's RST reaches the app as the end of its stream, whichever way it is cut
        assert direct[0] in ("RemoteDisconnected", "IncompleteRead", "ConnectionResetError")
        assert through[0] in ("RemoteDisconnected", "IncompleteRead", "ConnectionResetError")
    else:
        assert through == direct
    double.stalled.set()  # a stalled stream ends once the app has given up (the proxy then sees it end)
    eventually(lambda: state.snapshot().requests and state.snapshot().requests[-1].done, timeout=20)
    [request] = state.snapshot().requests
    assert request.error is not None or request.cancelled or request.eval_tokens == 30
    double.config.fault = None
    assert _outcome(proxy.url)[0] == 200  # the proxy goes on
    eventually(lambda: len(state.snapshot().requests) == 2 and state.snapshot().requests[-1].done)
    assert state.snapshot().requests[-1].eval_tokens == 30


def test_a_hundred_concurrent_streams_through_the_proxy_are_not_mixed(proxied):
    """100 apps stream at once through one proxy: each gets its own answer whole (its model, its
    words in order), every request is counted once, and the state's memory stays bounded."""
    import threading
    import tracemalloc

    models = {f"m{i}:latest": {**DoubleConfig().models["llama3.3:latest"]} for i in range(100)}
    double, proxy, state = proxied(token_rate=200, tokens=20, models=models, load_delay_s=0.0)
    answers: dict[int, list[dict]] = {}
    tracemalloc.start()
    before = tracemalloc.take_snapshot()

    def app(i: int) -> None:
        answers[i] = generate(proxy.url, prompt=f"p{i}", model=f"m{i}")

    threads = [threading.Thread(target=app, args=(i,)) for i in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    eventually(
        lambda: len(state.snapshot().requests) == 100 and all(r.done for r in state.snapshot().requests), timeout=30
    )
    grown = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    assert len(answers) == 100
    for i, chunks in answers.items():
        assert {c["model"] for c in chunks} == {f"m{i}"} and chunks[-1]["done"] and chunks[-1]["eval_count"] == 20
        assert [c["response"] for c in chunks[:3]] == [c["response"] for c in answers[0][:3]]  # in its own order
    requests = state.snapshot().requests
    assert sorted(r.model for r in requests) == sorted(f"m{i}:latest" for i in range(100))
    assert all(r.eval_tokens == 20 for r in requests)
    assert grown < 5_000_000, grown  # the answers themselves are the apps'; the proxy and the state keep little


def test_watch_keeps_going_through_a_server_restart_and_both_kinds_of_log_rotation(tmp_path):
    """The server restarts (a new process, its log goes on in the same file), then the log is rotated
    by copytruncate and then by rename: each later request is still seen in the log, and the restart
    is said and watched through."""
    import shutil

    log_file = tmp_path / "server.log"
    log_file.write_text("")
    config = {"llama_server_log": True, "token_rate": 60, "tokens": 30, "load_delay_s": 0.3, "vram_fraction": 27 / 81}

    def server(port: int = 0) -> tuple[OllamaDouble, object]:
        writer = open(log_file, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed below
        return OllamaDouble(DoubleConfig(**config), port=port, log=ServerLog(writer.write)).start(), writer

    double, writer = server()
    watch = start_watch("--host", double.url, "--log", str(log_file), "--duration", "25", "--no-history")
    seen: list[str] = []

    def done_requests() -> int:
        return sum(" to llama3.3:latest: " in line for line in seen)

    import threading

    reader = threading.Thread(target=lambda: seen.extend(iter(watch.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        # said once the log is followed: what the server prints from here on is read
        assert watch.stderr is not None and watch.stderr.readline().startswith("llmtop: watching ")
        generate(double.url)
        eventually(lambda: done_requests() >= 1)
        port = double.port
        double.go_away()
        writer.close()
        eventually(lambda: any("does not answer" in line for line in seen))
        double, writer = server(port)  # a new server process: its log goes on in the same file
        eventually(lambda: any("the server answers again" in line for line in seen))
        generate(double.url)
        eventually(lambda: done_requests() >= 2, what=seen)
        shutil.copy(log_file, tmp_path / "server.log.1")  # logrotate's copytruncate
        with open(log_file, "r+") as handle:
            handle.truncate(0)
        generate(double.url)
        eventually(lambda: done_requests() >= 3)
        writer.close()
        log_file.rename(tmp_path / "server.log.2")  # rotation by rename: a new file where the old was
        writer = open(log_file, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        double.log = ServerLog(writer.write)
        generate(double.url)
        eventually(lambda: done_requests() >= 4)
    finally:
        watch.terminate()
        watch.wait(30)
        double.stop()
        writer.close()
    assert done_requests() == 4, seen


def test_llama_servers_slots_give_live_progress_and_a_gone_child_is_not_asked_again(tmp_path):
    """core/watch/slots.py on the lines and answers of a real 0.34 llama-server (its start line's
    --port, a slot taking task 7, /slots as it generates): tokens so far and their rate, asked only at
    that port; a child still starting is asked again, one that had started and no longer answers is not."""
    from llmtop.collectors.log_sources import FileFollower
    from llmtop.collectors.log_watch import LogWatcher
    from llmtop.watch.slots import SlotsPoller

    now = [10.0]
    state, log = WatchState(), LogWatcher(FileFollower(tmp_path / "unused.log"), clock=lambda: now[0])
    log.subscribe(lambda load: state.observe_load(now[0], load))
    log.feed(
        'time=2026-12-06T14:52:24.844Z level=INFO source=llama_server.go:436 msg="starting llama-server" '
        'cmd="/usr/lib/ollama/llama-server --model /blobs/sha256-x --port 40123 --host 127.0.0.1 --no-webui '
        '--offline -c 4096 -np 1 --log-verbosity 4"',
        now[0],
    )
    asked: list[int] = []
    answers: list[object] = [OSError("refused")]  # still starting

    def fetch(port: int):
        asked.append(port)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def busy(task: int, decoded: int) -> list[dict]:
        return [{"id": 0, "is_processing": True, "id_task": task, "n_prompt_tokens_processed": 17,
                 "next_token": [{"has_next_token": True, "n_remain": 100, "n_decoded": decoded}]}]  # fmt: skip

    poller = SlotsPoller(state, log, fetch=fetch, clock=lambda: now[0])
    poller.poll_once()
    assert asked == [40123] and poller.servers() != []  # not started yet: asked again
    log.feed("slot launch_slot_: id  0 | task 7 | processing task, is_child = 0", now[0])
    log.feed(
        'time=2026-12-06T14:52:25.8Z level=INFO source=llama_server.go:1374 msg="llama-server started in 1.01 seconds"',
        now[0],
    )  # noqa: E501
    answers += [busy(7, 20), busy(7, 50), OSError("refused")]
    now[0] = 11.0
    poller.poll_once()
    now[0] = 12.0
    poller.poll_once()
    (request,) = state.snapshot().requests
    assert (request.done, request.eval_tokens, request.prompt_tokens) == (False, 50, 17)
    assert request.eval_tps == pytest.approx(30.0)  # 30 tokens in the second between the two readings
    now[0] = 13.0
    poller.poll_once()  # the child is gone
    assert poller.servers() == [] and asked == [40123] * 4
    poller.poll_once()
    assert len(asked) == 4  # not asked again
