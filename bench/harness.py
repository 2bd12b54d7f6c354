"""Running llmtop as a user does, for the benchmarks: the TUI under a pseudo terminal (answering
`q` once the run is over) or --headless, with its CPU time, memory and first frame measured."""

from __future__ import annotations

import fcntl
import json
import os
import platform
import select
import shutil
import statistics
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

LLMTOP = shutil.which("llmtop", path=str(Path(sys.executable).parent)) or "llmtop"
STEADY_AFTER_S = 10.0  # CPU time after this much of a run leaves start-up out


@dataclass
class Watched:
    """What one llmtop process cost."""

    wall_s: float
    cpu_s: float  # user + system, from wait4
    steady_cpu_pct: float  # % of one core from STEADY_AFTER_S to the run's end (nan for a shorter run)
    peak_rss_mb: float
    first_frame_s: float | None  # TUI: launch to the first full screen written to the terminal
    exit_status: int

    @property
    def cpu_pct(self) -> float:
        return 100 * self.cpu_s / self.wall_s


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{platform.platform()}, {cpu}, {psutil.cpu_count()} CPUs, Python {platform.python_version()}"


def run_llmtop(
    args: list[str],
    tui: bool,
    over: Callable[[], bool],
    size: tuple[int, int] = (120, 40),
    cpus: set[int] | None = None,
) -> Watched:
    """Run `llmtop ARGS` (the TUI in a terminal of `size` columns x rows, or headless) to its end;
    `over()` says when the run is finished: the steady figure stops there, and the TUI is sent `q`.
    `cpus`: the cores it may run on (all by default)."""
    argv = [LLMTOP, *args] + ([] if tui else ["--headless"])
    env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(size[0]), LINES=str(size[1]))
    env.pop("OLLAMA_HOST", None)
    started = time.monotonic()
    pid, fd = os.forkpty() if tui else (os.fork(), None)
    if pid == 0:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)
        if tui:  # 120x40 by default, as docs/benchmarks.md's figures are measured in
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        if not tui:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
        os.execve(argv[0], argv, env)
    process = psutil.Process(pid)
    first_frame = steady_from = steady_to = None
    peak_rss = 0
    quit_at = None
    while True:
        if steady_to is None and over():  # the run is over: what follows (the end, the exit) is left out
            try:
                times = process.cpu_times()
                steady_to = (time.monotonic(), times.user + times.system)
            except psutil.Error:
                pass
        if fd is not None:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""
                if first_frame is None and b"\x1b[" in data and len(data) > 2000:
                    first_frame = time.monotonic() - started
            if quit_at is None and steady_to is not None:
                quit_at = time.monotonic() + 0.5
            if quit_at is not None and time.monotonic() >= quit_at:
                os.write(fd, b"q")
                quit_at = float("inf")
        else:
            time.sleep(0.2)
        try:
            if steady_from is None and time.monotonic() - started >= STEADY_AFTER_S:
                times = process.cpu_times()
                steady_from = (time.monotonic(), times.user + times.system)
            peak_rss = max(peak_rss, process.memory_info().rss)
        except psutil.Error:
            pass
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
    ended = time.monotonic()
    if fd is not None:
        os.close(fd)
    cpu = usage.ru_utime + usage.ru_stime
    max_rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    end_t, end_cpu = steady_to if steady_to is not None else (ended, cpu)
    steady = 100 * (end_cpu - steady_from[1]) / (end_t - steady_from[0]) if steady_from else float("nan")
    return Watched(
        ended - started, cpu, steady, max(peak_rss, max_rss) / 1e6, first_frame, os.waitstatus_to_exitcode(status)
    )


def recording_has(path: Path, needle: bytes) -> Callable[[], bool]:
    """A check that a recording (being written) holds `needle` yet; it reads only what was added
    since the last check, so watching costs the measured machine next to nothing."""
    seen = {"offset": 0, "tail": b""}

    def check() -> bool:
        try:
            with path.open("rb") as handle:
                handle.seek(seen["offset"])
                added = handle.read()
        except FileNotFoundError:
            return False
        seen["offset"] += len(added)
        text = seen["tail"] + added
        seen["tail"] = text[-len(needle) :]
        return needle in text

    return check


BARE_CLIENT = """
import json, resource, sys, time
import ollama
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
url, model, prompt, seed = sys.argv[1:5]
client = ollama.Client(host=url)
client.generate(model=model, keep_alive=0)  # unloaded first, as llmtop does before a run
time.sleep(1.0)
began = None
for chunk in client.generate(model=model, prompt=prompt, options={"seed": int(seed)}, stream=True):
    if began is None:
        began = (time.monotonic(), cpu())
    if chunk.done:
        rate = chunk.eval_count / (chunk.eval_duration / 1e9)
print(json.dumps({"cpu_pct": 100 * (cpu() - began[1]) / (time.monotonic() - began[0]), "eval_rate_tps": rate}))
"""


def bare_client(url: str, model: str = "llama3.3", cpus: set[int] | None = None) -> dict[str, float]:
    """One generation streamed by the official `ollama` client and nothing else, with llmtop's
    default prompt and seed: the % of one core it took from the first chunk to the last, and the
    server's eval rate. `cpus`: the cores it may run on (all by default)."""
    from llmtop.measure.settings import DEFAULT_PROMPT, DEFAULT_SEED

    argv = [sys.executable, "-c", BARE_CLIENT, url, model, DEFAULT_PROMPT, str(DEFAULT_SEED)]
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus is not None else None
    out = subprocess.run(argv, capture_output=True, text=True, check=True, preexec_fn=pin)  # noqa: PLW1509
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_table(rows: dict[str, list[dict[str, float]]], keys: list[str]) -> str:
    """One line per case, the median of each figure over the runs (and the runs' range)."""
    lines = []
    for name, runs in rows.items():
        lines.append(name)
        for key in keys:
            values = [r[key] for r in runs if key in r]
            if not values:
                continue
            spread = f"  ({min(values):.3f} .. {max(values):.3f})" if len(values) > 1 else ""
            lines.append(f"  {key:24} {statistics.median(values):10.3f}{spread}")
    return "\n".join(lines)
