"""llmtop on real Ollama: its observer effect against `ollama run --verbose`, and its own cost.

    .venv/bin/python bench/on_real_ollama.py [--versions article,newest] [--rounds 8] [--tokens 200]

For each real Ollama the tests build (tests/ollama_build.py: 0.5.11, 0.24.0, the newest release),
`ollama serve` runs the tests' random 80-block llama (tests/llama_gguf.py) imported with a Modelfile
that fixes the seed and the answer's length, so every generation is the same work. Each round runs,
in an order that turns each round, the same generation three ways: by `ollama run --verbose` (the
article's way; its `eval rate` line), by `llmtop --headless` and by the llmtop TUI in a 120x40
pseudo terminal (each llmtop's rate is the final chunk's eval_count / eval_duration, the same figure
`ollama run --verbose` prints; its CPU from wait4). Printed per version: each way's median rate,
llmtop's change against the `ollama run` of its round (median and a 95% bootstrap interval), and
llmtop's own CPU, % of one core over the whole run.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harness import machine_line, recording_has, run_llmtop
from observer_effect import median_interval

WAYS = ("ollama run --verbose", "llmtop --headless", "llmtop TUI 120x40")
BENCH_MODEL = "r81-bench"


def ollama_run_rate(server, prompt: str) -> float:
    result = server.cli("run", "--verbose", BENCH_MODEL, prompt, timeout=600)
    found = re.search(r"^eval rate:\s+([\d.]+) tokens/s", result.stderr, re.M)
    if result.returncode != 0 or not found:
        raise RuntimeError(f"ollama run failed: {result.stderr.strip()[-300:]}")
    return float(found.group(1))


def llmtop_rate(server, folder: Path, tui: bool) -> tuple[float, float]:
    """(the eval rate of llmtop's run, llmtop's CPU in % of one core over it)."""
    recording = folder / "bench.jsonl"
    recording.unlink(missing_ok=True)
    args = [
        BENCH_MODEL,
        "--host",
        server.url,
        "--log",
        str(server.log_path),
        "--no-history",
        "--record",
        str(recording),
    ]
    watched = run_llmtop(args, tui, recording_has(recording, b'"event": "summary"'))
    events = [json.loads(line) for line in recording.read_text().splitlines()]
    final = next(e["chunk"] for e in events if e["event"] == "final")
    return final["eval_count"] / (final["eval_duration"] / 1e9), watched.cpu_pct


def one_version(kind: str, args: argparse.Namespace, folder: Path) -> None:
    from llmtop.measure.settings import DEFAULT_PROMPT, DEFAULT_SEED
    from ollama_build import _say_to, all_builds
    from real_ollama import RANDOM_LLAMA, RealOllama, model_files

    builds = dict(zip(("article", "last Go engine", "newest"), all_builds(_say_to(sys.stderr)), strict=True))
    build = builds[kind]
    if build.binary is None:
        print(f"-- Ollama {build.version}: not built here ({build.why_not})")
        return
    server = RealOllama(build, folder / kind).start()
    try:
        server.create(BENCH_MODEL, model_files()[RANDOM_LLAMA], {"seed": DEFAULT_SEED, "num_predict": args.tokens})
        rates: dict[str, list[float]] = {way: [] for way in WAYS}
        cpu: dict[str, list[float]] = {way: [] for way in WAYS[1:]}
        for number in range(args.rounds):
            turn = number % len(WAYS)
            for way in WAYS[turn:] + WAYS[:turn]:
                server.unload_all()  # every way starts from an unloaded model, as llmtop does
                if way == WAYS[0]:
                    rates[way].append(ollama_run_rate(server, DEFAULT_PROMPT))
                else:
                    rate, used = llmtop_rate(server, folder, tui=way.endswith("120x40"))
                    rates[way].append(rate)
                    cpu[way].append(used)
            print(f"  round {number + 1}: " + ", ".join(f"{w} {r[-1]:.2f}" for w, r in rates.items()))
            sys.stdout.flush()
    finally:
        server.stop()
    base = rates[WAYS[0]]
    print(f"-- Ollama {build.version} ({build.era}): eval rate, tokens/s, median (range) over {len(base)} rounds")
    print(f"  {WAYS[0]:22} {statistics.median(base):8.2f}  ({min(base):.2f}-{max(base):.2f})")
    for way in WAYS[1:]:
        changes = [100 * (rate / b - 1) for rate, b in zip(rates[way], base, strict=True)]
        median, low, high = median_interval(changes)
        values = rates[way]
        print(
            f"  {way:22} {statistics.median(values):8.2f}  ({min(values):.2f}-{max(values):.2f})  against "
            f"`ollama run`: {median:+.2f}% (95% interval {low:+.2f}% to {high:+.2f}%); llmtop's CPU "
            f"{statistics.median(cpu[way]):.1f}% of a core"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", default="article,newest", help="article, last Go engine, newest")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=200, help="tokens per generation (the Modelfile's num_predict)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    print(f"== llmtop on real Ollama ({machine_line()})")
    print(f"the tests' random 80-block llama, {args.tokens} tokens, llmtop's prompt and seed; {args.rounds} rounds")
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as name:
        for kind in args.versions.split(","):
            one_version(kind.strip(), args, Path(name))
    print(f"({(time.monotonic() - started) / 60:.0f} minutes)")


if __name__ == "__main__":
    main()
