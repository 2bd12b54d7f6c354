"""llmtop's own CPU next to htop's and btop's, in the same run, on the same machine.

    .venv/bin/python bench/versus_top.py [--seconds 30] [--repeats 3]

For each way of running llmtop (the TUI at 120x40, and --headless; default interval 0.25 s) it
starts a stand-in Ollama streaming 30 tokens/s (bench/stand_in.py), then llmtop, htop (refreshing
every 1 s) and btop (every 1 s, where installed), each in its own 120x40 pseudo terminal, all at
once; after 10 s of warm-up it reads each process's CPU time over --seconds, and prints the median
% of one core of each and llmtop's as a ratio to htop's and btop's. Targets (docs/benchmarks.md): the TUI at
most 2% of a core, headless at most 1%.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import select
import shutil
import statistics
import struct
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

import psutil

from harness import LLMTOP, machine_line
from stand_in import StandIn

RATE = 30.0
WARM_UP_S = 10.0
SIZE = (40, 120)  # rows, columns


def in_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, int]:
    """Start `argv` in a new pseudo terminal of SIZE: (pid, the terminal's fd)."""
    pid, fd = os.forkpty()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[0], SIZE[1], 0, 0))
        os.execvpe(argv[0], argv, env)
    return pid, fd


def drain(fds: list[int], stop: threading.Event) -> None:
    """Read what the programs draw, so that none of them blocks on a full terminal."""
    while not stop.is_set() and fds:
        ready, _, _ = select.select(fds, [], [], 0.2)
        for fd in ready:
            try:
                if not os.read(fd, 65536):
                    fds.remove(fd)
            except OSError:
                fds.remove(fd)


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def one_round(url: str, tui: bool, seconds: float, config: Path) -> dict[str, float]:
    """% of one core of each program over the same `seconds`. llmtop records the session, as it
    does by default (into `config`, not the user's data folder)."""
    env = dict(os.environ, TERM="xterm-256color", XDG_CONFIG_HOME=str(config), LANG="C.UTF-8")
    env.pop("OLLAMA_HOST", None)
    llmtop = [LLMTOP, "llama3.3", "--host", url, "--no-log", "--no-history", "--record", str(config / "run.jsonl")]
    programs = {"llmtop " + ("TUI" if tui else "headless"): llmtop + ([] if tui else ["--headless"])}
    programs["htop"] = ["htop", "-d", "10"]
    if shutil.which("btop"):
        programs["btop"] = ["btop"]
    started = {name: in_terminal(argv, env) for name, argv in programs.items()}
    stop = threading.Event()
    reader = threading.Thread(target=drain, args=([fd for _, fd in started.values()], stop), daemon=True)
    reader.start()
    try:
        time.sleep(WARM_UP_S)
        before = {name: cpu_seconds(pid) for name, (pid, _) in started.items()}
        began = time.monotonic()
        time.sleep(seconds)
        after = {name: cpu_seconds(pid) for name, (pid, _) in started.items()}
        wall = time.monotonic() - began
    finally:
        for pid, _ in started.values():
            try:
                os.kill(pid, 15)
                os.waitpid(pid, 0)
            except OSError:
                pass
        stop.set()
        reader.join(2)
        for _, fd in started.values():
            try:
                os.close(fd)
            except OSError:
                pass
    return {name: 100 * (after[name] - before[name]) / wall for name in started}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time of each round (default 30)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per way; medians are printed (default 3)")
    args = parser.parse_args(argv)
    if not shutil.which("htop"):
        sys.exit("versus_top.py needs htop (Debian/Ubuntu: apt install htop btop)")
    print(f"== llmtop next to htop and btop ({machine_line()})")
    print(f"stand-in Ollama: {RATE:.0f} tokens/s; {SIZE[1]}x{SIZE[0]} terminals; htop and btop refresh every 1 s;")
    print(f"% of one core over {args.seconds:.0f} s after {WARM_UP_S:.0f} s, median of {args.repeats} rounds (range)")
    length = WARM_UP_S + args.seconds + 30
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "btop").mkdir()
        (folder / "btop" / "btop.conf").write_text("update_ms = 1000\n")
        with StandIn(folder, mode="paced", rate=RATE, tokens=int(RATE * length)) as ollama:
            for tui in (True, False):
                rounds = [one_round(ollama.url, tui, args.seconds, folder) for _ in range(args.repeats)]
                print(table(rounds))
                sys.stdout.flush()


def table(rounds: list[dict[str, float]]) -> str:
    lines = []
    medians = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
    for name, value in medians.items():
        values = [r[name] for r in rounds]
        lines.append(f"  {name:16} {value:6.2f}  ({min(values):.2f}-{max(values):.2f})")
    ours = next(name for name in medians if name.startswith("llmtop"))
    for other in ("htop", "btop"):
        if other in medians and medians[other] > 0:
            lines.append(f"  {ours} / {other}: {medians[ours] / medians[other]:.1f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
