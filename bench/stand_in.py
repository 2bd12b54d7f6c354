"""A stand-in Ollama for the benchmarks, in processes named as Ollama's are.

`StandIn(folder, ...)` starts `ollama serve`: the test double (tests/ollama_double.py, the real
NDJSON) on a free port. When a model is loaded it starts `ollama runner` as its child, holding
RUNNER_MB of memory, and stops it when the model is unloaded, so llmtop's process collector finds
and reads a server and a runner as it does on a real machine.

Work modes:
- "paced": tokens come at a fixed rate (a GPU-bound model: the monitor's cost is its own).
- "cpu": each token is CPU work done by one thread per core in the runner, which meet after every
  token as llama.cpp's threads do; tokens/s then falls if anything else takes CPU time (the
  observer effect).

The processes are a symlink named `ollama` to the Python interpreter, run as `ollama serve` and
`ollama runner` in a folder holding scripts of those names (tests/engine_double.py's
`named_interpreter`, which the real engine's double uses too).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RUNNER_MB = 64
WORK_BLOCK = 1 << 20  # sha256 releases the GIL on blocks this large: the threads run in parallel


class StandIn:
    """`ollama serve` in a child process; `url` is its address. Use as a context manager."""

    def __init__(
        self, folder: Path, mode: str = "paced", rate: float = 30.0, tokens: int = 900, work_ms: float = 40.0
    ) -> None:
        sys.path.insert(0, str(BENCH.parent / "tests"))
        from engine_double import free_port, named_interpreter
        from llmtop.collectors.log_sources import wait_for_port

        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        executable = named_interpreter(folder, {"serve": __file__, "runner": __file__})
        env = dict(
            os.environ,
            OLLAMA_HOST=f"127.0.0.1:{self.port}",
            STAND_IN_MODE=mode,
            STAND_IN_RATE=str(rate),
            STAND_IN_TOKENS=str(tokens),
            STAND_IN_WORK_MS=str(work_ms),
        )
        self.process = subprocess.Popen([str(executable), "serve"], cwd=folder, env=env)
        if not wait_for_port(self.port, 20, lambda: self.process.poll() is None):
            self.close()
            raise RuntimeError("the stand-in Ollama did not start")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def __enter__(self) -> StandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve() -> None:
    """`ollama serve`: the double, with a runner process per loaded model."""
    sys.path.insert(0, str(BENCH.parent / "tests"))
    from ollama_double import DoubleConfig, OllamaDouble

    mode = os.environ["STAND_IN_MODE"]
    runner: dict[str, subprocess.Popen[bytes]] = {}
    lock = threading.Lock()

    def load(name: str) -> None:
        with lock:
            runner[name] = subprocess.Popen(
                [str(Path.cwd() / "ollama"), "runner"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
            )
            runner[name].stdout.read(1)  # ready: memory touched, threads started

    def unload(name: str) -> None:
        with lock:
            process = runner.pop(name, None)
        if process is not None:
            process.stdin.close()
            process.wait()

    def next_token() -> None:
        with lock:
            process = next(iter(runner.values()))
        process.stdin.write(b"t")
        process.stdout.read(1)

    config = DoubleConfig(
        token_rate=float(os.environ["STAND_IN_RATE"]),
        tokens=int(os.environ["STAND_IN_TOKENS"]),
        load_delay_s=0.3,
        vram_fraction=27 / 81,
        next_token=next_token if mode == "cpu" else None,
        on_load=load,
        on_unload=unload,
    )
    port = int(os.environ["OLLAMA_HOST"].rsplit(":", 1)[1])
    double = OllamaDouble(config, port=port).start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    double.stop()
    for name in list(runner):
        unload(name)


def runner() -> None:
    """`ollama runner`: holds RUNNER_MB; in "cpu" mode, does one token's work per byte read."""
    weights = bytearray(RUNNER_MB << 20)
    for offset in range(0, len(weights), 4096):
        weights[offset] = 1
    block = bytes(weights[:WORK_BLOCK])
    threads = os.cpu_count() or 1
    start, done = threading.Barrier(threads + 1), threading.Barrier(threads + 1)
    digest = hashlib.sha256(block)  # warm up, then time one block at its best of 20
    best = float("inf")
    for _ in range(20):
        started = time.perf_counter()
        digest.update(block)
        best = min(best, time.perf_counter() - started)
    blocks = max(1, round(float(os.environ["STAND_IN_WORK_MS"]) / 1000 / best))

    def work() -> None:
        while True:
            start.wait()
            digest = hashlib.sha256()
            for _ in range(blocks):
                digest.update(block)
            done.wait()

    if os.environ["STAND_IN_MODE"] == "cpu":
        for _ in range(threads):
            threading.Thread(target=work, daemon=True).start()
    sys.stdout.buffer.write(b"r")
    sys.stdout.flush()
    while sys.stdin.buffer.read(1):
        start.wait()
        done.wait()
        sys.stdout.buffer.write(b"t")
        sys.stdout.flush()
