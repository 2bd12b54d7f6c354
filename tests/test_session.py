"""A whole run against the double: unload, baseline, generate, summary; and runs that fail midway."""

import pytest

from helpers.seen_events import SeenEvents
from helpers.sessions import GB, collectors_watching
from llmtop.measure import run_steps
from llmtop.measure.events import FinalChunk, RunOpened
from llmtop.measure.session import Phase, RunSettings, Session
from llmtop.ollama.api import OllamaServer


@pytest.fixture
def run_session():
    sessions = []

    def make(double, model="llama3.3"):
        collectors = collectors_watching(double)
        seen = SeenEvents()
        session = Session(OllamaServer(double.url), model, collectors, seen.stream)
        make.seen[session] = seen
        session.connect()
        collectors.start()
        sessions.append(session)
        return session

    make.seen = {}  # each session's events, as a subscriber saw them
    yield make
    for session in sessions:
        session.collectors.stop()


def test_a_complete_run(double_factory, run_session):
    double = double_factory(token_rate=100, tokens=30, load_delay_s=0.3, vram_fraction=0.36)
    session = run_session(double)
    assert session.version == "0.5.11"
    assert session.facts.layers_total == 81
    row = session.run(RunSettings())
    final = double.finals[-1]
    assert row.complete and row.error is None
    assert row.eval_rate_tps == pytest.approx(final["eval_count"] / (final["eval_duration"] / 1e9), rel=1e-9)
    assert row.client_rate_tps == pytest.approx(row.eval_rate_tps, rel=0.05)
    assert row.load_s == pytest.approx(final["load_duration"] / 1e9)
    assert row.ram_delta_bytes == 44 * GB and row.ram_peak_bytes == 44 * GB
    assert row.ollama_rss_delta_bytes == 43 * GB
    assert row.env == "CPU+GPU"
    assert row.ttft_s >= 0.3
    observer = run_session.seen[session]
    assert observer.phases == [Phase.BASELINE, Phase.LOADING, Phase.GENERATING, Phase.DONE]
    assert len(observer.tokens) == 30
    assert observer.rows == [row] == session.rows


def test_a_loaded_model_is_unloaded_before_the_baseline(double_factory, run_session):
    double = double_factory(preloaded=("llama3.3:latest",), unload_delay_s=0.2)
    session = run_session(double)
    row = session.run(RunSettings(num_gpu=0))
    assert run_session.seen[session].phases[:2] == [Phase.UNLOADING, Phase.BASELINE]
    unloads = [body for _, path, body in double.requests if body.get("keep_alive") == 0]
    assert unloads == [{"model": "llama3.3", "keep_alive": 0, "stream": False}]
    # The baseline was taken after the unload, so the model's 44 GB show as the increase.
    assert row.ram_delta_bytes == 44 * GB
    assert row.env == "CPU" and row.mode == "cpu"
    assert double.requests[-1][2]["options"] == {"num_gpu": 0, "seed": 42}


@pytest.mark.parametrize(
    ("fault", "text"),
    [
        ("drop", "dropped mid-stream"),
        ("malformed", "not JSON"),
        ("stream_error", "unexpected EOF"),
        ("no_final", "without its final chunk"),
    ],
)
def test_a_run_that_fails_midway_keeps_what_was_measured(double_factory, run_session, fault, text):
    double = double_factory(fault=fault, fault_after=12, token_rate=100)
    session = run_session(double)
    row = session.run(RunSettings())
    assert not row.complete
    assert text in row.error
    assert row.eval_rate_tps is None  # the server never sent its figures
    assert row.client_rate_tps is not None and row.ttft_s is not None
    assert row.ram_delta_bytes == 44 * GB
    assert session.rows == [row]
    assert run_session.seen[session].phases[-1] is Phase.FAILED


def test_out_of_memory_before_the_first_token(double_factory, run_session):
    session = run_session(double_factory(fault="oom"))
    row = session.run(RunSettings())
    assert not row.complete
    assert row.error.startswith("model requires more system memory")
    assert row.ttft_s is None and row.client_rate_tps is None


def test_abandon_keeps_the_run_in_progress_once(double_factory, run_session):
    import threading

    double = double_factory(token_rate=20, tokens=200)
    session = run_session(double)
    thread = threading.Thread(target=session.run, args=(RunSettings(),))
    thread.start()
    while session.current is None or session.current.clock.count < 5:
        thread.join(0.01)
    row = session.abandon("quit before the run finished")
    thread.join(10)
    assert row is not None and not row.complete
    assert row.error == "quit before the run finished"
    assert session.rows == [row]  # the thread's own finish did not add a second row
    assert session.abandon("again") is None


def test_api_ps_is_asked_less_often_once_the_model_is_listed(double_factory, run_session, monkeypatch):
    import llmtop.measure.session

    monkeypatch.setattr(llmtop.measure.session, "PS_INTERVAL_S", 0.05)
    double = double_factory(token_rate=20, tokens=30, load_delay_s=0.2, vram_fraction=0.36)
    session = run_session(double)
    before = len(double.gets)
    row = session.run(RunSettings())
    asked = double.gets[before:].count("/api/ps")
    # About 1.7 s of generation with a poll due every 0.05 s: the model is listed once its 0.2 s
    # load is over, then asked about again only at the end.
    assert row.complete and row.env == "CPU+GPU"
    assert asked <= 8, asked  # at 20 polls a second throughout, it would be over 30


def test_a_bug_in_the_run_ends_it_incomplete_kept_and_logged(double_factory, run_session, monkeypatch):
    session = run_session(double_factory(token_rate=200))

    def broken(self, event):
        raise RuntimeError("boom")

    monkeypatch.setitem(run_steps._STEPS, FinalChunk, broken)  # the step that takes the final chunk
    row = session.run(RunSettings())
    assert not row.complete and row.error.startswith("internal error in the run: RuntimeError: boom (details in ")
    assert row.client_rate_tps is not None and row.ram_delta_bytes == 44 * GB  # what was measured is kept
    assert session.rows == [row] and run_session.seen[session].notes[-1] == row.error
    log = row.error.split("(details in ")[1].rstrip(")")
    assert 'raise RuntimeError("boom")' in open(log, encoding="utf-8").read()


def test_a_stall_reason_belongs_to_its_run_alone(double_factory, run_session):
    """A stalled run, then the server goes away: the next run's error is the unreachable server,
    not the stall of the run before (the watchdog's reason once outlived its run)."""
    double = double_factory(fault="stall", fault_after=5, fault_once=True, token_rate=100, tokens=40)
    session = run_session(double)
    session.stall_timeout_s = 1.0
    stalled = session.run(RunSettings())
    assert not stalled.complete and stalled.error == "no token for 1 s (--stall-timeout)"
    double.stop()  # the server went away: the next run's unload cannot reach it
    after = session.run(RunSettings())
    assert not after.complete
    assert "--stall-timeout" not in after.error and "cannot reach" in after.error, after.error


def test_a_final_chunk_that_comes_after_the_user_quit_does_not_rewrite_the_kept_run(double_factory, run_session):
    """The reader thread's writes to a run go through the session's lock and leave a run that
    abandon() has kept (as the user quit) as it was kept: not complete, with the quit's reason."""
    session = run_session(double_factory())
    session.take(
        RunOpened(session.now(), session.model, RunSettings(), "auto", session.server.base_url, "0.5.11", None)
    )
    record = session.current
    record.clock.token(session.now())
    kept = session.abandon("quit before the run finished")
    final = {"done": True, "done_reason": "stop", "eval_count": 40, "eval_duration": 200_000_000}
    assert session._stream_chunk(record, final, session.now()) is False
    assert kept is not None and kept.error == "quit before the run finished" and not kept.complete
    assert record.complete is False and record.server is None  # the late final chunk changed nothing


def test_a_reader_left_behind_writes_nothing_into_the_next_run(double_factory, run_session):
    """A stream's read that did not return when its run was cut is left behind; whatever it reads later
    (a token, even the final chunk) belongs to that run, which is over: the next run is not touched."""
    session = run_session(double_factory())
    opened = RunOpened(session.now(), session.model, RunSettings(), "auto", session.server.base_url, "0.5.11", None)
    session.take(opened)
    behind = session.current
    session.abandon("no token for 1 s (--stall-timeout)")
    session.take(RunOpened(session.now(), session.model, RunSettings(), "cpu", session.server.base_url, "0.5.11", None))
    following = session.current
    assert session._stream_chunk(behind, {"response": "late"}, session.now()) is False
    final = {"done": True, "done_reason": "stop", "eval_count": 40, "eval_duration": 200_000_000}
    assert session._stream_chunk(behind, final, session.now()) is False
    assert following.clock.count == 0 and not following.complete and following.server is None
    assert "late" not in run_session.seen[session].tokens


def test_a_reader_that_finds_a_runs_row_finds_its_curves(double_factory, run_session):
    """close_run keeps the curves before the row: a report made while runs end (another thread)
    never finds a row without its curves."""
    session = run_session(double_factory(token_rate=200, tokens=10))
    session.keep_curves = True
    checked = []

    class Rows(list):
        def append(self, row):
            checked.append(len(session.curves) == len(self) + 1 and session.curves[-1] is not None)
            super().append(row)

    session.rows = Rows()
    session.run(RunSettings())
    assert checked == [True]
