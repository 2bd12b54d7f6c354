"""The machine a run happened on: CPU, RAM, GPUs, OS, versions (for exports and the history)."""

from __future__ import annotations

import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llmtop import __version__
from llmtop.collectors.gpu_reading import GpuReading


def cpu_model(proc: Path = Path("/proc"), platform_name: str = sys.platform) -> str | None:
    """The CPU's marketing name, e.g. `AMD Ryzen 9 7950X 16-Core Processor`."""
    if platform_name.startswith("linux"):
        try:
            for line in (proc / "cpuinfo").read_text(errors="replace").splitlines():
                if line.startswith(("model name", "Model")):
                    return line.split(":", 1)[1].strip()
        except OSError:
            return None
    if platform_name == "darwin":
        try:
            done = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
            )
            return done.stdout.strip() or None
        except (OSError, subprocess.TimeoutExpired):
            return None
    return platform.processor() or None


def describe_machine(gpus: Sequence[GpuReading] = (), ollama_version: str | None = None) -> dict[str, Any]:
    """llama-bench's names where they overlap (`cpu_info`, `gpu_info`)."""
    try:
        import psutil

        ram_total = int(psutil.virtual_memory().total)
    except (ImportError, OSError):  # a sandbox that hides /proc/meminfo
        ram_total = None
    return {
        "cpu_info": cpu_model(),
        "ram_total_bytes": ram_total,
        "gpu_info": ", ".join(g.name for g in gpus) or None,
        "gpus": [{"name": g.name, "vram_total_bytes": g.dedicated_total, "backend": g.backend} for g in gpus],
        "os": platform.platform(),
        "ollama_version": ollama_version,
        "llmtop_version": __version__,
    }


PROBE_FILE = "memory-probe.json"  # `llmtop fit`'s probe of system memory, in llmtop's data folder


def machine_identity(machine: Mapping[str, Any]) -> str:
    """What a probe of this machine is kept under: its CPU and its RAM (describe_machine's)."""
    return f"{machine.get('cpu_info')} / {machine.get('ram_total_bytes')}"
