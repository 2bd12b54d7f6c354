"""A two-hour session, in simulated time: memory stays flat and the screen stays quick.

    .venv/bin/python bench/long_run.py [--hours 2] [--speed 120]

It writes a recording of one run generating 30 tokens/s for --hours, sampled every 0.25 s (its
first minute is the shipped demo's CPU run; the rest repeats its last readings with the clock
moved on), and replays it in the real app (Textual's headless driver) --speed times faster than
real time, so every buffer, the token clock, the chart and the answer pane go through two hours
of data. Every 15 simulated minutes it prints the process's RSS, the time one refresh takes
(reading the buffers and updating the widgets) and the time one frame takes (drawing what
changed, the chart's redraw included): median and worst since the last mark.
It ends with `llmtop replay FILE --speed max --headless` on the same file: its wall time and
peak RSS (the replayer reads the whole recording first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from harness import LLMTOP, machine_line

DEMO = Path(__file__).resolve().parent.parent / "core" / "data" / "demo.jsonl"
RATE = 30.0
INTERVAL = 0.25
MARK_S = 15 * 60


def write_recording(path: Path, seconds: float) -> int:
    """A recording of one run streaming RATE tokens/s for `seconds`; the number of events."""
    demo = [json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines()]
    first_token = next(i for i, e in enumerate(demo) if e["event"] == "token")
    head = demo[:first_token]
    head[0]["plan"] = head[0]["plan"][:1]
    model = demo[first_token]["model"]
    last = {e["source"]: e["sample"] for e in head if e["event"] == "sample"}
    ps = next(e["sample"] for e in reversed(head) if e["event"] == "ps")
    final = next(e for e in demo if e["event"] == "final")
    tail = [final] + [e for e in demo[demo.index(final) + 1 :] if e["event"] in ("end", "summary")]
    start = demo[first_token]["t"]
    count = 0
    with path.open("w", encoding="utf-8") as out:

        def put(event: dict) -> None:
            nonlocal count
            out.write(json.dumps(event, ensure_ascii=False) + "\n")
            count += 1

        for event in head:
            put(event)
        put({"event": "phase", "t": start, "model": model, "phase": "generating", "detail": ""})
        tokens = int(seconds * RATE)
        next_sample, next_ps = start, start
        words = ("The ", "sky ", "is ", "blue ", "because ", "of ", "Rayleigh ", "scattering. ", "\n")
        for i in range(tokens):
            t = start + i / RATE
            while next_sample <= t:
                for source, sample in last.items():
                    sample = dict(sample, t=next_sample)
                    if source == "ram":  # a little movement, as real readings have
                        sample["available_bytes"] -= int(next_sample * 1000) % 50_000_000
                    put({"event": "sample", "t": next_sample, "source": source, "sample": sample})
                next_sample += INTERVAL
            if next_ps <= t:
                put({"event": "ps", "t": next_ps, "model": model, "sample": dict(ps, t=next_ps)})
                next_ps += 10.0
            put({"event": "token", "t": t, "model": model, "text": words[i % len(words)]})
        end = start + tokens / RATE
        chunk = dict(final["chunk"], eval_count=tokens, eval_duration=int(tokens / RATE * 1e9))
        for event in tail:
            put(dict(event, t=end, **({"chunk": chunk} if event["event"] == "final" else {})))
        put({"event": "phase", "t": end, "model": model, "phase": "done", "detail": ""})
        put({"event": "closed", "t": end + 0.01})
    return count


async def replay_in_app(path: Path, speed: float) -> list[tuple[float, ...]]:
    """Every MARK_S of simulated time: (minutes, RSS MB, refresh ms median, worst, refreshes,
    frame ms median, worst). A refresh reads the buffers and updates the widgets; a frame draws
    what changed."""
    from llmtop.store.replay import load_recording, replay
    from llmtop.tui.app import LlmtopApp

    world, runner = replay(load_recording(path), speed)
    app = LlmtopApp(runner, banner="long-run benchmark")
    durations: list[float] = []
    original = app._refresh_live

    def timed() -> None:
        began = time.perf_counter()
        original()
        durations.append(time.perf_counter() - began)

    app._refresh_live = timed  # type: ignore[method-assign]
    from textual.screen import Screen

    frames: list[float] = []
    draw = Screen._compositor_refresh

    def timed_draw(screen: Screen) -> None:
        began = time.perf_counter()
        draw(screen)
        frames.append(time.perf_counter() - began)

    Screen._compositor_refresh = timed_draw  # type: ignore[method-assign]
    marks = []
    process = psutil.Process()
    async with app.run_test(size=(140, 44)) as pilot:
        start = world.player.t0
        next_mark = 0.0
        while runner.done < 1:
            await pilot.pause(0.2)
            simulated = world.player.now() - start
            if simulated >= next_mark:
                await pilot.pause()  # let the frame be drawn
                recent, durations[:] = durations[:], []
                drawn, frames[:] = frames[:], []
                marks.append(
                    (
                        next_mark / 60,
                        process.memory_info().rss / 1e6,
                        1000 * statistics.median(recent) if recent else float("nan"),
                        1000 * max(recent) if recent else float("nan"),
                        len(recent),
                        1000 * statistics.median(drawn) if drawn else float("nan"),
                        1000 * max(drawn) if drawn else float("nan"),
                    )
                )
                next_mark += MARK_S
        await pilot.pause(0.5)
        nan = float("nan")
        marks.append(((world.player.at - start) / 60, process.memory_info().rss / 1e6, nan, nan, 0, nan, nan))
    Screen._compositor_refresh = draw  # type: ignore[method-assign]
    return marks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=2.0, help="simulated length of the run (default 2)")
    parser.add_argument("--speed", type=float, default=120.0, help="times real time (default 120)")
    args = parser.parse_args(argv)
    print(f"== long run ({machine_line()})")
    with tempfile.TemporaryDirectory() as name:
        path = Path(name) / "long.jsonl"
        events = write_recording(path, args.hours * 3600)
        size = path.stat().st_size / 1e6
        print(f"recording: {args.hours:g} h at {RATE:.0f} tokens/s, every {INTERVAL} s: {events} events, {size:.0f} MB")
        print(f"in the app, {args.speed:g}x real time:")
        print("  simulated min   RSS MB   refresh ms median / worst (count)   frame ms median / worst")
        for minutes, rss, median, worst, count, frame, frame_worst in asyncio.run(replay_in_app(path, args.speed)):
            if count:
                timing = f"{median:6.2f} / {worst:6.2f} ({count:4d})            {frame:6.2f} / {frame_worst:6.2f}"
            else:
                timing = "(the run is over)"
            print(f"  {minutes:13.0f}   {rss:6.0f}   {timing}")
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        began = time.monotonic()
        subprocess.run(
            [LLMTOP, "replay", str(path), "--speed", "max", "--headless"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        scale = 1 if sys.platform == "darwin" else 1024
        print(
            f"`llmtop replay --speed max --headless` of it: {time.monotonic() - began:.1f} s, "
            f"peak RSS {max(peak, before) * scale / 1e6:.0f} MB"
        )


if __name__ == "__main__":
    main()
