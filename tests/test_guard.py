"""Every subcommand under one guard: a bug in any of them is one line that names the error log,
exit status 1 and no traceback; LLMTOP_DEBUG=1 shows the traceback instead."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

from llmtop.commands import cli

# (the command line, the module whose entry point is made to fail)
COMMANDS = [
    (["watch", "--headless"], "llmtop.commands.watch_command"),
    (["replay", "x.jsonl"], "llmtop.commands.replay_command"),
    (["demo"], "llmtop.commands.replay_command"),
    (["history"], "llmtop.commands.history_command"),
    (["doctor"], "llmtop.commands.doctor_command"),
    (["parse-log", "-"], "llmtop.commands.parse_log_command"),
    # --priority normal: in this process, llmtop MODEL would lower the test's own priority
    (["llama3.3", "--no-log", "--priority", "normal"], "llmtop.commands.model_command"),
]


def _break(monkeypatch, module_name: str) -> None:
    module = importlib.import_module(module_name)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug\nwith a second line")

    monkeypatch.setattr(module, "measure" if module_name.endswith("model_command") else "main", broken)


@pytest.mark.parametrize(("argv", "module"), COMMANDS, ids=[argv[0] for argv, _ in COMMANDS])
def test_a_bug_in_any_subcommand_is_one_line_naming_the_error_log(monkeypatch, capsys, argv, module):
    monkeypatch.delenv("LLMTOP_DEBUG", raising=False)
    _break(monkeypatch, module)
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "internal error in llmtop" in err and "RuntimeError: a bug" in err
    log = Path(os.environ["LLMTOP_DATA_DIR"]) / "errors.log"
    assert f"(details in {log})" in err
    assert "Traceback" in log.read_text() and "a bug" in log.read_text()


@pytest.mark.parametrize(("argv", "module"), COMMANDS[:2], ids=[argv[0] for argv, _ in COMMANDS[:2]])
def test_llmtop_debug_shows_the_traceback(monkeypatch, argv, module):
    monkeypatch.setenv("LLMTOP_DEBUG", "1")
    _break(monkeypatch, module)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(argv)


def test_a_reader_that_breaks_on_something_new_says_so_once_in_the_error_log(monkeypatch, tmp_path):
    """The temperature reader meets an error it does not know (a new driver): no figure, as before, and
    errors.log gets the reader's name and the traceback once, however often it is read; an error it
    knows (a sysfs file gone mid-read) is no news and writes nothing."""
    from types import SimpleNamespace

    from llmtop import data_folder
    from llmtop.collectors.temperatures import TemperatureReader

    monkeypatch.setenv("LLMTOP_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(data_folder, "_READERS_REPORTED", set())

    def vanished():
        raise FileNotFoundError("/sys/class/hwmon/hwmon3/temp1_input")

    assert TemperatureReader(SimpleNamespace(sensors_temperatures=vanished)).read() == {}
    assert not (tmp_path / "errors.log").exists()

    def new_driver():
        raise KeyError("temp9_label")

    reader = TemperatureReader(SimpleNamespace(sensors_temperatures=new_driver))
    assert reader.read() == {} and reader.read() == {}
    log = (tmp_path / "errors.log").read_text(encoding="utf-8")
    assert log.count("the temperature reader could not read: KeyError: 'temp9_label'") == 1
    assert "Traceback (most recent call last)" in log and "raise KeyError" in log


def test_a_backend_that_fails_at_start_or_at_a_tick_is_a_reason_and_the_others_go_on(monkeypatch, tmp_path):
    """data_folder.attempt, where a failure becomes a reason: a GPU backend whose start raises something
    its authors never named is reported as unavailable in its own words, and one that fails a later
    tick is a problem of that tick while the other backend's reading is kept; nothing is written to
    errors.log, since the user reads it on screen."""
    from llmtop import data_folder
    from llmtop.collectors import gpu_collector
    from llmtop.collectors.gpu_reading import GpuReading

    monkeypatch.setenv("LLMTOP_DATA_DIR", str(tmp_path))

    class Reader:
        def __init__(self, name, fail_on):
            self.name, self.fail_on, self.reads = name, fail_on, 0

        def read(self):
            self.reads += 1
            if self.reads == self.fail_on:
                raise ZeroDivisionError(f"{self.name} divided by zero")
            return [GpuReading(key=self.name, name=self.name, backend=self.name, dedicated_used=1, dedicated_total=2)]

        def close(self):
            raise RuntimeError("already closed")

    readers = {"broken": Reader("broken", 1), "flaky": Reader("flaky", 2), "steady": Reader("steady", 0)}
    monkeypatch.setattr(gpu_collector, "_factories", lambda *args: [(n, lambda r=r: r) for n, r in readers.items()])
    monkeypatch.setattr(data_folder, "_READERS_REPORTED", set())
    collector = gpu_collector.probe_gpu_backends(platform="linux")
    assert [(r.backend, r.available, r.detail) for r in collector.reports] == [
        ("broken", False, "broken divided by zero"),
        ("flaky", True, "reads flaky"),
        ("steady", True, "reads steady"),
    ]
    sample = collector(5.0)
    assert [g.name for g in sample.gpus] == ["steady"]
    assert sample.problems == ("flaky: ZeroDivisionError: flaky divided by zero",)
    assert not (tmp_path / "errors.log").exists()
    collector.close()  # data_folder.guarded: each failure to close is written, once per reader
    log = (tmp_path / "errors.log").read_text(encoding="utf-8")
    assert "the GPU reader flaky could not read: RuntimeError: already closed" in log
    assert "the GPU reader steady could not read: RuntimeError: already closed" in log
