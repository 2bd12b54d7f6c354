"""Make the recordings that the screenshots and `llmtop demo` replay, from real runs of llmtop's
session, plan runner and recorder against the Ollama double (tests/ollama_double.py).

    .venv/bin/python screenshots/make_recordings.py

- screenshots/recordings/compare.jsonl: `llmtop llama3.3 --modes cpu,auto --repeat 2` on a double
  that streams 30 tokens/s with the GPU and 12 without and writes Ollama's server log (27 of 81
  layers on the GPU when Ollama decides). RAM and Ollama RSS are this machine's real readings.
- core/data/demo.jsonl (shipped as llmtop/data/demo.jsonl, played by `llmtop demo`): the same plan
  once, at the article's speeds (0.99 tokens/s on the CPU, 1.34 with 27 of 81 layers on the GPU; 16
  tokens a run so the demo lasts under a minute), with recorded counter values of a 16 GB Radeon fed
  through the real Windows counters reader: VRAM fills over the 3 s load and shared GPU memory then
  grows by up to 2.1 GiB while the model generates. RAM and Ollama RSS come from stand-in readers
  that add the model's CPU part as the load reads it; the CPU package's power is a stand-in Energy
  Meter Interface channel (15 W idle, 65 W generating on the CPU alone, 48 W with 27 layers on the
  GPU) read by the real EMI reader; the Radeon's power is n/a, as on Windows, which has no documented
  counter for it. The demo's banner says it is not a measurement.
- screenshots/recordings/engine.jsonl: `llmtop gemma3:270m --headless` against a real engine
  (tests/engine_double.py: llama.cpp loading Gemma 3 270M in an `ollama runner` child, weights
  mapped), where RAM is in use plus the runner's mapped weights. Needs the `engine` extra.
- screenshots/recordings/watch.jsonl: `llmtop watch --headless` beside the double in its 0.30+ mode
  while this script sends it three requests (the second with a 3 s prompt).
- screenshots/recordings/sweep.jsonl: `llmtop llama3.3 --sweep --headless` against the double on the
  article's machine (tests/spilling_machine.py), its GPU read through the real amdgpu sysfs reader,
  its stand-in power (a RAPL counter, amdgpu's hwmon power1_average) through the real powercap and
  hwmon readers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from llmtop.collectors.gpu_collector import probe_gpu_backends  # noqa: E402
from llmtop.collectors.gpu_windows import DxgiAdapter, luid_key  # noqa: E402
from llmtop.collectors.log_sources import FileFollower  # noqa: E402
from llmtop.collectors.log_watch import LogWatcher  # noqa: E402
from llmtop.collectors.ollama_processes import OllamaProcessSample  # noqa: E402
from llmtop.collectors.power_collector import power_unavailable, probe_power_sources  # noqa: E402
from llmtop.collectors.system_collectors import SystemCollectors  # noqa: E402
from llmtop.collectors.system_memory import SystemMemorySample  # noqa: E402
from llmtop.commands.instruments import Instruments  # noqa: E402
from llmtop.commands.model_command import record_sessions  # noqa: E402
from llmtop.measure.mode import parse_modes  # noqa: E402
from llmtop.measure.plan import PlanRunner, build_plan  # noqa: E402
from llmtop.measure.session import RunSettings, Session  # noqa: E402
from llmtop.ollama.api import OllamaServer  # noqa: E402
from ollama_double import DoubleConfig, OllamaDouble, ServerLog  # noqa: E402

GB = 10**9
GiB = 1024**3
RADEON = DxgiAdapter("AMD Radeon RX 7600 XT", luid_key(0, 0xD1B8), 16 * GiB, 16 * GiB)
DEMO_NOTE = (
    "test double of Ollama; recorded counter values of a 16 GB Radeon RX 7600 XT; stand-in RAM readings and CPU power"
)


def record(
    path: Path, config: DoubleConfig, modes: list[str], repeat: int, demo: str | None = None, library: str = "cuda"
) -> None:
    """One plan against a double that writes its server log to a file llmtop follows (`library`: the
    GPU backend the log names, as the GPU's vendor needs)."""
    path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        log_file = Path(folder) / "server.log"
        log_file.write_text("")
        watcher = LogWatcher(FileFollower(log_file, poll_s=0.05))
        watcher.start()
        time.sleep(0.2)  # the follower has opened the file before the double writes to it
        with (
            open(log_file, "a", encoding="utf-8", buffering=1) as writer,
            OllamaDouble(config, log=ServerLog(writer.write, library=library)) as double,
            Instruments() as kit,
        ):
            kit.use_log(watcher)
            if demo is None:  # this machine's own readings, power included (or why not)
                collectors = SystemCollectors(0.25)
                power = probe_power_sources()
                collectors.use_power(power if power.sources else None, power_unavailable(power))
            else:
                collectors = demo_collectors(double)
            kit.use_collectors(collectors)
            session = Session(OllamaServer(double.url), "llama3.3", collectors, log=watcher)
            session.connect()
            plan = build_plan(["llama3.3"], parse_modes(",".join(modes)), repeat, RunSettings())
            args = argparse.Namespace(no_record=False, record=str(path))
            plan_fields = [{"model": p.model, "mode": p.settings.mode, "repeat": p.repeat} for p in plan]
            recorder = kit.record(args, ["llama3.3"], {"plan": plan_fields, "settings": RunSettings(), "demo": demo})
            assert recorder is not None
            record_sessions(recorder.event, {"llama3.3": session})
            kit.start_sampling()
            PlanRunner({"llama3.3": session}, plan).run_all()
            time.sleep(0.5)  # the samples after the run, as a live session has them
    print("wrote", path, f"({path.stat().st_size // 1000} kB)")


DEMO_LOAD_S = 3.0  # the demo double's load delay: the stand-in memory fills over it


def demo_collectors(double: OllamaDouble) -> SystemCollectors:
    """RAM and Ollama RSS of a 64 GB machine, and the Radeon's counters as Windows reports them; the
    model's memory fills over the load (weights read at an even pace) and shared memory grows after."""
    load_started: list[float] = []

    def loaded_part(now: float) -> float:
        """How much of the model is in memory: 0 before the load, 1 once it is done."""
        if not double.loaded:
            load_started.clear()
            return 0.0
        if not load_started:
            load_started.append(now)
        return min(1.0, (now - load_started[0]) / DEMO_LOAD_S)

    def cpu_part(now: float) -> int:
        entry = next(iter(double.loaded.values()), None)
        return 0 if entry is None else int((entry["size"] - entry["size_vram"]) * loaded_part(now))

    def memory(now: float) -> SystemMemorySample:
        used = 14 * GB + cpu_part(now) + spill(now)
        return SystemMemorySample(now, 64 * GB, 64 * GB - used, 0, 8 * GB)

    def processes(now: float) -> OllamaProcessSample:
        runner = cpu_part(now) + 400_000_000 if double.loaded else None
        rss = 90_000_000 + (runner or 0)
        return OllamaProcessSample(now, rss, runner, 4120, (5311,) if runner else ())

    def spill(now: float) -> int:
        """Shared GPU memory in use beyond the 0.3 GiB at rest: grows from the end of a GPU load."""
        entry = next(iter(double.loaded.values()), None)
        part = loaded_part(now)
        if entry is None or not entry["size_vram"] or part <= 0:
            return 0
        since_loaded = max(0.0, now - load_started[0] - DEMO_LOAD_S)
        return int(min(2.1 * GiB, 0.5 * GiB * part + since_loaded * 0.12 * GiB))

    def counters() -> dict[str, dict[str, float]]:
        now = time.monotonic()
        adapter = "luid_0x00000000_0x0000D1B8_phys_0"
        runner = f"pid_5311_{adapter}"
        on_gpu = loaded_part(now) if any(e["size_vram"] for e in double.loaded.values()) else 0.0
        shared = spill(now)
        return {
            "adapter_dedicated": {adapter: (0.9 + 14.5 * on_gpu) * GiB},
            "adapter_shared": {adapter: 0.3 * GiB + shared},
            "process_dedicated": {runner: 14.3 * GiB * on_gpu},
            "process_shared": {runner: float(shared)},
            "engine": {f"{runner}_eng_0_engtype_Compute_0": 96.0 if on_gpu else 0.0},
        }

    collectors = SystemCollectors(0.25, memory_reader=memory, process_reader=processes)
    gpus = probe_gpu_backends("win32", collectors.ollama_pids, pdh_read=counters, dxgi=lambda: [RADEON], nvml=None)
    collectors.use_gpus(gpus)
    power = probe_power_sources("win32", emi=lambda: [DemoEnergyMeter(double)])
    collectors.use_power(power, power_unavailable(power))
    return collectors


class DemoEnergyMeter:
    """A stand-in EMI device with Intel's package channel: its energy (picowatt-hours) grows at the
    CPU's power, which depends on what the double is doing."""

    path = r"\\?\ACPI#INTC1040#0"
    channels = ["RAPL_Package0_PKG", "RAPL_Package0_PP0"]

    def __init__(self, double: OllamaDouble) -> None:
        self.double = double
        self.energy_pwh = 5.0e12
        self.last = time.monotonic()

    def watts(self) -> float:
        entry = next(iter(self.double.loaded.values()), None)
        if entry is None:
            return 15.0
        return 48.0 if entry["size_vram"] else 65.0

    def measure(self) -> list[tuple[int, int]]:
        now = time.monotonic()
        self.energy_pwh += self.watts() * (now - self.last) / 3.6e-9  # joules to picowatt-hours
        self.last = now
        return [(int(self.energy_pwh), int(now * 1e7)), (int(self.energy_pwh * 0.8), int(now * 1e7))]


def record_engine(path: Path) -> None:
    """`llmtop gemma3:270m --headless` as a user runs it, against Ollama with llama.cpp in the runner."""
    from engine_double import MODEL, EngineOllama

    path.unlink(missing_ok=True)
    llmtop = Path(sys.executable).parent / "llmtop"
    with tempfile.TemporaryDirectory() as folder, EngineOllama(Path(folder)) as ollama:
        args = [MODEL, "--host", ollama.url, "--log", str(ollama.log_path), "--headless", "--no-history"]
        subprocess.run([str(llmtop), *args, "--record", str(path)], check=True, capture_output=True)
    print("wrote", path, f"({path.stat().st_size // 1000} kB)")


def record_sweep(path: Path) -> None:
    """`llmtop llama3.3 --sweep --headless` as a user runs it, against the double on the article's machine
    (tests/spilling_machine.py: a 16 GB Radeon whose amdgpu counters llmtop reads from a sysfs tree,
    tokens/s that rises with the GPU layers until VRAM is full and falls as shared memory grows, and
    loads past the shared memory that fail). Real time: the article's 0.9-1.3 tokens/s, 12 tokens a run."""
    from spilling_machine import SpillingMachine

    path.unlink(missing_ok=True)
    llmtop = Path(sys.executable).parent / "llmtop"
    # ignore_cleanup_errors: the stand-in RAPL counter's thread may write once more while the tree goes.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as folder:
        machine = SpillingMachine(speedup=1.0)
        sysfs = machine.install(Path(folder) / "sys", power=True)
        log_file = Path(folder) / "server.log"
        log_file.write_text("")
        config = DoubleConfig(
            tokens=12, load_delay_s=1.0, prompt_delay_s=0.5, machine=machine, gpu_name="AMD Radeon RX 7600 XT"
        )
        with (
            open(log_file, "a", encoding="utf-8", buffering=1) as writer,
            OllamaDouble(config, log=ServerLog(writer.write, library="rocm")) as double,
        ):
            args = [
                "llama3.3", "--host", double.url, "--log", str(log_file), "--sweep", "--headless", "--no-history",
            ]  # fmt: skip
            env = {**os.environ, "LLMTOP_SYSFS_ROOT": str(sysfs)}
            subprocess.run([str(llmtop), *args, "--record", str(path)], check=True, capture_output=True, env=env)
    print("wrote", path, f"({path.stat().st_size // 1000} kB)")


def record_watch(path: Path) -> None:
    """`llmtop watch --headless` as a user runs it, beside the double in its Ollama 0.30+ mode (the
    log has llama-server's request timings), while another program (this script) sends it three
    requests, the second with a long prompt."""
    import json
    import urllib.request

    path.unlink(missing_ok=True)
    llmtop = Path(sys.executable).parent / "llmtop"
    with tempfile.TemporaryDirectory() as folder:
        log_file = Path(folder) / "server.log"
        log_file.write_text("")
        config = DoubleConfig(token_rate=12, tokens=40, load_delay_s=2.0, vram_fraction=27 / 81, llama_server_log=True)
        with (
            open(log_file, "a", encoding="utf-8", buffering=1) as writer,
            OllamaDouble(config, log=ServerLog(writer.write)) as double,
        ):
            args = [
                "watch", "--host", double.url, "--log", "server.log", "--headless", "--no-history",
                "--duration", "24", "--record", str(path.resolve()),
            ]  # fmt: skip
            # Run from the log's folder, so the recording (and the picture) name the log as a user's
            # `--log server.log` would, not by a temporary folder's path.
            watch = subprocess.Popen(
                [str(llmtop), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder
            )
            time.sleep(3)
            for prompt_delay in (0.2, 3.0, 0.2):
                double.config.prompt_delay_s = prompt_delay
                body = json.dumps({"model": "llama3.3", "prompt": "hello"}).encode()
                request = urllib.request.Request(f"{double.url}/api/generate", body)
                with urllib.request.urlopen(request, timeout=120) as answer:
                    answer.read()
                time.sleep(1)
            watch.wait(60)
    print("wrote", path, f"({path.stat().st_size // 1000} kB)")


def main() -> None:
    (HERE / "recordings").mkdir(exist_ok=True)
    record(
        HERE / "recordings" / "compare.jsonl",
        DoubleConfig(token_rate=30, cpu_token_rate=12, tokens=45, load_delay_s=1.5, vram_fraction=27 / 81),
        ["cpu", "auto"],
        2,
    )
    record_demo()
    record_engine(HERE / "recordings" / "engine.jsonl")
    record_sweep(HERE / "recordings" / "sweep.jsonl")
    record_watch(HERE / "recordings" / "watch.jsonl")


def record_demo() -> None:
    record(
        ROOT / "core" / "data" / "demo.jsonl",
        DoubleConfig(
            token_rate=1.34,
            cpu_token_rate=0.99,
            tokens=16,
            load_delay_s=3.0,
            prompt_delay_s=2.0,
            vram_fraction=27 / 81,
            gpu_name=RADEON.name,
        ),
        ["cpu", "auto"],
        1,
        demo=DEMO_NOTE,
        library="rocm",  # the Radeon's: Ollama runs AMD GPUs through ROCm
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["sweep"]:  # only the sweep's recording
        record_sweep(HERE / "recordings" / "sweep.jsonl")
    elif sys.argv[1:] == ["demo"]:  # only the demo's
        record_demo()
    elif sys.argv[1:] == ["watch"]:  # only the watch session's
        record_watch(HERE / "recordings" / "watch.jsonl")
    else:
        main()
