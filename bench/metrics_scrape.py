"""How long a Prometheus scrape of `--metrics` takes after thousands of requests, and the watch state's
memory then (the target: a scrape answered in under 50 ms, memory flat however many requests).

    .venv/bin/python bench/metrics_scrape.py [--requests 20000] [--models 20] [--scrapes 200]

Feeds a WatchState the way `llmtop watch --proxy` does (a request begins, its final chunk ends it),
over many models, then scrapes the real endpoint over HTTP (prometheus_client's server, the
collectors with live RAM and process samplers) and prints the median and worst scrape time, with
the memory allocated by the state after the first thousand requests and after all of them.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
import urllib.request

from harness import machine_line
from llmtop.collectors.system_collectors import SystemCollectors
from llmtop.watch.metrics import MetricsEndpoint
from llmtop.watch.state import WatchState


def feed(state: WatchState, start: int, count: int, models: int) -> None:
    for number in range(start, start + count):
        model = f"model-{number % models}:latest"
        request = state.proxy_started(float(number), "/api/chat", model)
        final = {"done": True, "model": model, "prompt_eval_count": 30, "prompt_eval_duration": 20_000_000,
                 "eval_count": 200, "eval_duration": 4_000_000_000}  # fmt: skip
        state.proxy_finished(number + 4.0, request, final)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args()
    print(machine_line())
    state = WatchState()
    tracemalloc.start()
    feed(state, 0, 1000, args.models)
    after_thousand = tracemalloc.get_traced_memory()[0]
    feed(state, 1000, args.requests - 1000, args.models)
    after_all = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    collectors = SystemCollectors(0.5)
    collectors.start()
    endpoint = MetricsEndpoint(state, collectors, "127.0.0.1", 0)
    try:
        times = []
        for _ in range(args.scrapes):
            began = time.perf_counter()
            with urllib.request.urlopen(endpoint.url, timeout=5) as response:
                body = response.read()
            times.append((time.perf_counter() - began) * 1000)
    finally:
        endpoint.stop()
        collectors.stop()
    times.sort()
    print(
        f"metrics_scrape: {args.requests} requests over {args.models} models: state "
        f"{after_thousand / 1e6:.2f} MB after 1000 requests, {after_all / 1e6:.2f} MB after {args.requests}; "
        f"scrape of {len(body)} bytes: median {statistics.median(times):.1f} ms, "
        f"p95 {times[int(0.95 * len(times)) - 1]:.1f} ms, worst {times[-1]:.1f} ms (target: under 50 ms)"
    )


if __name__ == "__main__":
    main()
