"""Make the README's screenshots from the real app against the Ollama double (tests/ollama_double.py).

    .venv/bin/python screenshots/make_screenshots.py

The plan `llmtop llama3.3 --modes cpu,auto --repeat 2` on a double that streams 30 tokens/s with
the GPU and 12 without, and writes Ollama's server log (27 of 81 layers on the GPU when Ollama
decides): the finished comparison with its bar chart (llmtop-compare.svg), the same screen with the
live chart (`b`, llmtop-session.svg) and with the log pane open (`l`, llmtop-log-pane.svg). RAM and
Ollama RSS are this machine's real readings. A last picture, llmtop-spillover.svg, feeds recorded
counter values of a 16 GB Radeon through the real Windows counters reader: VRAM fills and 2.1 GB
spill into shared GPU memory.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from llmtop.collectors.gpu_collector import probe_gpu_backends  # noqa: E402
from llmtop.collectors.gpu_windows import DxgiAdapter, luid_key  # noqa: E402
from llmtop.collectors.log_sources import FileFollower  # noqa: E402
from llmtop.collectors.log_watch import LogWatcher  # noqa: E402
from llmtop.collectors.system_collectors import SystemCollectors  # noqa: E402
from llmtop.ollama_api import OllamaServer  # noqa: E402
from llmtop.plan import PlannedRun, PlanRunner, build_plan  # noqa: E402
from llmtop.session import RunSettings, Session  # noqa: E402
from llmtop.tui.app import LlmtopApp  # noqa: E402
from ollama_double import DoubleConfig, OllamaDouble, ServerLog  # noqa: E402


async def wait_rows(pilot, app: LlmtopApp, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(app.runner.rows) < count:
        if time.monotonic() > deadline:
            raise SystemExit("the run did not finish in time")
        await pilot.pause(0.1)
    await pilot.pause(0.6)


async def main() -> None:
    config = DoubleConfig(token_rate=30, cpu_token_rate=12, tokens=45, load_delay_s=1.5, vram_fraction=27 / 81)
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
            plan = build_plan(["llama3.3"], ["cpu", "auto"], 2, RunSettings())
            app = LlmtopApp(PlanRunner({"llama3.3": session}, plan))
            async with app.run_test(size=(140, 50)) as pilot:
                await wait_rows(pilot, app, 4, timeout=120)
                print("wrote", app.save_screenshot(filename="llmtop-compare.svg", path=str(HERE)))
                await pilot.press("b")
                await pilot.pause(0.6)
                print("wrote", app.save_screenshot(filename="llmtop-session.svg", path=str(HERE)))
                await pilot.press("l")
                await pilot.pause(0.6)
                print("wrote", app.save_screenshot(filename="llmtop-log-pane.svg", path=str(HERE)))
            collectors.stop()
        watcher.stop()


GiB = 1024**3
RADEON = DxgiAdapter("AMD Radeon RX 7600 XT", luid_key(0, 0xD1B8), 16 * GiB, 16 * GiB)


def recorded_counters(double: OllamaDouble, pids):
    """PDH values of the Radeon before and while the model is loaded (instance names as Windows
    writes them)."""

    def read() -> dict[str, dict[str, float]]:
        loaded = bool(double.loaded)
        adapter = "luid_0x00000000_0x0000D1B8_phys_0"
        runner = f"pid_{max(pids() or {4243})}_{adapter}"
        return {
            "adapter_dedicated": {adapter: (15.4 if loaded else 0.9) * GiB},
            "adapter_shared": {adapter: (2.4 if loaded else 0.3) * GiB},
            "process_dedicated": {runner: 14.3 * GiB if loaded else 0.0},
            "process_shared": {runner: 2.1 * GiB if loaded else 0.0},
            "engine": {f"{runner}_eng_0_engtype_Compute_0": 96.0 if loaded else 0.0},
        }

    return read


async def spillover() -> None:
    config = DoubleConfig(token_rate=8, tokens=40, load_delay_s=1.5, vram_fraction=27 / 81)
    with OllamaDouble(config) as double:
        collectors = SystemCollectors(0.25)
        gpus = probe_gpu_backends(
            "win32",
            collectors.ollama_pids,
            pdh_read=recorded_counters(double, collectors.ollama_pids),
            dxgi=lambda: [RADEON],
            nvml=None,
        )
        collectors.use_gpus(gpus)
        session = Session(OllamaServer(double.url), "llama3.3", collectors, log_reason="not read (--no-log)")
        session.connect()
        collectors.start()
        app = LlmtopApp(PlanRunner({"llama3.3": session}, [PlannedRun("llama3.3", RunSettings())]))
        async with app.run_test(size=(140, 44)) as pilot:
            deadline = time.monotonic() + 30
            while session.current is None or session.current.clock.count < 20:
                if time.monotonic() > deadline:
                    raise SystemExit("the run did not get going")
                await pilot.pause(0.1)
            await pilot.pause(0.5)
            print("wrote", app.save_screenshot(filename="llmtop-spillover.svg", path=str(HERE)))
        collectors.stop()


if __name__ == "__main__":
    asyncio.run(main())
    asyncio.run(spillover())
