"""Every benchmark, one after the other, each printing its figures.

    .venv/bin/python bench/run_all.py          # the figures in docs/benchmarks.md (about an hour)
    .venv/bin/python bench/run_all.py --quick  # the same, short and once (about 5 minutes)

Own cost, timing accuracy, sampling and start-up (own_cost.py), the cost next to htop's and
btop's at 30 and 300 tokens/s (versus_top.py: needs htop, and btop where installed), the observer
effect on the real llama-server, on one shared core and on all cores (observer_effect.py: needs the
`engine` extra; llama-server is built once, cached), the observer effect against `ollama run --verbose`
and llmtop's own cost on real Ollama (on_real_ollama.py: the builds of tests/ollama_build.py), what
`--priority low` does to the engine and to llmtop's sampling (priority.py, on the real engine), a
two-hour run (long_run.py), the log follower (log_follow.py) and `--metrics` scrapes after thousands
of requests (metrics_scrape.py). Run it on a quiet machine: the
figures are medians, but a busy machine still moves them.
"""

from __future__ import annotations

import argparse
import sys
import time

import metrics_scrape
import priority
import versus_top

import log_follow
import long_run
import observer_effect
import on_real_ollama
import own_cost

# Each benchmark with its arguments for the full run and for --quick.
BENCHMARKS = [
    (own_cost, [], ["--seconds", "20", "--repeats", "1"]),
    (versus_top, [], ["--seconds", "15", "--repeats", "1"]),
    (observer_effect, [], ["--rounds", "2", "--tokens", "100"]),
    (on_real_ollama, [], ["--rounds", "1", "--tokens", "60"]),
    (priority, [], ["--rounds", "1", "--tokens", "100"]),
    (long_run, [], ["--hours", "0.5", "--speed", "120"]),
    (log_follow, [], ["--megabytes", "10"]),
    (metrics_scrape, [], ["--requests", "5000", "--scrapes", "50"]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs, once each: to see that it all works")
    args = parser.parse_args()
    began = time.monotonic()
    for bench, full, quick in BENCHMARKS:
        bench.main(quick if args.quick else full)
        print()
        sys.stdout.flush()
    print(f"all benchmarks: {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
