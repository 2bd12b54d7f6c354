"""Finding the Ollama server and its runner across versions, through a stand-in psutil."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from llmtop.collectors.ollama_processes import EXPECT_RUNNER_S, OllamaProcessReader, is_runner, is_server
from llmtop.collectors.process_memory import ProcessMemory, ProcessMemoryReader, parse_status

MiB = 2**20


class AccessDenied(Exception):
    pass


class FakeProcess:
    def __init__(self, pid, name, cmdline, rss, ppid=1, cmdline_denied=False):
        self.pid = pid
        self.info = {"name": name}
        self._cmdline = cmdline
        self.rss = rss
        self._ppid = ppid
        self.cmdline_denied = cmdline_denied
        self.gone = False
        self.kids = []

    def cmdline(self):
        if self.cmdline_denied:
            raise AccessDenied()
        return self._cmdline

    def ppid(self):
        return self._ppid

    def memory_info(self):
        if self.gone:
            raise ProcessLookupError(self.pid)
        return SimpleNamespace(rss=self.rss)

    def children(self, recursive=False):
        return list(self.kids)


def fake_psutil(processes):
    return SimpleNamespace(process_iter=lambda attrs: list(processes))


@pytest.mark.parametrize(
    ("name", "args", "runner"),
    [
        ("ollama_llama_server", ["--model"], True),  # up to 0.5
        ("ollama_llama_server.exe", None, True),
        ("ollama", ["runner"], True),  # 0.6 on
        ("ollama.exe", ["runner"], True),
        ("llama-server", ["-m"], True),
        ("ollama", ["serve"], False),
        ("ollama", ["ps"], False),
    ],
)
def test_runner_names_of_every_version(name, args, runner):
    assert is_runner(name, args) is runner


def test_server_is_ollama_serve_or_an_unreadable_ollama():
    assert is_server("ollama.exe", ["serve"])
    assert is_server("ollama", None)
    assert not is_server("ollama", ["run"])
    assert not is_server("ollama app.exe", ["serve"])


def test_tree_rss_is_server_plus_runner():
    server = FakeProcess(100, "ollama", ["/usr/bin/ollama", "serve"], 60 * MiB)
    runner = FakeProcess(200, "ollama", ["/usr/bin/ollama", "runner", "--model", "x"], 4000 * MiB, ppid=100)
    server.kids = [runner]
    other = FakeProcess(300, "python", ["python"], 999 * MiB)
    sample = OllamaProcessReader(fake_psutil([other, server, runner]))(1.0)
    assert sample.rss_bytes == 4060 * MiB
    assert sample.runner_rss_bytes == 4000 * MiB
    assert (sample.server_pid, sample.runner_pids) == (100, (200,))
    assert sample.reason is None


def test_old_runner_name_on_windows():
    server = FakeProcess(10, "ollama.exe", ["C:\\Ollama\\ollama.exe", "serve"], 50 * MiB)
    runner = FakeProcess(11, "ollama_llama_server.exe", ["x", "--model", "m"], 900 * MiB, ppid=10)
    server.kids = [runner]
    sample = OllamaProcessReader(fake_psutil([server, runner]))(0.0)
    assert sample.rss_bytes == 950 * MiB


def test_unreadable_arguments_fall_back_to_parentage():
    # macOS: another user's process gives its name but not its arguments.
    server = FakeProcess(100, "ollama", [], 60 * MiB, cmdline_denied=True)
    runner = FakeProcess(200, "ollama", [], 3000 * MiB, ppid=100, cmdline_denied=True)
    sample = OllamaProcessReader(fake_psutil([server, runner]))(0.0)
    assert sample.server_pid == 100
    assert sample.runner_pids == (200,)
    assert sample.rss_bytes == 3060 * MiB


def test_no_server_says_why():
    sample = OllamaProcessReader(fake_psutil([FakeProcess(1, "init", ["init"], MiB)]))(0.0)
    assert sample.rss_bytes is None
    assert "no Ollama process" in sample.reason


def test_remote_server_is_not_measured():
    sample = OllamaProcessReader(fake_psutil([]), local=False, remote_host="http://gpu-box:11434")(0.0)
    assert sample.rss_bytes is None
    assert "gpu-box" in sample.reason


def test_a_vanished_runner_is_left_out_and_the_tree_is_rescanned():
    server = FakeProcess(100, "ollama", ["ollama", "serve"], 60 * MiB)
    runner = FakeProcess(200, "ollama", ["ollama", "runner"], 3000 * MiB, ppid=100)
    processes = [server, runner]
    reader = OllamaProcessReader(fake_psutil(processes), rescan_seconds=100.0)
    assert reader(0.0).rss_bytes == 3060 * MiB
    runner.gone = True
    processes.remove(runner)
    assert reader(0.5).rss_bytes == 60 * MiB  # the runner exited: its memory is gone too
    assert reader(1.0).runner_pids == ()  # and the next tick scans again, without waiting 100 s


def test_two_servers_are_noted():
    a = FakeProcess(1, "ollama", ["ollama", "serve"], MiB)
    b = FakeProcess(2, "ollama", ["ollama", "serve"], MiB)
    sample = OllamaProcessReader(fake_psutil([a, b]))(0.0)
    assert sample.server_pid == 1
    assert "2 Ollama servers" in sample.note


def test_the_process_list_is_read_often_only_while_no_runner_is_known():
    server = FakeProcess(100, "ollama", ["ollama", "serve"], 60 * MiB)
    processes = [server]
    reader = OllamaProcessReader(fake_psutil(processes), rescan_seconds=2.0, settled_rescan_seconds=30.0)
    for t in (0.0, 1.0, 2.0, 3.0, 4.0):  # no runner: a model load will start one, so look every 2 s
        assert reader(t).runner_pids == ()
    assert reader.scans == 3
    processes.append(FakeProcess(200, "ollama", ["ollama", "runner"], 3000 * MiB, ppid=100))
    assert reader(6.0).runner_pids == (200,)
    for t in range(7, 36):  # a runner is known: its memory is read every tick, the list every 30 s
        assert reader(float(t)).rss_bytes == 3060 * MiB
    assert reader.scans == 4
    reader(36.0)
    assert reader.scans == 5


def test_after_a_load_begins_every_reading_looks_for_the_runner_until_one_is_found():
    server = FakeProcess(100, "ollama", ["ollama", "serve"], 60 * MiB)
    processes = [server]
    reader = OllamaProcessReader(fake_psutil(processes), rescan_seconds=2.0, settled_rescan_seconds=30.0)
    reader(0.0)
    reader.look_for_runner()  # the request is sent: a runner is about to start
    for t in (0.25, 0.5):
        assert reader(t).runner_pids == ()
    assert reader.scans == 3  # every reading, not every 2 s
    processes.append(FakeProcess(200, "ollama", ["ollama", "runner"], 300 * MiB, ppid=100))
    assert reader(0.75).runner_pids == (200,)  # a runner that lives one second is seen at once
    reader(1.0)
    assert reader.scans == 4  # found: back to the settled rhythm


def test_looking_for_a_runner_stops_when_the_first_token_comes():
    # Ollama in a container, or a runner this user cannot see: none is ever found.
    reader = OllamaProcessReader(fake_psutil([FakeProcess(100, "ollama", ["ollama", "serve"], 0)]), rescan_seconds=1000)
    reader(0.0)
    reader.look_for_runner()
    reader(0.25)
    reader.look_for_runner(False)  # the first token: any runner would have started
    reader(0.5)
    reader(0.75)
    assert reader.scans == 2


def test_looking_for_a_runner_that_never_comes_stops_after_a_while():
    processes = [FakeProcess(100, "ollama", ["ollama", "serve"], 60 * MiB)]
    reader = OllamaProcessReader(fake_psutil(processes), rescan_seconds=1000.0)
    reader(0.0)
    reader.look_for_runner()
    for t in range(1, 200):
        reader(float(t))
    assert reader.scans == 1 + EXPECT_RUNNER_S + 1  # once, then every reading for EXPECT_RUNNER_S, then stop


PROC = Path(__file__).resolve().parent / "fixtures" / "proc"  # /proc/PID/status of a real server and runner


def test_on_linux_the_file_backed_memory_of_the_tree_is_read_from_proc_status():
    # Recorded from tests/engine_double.py: the runner has the 253 MB GGUF mapped.
    server = FakeProcess(7073, "ollama", ["ollama", "serve"], 0)
    runner = FakeProcess(7077, "ollama", ["ollama", "runner", "--model", "blob"], 0, ppid=7073)
    server.kids = [runner]
    reader = OllamaProcessReader(fake_psutil([server, runner]), memory=ProcessMemoryReader(PROC))
    sample = reader(0.0)
    assert sample.rss_bytes == (28204 + 389968) * 1024  # VmRSS
    assert sample.runner_rss_bytes == 389968 * 1024
    assert sample.file_rss_bytes == (11088 + 264236) * 1024  # RssFile: the mapped weights and code


def test_elsewhere_psutils_rss_and_no_file_backed_figure():
    # Windows (working set) and macOS (resident size): their in-use figure needs no file-backed part.
    server = FakeProcess(100, "ollama.exe", ["ollama.exe", "serve"], 60 * MiB)
    sample = OllamaProcessReader(fake_psutil([server]), memory=ProcessMemoryReader(None))(0.0)
    assert (sample.rss_bytes, sample.file_rss_bytes) == (60 * MiB, None)


def test_proc_status_parsing():
    assert parse_status("Name:\tx\nVmRSS:\t  100 kB\nRssAnon:\t 60 kB\nRssFile:\t 40 kB\n") == ProcessMemory(
        102400, 40960
    )
    assert parse_status("Name:\tkthreadd\nState:\tS\n") is None  # a kernel thread (or a zombie) has no memory
    assert parse_status("VmRSS:\t  100 kB\n") == ProcessMemory(102400, None)  # before Linux 4.5: no RssFile


def test_a_zombie_ollama_is_not_a_server():
    zombie = FakeProcess(100, "ollama", [], 0)
    zombie.info["status"] = "zombie"
    sample = OllamaProcessReader(fake_psutil([zombie]))(0.0)
    assert sample.rss_bytes is None and "no Ollama process" in sample.reason


class Listening(FakeProcess):
    """A server that listens on a port (what psutil's net_connections shows)."""

    def __init__(self, *args, port=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.port = port

    def net_connections(self, kind="inet"):
        return [SimpleNamespace(status="LISTEN", laddr=SimpleNamespace(ip="127.0.0.1", port=self.port))]


def test_with_two_servers_running_the_one_on_our_port_is_measured_with_its_runners_alone():
    """Seen when the tests ran beside another `ollama serve` on the same machine: the first server
    found and every runner on the machine were counted. Now: the server listening on the port llmtop
    talks to, and only the runners below it."""
    theirs = Listening(100, "ollama", ["/usr/bin/ollama", "serve"], 60 * MiB, port=11434)
    their_runner = FakeProcess(110, "llama-server", ["llama-server", "--model", "a"], 900 * MiB, ppid=100)
    theirs.kids = [their_runner]
    ours = Listening(200, "ollama", ["/opt/ollama", "serve"], 50 * MiB, port=41000)
    our_runner = FakeProcess(210, "llama-server", ["llama-server", "--model", "b"], 300 * MiB, ppid=200)
    ours.kids = [our_runner]
    everything = fake_psutil([theirs, their_runner, ours, our_runner])
    sample = OllamaProcessReader(everything, port=41000)(1.0)
    assert (sample.server_pid, sample.runner_pids) == (200, (210,))
    assert sample.rss_bytes == 350 * MiB
    assert sample.note == "2 Ollama servers are running; measuring pid 200, the one listening on port 41000"
    unknown = OllamaProcessReader(everything, port=9)(1.0)  # nobody on that port: said, not hidden
    assert unknown.server_pid == 100 and "none was seen listening on port 9" in unknown.note
