"""Following the server log: files (end, rotation, truncation, size), commands, and where logs live."""

import os
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import pytest

from llmtop.collectors.log_sources import (
    CommandFollower,
    FileFollower,
    LogUnavailable,
    default_log_source,
    journal_source,
)
from llmtop.measure.split_reason import split_reason
from waiting import eventually


class Collector:
    """Runs a source's lines() on a thread and keeps what it yields."""

    def __init__(self, source):
        self.source = source
        self.lines: list[str] = []
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for line in self.source.lines():
                self.lines.append(line)
        except Exception as exc:
            self.error = exc

    def wait_for(self, count, timeout=5.0):
        eventually(lambda: len(self.lines) >= count, timeout, f"{count} lines (got {self.lines})")

    def stop(self):
        self.source.stop()
        self.thread.join(5)
        assert not self.thread.is_alive()


def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)


def test_follows_from_the_end_and_completes_partial_lines(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("old line 1\nold line 2\n")
    source = FileFollower(log, poll_s=0.01)
    follower = Collector(source)
    assert source.wait_until_following(5)
    append(log, "new 1\nnew ")
    follower.wait_for(1)
    append(log, "2\n")
    follower.wait_for(2)
    follower.stop()
    assert follower.lines == ["new 1", "new 2"]


def test_truncation_and_rotation_are_followed(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("before\n")
    source = FileFollower(log, poll_s=0.01)
    follower = Collector(source)
    assert source.wait_until_following(5)
    append(log, "a\n")
    follower.wait_for(1)
    log.write_text("")  # truncated in place (copytruncate)
    eventually(lambda: source.offset == 0, 5, "the truncation seen")
    append(log, "after truncate\n")
    follower.wait_for(2)
    log.rename(tmp_path / "server.log.1")  # rotated: a new file takes the name
    eventually(lambda: source.waiting is not None, 5, "the old file let go")
    append(log, "in the new file\n")
    follower.wait_for(3)
    follower.stop()
    assert follower.lines == ["a", "after truncate", "in the new file"]


def test_a_file_that_appears_later_is_read_from_its_start(tmp_path):
    log = tmp_path / "server.log"
    source = FileFollower(log, poll_s=0.01)
    follower = Collector(source)
    assert source.wait_until_following(5)
    assert source.waiting == f"waiting for {log} to appear"  # what the screen says meanwhile
    log.write_text("first\n")
    follower.wait_for(1)
    follower.stop()
    assert follower.lines == ["first"] and source.waiting is None


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root reads everything")
def test_an_unreadable_file_says_so(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("x\n")
    log.chmod(0)
    follower = Collector(FileFollower(log))
    follower.thread.join(5)
    assert isinstance(follower.error, LogUnavailable)


def test_a_100_mb_log_is_followed_with_constant_memory(tmp_path):
    log = tmp_path / "big.log"
    with open(log, "wb") as handle:
        handle.truncate(100 * 1024 * 1024)  # 100 MB already there (sparse: instant to make)
    tracemalloc.start()
    source = FileFollower(log, poll_s=0.01)
    follower = Collector(source)
    assert source.wait_until_following(5)
    for i in range(2000):
        append(log, f"line {i} " + "x" * 1000 + "\n")  # 2 MB more, which must all be read
    follower.wait_for(2000, timeout=30)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    follower.stop()
    assert follower.lines[0].startswith("line 0 ") and follower.lines[-1].startswith("line 1999 ")
    assert peak < 8 * 1024 * 1024  # the 100 MB that was there is never read


def test_command_output_is_followed():
    code = "import sys,time\nfor i in range(3):\n    print(f'line {i}', flush=True)\nsys.stderr.write('err\\n')"
    follower = Collector(CommandFollower([sys.executable, "-c", code], "test command"))
    follower.wait_for(4)
    follower.thread.join(5)
    assert sorted(follower.lines) == ["err", "line 0", "line 1", "line 2"]


def test_a_missing_command_is_unavailable():
    with pytest.raises(LogUnavailable, match="cannot run"):
        CommandFollower(["/nonexistent/journalctl"], "x").start()


def fake_run(stdout="", stderr="", returncode=0):
    def run(argv, **kwargs):
        return subprocess.CompletedProcess(argv, returncode, stdout, stderr)

    return run


@pytest.mark.skipif(sys.platform == "win32", reason="journald is Linux")
def test_journal_without_permission_names_the_group(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name)
    hint = (
        "Hint: You are currently not seeing messages from other users and the system.\n"
        "      Users in groups 'adm', 'systemd-journal' can see all messages.\n"
    )
    choice = journal_source(fake_run(stderr=hint))
    assert choice.source is None
    assert "systemd-journal" in choice.reason and "--serve" in choice.reason
    ok = journal_source(fake_run(stdout='time=2025-01-01T00:00:00Z level=INFO msg="Listening"\n'))
    assert isinstance(ok.source, CommandFollower)
    assert ok.source.argv[:4] == ["journalctl", "-u", "ollama", "-f"]
    empty = journal_source(fake_run(stdout="-- No entries --\n".replace("-- No entries --", "")))
    assert empty.source is None and "no entries" in empty.reason


def test_default_places(tmp_path):
    mac_log = tmp_path / ".ollama" / "logs" / "server.log"
    assert default_log_source(True, "darwin", {}, tmp_path).source is None
    mac_log.parent.mkdir(parents=True)
    mac_log.write_text("")
    assert default_log_source(True, "darwin", {}, tmp_path).source.path == mac_log
    windows = tmp_path / "AppData" / "Local"
    (windows / "Ollama").mkdir(parents=True)
    (windows / "Ollama" / "server.log").write_text("")
    choice = default_log_source(True, "win32", {"LOCALAPPDATA": str(windows)}, tmp_path)
    assert choice.source.path == windows / "Ollama" / "server.log"
    remote = default_log_source(False, "darwin", {}, tmp_path)
    assert remote.source is None and "another machine" in remote.reason


@pytest.mark.parametrize("started_at_line", [0, 60])
def test_every_load_of_a_llama_server_log_is_read_live_as_fully_as_the_first(tmp_path, started_at_line):
    """Ollama 0.33 in a container, CPU only (a real log): a vision model's load, then an embedding
    model's in the same log, written line by line while llmtop follows it, from the server's start
    or from after the first load: the second load is 0 of 25 layers on the CPU, with its reason."""
    from llmtop.collectors.log_watch import LogWatcher

    fixture = Path(__file__).parent / "fixtures" / "ollama-logs" / "09_docker_cpu_0_33_driver_too_old.log"
    lines = fixture.read_text(encoding="utf-8").splitlines(keepends=True)
    log = tmp_path / "server.log"
    log.write_text("".join(lines[:started_at_line]), encoding="utf-8")
    loads = []
    watcher = LogWatcher(FileFollower(log, poll_s=0.01))
    watcher.subscribe(loads.append)
    watcher.start()
    try:
        assert watcher.wait_until_following(5)  # the follower takes the file's end as its start
        for line in lines[started_at_line:]:
            append(log, line)
        eventually(
            lambda: watcher.latest_load() and watcher.latest_load().runner_started_s == 15.09,
            10,
            "the second load read",
        )
    finally:
        watcher.stop()
    second = watcher.latest_load()
    assert (second.layers_offloaded, second.layers_total, second.library) == (0, 25, "cpu")
    assert second.context == 4096 and split_reason(second).startswith("0/25 layers on the GPU: ")
