"""What two hours of samples cost in memory, per source, with and without keeping what a sample
repeats from the one before it once (llmtop.collectors.sample_sharing).

    .venv/bin/python bench/sample_memory.py [--hours 2]

Each source's buffer is filled as a live session fills it: a sample every 0.25 s (power every
0.5 s) for --hours, each one a freshly made object. RAM is read from this machine's /proc by the
real reader; the Ollama processes, the GPU (a 16 GB Radeon's recorded counters) and power come
from the shipped demo's recording, decoded anew for every sample as a reader makes them, with
the clock moved on. Memory is what tracemalloc counts as allocated by the buffer.
"""

from __future__ import annotations

import argparse
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import machine_line
from llmtop.collectors import sampler as sampler_module
from llmtop.collectors.sampler import Sampler
from llmtop.collectors.system_collectors import DEFAULT_INTERVAL_S, POWER_INTERVAL_S
from llmtop.collectors.system_memory import SystemMemoryReader
from llmtop.store.recording import gpu_sample, power_sample, process_sample

DEMO = Path(__file__).resolve().parent.parent / "core" / "data" / "demo.jsonl"
DECODERS = {"ollama-rss": process_sample, "gpu": gpu_sample, "power": power_sample}


def recorded(source: str) -> list[str]:
    """The demo recording's samples of `source`, each as its JSON text."""
    events = (json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines())
    return [json.dumps(e["sample"]) for e in events if e.get("event") == "sample" and e.get("source") == source]


def filled(make: Callable[[int, float], Any], count: int, interval: float, shared: bool) -> tuple[int, int]:
    """Bytes allocated by a buffer of `count` samples made by `make(i, t)`, and how many it kept."""
    original = sampler_module.share_unchanged
    if not shared:
        sampler_module.share_unchanged = lambda previous, sample: sample  # type: ignore[assignment]
    try:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        buffer: Sampler[Any] = Sampler("bench", lambda now: None, interval, capacity=count)
        for i in range(count):
            buffer.push(make(i, i * interval))
        size = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        return size, len(buffer.all())
    finally:
        sampler_module.share_unchanged = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.0)
    args = parser.parse_args()
    print(machine_line())
    print(f"{args.hours:g} h of samples; bytes per sample kept, as made and with repeats kept once")
    memory_reader = SystemMemoryReader()
    sources: dict[str, tuple[Callable[[int, float], Any], float]] = {
        "ram (this machine's /proc)": (lambda i, t: memory_reader(t), DEFAULT_INTERVAL_S)
    }
    for source, decode in DECODERS.items():
        rows = recorded(source)
        interval = POWER_INTERVAL_S if source == "power" else DEFAULT_INTERVAL_S

        def make(i: int, t: float, rows: list[str] = rows, decode: Any = decode) -> Any:
            return decode({**json.loads(rows[i % len(rows)]), "t": t})

        sources[f"{source} (demo recording)"] = (make, interval)
    total_plain = total_shared = 0
    for name, (make, interval) in sources.items():
        count = int(args.hours * 3600 / interval)
        plain, kept = filled(make, count, interval, shared=False)
        compact, _ = filled(make, count, interval, shared=True)
        total_plain, total_shared = total_plain + plain, total_shared + compact
        print(f"  {name:32} {kept:6d} samples  {plain / kept:6.0f} B -> {compact / kept:6.0f} B")
    print(f"  {'all':32} {'':6}          {total_plain / 1e6:6.1f} MB -> {total_shared / 1e6:6.1f} MB")


if __name__ == "__main__":
    main()
