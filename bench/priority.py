"""What `--priority low` (nice 19, the default) does, against `--priority normal`: to the engine's
eval rate, and to llmtop's own sampling precision while the engine keeps every core busy.

    .venv/bin/python bench/priority.py [--rounds 6] [--tokens 300]

Real inference: llama.cpp runs Gemma 3 270M Q4_K_M on every core in an `ollama runner` child of
`ollama serve` (tests/engine_double.py; needs the `engine` extra). Each round runs `llmtop
--headless` once at each priority, in turn. From each recording: the eval rate (the final chunk's
eval_count / eval_duration), and the gaps between RAM samples during the generation against the
0.25 s interval asked (median, 99th percentile, largest): a sampler kept waiting shows there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from harness import machine_line, recording_has, run_llmtop

INTERVAL_S = 0.25


def one_run(url: str, model: str, priority: str, folder: Path) -> tuple[float, list[float]]:
    """(eval rate, the RAM sampler's gaps in seconds while tokens came) of one headless run."""
    recording = folder / f"{priority}.jsonl"
    recording.unlink(missing_ok=True)
    args = [model, "--host", url, "--no-log", "--no-history", "--record", str(recording), "--priority", priority]
    run_llmtop(args, False, recording_has(recording, b'"event": "summary"'))
    events = [json.loads(line) for line in recording.read_text().splitlines()]
    final = next(e["chunk"] for e in events if e["event"] == "final")
    tokens = [e["t"] for e in events if e["event"] == "token"]
    samples = [e["t"] for e in events if e["event"] == "sample" and e.get("source") == "ram"]
    during = [t for t in samples if tokens and tokens[0] <= t <= tokens[-1]]
    gaps = [b - a for a, b in zip(during, during[1:], strict=False)]
    return final["eval_count"] / (final["eval_duration"] / 1e9), gaps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6, help="rounds of the two priorities (default 6)")
    parser.add_argument("--tokens", type=int, default=300, help="tokens per generation (default 300)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from engine_double import MODEL, EngineMissing, EngineOllama

    rates: dict[str, list[float]] = {"normal": [], "low": []}
    gaps: dict[str, list[float]] = {"normal": [], "low": []}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        try:
            ollama = EngineOllama(folder, max_tokens=args.tokens)
        except EngineMissing as exc:
            sys.exit(f"priority: {exc}")
        with ollama:
            for _ in range(args.rounds):
                for priority in ("normal", "low"):
                    rate, seen = one_run(ollama.url, MODEL, priority, folder)
                    rates[priority].append(rate)
                    gaps[priority].extend(seen)
    print(machine_line())
    print(f"{args.rounds} rounds, {args.tokens} tokens, the engine on every core, RAM sampled every {INTERVAL_S} s")
    print("| --priority | eval rate (median) | sample gap median | 99th percentile | largest | gaps |")
    print("|---|---:|---:|---:|---:|---:|")
    for priority in ("normal", "low"):
        seen = sorted(gaps[priority])
        p99 = seen[min(len(seen) - 1, int(0.99 * len(seen)))] if seen else float("nan")
        print(
            f"| {priority} | {statistics.median(rates[priority]):.2f} tokens/s | "
            f"{statistics.median(seen) * 1000:.0f} ms | {p99 * 1000:.0f} ms | {max(seen) * 1000:.0f} ms | {len(seen)} |"
        )
    change = statistics.median(rates["low"]) / statistics.median(rates["normal"]) - 1
    print(f"eval rate with --priority low against normal: {100 * change:+.1f}% (medians)")


if __name__ == "__main__":
    main()
