"""Make the README's screenshots from the same scenes the snapshot tests check (tests/scenes.py):
recordings replayed in the real app, so the pictures are reproducible.

    .venv/bin/python screenshots/make_screenshots.py

The recordings come from screenshots/make_recordings.py (real runs against the Ollama double and
against the real engine); the demo's ships in the package (core/data/demo.jsonl). Each picture is
screenshots/llmtop-SCENE.svg.
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


if __name__ == "__main__":
    for scene in SCENES:
        if scene.name in README_PICTURES:
            asyncio.run(picture(scene))
