"""The observer effect: does llmtop slow down a model running on the CPU?

    .venv/bin/python bench/observer_effect.py [--tokens 600] [--repeats 5]

A stand-in Ollama (bench/stand_in.py, "cpu" mode) makes every token out of CPU work done by one
thread per core in its `ollama runner` process, and the threads meet after each token, as
llama.cpp's do: anything else that takes CPU time lowers its tokens/s. Each round runs the same
generation three ways, in turn: streamed by a bare client (the official `ollama` Python client,
nothing else running), by `llmtop --headless`, and by the llmtop TUI under a pseudo terminal. It
prints the server's eval rate (eval_count / eval_duration) for each, median over the rounds, and
the change against the bare client.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from harness import bare_client, machine_line, recording_has, run_llmtop
from stand_in import StandIn


def llmtop_rate(url: str, tui: bool, folder: Path) -> float:
    """The eval rate of one generation run by llmtop, read from its recording's final chunk."""
    recording = folder / "observed.jsonl"
    recording.unlink(missing_ok=True)
    args = ["llama3.3", "--host", url, "--no-log", "--no-history", "--record", str(recording)]
    run_llmtop(args, tui, recording_has(recording, b'"event": "summary"'))
    events = [json.loads(line) for line in recording.read_text().splitlines()]
    final = next(e["chunk"] for e in events if e["event"] == "final")
    return final["eval_count"] / (final["eval_duration"] / 1e9)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=600, help="tokens per generation (default 600)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of the three ways (default 5)")
    parser.add_argument("--work-ms", type=float, default=40.0, help="CPU work per token per core (default 40)")
    args = parser.parse_args(argv)
    print(f"== observer effect ({machine_line()})")
    print(f"CPU-bound stand-in: {args.tokens} tokens, ~{args.work_ms:.0f} ms of work per token on every core")
    rates: dict[str, list[float]] = {"bare client": [], "llmtop --headless": [], "llmtop TUI (pty)": []}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        with StandIn(folder, mode="cpu", tokens=args.tokens, work_ms=args.work_ms) as ollama:
            for _ in range(args.repeats):
                rates["bare client"].append(bare_client(ollama.url)["eval_rate_tps"])
                rates["llmtop --headless"].append(llmtop_rate(ollama.url, False, folder))
                rates["llmtop TUI (pty)"].append(llmtop_rate(ollama.url, True, folder))
    bare = statistics.median(rates["bare client"])
    print(f"eval rate, tokens/s: median over {args.repeats} rounds (range); change against the bare client")
    for case, values in rates.items():
        median = statistics.median(values)
        change = "" if case == "bare client" else f"  {100 * (median / bare - 1):+.2f}%"
        print(f"  {case:20} {median:8.3f}  ({min(values):.3f} .. {max(values):.3f}){change}")


if __name__ == "__main__":
    main()
