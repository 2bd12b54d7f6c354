"""A stand-in for the `ollama` executable: `ollama serve` runs the double on OLLAMA_HOST's port and
prints the server log (real formats) on stderr, as the real server does. Tests put a launcher for it
first on PATH to exercise `llmtop --serve`.

Its environment scripts it, as a test sets it for llmtop (which passes it on): STAND_IN_VERSION (the
Ollama it plays, 0.5.11 by default; 0.30 on logs as llama-server and obeys LLAMA_ARG_*CPU_MOE),
STAND_IN_SYSFS (a sysfs root the spilling machine's amdgpu counters are written under: the GPU too
small, its spill and speed shaped by the server's settings; STAND_IN_SPEEDUP: how much faster than
that machine it generates, 100 by default), STAND_IN_RATE, STAND_IN_FAULT."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ollama_double import LLAMA33, TANUKI, DoubleConfig, OllamaDouble, ServerLog  # noqa: E402
from spilling_machine import SpillingMachine  # noqa: E402


def main(argv: list[str]) -> int:
    if argv[:1] != ["serve"]:
        sys.stderr.write("Error: the stand-in ollama only knows `serve`\n")
        return 1
    host = os.environ.get("OLLAMA_HOST", "127.0.0.1:11434")
    port = int(host.rsplit(":", 1)[1])
    version = os.environ.get("STAND_IN_VERSION", "0.5.11")
    major_minor = tuple(int(part) for part in version.split(".")[:2])
    machine = None
    if sysfs := os.environ.get("STAND_IN_SYSFS"):
        machine = SpillingMachine(speedup=float(os.environ.get("STAND_IN_SPEEDUP", "100")))
        machine.install(Path(sysfs))  # idle: a restarted server's runner has freed the GPU's memory
    config = DoubleConfig(
        version=version,
        models={"llama3.3:latest": dict(LLAMA33), "tanuki-8x8b:latest": dict(TANUKI)},
        token_rate=float(os.environ.get("STAND_IN_RATE", "100")),
        tokens=30,
        load_delay_s=0.3,
        vram_fraction=27 / 81,
        fault=os.environ.get("STAND_IN_FAULT") or None,
        machine=machine,
        gpu_name="AMD Radeon RX 7600 XT" if machine is not None else "NVIDIA GeForce RTX 4060 Ti",
    )

    def write(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    names = ("OLLAMA_FLASH_ATTENTION", "OLLAMA_KV_CACHE_TYPE", "OLLAMA_NUM_PARALLEL")
    settings = {k: v for k, v in os.environ.items() if k in names}
    listed = " ".join(f"{k}:{v}" for k, v in sorted(settings.items()))
    config_line = f'msg="server config" env="map[{listed}]"'
    write(f"time=2026-06-02T10:00:00.000Z level=INFO source=routes.go:1187 {config_line}\n")
    moe = {k: v for k, v in os.environ.items() if k in ("LLAMA_ARG_CPU_MOE", "LLAMA_ARG_N_CPU_MOE")}
    era = "llama-server" if major_minor >= (0, 30) else "0.5"
    log = ServerLog(write, era, library="rocm" if machine is not None else "cuda", server_env={**settings, **moe})
    double = OllamaDouble(config, port=port, log=log)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    double.start()
    stopped.wait()
    double.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
