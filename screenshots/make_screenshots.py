"""Make the README's screenshots from the real app against the Ollama double (tests/ollama_double.py).

    .venv/bin/python screenshots/make_screenshots.py

Two runs of llama3.3 on a double that streams 30 tokens/s and writes Ollama's server log (27 of 81
layers on the GPU when Ollama decides): Ollama's choice, then CPU only after pressing `c` and `r`;
then the same screen with the log pane open (`l`). RAM and Ollama RSS are this machine's real
readings.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from llmtop.collectors.log_sources import FileFollower  # noqa: E402
from llmtop.collectors.log_watch import LogWatcher  # noqa: E402
from llmtop.collectors.system_collectors import SystemCollectors  # noqa: E402
from llmtop.ollama_api import OllamaServer  # noqa: E402
from llmtop.session import RunSettings, Session  # noqa: E402
from llmtop.tui.app import LlmtopApp  # noqa: E402
from ollama_double import DoubleConfig, OllamaDouble, ServerLog  # noqa: E402


async def wait_rows(pilot, app: LlmtopApp, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(app.session.rows) < count:
        if time.monotonic() > deadline:
            raise SystemExit("the run did not finish in time")
        await pilot.pause(0.1)
    await pilot.pause(0.6)


async def main() -> None:
    config = DoubleConfig(token_rate=30, tokens=60, load_delay_s=1.5, vram_fraction=27 / 81)
    with tempfile.TemporaryDirectory() as folder:
        log_file = Path(folder) / "server.log"
        log_file.write_text("")
        watcher = LogWatcher(FileFollower(log_file, poll_s=0.05))
        watcher.start()
        time.sleep(0.2)
        with (
            open(log_file, "a", encoding="utf-8", buffering=1) as writer,
            OllamaDouble(config, log=ServerLog(writer.write)) as double,
        ):
            collectors = SystemCollectors(0.25)
            session = Session(OllamaServer(double.url), "llama3.3", collectors, log=watcher)
            session.connect()
            collectors.start()
            app = LlmtopApp(session, RunSettings())
            async with app.run_test(size=(140, 44)) as pilot:
                await wait_rows(pilot, app, 1)
                await pilot.press("c")
                await pilot.press("r")
                await wait_rows(pilot, app, 2)
                print("wrote", app.save_screenshot(filename="llmtop-session.svg", path=str(HERE)))
                await pilot.press("l")
                await pilot.pause(0.6)
                print("wrote", app.save_screenshot(filename="llmtop-log-pane.svg", path=str(HERE)))
            collectors.stop()
        watcher.stop()


if __name__ == "__main__":
    asyncio.run(main())
