"""A headless run beside a real `ollama serve` (tests/real_ollama.py): its export, recording and processes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from helpers.cli import command, no_traceback
from real_ollama import RealOllama

RUN_TIMEOUT_S = 300


def run_llmtop(server: RealOllama, folder: Path, *args: str, timeout: float = RUN_TIMEOUT_S, **env: str):
    """`llmtop ARGS --headless` as a user runs it beside this server, its log read from the file
    Ollama writes; the export and the recording in `folder`."""
    argv = command(
        *args, "--headless", "--no-history", "--export", str(folder / "run.json"), "--record", str(folder / "run.jsonl")
    )
    environment = {k: v for k, v in os.environ.items() if k != "OLLAMA_HOST"}
    environment.update(env)
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=environment, stdin=subprocess.DEVNULL
    )
    no_traceback(result)
    return result


def exported(folder: Path) -> list[dict[str, Any]]:
    return list(json.loads((folder / "run.json").read_text(encoding="utf-8"))["runs"])


def events(folder: Path, kind: str) -> list[dict[str, Any]]:
    lines = (folder / "run.jsonl").read_text(encoding="utf-8").splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == kind]


def runner_pids(server: RealOllama) -> set[int]:
    """The processes below `ollama serve`: its runner or llama-server, while a model is loaded."""
    return set(server.process_tree()[1:])


def server_processes(server: RealOllama) -> list[int]:
    """Processes of this test's Ollama (its own HOME), wherever they were started from."""
    import psutil

    home = str(server.folder / "home")
    found = []
    for process in psutil.process_iter(["pid", "name"]):
        try:
            if process.environ().get("HOME") == home and "ollama" in " ".join(process.cmdline()):
                found.append(process.pid)
        except (psutil.Error, OSError):
            continue
    return found


def serve_env(server: RealOllama) -> dict[str, str]:
    env = server.env()
    env.pop("OLLAMA_HOST")  # --serve chooses a free port itself
    return env
