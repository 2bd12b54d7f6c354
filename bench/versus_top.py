"""llmtop's own CPU and wake-ups next to htop's and btop's, in the same run, on the same machine.

    .venv/bin/python bench/versus_top.py [--seconds 15] [--repeats 3] [--rates 30,300]

For each token rate and each way of running llmtop (--headless, the TUI at 120x40 and at 160x48,
where both charts are drawn side by side; default interval 0.25 s) it starts a stand-in Ollama
streaming that many tokens a second (bench/stand_in.py), then llmtop, htop (refreshing every 1 s)
and btop (every 1 s, where installed), each in its own pseudo terminal of the same size, all at
once. After 10 s of warm-up it reads, over --seconds, each process's CPU time and its context
switches summed over every thread (/proc/PID/task/*/status: voluntary and not), and prints the
median % of one core and switches a second, with llmtop's per-thread split (thread names from
`py-spy dump` where installed). Targets
(docs/benchmarks.md): the TUI at most btop's CPU and never over 2%, headless at most 0.5%; at most
30 switches a second headless and 50 with the TUI; the same at 300 tokens/s as at 30.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import select
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

from harness import LLMTOP, machine_line
from stand_in import StandIn

WARM_UP_S = 10.0
WAYS = {"headless": (40, 120), "TUI 120x40": (40, 120), "TUI 160x48": (48, 160)}  # rows, columns


def in_terminal(argv: list[str], env: dict[str, str], size: tuple[int, int]) -> tuple[int, int]:
    """Start `argv` in a new pseudo terminal of `size`: (pid, the terminal's fd)."""
    pid, fd = os.forkpty()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
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


def thread_names(pid: int) -> dict[str, str]:
    """Python's names of a process's threads by thread id, from `py-spy dump` where installed
    (Python 3.11 does not give its threads names the OS sees)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    try:
        text = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return dict(re.findall(r'^Thread (\d+) \([^)]*\): "([^"]*)"', text, re.M))


def threads(pid: int, names: dict[str, str] | None = None) -> dict[str, tuple[float, int]]:
    """Each thread's name: (CPU seconds, context switches) so far, from /proc (threads of the same
    name summed)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, tuple[float, int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            status = (task / "status").read_text()
        except OSError:
            continue  # a thread that ended
        name = (names or {}).get(task.name) or stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick
        switches = sum(int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line)
        before = out.get(name, (0.0, 0))
        out[name] = (before[0] + cpu, before[1] + switches)
    return out


def one_round(url: str, way: str, seconds: float, config: Path) -> dict[str, dict[str, float]]:
    """For each program, over the same `seconds`: cpu (% of one core), switches (a second) and
    llmtop's per thread. llmtop records the session, as it does by default (into `config`)."""
    size = WAYS[way]
    env = dict(os.environ, TERM="xterm-256color", XDG_CONFIG_HOME=str(config), LANG="C.UTF-8")
    env.pop("OLLAMA_HOST", None)
    llmtop = [LLMTOP, "llama3.3", "--host", url, "--no-log", "--no-history", "--record", str(config / "run.jsonl")]
    programs = {"llmtop": llmtop + (["--headless"] if way == "headless" else [])}
    programs["htop"] = ["htop", "-d", "10"]
    if shutil.which("btop"):
        programs["btop"] = ["btop"]
    started = {name: in_terminal(argv, env, size) for name, argv in programs.items()}
    stop = threading.Event()
    reader = threading.Thread(target=drain, args=([fd for _, fd in started.values()], stop), daemon=True)
    reader.start()
    try:
        time.sleep(WARM_UP_S)
        names = thread_names(started["llmtop"][0])
        before = {name: threads(pid, names if name == "llmtop" else None) for name, (pid, _) in started.items()}
        began = time.monotonic()
        time.sleep(seconds)
        after = {name: threads(pid, names if name == "llmtop" else None) for name, (pid, _) in started.items()}
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
    figures: dict[str, dict[str, float]] = {}
    for name in started:
        cpu = {t: after[name][t][0] - before[name].get(t, (0.0, 0))[0] for t in after[name]}
        switches = {t: after[name][t][1] - before[name].get(t, (0.0, 0))[1] for t in after[name]}
        figures[name] = {"cpu": 100 * sum(cpu.values()) / wall, "switches": sum(switches.values()) / wall}
        if name == "llmtop":
            for t in cpu:
                figures[f"  {t}"] = {"cpu": 100 * cpu[t] / wall, "switches": switches[t] / wall}
    return figures


def table(rounds: list[dict[str, dict[str, float]]]) -> str:
    lines = [f"  {'':22} {'CPU %':>7} {'(range)':>13} {'switches/s':>11}"]
    names = [n for n in rounds[0] if all(n in r for r in rounds)]
    for name in names:
        cpu = [r[name]["cpu"] for r in rounds]
        switches = [r[name]["switches"] for r in rounds]
        spread = f"({min(cpu):5.2f}-{max(cpu):5.2f})"
        lines.append(f"  {name:22} {statistics.median(cpu):7.2f} {spread} {statistics.median(switches):11.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0, help="measured time of each round (default 15)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per way; medians are printed (default 3)")
    parser.add_argument("--rates", default="30,300", help="tokens a second of the stand-in (default 30,300)")
    parser.add_argument("--ways", default=",".join(WAYS), help=f"of {', '.join(WAYS)} (default all)")
    args = parser.parse_args(argv)
    if not shutil.which("htop"):
        sys.exit("versus_top.py needs htop (Debian/Ubuntu: apt install htop btop)")
    print(f"== llmtop next to htop and btop ({machine_line()})")
    print("htop and btop refresh every 1 s, in a terminal of llmtop's size;")
    print(f"% of one core and context switches a second over {args.seconds:.0f} s after {WARM_UP_S:.0f} s,")
    print(f"median of {args.repeats} rounds (range); llmtop's threads below it")
    length = WARM_UP_S + args.seconds + 30
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "btop").mkdir()
        (folder / "btop" / "btop.conf").write_text("update_ms = 1000\n")
        for rate in (float(r) for r in args.rates.split(",")):
            with StandIn(folder, mode="paced", rate=rate, tokens=int(rate * length)) as ollama:
                for way in args.ways.split(","):
                    rounds = [one_round(ollama.url, way, args.seconds, folder) for _ in range(args.repeats)]
                    print(f"-- {rate:.0f} tokens/s, llmtop {way}")
                    print(table(rounds))
                    sys.stdout.flush()


if __name__ == "__main__":
    main()
