"""A stand-in for the `ollama` executable: `ollama serve` runs the double on OLLAMA_HOST's port and
prints the server log (real formats) on stderr, as the real server does. Tests put a launcher for it
first on PATH to exercise `llmtop --serve`."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ollama_double import DoubleConfig, OllamaDouble, ServerLog  # noqa: E402


def main(argv: list[str]) -> int:
    if argv[:1] != ["serve"]:
        sys.stderr.write("Error: the stand-in ollama only knows `serve`\n")
        return 1
    host = os.environ.get("OLLAMA_HOST", "127.0.0.1:11434")
    port = int(host.rsplit(":", 1)[1])
    config = DoubleConfig(
        token_rate=float(os.environ.get("STAND_IN_RATE", "100")),
        tokens=30,
        load_delay_s=0.3,
        vram_fraction=27 / 81,
        fault=os.environ.get("STAND_IN_FAULT") or None,
    )

    def write(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    names = ("OLLAMA_FLASH_ATTENTION", "OLLAMA_KV_CACHE_TYPE", "OLLAMA_NUM_PARALLEL")
    settings = {k: v for k, v in os.environ.items() if k in names}
    listed = " ".join(f"{k}:{v}" for k, v in sorted(settings.items()))
    config_line = f'msg="server config" env="map[{listed}]"'
    write(f"time=2026-06-02T10:00:00.000Z level=INFO source=routes.go:1187 {config_line}\n")
    double = OllamaDouble(config, port=port, log=ServerLog(write, server_env=settings))
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    double.start()
    stopped.wait()
    double.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
