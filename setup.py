"""What the build puts in the wheel, found in the tree rather than listed by hand.

One import name, `llmtop`, for three top-level folders: core/ is the package itself, collectors/
and tui/ are its subpackages. Every folder under them is a package (setuptools' own discovery, run
over each folder of the mapping; a folder without an `__init__.py`, such as core/data, is a
namespace package), and every other file under them (styles, recordings, dashboards: anything but
Python sources and caches) ships as package data, so a new subpackage or data file is in the wheel
the day it is added. The rest of the metadata is in pyproject.toml; the version is written once, in
core/__init__.py.
"""

from __future__ import annotations

import re
from pathlib import Path

from setuptools import find_namespace_packages, setup

ROOT = Path(__file__).resolve().parent
FOLDERS = {"llmtop": "core", "llmtop.collectors": "collectors", "llmtop.tui": "tui"}
NOT_DATA = {".py", ".pyc", ".pyo"}


def packages() -> list[str]:
    """Every package under the mapped folders, by its import name: each folder is one, with or without an
    `__init__.py` (core/data, which holds only data, is the namespace package `llmtop.data`)."""
    found = []
    for name, folder in FOLDERS.items():
        found.append(name)
        subpackages = find_namespace_packages(str(ROOT / folder), exclude=["__pycache__", "*.__pycache__"])
        found += [f"{name}.{sub}" for sub in subpackages if not sub.startswith(".")]
    return sorted(found)


def package_data(names: list[str]) -> dict[str, list[str]]:
    """Every file that is not Python source, under the package whose folder holds it most closely."""
    folders = {name: _folder(name) for name in names}
    data: dict[str, list[str]] = {}
    for folder in FOLDERS.values():
        for path in sorted((ROOT / folder).rglob("*")):
            relative = path.relative_to(ROOT)
            hidden = any(part.startswith((".", "__pycache__")) for part in relative.parts)
            if not path.is_file() or path.suffix in NOT_DATA or hidden:
                continue
            owners = [name for name, place in folders.items() if place in relative.parents]
            owner = max(owners, key=lambda name: len(folders[name].parts))
            data.setdefault(owner, []).append(relative.relative_to(folders[owner]).as_posix())
    return data


def _folder(name: str) -> Path:
    """`llmtop.tui.panels` -> tui/panels (relative to the repository)."""
    root = max((n for n in FOLDERS if name == n or name.startswith(n + ".")), key=len)
    return Path(FOLDERS[root], *name[len(root) :].split(".")[1:])


def version() -> str:
    text = (ROOT / "core" / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if found is None:
        raise SystemExit("core/__init__.py does not set __version__")
    return found.group(1)


if __name__ == "__main__":
    found_packages = packages()
    setup(
        version=version(),
        packages=found_packages,
        package_dir=FOLDERS,
        package_data=package_data(found_packages),
    )
