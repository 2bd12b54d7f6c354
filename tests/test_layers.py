"""The package's rooms and floors (ARCHITECTURE.md): every import points down or stays in its room,
no import circle, no command module imports another, and the screen does no energy or memory
arithmetic. Read from the sources' own imports (every `import`, also inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"llmtop": ROOT / "core", "llmtop.collectors": ROOT / "collectors", "llmtop.tui": ROOT / "tui"}

# Lowest first. A module may import from its own room and from rooms on lower floors only; rooms on
# one floor do not import each other.
FLOORS: list[set[str]] = [
    {"llmtop", "units", "words", "data_folder", "exit_status"},
    {"ollama", "collectors"},
    {"measure"},
    {"watch", "figures"},
    {"tables"},
    {"store"},
    {"tui"},
    {"commands"},
    {"__main__"},
]


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found.setdefault(".".join([package, *parts]), path)
    return found


MODULES = modules()


def imports_of(name: str, path: Path) -> set[str]:
    """The llmtop modules that `name` imports, resolved to modules (not the names in them)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        for target in targets:
            while target and target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in MODULES and target != name:
                found.add(target)
    return found


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def room(name: str) -> str:
    """`llmtop.measure.session` -> measure; `llmtop.units` -> units; `llmtop` -> llmtop."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def floor(name: str) -> int:
    for number, rooms in enumerate(FLOORS):
        if room(name) in rooms:
            return number
    raise AssertionError(f"{name} is in no room of FLOORS: give its folder a floor")


def test_every_module_has_a_floor():
    for name in MODULES:
        floor(name)


def test_imports_point_down_or_stay_in_their_room():
    upward = [
        f"{name} ({room(name)}) imports {target} ({room(target)})"
        for name, targets in GRAPH.items()
        for target in targets
        if room(target) != room(name)
        and (floor(target) > floor(name) or floor(target) == floor(name))
        and room(target) != "llmtop"
    ]
    assert upward == []


def test_no_import_circle():
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(GRAPH[name]):
            if state.get(target) == 1:
                circles.append([*path[path.index(target) :], target] if target in path else [name, target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert circles == []


def test_no_command_module_imports_another():
    commands = {name for name in MODULES if name.endswith("_command")}
    assert len(commands) >= 6
    crossing = [f"{name} imports {target}" for name in commands for target in GRAPH[name] & commands]
    assert crossing == []


def test_every_subcommand_module_is_named_like_the_others():
    from llmtop.commands.cli import SUBCOMMAND_MODULES

    for module in SUBCOMMAND_MODULES.values():
        assert module.startswith("llmtop.commands.") and module.endswith("_command"), module
        assert module in MODULES


ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div)
FIGURE_WORDS = (
    "joule", "energy", "watt", "power", "mapped", "_used", "used_bytes", "rss", "idle", "shared", "dedicated",
    "vram", "size_", "_size",
)  # fmt: skip


def _is_text(node: ast.expr) -> bool:
    if isinstance(node, ast.IfExp):
        return _is_text(node.body) and _is_text(node.orelse)
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def _text(node: ast.BinOp) -> bool:
    """A string joined, not a figure computed."""
    return any(_is_text(side) for side in (node.left, node.right))


@pytest.mark.parametrize("path", sorted((ROOT / "tui").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_screen_does_no_energy_or_memory_arithmetic(path):
    """The apps and widgets format and lay out: an addition, subtraction, product or quotient whose
    operands name energy, power or memory belongs in measure/ (computed once, for every output)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ARITHMETIC) and not _text(node):
            text = ast.unparse(node).lower()
            if any(word in text for word in FIGURE_WORDS):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    assert found == []
