"""Recordings: written as the session runs, replayed to the same rows, cut short by a crash and
still replayed, the shipped demo."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers.cli import command, llmtop, no_traceback
from helpers.seen_events import SeenEvents
from llmtop.commands.replay_command import DEMO_BANNER, demo_path
from llmtop.measure.events import Phase
from llmtop.measure.summary_row import SummaryRow
from llmtop.store.recording import Recorder, RecordingError, encode
from llmtop.store.replay import NOT_RECORDED, Player, load_recording, parse_recording, replay
from llmtop.tui.app import LlmtopApp
from summary_rows import as_recorded
from waiting import eventually, on_screen

RECORDINGS = Path(__file__).resolve().parent.parent / "screenshots" / "recordings"


def events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_live_run_replayed_gives_the_same_rows_field_for_field(double_factory, tmp_path):
    double = double_factory(token_rate=80, cpu_token_rate=40, tokens=30, vram_fraction=0.36)
    recording, live = tmp_path / "run.jsonl", tmp_path / "live.json"
    result = llmtop(
        "llama3.3", "--host", double.url, "--headless", "--no-log", "--modes", "cpu,auto",
        "--record", str(recording), "--export", str(live),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"recorded to {recording}" in result.stderr
    kinds = [e["event"] for e in events(recording)]
    assert kinds[0] == "recording" and kinds[-1] == "closed"
    assert {"model", "machine", "sample", "run", "phase", "baseline", "request", "token", "ps", "final", "end"} <= set(
        kinds
    )
    assert kinds.count("token") == 60 and kinds.count("summary") == 2

    loaded = load_recording(recording)
    assert loaded.damage is None and loaded.closed
    _, runner = replay(loaded, speed=None)
    rows = runner.run_all()
    assert rows == loaded.summaries  # recomputed from the events, equal to what the live session computed
    live_runs = json.loads(live.read_text())["runs"]
    assert json.loads(json.dumps([r.to_dict() for r in rows])) == live_runs

    replayed = tmp_path / "replayed.json"
    again = llmtop("replay", str(recording), "--headless", "--export", str(replayed))
    no_traceback(again)
    assert again.returncode == 0, again.stderr
    document = json.loads(replayed.read_text())
    assert document["runs"] == live_runs
    assert document["machine"] == json.loads(live.read_text())["machine"]
    assert "REPLAY of run.jsonl" in again.stderr


def test_a_replay_publishes_the_events_the_live_run_recorded_one_for_one(double_factory, tmp_path):
    """The live session's typed events are what a recording keeps (Recorder.take writes each one's kind
    and fields), and a replay turns each recorded run event back into the same typed event on its
    stream: the screen and the headless lines of a replay take the live path."""
    from llmtop.store.recording import jsonable
    from llmtop.store.replay import RUN_EVENTS

    double = double_factory(token_rate=80, cpu_token_rate=40, tokens=12, vram_fraction=0.36)
    recording = tmp_path / "run.jsonl"
    result = llmtop(
        "llama3.3", "--host", double.url, "--headless", "--no-log", "--modes", "cpu,auto", "--record", str(recording)
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    loaded = load_recording(recording)
    _, runner = replay(loaded, speed=None)
    seen = SeenEvents(runner.events)
    runner.run_all()
    recorded = [e for e in loaded.events if e["event"] in RUN_EVENTS or e["event"] == "summary"]
    published = [{"event": e.name, "t": e.t, **jsonable(e.fields())} for e in seen.all if e.name is not None]
    assert [e["event"] for e in published] == [e["event"] for e in recorded]
    assert published == recorded
    assert {"run", "phase", "baseline", "request", "token", "ps", "cpu", "final", "end", "summary"} <= {
        e["event"] for e in recorded
    }
    assert len(seen.rows) == 2 and seen.phases.count(Phase.DONE) == 2  # and each run's end, as the screen sees it


def test_sigkill_mid_run_leaves_a_recording_that_replays_to_the_last_second(double_factory, tmp_path):
    double = double_factory(token_rate=20, tokens=5000)
    recording = tmp_path / "killed.jsonl"
    process = subprocess.Popen(
        command("llama3.3", "--host", double.url, "--headless", "--no-log", "--record", str(recording)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "OLLAMA_HOST"},
    )
    eventually(
        lambda: recording.exists() and recording.read_text(encoding="utf-8").count('"event": "token"') >= 20,
        30,
        "tokens recorded",
    )
    process.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()  # the same clock as the recording's on this machine
    process.wait(10)

    loaded = load_recording(recording)
    assert not loaded.closed
    # Tokens read together are written with the times they came (up to one read of the stream
    # earlier than a sample written before them): the recording's end is its latest time.
    last = max(event["t"] for event in loaded.events)
    assert killed_at - last < 1.0  # at most the last second is lost
    tokens = [e for e in loaded.events if e["event"] == "token"]
    assert len(tokens) >= 20

    world, runner = replay(loaded, speed=None)
    notes = SeenEvents(runner.events)
    [row] = runner.run_all()
    assert not row.complete and row.error.startswith("replay stopped: ")
    assert row.client_rate_tps == pytest.approx(20, rel=0.2)
    assert world.sessions["llama3.3"].last.clock.count == len(tokens)
    assert notes.notes == [f"replay stopped {last - loaded.header['t']:.1f} s into the recording: {row.error[16:]}"]

    result = llmtop("replay", str(recording), "--headless")
    no_traceback(result)
    assert result.returncode == 1
    assert "note: replay stopped " in result.stderr and "s into the recording" in result.stderr


def test_a_recording_made_before_llmtop_read_power_replays_with_power_said_not_recorded(tmp_path):
    old = []
    for line in (RECORDINGS / "compare.jsonl").read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event["event"] == "recording":
            del event["power"]  # as llmtop wrote its header before it read power
        if event["event"] != "sample" or event["source"] != "power":
            old.append(json.dumps(event))
    path = tmp_path / "old.jsonl"
    path.write_text("\n".join(old) + "\n", encoding="utf-8")
    loaded = load_recording(path)
    _, runner = replay(loaded, speed=None)
    rows = runner.run_all()
    assert [r.energy_note for r in rows] == [
        f"CPU not measured ({NOT_RECORDED}); GPU not measured ({NOT_RECORDED})"
    ] * 4
    assert [dataclasses.replace(r, energy_note=None) for r in as_recorded(rows)] == [
        dataclasses.replace(r, energy_note=None) for r in loaded.summaries
    ]


def test_a_recording_damaged_mid_line_replays_up_to_the_damage(tmp_path):
    lines = (RECORDINGS / "compare.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    token_lines = [i for i, line in enumerate(lines) if '"event": "token"' in line]
    cut = token_lines[60]  # in the second run
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text("".join(lines[:cut]) + lines[cut][:25], encoding="utf-8")
    loaded = load_recording(damaged)
    assert (
        loaded.damage
        == f"line {cut + 1} of {damaged} is not JSON (the line is cut short: the recording was not closed)"
    )
    world, runner = replay(loaded, speed=None)
    rows = runner.run_all()
    assert [r.complete for r in rows] == [True, False]
    assert as_recorded(rows)[0] == loaded.summaries[0]
    assert world.sessions["llama3.3"].last.clock.count == 60 - 45
    assert rows[1].error == f"replay stopped: {loaded.damage}"


def test_an_event_that_is_json_but_not_llmtops_stops_the_replay_there(tmp_path):
    lines = (RECORDINGS / "compare.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    first_sample = next(i for i, line in enumerate(lines) if '"event": "sample"' in line)
    lines[first_sample] = encode("sample", json.loads(lines[first_sample])["t"], {"source": "ram", "sample": {}}) + "\n"
    damaged = tmp_path / "odd.jsonl"
    damaged.write_text("".join(lines), encoding="utf-8")
    world, runner = replay(load_recording(damaged), speed=None)
    [row] = runner.run_all()
    assert not row.complete and "the `sample` event at " in row.error and "cannot be read (TypeError" in row.error


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is not an llmtop recording"),
        ('{"hello": 1}\n', "line 1 of "),
        ('{"event": "recording", "t": 1.0, "v": 99}\n', "is in recording format 99; this llmtop reads format 1"),
        ('{"event": "recording", "t": 1.0, "v": 1}\n{"event": "sam', "nothing to replay (line 2 of "),
        ('{"event": "recording", "t": 1.0, "v": 1}\n', "ends before any model was connected"),
    ],
)
def test_what_cannot_be_replayed_is_one_line_and_status_2(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    result = llmtop("replay", str(path), "--headless")
    no_traceback(result)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr


def test_missing_file_and_bad_options_of_replay():
    assert "cannot read /no/such.jsonl: No such file or directory" in llmtop("replay", "/no/such.jsonl").stderr
    for args, message in (
        (["--speed", "0"], "must be between 0.01 and 10000"),
        (["--speed", "fast"], "not a number or `max`"),
        (["--export", "x.txt"], "use .md, .csv or .json"),
    ):
        result = llmtop("replay", "x.jsonl", *args)
        assert result.returncode == 2 and message in result.stderr, args


def test_the_demo_runs_with_no_ollama_and_no_gpu(tmp_path):
    assert demo_path().is_file()  # shipped inside the package
    result = llmtop("demo", "--headless", env={"PATH": "/nonexistent"} if os.name != "nt" else None)
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert DEMO_BANNER in result.stderr
    lines = result.stdout.splitlines()
    assert lines[2].startswith("| llama3.3 | 70.6B | Q4_K_M | 42.5GB | CPU | cpu | 2048 | 0/81 | 0.99 | 1.00x |")
    assert lines[3].startswith("| llama3.3 | 70.6B | Q4_K_M | 42.5GB | CPU+GPU | auto | 2048 | 27/81 | 1.34 | 1.35x |")
    loaded = load_recording(demo_path())
    [_, gpu_run] = loaded.summaries
    assert gpu_run.gpus == ("AMD Radeon RX 7600 XT",) and gpu_run.shared_delta_bytes > 1_500_000_000


def test_recording_default_place_and_no_record(double, tmp_path, monkeypatch):
    data = tmp_path / "data"
    env = {"LLMTOP_DATA_DIR": str(data)}
    assert llmtop("llama3.3", "--host", double.url, "--headless", "--no-log", env=env).returncode == 0
    [made] = list((data / "recordings").glob("*-llama3.3.jsonl"))
    assert load_recording(made).closed
    assert llmtop("llama3.3", "--host", double.url, "--headless", "--no-log", "--no-record", env=env).returncode == 0
    assert len(list((data / "recordings").iterdir())) == 1


def test_an_unwritable_data_folder_costs_no_run(double, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = {"LLMTOP_DATA_DIR": str(blocker / "data")}  # the default recording cannot be created
    result = llmtop("llama3.3", "--host", double.url, "--headless", "--no-log", "--no-history", env=env)
    assert result.returncode == 0, result.stderr
    assert "llmtop: note: cannot record to " in result.stderr and "the run goes on unrecorded" in result.stderr


def test_a_recording_path_that_cannot_be_written_is_refused_before_anything_runs(double, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = llmtop("llama3.3", "--host", double.url, "--headless", "--no-log", "--record", str(blocker / "r.jsonl"))
    assert (
        result.returncode == 2
        and f"--record {blocker / 'r.jsonl'}: the folder {blocker} does not exist" in result.stderr
    )
    assert not any(path == "/api/generate" for _, path, _ in double.requests)


def test_the_recorder_keeps_every_line_whole(tmp_path):
    (tmp_path / "sub").mkdir()
    recorder = Recorder(tmp_path / "sub" / "r.jsonl")
    recorder.event("recording", 1.0, {"v": 1, "settings": SummaryRow.__name__, "gpus": ("a", "b")})
    assert events(tmp_path / "sub" / "r.jsonl") == [  # on disk at once, before the recording closes
        {"event": "recording", "t": 1.0, "v": 1, "settings": "SummaryRow", "gpus": ["a", "b"]}
    ]
    recorder.close(3.0)
    assert [e["event"] for e in events(tmp_path / "sub" / "r.jsonl")] == ["recording", "closed"]
    with pytest.raises(RecordingError, match="cannot record to "):
        Recorder(tmp_path / "sub" / "r.jsonl" / "deeper.jsonl")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="/dev/full: a device that is always full (Linux)")
def test_a_recording_whose_disk_is_full_stops_and_says_why():
    recorder = Recorder(Path("/dev/full"))
    recorder.event("recording", 1.0, {"v": 1})
    assert recorder.problem == "recording to /dev/full stopped: No space left on device"
    recorder.event("token", 2.0, {"text": "x"})  # a no-op once the recording has stopped
    recorder.close(3.0)
    assert recorder.problem == "recording to /dev/full stopped: No space left on device"


def test_the_player_keeps_the_recordings_time_at_the_speed_asked():
    loaded = parse_recording(
        [encode("recording", 100.0, {"v": 1}), encode("model", 100.0, {"model": "m", "facts": {}})]
    )
    wall = [50.0]
    player = Player(loaded, speed=4.0, clock=lambda: wall[0])
    assert player.next()["event"] == "recording"
    wall[0] = 50.5
    assert player.now() == pytest.approx(102.0)
    instant = Player(loaded, speed=None)
    instant.next()
    assert instant.now() == 100.0


async def test_a_replay_on_screen_has_its_banner_its_rows_and_no_r(tmp_path):
    loaded = load_recording(RECORDINGS / "compare.jsonl")
    _, runner = replay(loaded, speed=None)
    app = LlmtopApp(runner, banner="REPLAY of compare.jsonl")
    async with app.run_test(size=(140, 50)) as pilot:
        await on_screen(pilot, lambda: len(runner.rows) == 4 and app.live.bars.display)
        assert str(app.query_one("#banner").render()) == "REPLAY of compare.jsonl"
        assert app.runs_table.row_count == 4 and app.comparison_table.row_count == 2
        assert as_recorded(runner.rows) == loaded.summaries
        last_run = max(i for i, e in enumerate(loaded.events) if e["event"] == "run")
        text = "".join(e["text"] for e in loaded.events[last_run:] if e["event"] == "token")
        assert app.answer.text == text
        settings = app.settings
        await pilot.press("r")
        await pilot.press("c")
        assert runner.total == 4 and app.settings is settings
        assert "r adds a run" not in str(app.query_one("#phase").render())


def test_a_loaded_recording_reads_as_the_events_it_holds():
    """The replayer keeps the lines and parses them when read: every way of reading them agrees."""
    lines = demo_path().read_text(encoding="utf-8").splitlines(keepends=True)
    parsed = [json.loads(line) for line in lines]
    recording = parse_recording(lines, "demo")
    events = recording.events
    assert len(events) == len(parsed) and list(events) == parsed
    assert events[0] == parsed[0] and events[-1] == parsed[-1] and events[5:9] == parsed[5:9]
    assert recording.first("final") == next(e for e in parsed if e["event"] == "final")
    assert [r.model for r in recording.summaries] == [e["row"]["model"] for e in parsed if e["event"] == "summary"]
    assert recording.closed and recording.header["event"] == "recording"


def test_recordings_of_the_data_folder_are_private_and_never_shared(tmp_path):
    first = Recorder(tmp_path / "data" / "recordings" / "20261201-101500-m.jsonl", private=True)
    second = Recorder(tmp_path / "data" / "recordings" / "20261201-101500-m.jsonl", private=True)  # same second
    assert first.path.name == "20261201-101500-m.jsonl" and second.path.name == "20261201-101500-m-2.jsonl"
    first.event("recording", 1.0, {"v": 1})
    second.event("recording", 2.0, {"v": 1})
    first.close(3.0)
    second.close(4.0)
    assert [e["t"] for e in events(first.path)] == [1.0, 3.0] and [e["t"] for e in events(second.path)] == [2.0, 4.0]
    if os.name == "posix":
        assert first.path.stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "data" / "recordings").stat().st_mode & 0o777 == 0o700
