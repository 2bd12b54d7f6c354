"""The one assembly of the instruments: everything it built is closed on every way out, in reverse
order (the samplers before the recording's last line), and the log options choose a source without
starting anything."""

from __future__ import annotations

import argparse
import json
import sys

import pytest

from llmtop.collectors.log_sources import FileFollower, LogUnavailable
from llmtop.collectors.log_watch import LogWatcher
from llmtop.collectors.system_collectors import SystemCollectors
from llmtop.collectors.system_memory import SystemMemorySample
from llmtop.commands.instruments import Instruments, choose_log_source
from llmtop.measure.settings import RunSettings
from waiting import eventually

GB = 10**9


class Closed:
    """Something an instrument holds, which notes when it is closed or stopped."""

    def __init__(self, name: str, order: list[str]) -> None:
        self.name, self.order = name, order

    def close(self) -> None:
        self.order.append(self.name)

    def stop(self) -> None:
        self.order.append(self.name)


def collectors() -> SystemCollectors:
    return SystemCollectors(0.05, memory_reader=lambda now: SystemMemorySample(now, 64 * GB, 40 * GB, 0, 0))


@pytest.mark.parametrize("way_out", ["end", "error", "ctrl-c"])
def test_everything_is_closed_in_reverse_on_every_way_out(tmp_path, capsys, way_out):
    order: list[str] = []
    log_file = tmp_path / "server.log"
    log_file.write_text("")
    recording = tmp_path / "run.jsonl"
    failure = {"end": None, "error": RuntimeError("a bug"), "ctrl-c": KeyboardInterrupt()}[way_out]
    kit = Instruments()
    with pytest.raises(type(failure)) if failure else _nothing():
        with kit:
            kit.closing(Closed("server", order))
            kit.open_log(argparse.Namespace(log=str(log_file), docker=None, no_log=False), "http://127.0.0.1:1")
            kit.use_collectors(collectors())
            kit.stopping(Closed("metrics", order))
            options = argparse.Namespace(record=str(recording), no_record=False)
            assert kit.record(options, ["m"], {"settings": RunSettings()}) is not None
            kit.start_log()
            kit.start_sampling()
            assert kit.log is not None and kit.log.wait_until_following(5)
            if failure is not None:
                raise failure
    assert order == ["metrics", "server"]  # the last built, the first closed
    assert kit.collectors is not None and not kit.collectors.memory.running
    events = [json.loads(line)["event"] for line in recording.read_text(encoding="utf-8").splitlines()]
    assert events[0] == "recording" and events[-1] == "closed"
    assert f"llmtop: recorded to {recording} (llmtop replay {recording})" in capsys.readouterr().err


def test_the_recording_closes_last_with_the_servers_last_words_in_it(tmp_path):
    """The log is stopped before the recording closes: what the server wrote as llmtop ended (an
    unload, a runner's exit) is read at the stop and recorded, and nothing comes after `closed`."""
    log_file = tmp_path / "server.log"
    log_file.write_text("")
    recording = tmp_path / "run.jsonl"
    last_words = 'time=2026-12-06T13:00:00.000Z level=INFO source=server.go:1 msg="runner exited" code=0'
    with Instruments() as kit:
        kit.use_log(LogWatcher(FileFollower(log_file, poll_s=60)))  # read again only when stopped
        kit.use_collectors(collectors())
        kit.record(argparse.Namespace(record=str(recording), no_record=False), ["m"], {"settings": RunSettings()})
        kit.start_log()
        kit.start_sampling()
        with log_file.open("a") as log:
            log.write(last_words + "\n")
    recorder = kit.recorder
    assert recorder is not None and recorder.late == 0, f"{recorder.late} events came after the recording closed"
    events = [json.loads(line) for line in recording.read_text(encoding="utf-8").splitlines()]
    assert events[-1]["event"] == "closed"
    assert [e["line"] for e in events if e["event"] == "log"] == [last_words]


def test_an_event_after_close_is_counted_not_silently_dropped(tmp_path):
    from llmtop.store.recording import Recorder

    recorder = Recorder(tmp_path / "r.jsonl")
    recorder.event("note", 1.0)
    recorder.close(2.0)
    recorder.event("log", 3.0, {"line": "too late"})
    assert recorder.late == 1
    assert "too late" not in (tmp_path / "r.jsonl").read_text(encoding="utf-8")


def test_a_server_at_this_machines_lan_address_is_local_and_unreadable_addresses_are_said():
    from types import SimpleNamespace

    from llmtop.commands.instruments import server_is_local

    lan = {"eth0": [SimpleNamespace(address="192.168.1.20"), SimpleNamespace(address="fe80::1%eth0")]}
    assert server_is_local("http://192.168.1.20:11434", lambda: lan) == (True, None)
    assert server_is_local("http://192.168.1.21:11434", lambda: lan) == (False, None)
    assert server_is_local("http://127.0.0.1:11434", lambda: lan) == (True, None)

    def denied() -> dict:
        raise PermissionError(13, "Permission denied")

    local, why = server_is_local("http://192.168.1.20:11434", denied)
    assert not local
    assert why == "this machine's addresses could not be read (PermissionError: [Errno 13] Permission denied)"
    options = argparse.Namespace(log=None, docker=None, no_log=False)
    choice = choose_log_source(options, "http://192.168.1.20:11434", sys.stderr, denied)
    assert choice.source is None and choice.reason is not None
    assert choice.reason.startswith(why) and "--serve" in choice.reason


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_the_log_options_choose_without_starting_anything(tmp_path, capsys):
    folder = argparse.Namespace(log=str(tmp_path), docker=None, no_log=False)
    with pytest.raises(LogUnavailable, match="is a folder: --log takes the server log file"):
        choose_log_source(folder, "http://127.0.0.1:1", sys.stderr)
    off = choose_log_source(argparse.Namespace(log=None, docker=None, no_log=True), "http://127.0.0.1:1", sys.stderr)
    assert off.source is None and off.reason == "not read (--no-log)"
    later = tmp_path / "later.log"
    waiting = choose_log_source(argparse.Namespace(log=str(later), docker=None, no_log=False), "x", sys.stderr)
    assert isinstance(waiting.source, FileFollower)
    assert "no log file at" in capsys.readouterr().err


def test_a_log_that_is_not_there_yet_is_followed_once_it_appears(tmp_path):
    later = tmp_path / "later.log"
    watcher = LogWatcher(FileFollower(later, poll_s=0.01))
    with Instruments() as kit:
        kit.use_log(watcher)
        kit.start_log()  # returns at once: the file is missing, and it will be read from its start
        assert watcher.waiting == f"waiting for {later} to appear"
        later.write_text("time=x level=INFO msg=hello\n")
        eventually(lambda: watcher.waiting is None, 5, "the file opened")


def test_yielding_to_the_engine_asks_for_nice_19_or_says_why_not():
    from llmtop.commands.priority import yield_to_engine

    asked = []
    said = yield_to_engine("linux", lambda which, who, nice: asked.append(nice), lambda which, who: 19)
    assert asked == [19] and said == "nice 19"

    def denied(which: int, who: int, nice: int) -> None:
        raise PermissionError(13, "Permission denied")

    assert (
        yield_to_engine("linux", denied, lambda which, who: 0) == "normal (nice could not be raised: Permission denied)"
    )

    class Process:
        def nice(self, value: int) -> None:
            asked.append(value)

    import psutil

    if hasattr(psutil, "BELOW_NORMAL_PRIORITY_CLASS"):  # the constant exists on Windows only
        assert yield_to_engine("win32", process=Process()) == "below normal priority class"
    else:
        assert yield_to_engine("win32", process=Process()).startswith("normal (the priority class could not be")
