"""Lint, format and types, run with the tests so that CI and the README's test command check them.

mypy must see the import package `llmtop` as it is installed: core/ is `llmtop`, collectors/ and tui/
its subpackages. An editable install maps them with an import hook that mypy cannot follow, so the
sources are laid out under that name in a temporary folder and checked there; errors are reported
with the repository's own paths.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = {"": ROOT / "core", "collectors": ROOT / "collectors", "tui": ROOT / "tui"}


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_finds_nothing_to_fix():
    result = ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_code_is_formatted():
    result = ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def _mypy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    mypy_api = pytest.importorskip("mypy.api")
    tree = tmp_path / "llmtop"
    for sub, source in PACKAGE.items():
        shutil.copytree(source, tree / sub, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "data"))
    monkeypatch.setenv("MYPYPATH", str(tmp_path))
    config = ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path / "cache")]
    out, err, status = mypy_api.run([*config, *args])
    for sub, source in PACKAGE.items():  # name the repository's files, not the copies
        if sub:
            out = out.replace(str(tree / sub), source.name)
    return status, out.replace(str(tree), "core") + err


def test_mypy_passes_on_the_package(tmp_path, monkeypatch):
    status, said = _mypy(tmp_path, monkeypatch, "-p", "llmtop")
    assert status == 0, said


def test_mypy_strict_passes_on_the_measurement_and_the_ollama_client(tmp_path, monkeypatch):
    """Where the figures are computed and Ollama is spoken to, every function is typed, no Any leaks
    out of a return, and no generic goes without its arguments."""
    status, said = _mypy(tmp_path, monkeypatch, "--strict", "-p", "llmtop.measure", "-p", "llmtop.ollama")
    assert status == 0, said
