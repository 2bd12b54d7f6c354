"""llmtop's own cost, its timing accuracy, sampler jitter and start-up, against the Ollama double.

    .venv/bin/python bench/own_cost.py [--seconds 60] [--repeats 3]

For each case (TUI under a pseudo terminal, and --headless; sampling every 0.25 s and 0.1 s) it
runs `llmtop llama3.3` against a double streaming 30 tokens/s for --seconds, --repeats times, and
prints medians of: CPU time of the llmtop process over the run (user + system, from wait4) as a
percentage of one core, the same after the first 10 s (steady state, start-up excluded), peak RSS,
client tokens/s against the server's eval rate, TTFT against the server's load + prompt time, the
sampler's interval error (p50, p99, from the recording's RAM samples) and, for the TUI, the time
from launch to the first screen drawn.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from ollama_double import DoubleConfig, OllamaDouble  # noqa: E402

LLMTOP = shutil.which("llmtop", path=str(Path(sys.executable).parent)) or "llmtop"
RATE = 30.0


def run_once(double: OllamaDouble, tui: bool, interval: float, seconds: float, folder: Path) -> dict[str, float]:
    export, recording = folder / "run.json", folder / "run.jsonl"
    for path in (export, recording):
        path.unlink(missing_ok=True)
    args = [LLMTOP, "llama3.3", "--host", double.url, "--no-log", "--no-history", "--interval", str(interval)]
    args += ["--export", str(export), "--record", str(recording)] + ([] if tui else ["--headless"])
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="140", LINES="44")
    env.pop("OLLAMA_HOST", None)
    finals = len(double.finals)
    started = time.monotonic()
    pid, fd = os.forkpty() if tui else (os.fork(), None)
    if pid == 0:
        if not tui:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
        os.execve(args[0], args, env)
    first_frame = None
    steady_from = None
    process = psutil.Process(pid)
    peak_rss = 0
    quit_sent = False
    status = rusage = None
    while status is None:
        if fd is not None:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""
                if data and first_frame is None and b"\x1b[" in data and len(data) > 2000:
                    first_frame = time.monotonic() - started
            if len(double.finals) > finals and not quit_sent:
                time.sleep(0.5)
                os.write(fd, b"q")
                quit_sent = True
        else:
            time.sleep(0.2)
        try:
            if steady_from is None and time.monotonic() - started >= 10:
                times = process.cpu_times()
                steady_from = (time.monotonic(), times.user + times.system)
            peak_rss = max(peak_rss, process.memory_info().rss)
        except psutil.Error:
            pass
        done, status_code, usage = os.wait4(pid, os.WNOHANG)
        if done:
            status, rusage = status_code, usage
    wall = time.monotonic() - started
    cpu = rusage.ru_utime + rusage.ru_stime
    ru_maxrss = rusage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    run = json.loads(export.read_text())["runs"][0]
    final = double.finals[-1]
    server_ttft = (final["load_duration"] + final["prompt_eval_duration"]) / 1e9
    events = [json.loads(line) for line in recording.read_text().splitlines()]
    request = next(e["t"] for e in events if e["event"] == "request")
    # The sampler's own ticks during generation (the baseline's extra readings are taken on demand).
    samples = [e["t"] for e in events if e["event"] == "sample" and e["source"] == "ram" and e["t"] > request]
    errors = sorted(abs((b - a) - interval) * 1000 for a, b in zip(samples, samples[1:], strict=False))
    result = {
        "cpu_pct": 100 * cpu / wall,
        "steady_cpu_pct": (
            100 * (cpu - steady_from[1]) / (time.monotonic() - steady_from[0]) if steady_from else float("nan")
        ),
        "peak_rss_mb": max(peak_rss, ru_maxrss) / 1e6,
        "tps_error_pct": 100 * (run["client_rate_tps"] / run["eval_rate_tps"] - 1),
        "ttft_minus_server_ms": 1000 * (run["ttft_s"] - server_ttft),
        "jitter_p50_ms": errors[len(errors) // 2],
        "jitter_p99_ms": errors[min(len(errors) - 1, int(len(errors) * 0.99))],
    }
    if tui:
        result["first_frame_s"] = first_frame if first_frame is not None else float("nan")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each run (default 60)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case; medians are printed (default 3)")
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {psutil.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"double: {RATE:.0f} tokens/s for {args.seconds:.0f} s; medians of {args.repeats} runs\n")
    config = DoubleConfig(token_rate=RATE, tokens=int(RATE * args.seconds), load_delay_s=0.5)
    with OllamaDouble(config) as double, tempfile.TemporaryDirectory() as folder:
        for tui in (True, False):
            for interval in (0.25, 0.1):
                runs = [run_once(double, tui, interval, args.seconds, Path(folder)) for _ in range(args.repeats)]
                name = f"{'TUI (pty)' if tui else 'headless'}, interval {interval} s"
                figures = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                print(name)
                for key, value in figures.items():
                    print(f"  {key:22} {value:9.3f}")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
