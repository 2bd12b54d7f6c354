"""The observer effect: does llmtop slow down a model running on the CPU? On the real llama-server.

    .venv/bin/python bench/observer_effect.py [--rounds 10] [--tokens 400] [--cores one,all]

Ollama 0.30's runner, upstream llama.cpp's `llama-server` (built once by tests/llama_server_build.py,
cached), runs Gemma 3 270M Q4_K_M behind `ollama serve` (tests/engine_double.py). Each round
streams the same generation (llmtop's prompt and seed, --tokens tokens) four ways, in an order
that turns each round: by a bare client (the official `ollama` Python client, nothing else), by
`llmtop --headless`, and by the llmtop TUI in a 120x40 and in a 160x48 pseudo terminal. The rate
of each is llama-server's own: its timings (`eval time = ... ms / N tokens`), which Ollama passes
on as the final chunk's eval_count and eval_duration.

Two ways to place them (--cores):
- one: the worst case, where any cost shows in full: llama-server runs one thread, and it, the
  client and llmtop are all confined to core 0 (`ollama serve`, which relays the stream, to the
  other cores);
- all: nothing confined; llama-server runs a thread per core.

For each way and each place: each round's rate against the bare client's of the same round, as
a change in %; printed as the median over the rounds with a 95% bootstrap interval of that median
(10,000 resamples). Where the interval holds 0, no effect could be resolved at that precision.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness import bare_client, machine_line, recording_has, run_llmtop

WAYS = {"llmtop --headless": None, "TUI 120x40": (120, 40), "TUI 160x48": (160, 48)}
RESAMPLES = 10_000


def llmtop_rate(url: str, model: str, size: tuple[int, int] | None, folder: Path, cpus: set[int] | None) -> float:
    """llama-server's eval rate of one generation run by llmtop, from its recording's final chunk."""
    recording = folder / "observed.jsonl"
    recording.unlink(missing_ok=True)
    args = [model, "--host", url, "--no-log", "--no-history", "--record", str(recording)]
    over = recording_has(recording, b'"event": "summary"')
    run_llmtop(args, size is not None, over, size=size or (120, 40), cpus=cpus)
    events = [json.loads(line) for line in recording.read_text().splitlines()]
    final = next(e["chunk"] for e in events if e["event"] == "final")
    return final["eval_count"] / (final["eval_duration"] / 1e9)


def median_interval(changes: list[float], seed: int = 1) -> tuple[float, float, float]:
    """The median of `changes` and a 95% bootstrap interval of it (percentiles of RESAMPLES medians)."""
    draw = random.Random(seed)
    medians = sorted(statistics.median(draw.choices(changes, k=len(changes))) for _ in range(RESAMPLES))
    return statistics.median(changes), medians[int(0.025 * RESAMPLES)], medians[int(0.975 * RESAMPLES) - 1]


def one_place(place: str, args: argparse.Namespace, binary: Path) -> dict[str, list[float]]:
    """Every round's rate of every way (bare client first in the dict) with the engine placed so."""
    from engine_double import MODEL, EngineOllama

    cores = sorted(os.sched_getaffinity(0))
    pinned = {cores[0]} if place == "one" else None
    if pinned is not None:  # this process and `ollama serve` (started by it) keep off core 0
        os.sched_setaffinity(0, set(cores[1:]) or set(cores))
    rates: dict[str, list[float]] = {"bare client": [], **{way: [] for way in WAYS}}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        threads = 1 if place == "one" else len(cores)
        with EngineOllama(folder, max_tokens=args.tokens, threads=threads, llama_server=binary) as ollama:
            done = threading.Event()
            if pinned is not None:  # each load starts a new llama-server: onto core 0 as it starts
                threading.Thread(target=pin_runners, args=(ollama, pinned, done), daemon=True).start()
            order = list(rates)
            for round_number in range(args.rounds):
                turn = round_number % len(order)
                for way in order[turn:] + order[:turn]:
                    if way == "bare client":
                        rate = bare_client(ollama.url, MODEL, cpus=pinned)["eval_rate_tps"]
                    else:
                        rate = llmtop_rate(ollama.url, MODEL, WAYS[way], folder, pinned)
                    rates[way].append(rate)
                print(f"  round {round_number + 1}: " + ", ".join(f"{w} {r[-1]:.2f}" for w, r in rates.items()))
                sys.stdout.flush()
            done.set()
    os.sched_setaffinity(0, set(cores))
    return rates


def pin_runners(ollama: Any, cpus: set[int], done: threading.Event) -> None:
    """Confine every runner of `ollama` to `cpus` within 50 ms of its start (long before its model
    is loaded and it generates)."""
    seen: set[int] = set()
    while not done.wait(0.05):
        for pid in set(ollama.runner_pids()) - seen:
            try:
                os.sched_setaffinity(pid, cpus)
                seen.add(pid)
            except OSError:
                pass


def report(place: str, rates: dict[str, list[float]]) -> None:
    bare = rates["bare client"]
    where = "one core" if place == "one" else "all cores"
    print(f"-- {where}: eval rate, tokens/s, median (range) over {len(bare)} rounds")
    print(f"  {'bare client':20} {statistics.median(bare):8.2f}  ({min(bare):.2f}-{max(bare):.2f})")
    for way in WAYS:
        changes = [100 * (rate / base - 1) for rate, base in zip(rates[way], bare, strict=True)]
        median, low, high = median_interval(changes)
        values = rates[way]
        print(
            f"  {way:20} {statistics.median(values):8.2f}  ({min(values):.2f}-{max(values):.2f})"
            f"  change against the bare client of its round: {median:+.2f}% (95% interval {low:+.2f}% to {high:+.2f}%)"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="rounds of the four ways (default 10)")
    parser.add_argument("--tokens", type=int, default=400, help="tokens per generation (default 400)")
    parser.add_argument("--cores", default="one,all", help="one, all or both (default one,all)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from engine_double import EngineMissing
    from llama_server_build import BuildFailed, llama_server_binary

    try:
        binary = llama_server_binary(sys.stderr)
    except (BuildFailed, EngineMissing) as exc:
        sys.exit(f"observer_effect: llama-server is not available: {exc}")
    print(f"== observer effect on the real llama-server ({machine_line()})")
    print(f"Gemma 3 270M Q4_K_M, {args.tokens} tokens with llmtop's prompt and seed; {args.rounds} rounds")
    started = time.monotonic()
    for place in args.cores.split(","):
        report(place, one_place(place, args, binary))
    print(f"({(time.monotonic() - started) / 60:.0f} minutes)")


if __name__ == "__main__":
    main()
