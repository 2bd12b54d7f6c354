"""Make the README's screenshots by replaying recordings in the real app, so they are reproducible.

    .venv/bin/python screenshots/make_screenshots.py

The recordings come from screenshots/make_recordings.py (real runs against the Ollama double):
- recordings/compare.jsonl, `llmtop llama3.3 --modes cpu,auto --repeat 2`: the finished comparison
  with its bar chart (llmtop-compare.svg), the same screen with the live chart (`b`,
  llmtop-session.svg) and with the log pane open (`l`, llmtop-log-pane.svg);
- llmtop's demo recording (core/data/demo.jsonl), paused halfway through the run with 27 of 81
  layers on a 16 GB Radeon, shared GPU memory growing (llmtop-spillover.svg);
- recordings/engine.jsonl, `llmtop gemma3:270m` against llama.cpp running Gemma 3 270M with its
  weights mapped: RAM as in use plus the runner's mapped files (llmtop-real-engine.svg).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from llmtop.replay import load_recording, replay
from llmtop.replay_command import DEMO_BANNER, demo_path
from llmtop.tui.app import LlmtopApp

HERE = Path(__file__).resolve().parent
SIZE = (140, 50)


async def until(pilot, condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("the replay did not get there in time")
        await pilot.pause(0.05)
    await pilot.pause(0.5)


async def comparison() -> None:
    recording = load_recording(HERE / "recordings" / "compare.jsonl")
    _, runner = replay(recording, speed=None)
    app = LlmtopApp(runner)  # as the live run looked: no replay banner
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(runner.rows) == 4 and app.bars.display)
        print("wrote", app.save_screenshot(filename="llmtop-compare.svg", path=str(HERE)))
        await pilot.press("b")
        await pilot.pause(0.5)
        print("wrote", app.save_screenshot(filename="llmtop-session.svg", path=str(HERE)))
        await pilot.press("l")
        await pilot.pause(0.5)
        print("wrote", app.save_screenshot(filename="llmtop-log-pane.svg", path=str(HERE)))


async def spillover() -> None:
    recording = load_recording(demo_path())
    runs = [i for i, e in enumerate(recording.events) if e["event"] == "run"]
    tokens = [e for e in recording.events[runs[-1] :] if e["event"] == "token"]
    pause_at = tokens[len(tokens) * 2 // 3]["t"]  # two thirds into the GPU run: shared memory has grown
    world, runner = replay(recording, speed=None, pause_at=pause_at)
    app = LlmtopApp(runner, banner=DEMO_BANNER)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: world.player.at >= pause_at)
        await pilot.pause(1.0)
        print("wrote", app.save_screenshot(filename="llmtop-spillover.svg", path=str(HERE)))
        world.player.stop()


async def real_engine() -> None:
    recording = load_recording(HERE / "recordings" / "engine.jsonl")
    _, runner = replay(recording, speed=None)
    app = LlmtopApp(runner)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(runner.rows) == 1)
        print("wrote", app.save_screenshot(filename="llmtop-real-engine.svg", path=str(HERE)))


if __name__ == "__main__":
    asyncio.run(comparison())
    asyncio.run(spillover())
    asyncio.run(real_engine())
