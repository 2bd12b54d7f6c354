"""How fast the server-log follower parses, and its memory on a 100 MB log.

    .venv/bin/python bench/log_follow.py [--megabytes 100]

Builds a log of the real excerpts in tests/fixtures/ollama-logs/ repeated to the size asked (model
loads among request lines, as a busy server writes them), then follows it from the start with
FileFollower through LogWatcher.feed (what llmtop does with a live log), and prints MB/s and the
peak of memory allocated while it ran (tracemalloc, in a second pass: tracing slows it), with the number of loads found.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

from harness import machine_line
from llmtop.collectors.log_sources import FileFollower
from llmtop.collectors.log_watch import LogWatcher

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "ollama-logs"


def build_log(path: Path, megabytes: float) -> int:
    excerpts = "".join(p.read_text(encoding="utf-8") for p in sorted(FIXTURES.glob("*.log")))
    target = int(megabytes * 1_000_000)
    with open(path, "w", encoding="utf-8") as out:
        written = 0
        while written < target:
            written += out.write(excerpts)
    return path.stat().st_size


def follow(path: Path, size: int, measure_memory: bool) -> tuple[float, int, int]:
    """(seconds to follow the whole file, peak bytes allocated, loads kept)."""
    follower = FileFollower(path, from_start=True, poll_s=0.05)
    watcher = LogWatcher(follower)
    if measure_memory:
        tracemalloc.start()
    started = time.perf_counter()
    thread = threading.Thread(target=lambda: [watcher.feed(line, time.monotonic()) for line in follower.lines()])
    thread.start()
    while follower.offset < size:
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    follower.stop()
    thread.join()
    peak = tracemalloc.get_traced_memory()[1] if measure_memory else 0
    tracemalloc.stop()
    return elapsed, peak, len(watcher.parser.records)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=100.0)
    args = parser.parse_args(argv)
    print(f"== log following ({machine_line()})")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "server.log"
        size = build_log(path, args.megabytes)
        elapsed, _, _ = follow(path, size, measure_memory=False)
        _, peak, loads = follow(path, size, measure_memory=True)
    print(f"log: {size / 1e6:.0f} MB of real excerpts repeated")
    print(f"  parse rate            {size / 1e6 / elapsed:9.1f} MB/s")
    print(f"  peak memory allocated {peak / 1e6:9.1f} MB")
    print(f"  loads kept            {loads:9d} (the newest; older ones are dropped)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
