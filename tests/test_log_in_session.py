"""The server log in a run: the load that follows our request gives the layers and the env column."""

import pytest

from helpers.seen_events import SeenEvents
from llmtop.collectors.log_sources import FileFollower
from llmtop.collectors.log_watch import LogWatcher
from llmtop.collectors.ollama_processes import OllamaProcessSample
from llmtop.collectors.system_collectors import SystemCollectors
from llmtop.collectors.system_memory import SystemMemorySample
from llmtop.measure.session import Phase, RunSettings, Session
from llmtop.measure.summary import ENV_FROM_LOG, ENV_FROM_PS
from llmtop.ollama.api import OllamaServer
from ollama_double import DoubleConfig, OllamaDouble, ServerLog

GB = 10**9


@pytest.fixture
def logged_session(tmp_path):
    made = []

    def make(era="0.5", **config):
        log_file = tmp_path / "server.log"
        log_file.write_text("an old line from yesterday\n")
        writer = open(log_file, "a", encoding="utf-8", buffering=1)
        double = OllamaDouble(DoubleConfig(**config), log=ServerLog(writer.write, era))
        watcher = LogWatcher(FileFollower(log_file, poll_s=0.02))
        watcher.start()
        assert watcher.wait_until_following(5)  # at the file's end: what the server prints is new
        double.start()
        collectors = SystemCollectors(
            0.02,
            memory_reader=lambda now: SystemMemorySample(now, 64 * GB, 40 * GB, 0, 0),
            process_reader=lambda now: OllamaProcessSample(now, GB, 0, 1, ()),
        )
        seen = SeenEvents()
        session = Session(OllamaServer(double.url), "llama3.3", collectors, seen.stream, log=watcher)
        make.seen[session] = seen
        session.connect()
        collectors.start()
        made.append((double, watcher, collectors, writer))
        return session

    make.seen = {}  # each session's events, as a subscriber saw them
    yield make
    for double, watcher, collectors, writer in made:
        collectors.stop()
        watcher.stop()
        double.stop()
        writer.close()


def test_layers_and_env_come_from_the_log(logged_session):
    session = logged_session(vram_fraction=27 / 81, load_delay_s=0.3, token_rate=200)
    row = session.run(RunSettings())
    assert (row.layers_offloaded, row.layers_total) == (27, 81)
    assert (row.env, row.env_source, row.library) == ("CPU+GPU", ENV_FROM_LOG, "cuda")
    assert Phase.PROMPT in logged_session.seen[session].phases  # "llama runner started" moved loading on to the prompt
    load = session.log_load()
    assert load.gpus == ["NVIDIA GeForce RTX 4060 Ti"] and load.ollama_version == "0.5.11"


@pytest.mark.parametrize(
    ("era", "version", "engine", "context"),
    [("0.5", "0.5.11", "llama.cpp", 2048), ("go-engine", "0.9.6", "ollama", 4096)],
)
def test_every_era_of_the_log_gives_the_layers_the_context_and_the_reason(
    logged_session, era, version, engine, context
):
    session = logged_session(era=era, version=version, vram_fraction=27 / 81, token_rate=200)
    auto = session.run(RunSettings())
    cpu = session.run(RunSettings(num_gpu=0, num_ctx=8192))
    assert (auto.layers_offloaded, auto.layers_total, auto.env, auto.library) == (27, 81, "CPU+GPU", "cuda")
    assert (auto.context, auto.context_note) == (context, "Ollama's choice: the request set none (/api/ps)")
    assert auto.split_reason == (
        "27/81 layers on the GPU: Ollama's estimate for all of them is 44.4 GiB (KV cache 640.0 MiB) "
        "and 15.6 GiB was available"
    )
    assert (cpu.layers_offloaded, cpu.env, cpu.context) == (0, "CPU", 8192)
    assert session.log_load().engine == engine and session.log_load().context == 8192  # `--ctx-size 8192`


def test_a_cpu_run_is_confirmed_by_llamacpps_buffers_without_an_offloaded_line(logged_session):
    session = logged_session(token_rate=200)
    session.run(RunSettings())
    row = session.run(RunSettings(num_gpu=0))  # the double's CPU runner prints only `CPU buffer size`
    assert (row.layers_offloaded, row.layers_total) == (0, 81)
    assert (row.env, row.env_source, row.library) == ("CPU", ENV_FROM_LOG, "cpu")
    assert session.rows[0].layers_offloaded == 0  # vram_fraction 0 by default: both loads are the right ones


def test_a_crash_brings_the_logs_error_into_the_row(logged_session):
    session = logged_session(fault="drop", fault_after=5, token_rate=200)
    row = session.run(RunSettings())
    assert not row.complete
    assert "dropped mid-stream" in row.error and "llama runner terminated: exit status 2" in row.error


def test_without_a_log_env_falls_back_to_api_ps_labelled_as_an_estimate():
    with OllamaDouble(DoubleConfig(vram_fraction=0.5, token_rate=200)) as double:
        collectors = SystemCollectors(0.05)
        session = Session(OllamaServer(double.url), "llama3.3", collectors, log_reason="not read (--no-log)")
        session.connect()
        collectors.start()
        row = session.run(RunSettings())
        collectors.stop()
    assert (row.env, row.env_source, row.layers_offloaded) == ("CPU+GPU", ENV_FROM_PS, None)


def test_the_logs_request_timing_gives_the_same_eval_rate_as_the_api(logged_session):
    # Ollama 0.30 on: llama-server's `eval time = ... ms / N tokens` for this run's request.
    session = logged_session(token_rate=100, tokens=40, llama_server_log=True)
    row = session.run(RunSettings())
    assert row.log_eval_tps == pytest.approx(row.eval_rate_tps, rel=1e-3)  # ms are printed to 0.01
    request = session.log_request()
    assert (request.eval_tokens, request.decoded) == (40, 30)
