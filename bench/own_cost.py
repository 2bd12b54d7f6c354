"""llmtop's own cost, its timing accuracy, sampler jitter and start-up.

    .venv/bin/python bench/own_cost.py [--seconds 60] [--repeats 3]

For each case (TUI under a pseudo terminal, and --headless; sampling every 0.25 s and 0.1 s) it
runs `llmtop llama3.3` against a stand-in Ollama (bench/stand_in.py: `ollama serve` and, once the
model is loaded, `ollama runner`, as real processes) streaming 30 tokens/s for --seconds, --repeats
times, and prints medians of:
- cpu_pct: CPU time of the llmtop process (user + system, from wait4) over the whole run, as a
  percentage of one core; steady_cpu_pct: the same from 10 s after the start to the end of the
  generation, while it streams (start-up, the run's end and the exit left out);
- peak_rss_mb;
- tps_error_pct: the client's tokens/s against the server's eval_count / eval_duration;
- ttft_minus_server_ms: time to first token against the server's own (its load and prompt
  durations plus one token's share of eval_duration): what is left is HTTP, the first chunk's
  trip and llmtop's reading of it;
- jitter_p50_ms, jitter_p99_ms: how far apart the RAM sampler's readings are from the interval;
- first_frame_s (TUI): launch to the first screen written.
For reference it also streams the same generation with the official `ollama` client alone and
prints the CPU time that took from the first chunk to the last: the floor under any Python
client that uses it, llmtop included.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from harness import bare_client, machine_line, median_table, recording_has, run_llmtop
from stand_in import StandIn

RATE = 30.0


def timing_figures(recording: Path, interval: float) -> dict[str, float]:
    """Accuracy and jitter, from the recording of one run."""
    events = [json.loads(line) for line in recording.read_text().splitlines()]
    final = next(e["chunk"] for e in events if e["event"] == "final")
    row = next(e["row"] for e in events if e["event"] == "summary")
    request = next(e["t"] for e in events if e["event"] == "request")
    # The server's own time to its first token: load, prompt, and one token's share of the eval.
    server_ttft = (final["load_duration"] + final["prompt_eval_duration"]) / 1e9
    server_ttft += final["eval_duration"] / final["eval_count"] / 1e9
    # The sampler's own ticks during generation (the baseline's extra readings are taken on demand).
    ticks = [e["t"] for e in events if e["event"] == "sample" and e["source"] == "ram" and e["t"] > request]
    errors = sorted(abs((b - a) - interval) * 1000 for a, b in zip(ticks, ticks[1:], strict=False))
    return {
        "tps_error_pct": 100 * (row["client_rate_tps"] / row["eval_rate_tps"] - 1),
        "ttft_minus_server_ms": 1000 * (row["ttft_s"] - server_ttft),
        "jitter_p50_ms": errors[len(errors) // 2],
        "jitter_p99_ms": errors[min(len(errors) - 1, int(len(errors) * 0.99))],
    }


def run_once(url: str, tui: bool, interval: float, folder: Path) -> dict[str, float]:
    recording = folder / "run.jsonl"
    recording.unlink(missing_ok=True)
    args = ["llama3.3", "--host", url, "--no-log", "--no-history", "--interval", str(interval)]
    args += ["--record", str(recording)]
    watched = run_llmtop(args, tui, recording_has(recording, b'"event": "summary"'))
    figures = {"cpu_pct": watched.cpu_pct, "steady_cpu_pct": watched.steady_cpu_pct, "peak_rss_mb": watched.peak_rss_mb}
    figures.update(timing_figures(recording, interval))
    if tui and watched.first_frame_s is not None:
        figures["first_frame_s"] = watched.first_frame_s
    return figures


KEYS = [
    "cpu_pct",
    "steady_cpu_pct",
    "peak_rss_mb",
    "tps_error_pct",
    "ttft_minus_server_ms",
    "jitter_p50_ms",
    "jitter_p99_ms",
    "first_frame_s",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each run (default 60)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case; medians are printed (default 3)")
    args = parser.parse_args(argv)
    print(f"== own cost, timing accuracy, sampling, start-up ({machine_line()})")
    print(f"stand-in Ollama: {RATE:.0f} tokens/s for {args.seconds:.0f} s; medians of {args.repeats} runs (range)")
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        with StandIn(folder, mode="paced", rate=RATE, tokens=int(RATE * args.seconds)) as ollama:
            for tui in (True, False):
                for interval in (0.25, 0.1):
                    case = f"{'TUI (pty)' if tui else 'headless'}, interval {interval} s"
                    results[case] = [run_once(ollama.url, tui, interval, folder) for _ in range(args.repeats)]
                    print(median_table({case: results[case]}, KEYS))
                    sys.stdout.flush()
            bare = [bare_client(ollama.url)["cpu_pct"] for _ in range(args.repeats)]
            print("the official ollama client alone, streaming the same generation")
            print(f"  {'cpu_pct while streaming':24} {statistics.median(bare):10.3f}")


if __name__ == "__main__":
    main()
