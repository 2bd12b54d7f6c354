"""The observer effect: does llmtop slow down a model running on the CPU?

    .venv/bin/python bench/observer_effect.py [--engine] [--tokens 600] [--repeats 5]

Two CPU-bound models, each streaming the same generation three ways, in turn: by a bare client
(the official `ollama` Python client, nothing else running), by `llmtop --headless`, and by the
llmtop TUI under a pseudo terminal. It prints the server's eval rate (eval_count / eval_duration)
for each, median over the rounds, and the change against the bare client.

- default: a stand-in Ollama (bench/stand_in.py, "cpu" mode) makes every token out of CPU work done
  by one thread per core in its `ollama runner` process, the threads meeting after each token.
- `--engine`: real inference. llama.cpp runs Gemma 3 270M Q4_K_M on every core in an `ollama
  runner` child of `ollama serve` (tests/engine_double.py; needs the `engine` extra), with
  llmtop's default prompt and seed, so every way generates the same tokens.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from harness import bare_client, machine_line, recording_has, run_llmtop
from stand_in import StandIn


def llmtop_rate(url: str, model: str, tui: bool, folder: Path) -> float:
    """The eval rate of one generation run by llmtop, read from its recording's final chunk."""
    recording = folder / "observed.jsonl"
    recording.unlink(missing_ok=True)
    args = [model, "--host", url, "--no-log", "--no-history", "--record", str(recording)]
    run_llmtop(args, tui, recording_has(recording, b'"event": "summary"'))
    events = [json.loads(line) for line in recording.read_text().splitlines()]
    final = next(e["chunk"] for e in events if e["event"] == "final")
    return final["eval_count"] / (final["eval_duration"] / 1e9)


def ollama(args: argparse.Namespace, folder: Path):
    """The server to measure against, as a context manager, and the model it serves."""
    if not args.engine:
        return StandIn(folder, mode="cpu", tokens=args.tokens, work_ms=args.work_ms), "llama3.3"
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from engine_double import MODEL, EngineMissing, EngineOllama

    try:
        return EngineOllama(folder, max_tokens=args.tokens), MODEL
    except EngineMissing as exc:
        sys.exit(f"observer_effect: {exc}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", action="store_true", help="real inference: llama.cpp running Gemma 3 270M")
    parser.add_argument("--tokens", type=int, default=600, help="tokens per generation (default 600)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of the three ways (default 5)")
    parser.add_argument(
        "--work-ms", type=float, default=40.0, help="stand-in: CPU work per token per core (default 40)"
    )
    args = parser.parse_args(argv)
    print(f"== observer effect{' on the real engine' if args.engine else ''} ({machine_line()})")
    if args.engine:
        print(f"llama.cpp, Gemma 3 270M Q4_K_M on every core: up to {args.tokens} tokens, llmtop's prompt and seed")
    else:
        print(f"CPU-bound stand-in: {args.tokens} tokens, ~{args.work_ms:.0f} ms of work per token on every core")
    rates: dict[str, list[float]] = {"bare client": [], "llmtop --headless": [], "llmtop TUI (pty)": []}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        server, model = ollama(args, folder)
        with server:
            for _ in range(args.repeats):
                rates["bare client"].append(bare_client(server.url, model)["eval_rate_tps"])
                rates["llmtop --headless"].append(llmtop_rate(server.url, model, False, folder))
                rates["llmtop TUI (pty)"].append(llmtop_rate(server.url, model, True, folder))
    bare = statistics.median(rates["bare client"])
    print(f"eval rate, tokens/s: median over {args.repeats} rounds (range); change against the bare client")
    for case, values in rates.items():
        median = statistics.median(values)
        change = "" if case == "bare client" else f"  {100 * (median / bare - 1):+.2f}%"
        print(f"  {case:20} {median:8.3f}  ({min(values):.3f} .. {max(values):.3f}){change}")


if __name__ == "__main__":
    main()
