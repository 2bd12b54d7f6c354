"""llmtop as a user runs it: the command line, a run with the user's environment, no traceback."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

LLMTOP = shutil.which("llmtop", path=str(Path(sys.executable).parent)) or shutil.which("llmtop")


def command(*args):
    return [LLMTOP, *args] if LLMTOP else [sys.executable, "-m", "llmtop", *args]


def llmtop(*args, env=None, timeout=60):
    environment = {k: v for k, v in os.environ.items() if k != "OLLAMA_HOST"}
    environment.update(env or {})
    return subprocess.run(
        command(*args), capture_output=True, text=True, timeout=timeout, env=environment, stdin=subprocess.DEVNULL
    )


def no_traceback(result):
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout


TESTS = Path(__file__).resolve().parent.parent  # tests/


def stand_in_path(tmp_path: Path) -> str:
    """A folder holding an `ollama` that runs tests/stand_in_ollama.py, first on PATH."""
    folder = tmp_path / "bin"
    folder.mkdir()
    launcher = folder / "ollama"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{TESTS / "stand_in_ollama.py"}" "$@"\n')
    launcher.chmod(launcher.stat().st_mode | stat.S_IEXEC)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def user_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "OLLAMA_HOST"}
