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
from collections.abc import Callable
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


def found_in_package(finder: Callable[[str], list[int]]) -> list[str]:
    """`path:line` of every line `finder` finds in the package's sources."""
    return [
        f"{path.relative_to(ROOT)}:{line}"
        for folder in PACKAGE.values()
        for path in sorted(folder.rglob("*.py"))
        for line in finder(path.read_text(encoding="utf-8"))
    ]


def _broad(node: object) -> bool:
    import ast

    names = node.elts if isinstance(node, ast.Tuple) else [node]
    return any(isinstance(n, ast.Name) and n.id in ("Exception", "BaseException") for n in names)


def broad_catches(source: str) -> list[int]:
    """The lines of every `except Exception` (or BaseException) handler, and of a bare `except:`."""
    import ast

    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ExceptHandler) and (node.type is None or _broad(node.type))
    ]


def unexplained_catches(source: str) -> list[int]:
    """The broad catches whose line gives no reason (a comment on the `except` line)."""
    lines = source.splitlines()
    return [number for number in broad_catches(source) if "#" not in lines[number - 1]]


def silent_catches(source: str) -> list[int]:
    """The lines of `except Exception` (or BaseException) handlers that neither use what they caught nor
    raise: a reader that breaks on a new driver would say nothing."""
    import ast

    found = []
    for handler in ast.walk(ast.parse(source)):
        if not isinstance(handler, ast.ExceptHandler) or not _broad(handler.type):
            continue
        body = [node for statement in handler.body for node in ast.walk(statement)]
        used = handler.name is not None and any(isinstance(n, ast.Name) and n.id == handler.name for n in body)
        if not used and not any(isinstance(n, ast.Raise) for n in body):
            found.append(handler.lineno)
    return found


def test_no_exception_is_caught_silently():
    """Every broad catch in the package writes what it caught somewhere (errors.log through
    data_folder.reader_failed, a reason shown, a problem kept) or raises; the rest are narrowed to what
    the call can raise."""
    silent = found_in_package(silent_catches)
    assert not silent, silent


def test_the_silent_catch_finder_finds_one():
    assert silent_catches("try:\n    f()\nexcept Exception:\n    pass\n") == [3]
    assert silent_catches("try:\n    f()\nexcept (OSError, Exception) as exc:\n    g()\n") == [3]
    assert silent_catches("try:\n    f()\nexcept Exception as exc:\n    say(exc)\n") == []
    assert silent_catches("try:\n    f()\nexcept OSError:\n    pass\n") == []


def test_any_exception_is_caught_in_few_places_each_with_its_reason():
    """A reader calls a driver through data_folder.guarded (written to errors.log, once per reader), a
    backend or a thread's loop through data_folder.attempt (a reason on screen); beyond those two only
    the command line's last line of defence and a run's or the screen's thread catch anything, so a
    newcomer finds every broad catch in one short list, each saying why on its line."""
    broad = found_in_package(broad_catches)
    assert len(broad) <= 10, broad
    unexplained = found_in_package(unexplained_catches)
    assert not unexplained, unexplained


def test_the_broad_catch_finders_find_one():
    source = "try:\n    f()\nexcept Exception as exc:  # why\n    say(exc)\ntry:\n    g()\nexcept:\n    raise\n"
    assert broad_catches(source) == [3, 7]
    assert unexplained_catches(source) == [7]
    assert broad_catches("try:\n    f()\nexcept (OSError, ValueError):\n    pass\n") == []


def oversized(source: str, most_lines: int = 600, most_methods: int = 25) -> list[str]:
    """What a newcomer could not read in one sitting: the module itself when it has more than
    `most_lines` lines, and each class with more than `most_methods` methods."""
    import ast

    found = [f"{len(source.splitlines())} lines"] if len(source.splitlines()) > most_lines else []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            methods = sum(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in node.body)
            if methods > most_methods:
                found.append(f"class {node.name}: {methods} methods")
    return found


def test_no_module_or_class_is_too_big_to_read():
    """ARCHITECTURE.md's promise for the newcomer's first hour: no module over 600 lines, no class over 25
    methods (the screen's keys and messages included)."""
    big = [
        f"{path.relative_to(ROOT)}: {what}"
        for folder in PACKAGE.values()
        for path in sorted(folder.rglob("*.py"))
        for what in oversized(path.read_text(encoding="utf-8"))
    ]
    assert not big, big


def test_the_size_finder_finds_one():
    methods = "".join(f"    def m{i}(self):\n        pass\n" for i in range(26))
    assert oversized("class A:\n" + methods) == ["class A: 26 methods"]
    assert oversized("x = 1\n" * 601) == ["601 lines"]
    assert oversized("class A:\n" + methods, most_lines=10**6, most_methods=26) == []


def test_no_test_module_imports_another():
    """What tests share lives in tests/helpers/ (or a double's module, or conftest.py's fixtures): a test
    module imported by another runs its module-level code twice and ties their fates together."""
    import ast

    importing = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            importing += [f"{path.relative_to(ROOT)}: {m}" for m in modules if m.split(".")[-1].startswith("test_")]
    assert not importing, importing


def test_the_word_for_a_figure_not_read_is_written_once():
    """`n/a` is units.NA: no other string of the package (docstrings aside) spells it, so the screen, the
    exports and the commands cannot drift apart."""
    import ast

    spelled = []
    for folder in PACKAGE.values():
        for path in sorted(folder.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            docstrings = {
                id(node.body[0].value)
                for node in ast.walk(tree)
                if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and node.body
                and isinstance(node.body[0], ast.Expr)
                and isinstance(node.body[0].value, ast.Constant)
            }
            spelled += [
                f"{path.relative_to(ROOT)}:{node.lineno}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and "n/a" in node.value
                and id(node) not in docstrings
            ]  # fmt: skip
    assert spelled == ["core/units.py:11"], spelled


def test_the_memory_labels_and_the_gpu_reasons_are_written_once():
    """A memory figure's label (a gauge's, a chart series', a colour's key) and the reasons a GPU figure is
    not read are llmtop.words: no other string of the package is one of them (figures.py, which names
    every column once, aside), nor spells the reason within a longer text. ("shared" is also the key of
    a GPU figure's reason and a metric's label: another word, spelled alike, not held here.)"""
    import ast

    from llmtop import words

    labels = {words.RAM, words.OLLAMA_RSS, words.VRAM, words.UNIFIED, words.SHARED_GPU}
    reasons = (words.NO_GPU_READ, words.NOT_READ_ON_THIS_GPU)
    spelled = []
    for folder in PACKAGE.values():
        for path in sorted(folder.rglob("*.py")):
            if path.name in ("words.py", "figures.py") and path.parent == PACKAGE[""]:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if node.value in labels or any(node.value.startswith(reason) for reason in reasons):
                        spelled.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not spelled, spelled


WIRES = ("observer", "judge", "usual_answer", "plan_facts")  # the parts once set on a run after it was built


def wirings(source: str) -> list[int]:
    """The lines that make one object talk to another by setting an attribute of it after it was built:
    a function (a lambda, or a callback named on_*) or a run's part assigned to another object's field."""
    import ast

    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            if not isinstance(target, ast.Attribute):
                continue
            if isinstance(target.value, ast.Name) and target.value.id in ("self", "cls"):
                continue
            callback = target.attr.startswith("on_") and not isinstance(
                node.value, (ast.Compare, ast.BoolOp, ast.Constant)
            )
            if isinstance(node.value, ast.Lambda) or callback or target.attr in WIRES:
                found.append(node.lineno)
    return found


def test_no_object_is_wired_to_another_after_it_is_built():
    """A run's parts take what they talk to when they are built (a session its event stream, judge and
    usual answer; the runner its plan facts) and the rest subscribe to the event stream
    (measure/events.py): no callback or part is set on another object afterwards."""
    wired = found_in_package(wirings)
    assert not wired, wired


def test_the_wiring_finder_finds_one():
    assert wirings("session.observer = reporter\n") == [1]
    assert wirings("runner.on_note = lambda message: print(message)\n") == [1]
    assert wirings("signals.on_stop = app.stop_for_signal\n") == [1]
    assert wirings("world.anything = lambda: 1\n") == [1]
    assert wirings("self.on_note = on_note\nrecord.error = reason\nfit.on_device = kind == 'device'\n") == []


def test_the_command_line_stays_in_commands():
    """argparse (its parsers, its namespaces) is the commands' business: the modules below them take
    plain values, so they are called the same from a test, a replay or another command."""
    below = [
        f"{path.relative_to(ROOT)}"
        for folder in PACKAGE.values()
        for path in sorted(folder.rglob("*.py"))
        if "argparse" in path.read_text(encoding="utf-8") and path.parent != PACKAGE[""] / "commands"
    ]
    assert not below, below
