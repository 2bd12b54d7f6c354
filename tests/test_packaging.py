"""The sdist and the wheel as PyPI would get them: built from the repository, checked by twine, and
holding what llmtop needs at run time under the distribution name of our own."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from llmtop import __version__

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return out


def test_twine_accepts_the_sdist_and_the_wheel(dist):
    files = sorted(str(p) for p in dist.iterdir())
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *files], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_wheel_is_llmtop_ollama_with_the_llmtop_command_and_its_data(dist):
    (wheel,) = dist.glob("*.whl")
    assert wheel.name.startswith(f"llmtop_ollama-{__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"llmtop_ollama-{__version__}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert "Name: llmtop-ollama\n" in metadata and f"Version: {__version__}\n" in metadata
    assert "llmtop = llmtop.commands.cli:main" in entry_points
    for needed in ("llmtop/data/demo.jsonl", "llmtop/tui/llmtop.tcss", "llmtop/collectors/ollama_log.py"):
        assert needed in names
    assert not any(name.startswith(("tests/", "bench/", "core/")) for name in names)


def test_the_sdist_holds_the_sources_and_the_tests(dist):
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"pyproject.toml", "README.md", "core/data/demo.jsonl", "tui/llmtop.tcss"} <= names
