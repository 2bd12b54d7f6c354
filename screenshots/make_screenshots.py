"""Make the README's screenshots from the same scenes the snapshot tests check (tests/scenes.py):
recordings replayed in the real app, so the pictures are reproducible.

    .venv/bin/python screenshots/make_screenshots.py

The recordings come from screenshots/make_recordings.py (real runs against the Ollama double and
against the real engine); the demo's ships in the package (core/data/demo.jsonl). Each picture is
screenshots/llmtop-SCENE.svg; `llmtop watch`'s is llmtop-watch.svg, from the watch session's recording.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from scenes import README_PICTURES, SCENES, Scene  # noqa: E402


async def picture(scene: Scene) -> None:
    app, world = scene.app()
    try:
        async with app.run_test(size=scene.size) as pilot:
            await scene.settle(app, world, pilot)
            print("wrote", app.save_screenshot(filename=f"llmtop-{scene.name}.svg", path=str(HERE)))
    finally:
        world.player.stop()


async def watch_picture() -> None:
    """`llmtop watch` at the end of screenshots/recordings/watch.jsonl, replayed as `llmtop replay` does."""
    from llmtop.store.replay import load_recording
    from llmtop.store.watch_replay import WatchReplay, recorded_wall
    from llmtop.tui.watch_app import WatchApp, WatchedScreen

    recording = load_recording(HERE / "recordings" / "watch.jsonl")
    world = WatchReplay(recording, speed=None)
    world.play()
    servers = [WatchedScreen(host, state) for host, state in world.states.items()]
    banner = "REPLAY of watch.jsonl: llmtop watch beside the test double of Ollama in its 0.30+ mode"
    app = WatchApp(servers, world.collectors, world.log, banner=banner, clock=world.player.now,
                   wall=recorded_wall(recording))  # fmt: skip
    async with app.run_test(size=(140, 44)) as pilot:
        await pilot.pause(2.5)
        app.clear_notifications()
        await pilot.pause(0.3)
        print("wrote", app.save_screenshot(filename="llmtop-watch.svg", path=str(HERE)))


if __name__ == "__main__":
    for scene in SCENES:
        if scene.name in README_PICTURES:
            asyncio.run(picture(scene))
    asyncio.run(watch_picture())
