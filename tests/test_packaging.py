"""The sdist and the wheel as PyPI would get them: built from the repository, checked by twine, and
holding what llmtop needs at run time under the distribution name of our own; and the wheel installed
as a user installs it (pip, pipx, uv: not editable, in an environment of its own, run from outside the
repository), imported module by module, its commands run, its screens started on a pseudo terminal."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
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
    """The sdist, and the wheel built from it (as `python -m build` does), from a clean copy of the
    tree: a `build/` or `*.egg-info` folder left by an earlier build must not fill a gap in this one."""
    source, out = tmp_path_factory.mktemp("source") / "llmtop", tmp_path_factory.mktemp("dist")
    shutil.copytree(
        ROOT, source,
        ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"),
    )  # fmt: skip
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
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
    for needed in ("llmtop/data/demo.jsonl", "llmtop/tui/llmtop.tcss", "llmtop/collectors/ollama_log/reader.py"):
        assert needed in names
    assert not any(name.startswith(("tests/", "bench/", "core/")) for name in names)


def test_the_sdist_holds_the_sources_and_the_tests(dist):
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"pyproject.toml", "README.md", "core/data/demo.jsonl", "tui/llmtop.tcss"} <= names


# -- the installed copy: what pip, pipx and uv give a user ---------------------------------------------
FOLDERS = {"llmtop": ROOT / "core", "llmtop.collectors": ROOT / "collectors", "llmtop.tui": ROOT / "tui"}
DEMO_TABLE_ROW = "| llama3.3 | 70.6B | Q4_K_M | 42.5GB | CPU+GPU |"


def source_modules() -> list[str]:
    """Every module of the source tree, by its import name (read from the folders, not listed)."""
    found = set()
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if "__pycache__" in parts:
                continue
            if parts[-1] == "__init__":
                parts.pop()
            found.add(".".join([package, *parts]))
    return sorted(found)


def source_data_files() -> list[str]:
    """Every file under the package folders that is not Python, as its path inside the installed package."""
    found = []
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts:
                found.append("/".join([*package.split("."), *path.relative_to(folder).parts]))
    return sorted(found)


class Installed:
    """llmtop installed from the wheel into a virtual environment of its own, run from outside the repository."""

    def __init__(self, venv: Path, home: Path) -> None:
        self.venv, self.home = venv, home
        self.python = venv / "bin" / "python"
        self.llmtop = venv / "bin" / "llmtop"

    def env(self) -> dict[str, str]:
        """The user's environment: no PYTHONPATH, no other virtual environment, the installed copy first on PATH."""
        environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "OLLAMA_HOST")}
        environment["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{environment.get('PATH', '')}"
        return environment

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.llmtop), *args], cwd=self.home, env=self.env(), capture_output=True, text=True,
            timeout=timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory) -> Installed:
    """The wheel installed as `pip install llmtop-ollama` would, not editable, with the dependencies
    at the versions the tests run with (the screens and the report are drawn by them)."""
    (wheel,) = dist.glob("*.whl")
    place = tmp_path_factory.mktemp("installed")
    venv, home = place / "venv", place / "home"
    home.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    constraints = place / "constraints.txt"
    constraints.write_text(
        "".join(
            f"{d.metadata['Name']}=={d.version}\n"
            for d in importlib.metadata.distributions()
            if d.metadata["Name"] and d.metadata["Name"].lower() != "llmtop-ollama"
        ),
        encoding="utf-8",
    )
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-c", str(constraints), str(wheel)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    return Installed(venv, home)


def test_the_installed_copy_is_the_wheels_not_the_source_tree(installed):
    where = subprocess.run(
        [str(installed.python), "-c", "import llmtop, sys; print(llmtop.__file__); print(sys.path)"],
        cwd=installed.home, env=installed.env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    location, path = where.stdout.splitlines()
    assert Path(location).is_relative_to(installed.venv) and "site-packages" in location
    assert str(ROOT) not in path


def test_every_module_of_the_source_tree_imports_from_the_installed_copy(installed):
    modules = source_modules()
    assert {"llmtop.tui.panels.layers_panel", "llmtop.collectors.ollama_log", "llmtop.commands.cli"} <= set(modules)
    script = (
        "import importlib, importlib.util, json, sys\n"
        "failed = {}\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        if name.endswith('.__main__'):\n"  # running it would run the command: found, not run
        "            assert importlib.util.find_spec(name) is not None, 'not found'\n"
        "        else:\n"
        "            importlib.import_module(name)\n"
        "    except BaseException as error:\n"
        "        failed[name] = f'{type(error).__name__}: {error}'\n"
        "print(json.dumps(failed))\n"
    )
    result = subprocess.run(
        [str(installed.python), "-c", script, json.dumps(modules)],
        cwd=installed.home, env=installed.env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {}


def test_every_data_file_of_the_source_tree_is_installed(installed):
    site = next(installed.venv.glob("lib/python*/site-packages"))
    wanted = source_data_files()
    assert {"llmtop/data/demo.jsonl", "llmtop/data/grafana-dashboard.json", "llmtop/tui/llmtop.tcss"} <= set(wanted)
    assert [name for name in wanted if not (site / name).is_file()] == []


def test_the_installed_command_answers_its_version_doctor_the_demo_and_parse_log(installed, tmp_path):
    version = installed.run("--version")
    assert (version.returncode, version.stderr) == (0, "")
    assert __version__ in version.stdout

    table = tmp_path / "demo.md"
    demo = installed.run("demo", "--headless", "--export", str(table))
    assert demo.returncode == 0, demo.stderr
    assert "Traceback" not in demo.stderr
    assert DEMO_TABLE_ROW in demo.stdout and DEMO_TABLE_ROW in table.read_text(encoding="utf-8")

    doctor = installed.run("doctor", "--json")
    assert (doctor.returncode, doctor.stderr) == (0, "")
    assert json.loads(doctor.stdout)["llmtop_version"] == __version__

    log = ROOT / "tests" / "fixtures" / "ollama-logs" / "01_windows_rocm_newengine_gemma3_27b.log"
    parsed = installed.run("parse-log", str(log), "--json")
    assert (parsed.returncode, parsed.stderr) == (0, "")
    expected = json.loads(log.with_suffix(".json").read_text(encoding="utf-8"))["expected"]
    load = json.loads(parsed.stdout)  # one load: its object
    assert {key: load[key] for key in expected} == expected


def test_the_installed_demo_writes_the_same_report_as_the_source_tree(installed, tmp_path):
    mine, theirs = tmp_path / "installed.html", tmp_path / "source.html"
    result = installed.run("demo", "--headless", "--report", str(mine))
    assert result.returncode == 0, result.stderr
    source = subprocess.run(
        [sys.executable, "-m", "llmtop", "demo", "--headless", "--report", str(theirs)],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert source.returncode == 0, source.stderr
    assert mine.stat().st_size > 10_000
    assert mine.read_text(encoding="utf-8") == theirs.read_text(encoding="utf-8")


ENTER_SCREEN, LEAVE_SCREEN = b"\x1b[?1049h", b"\x1b[?1049l"
_CONTROL = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


def printed_outside_the_screen(raw: bytes) -> str:
    """What the program wrote to the terminal outside Textual's alternate screen (a traceback, a
    warning, an error line), control sequences left out."""
    outside = raw.split(ENTER_SCREEN, 1)[0] + (raw.rsplit(LEAVE_SCREEN, 1)[1] if LEAVE_SCREEN in raw else b"")
    return _CONTROL.sub(b"", outside).decode("utf-8", errors="replace").strip()


def on_screen(installed: Installed, *args: str, ready: str, help_says: str, meanwhile=None) -> None:
    """Start the installed llmtop on a pseudo terminal: its first frame, then (after `meanwhile()`, what
    another program does) what it shows when `ready`; `?` opens its help, Esc closes it, `q` quits with
    status 0 and nothing printed beside the screen."""
    from terminal import Terminal

    terminal = Terminal([str(installed.llmtop), *args], dict(installed.env(), PWD=str(installed.home)))
    try:
        terminal.wait_for(lambda s: "llmtop" in s and "Quit" in s, 60, "the first frame")
        if meanwhile is not None:
            meanwhile()
        terminal.wait_for(lambda s: ready in s, 120, repr(ready))
        terminal.press("?")
        terminal.wait_for(lambda s: "llmtop help" in s and help_says in s, 30, "the help")
        terminal.press("\x1b")
        terminal.wait_for(lambda s: "llmtop help" not in s, 30, "the help closed")
        terminal.press("q")
        status = terminal.finish(60)
    finally:
        terminal.kill()
    assert status == 0, terminal.screen()
    assert b"Traceback" not in terminal.raw and ENTER_SCREEN in terminal.raw and LEAVE_SCREEN in terminal.raw
    assert printed_outside_the_screen(bytes(terminal.raw)) == ""


def test_the_installed_demo_starts_its_screen_opens_the_help_and_quits(installed):
    # Played to its end (--speed max): quitting a run before its end is exit status 1, by design.
    on_screen(installed, "demo", "--speed", "max", ready="CPU+GPU", help_says="quit (a run in progress is kept")


def test_the_installed_watch_shows_another_programs_model_opens_the_help_and_quits(installed, tmp_path):
    """`llmtop watch` beside the test double of Ollama 0.30+ and its server log, while another program
    (the official client) generates."""
    import ollama

    from ollama_double import DoubleConfig, OllamaDouble, ServerLog

    log_file = tmp_path / "server.log"
    with open(log_file, "a", encoding="utf-8", buffering=1) as writer:
        double = OllamaDouble(DoubleConfig(llama_server_log=True, vram_fraction=27 / 81), log=ServerLog(writer.write))
        double.start()
        try:
            on_screen(
                installed, "watch", "--host", double.url, "--log", str(log_file), "--no-history", "--no-record",
                meanwhile=lambda: ollama.Client(host=double.url).generate("llama3.3", "hello", keep_alive="5m"),
                ready="27/81 layers on the GPU", help_says="quit (the requests seen so far are kept",
            )  # fmt: skip
        finally:
            double.stop()
