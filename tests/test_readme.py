"""README.md's two set-up commands are the ones CI runs, every option of every command is in it, and
its exit-status table is the one the commands use."""

import importlib
import re
from pathlib import Path

import pytest

from llmtop.commands.cli import MODEL_MODULE, SUBCOMMAND_MODULES
from llmtop.exit_status import EXIT_STATUSES

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CI = (ROOT / ".ci" / "run").read_text(encoding="utf-8")

INSTALL_AND_RUN = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/llmtop llama3.3"
TEST = 'CMAKE_ARGS="-DGGML_NATIVE=OFF" .venv/bin/pip install -e ".[test,engine]" && .venv/bin/python -m pytest'


def test_readme_gives_the_two_commands():
    assert f"```sh\n{INSTALL_AND_RUN}\n```" in README
    assert f"```sh\n{TEST}\n```" in README


def test_ci_installs_as_the_readme_says_and_runs_its_test_command():
    assert "python3 -m venv .venv" in CI
    assert ".venv/bin/pip install -q -e .\n" in CI
    assert CI.rstrip().splitlines()[-1] == TEST


def _usage_block() -> str:
    start = README.index("## Usage")
    return README[README.index("```", start) : README.index("```", README.index("```", start) + 3)]


COMMANDS = {"": MODEL_MODULE, **SUBCOMMAND_MODULES}


@pytest.mark.parametrize("name", list(COMMANDS), ids=[n or "MODEL" for n in COMMANDS])
def test_every_option_of_every_command_is_in_the_usage(name, capsys):
    """Each command's --help (what a user reads) against the README's usage block: every option
    there, on the command's own line."""
    module = importlib.import_module(COMMANDS[name])
    argv = [name] if name else ["llama3.3"]
    with pytest.raises(SystemExit):
        module.main(["--help"], **({"demo": True} if name == "demo" else {}))
    usage = capsys.readouterr().out.split("\n\n", 1)[0]  # argparse's usage: every option, once
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", usage)) - {"--help"}
    assert options, argv
    block = _usage_block()
    lines = [line for line in block.splitlines() if line.startswith(f"llmtop {name or 'MODEL'} ")]
    own = block[block.index(lines[0]) :].split("\nllmtop ", 1)[0]  # the command's line and its continuations
    missing = sorted(o for o in options if o not in own)
    assert missing == [], f"llmtop {name or 'MODEL'}: {missing}"


def test_every_option_of_llmtop_model_has_a_row(capsys):
    module = importlib.import_module(MODEL_MODULE)
    with pytest.raises(SystemExit):
        module.main(["--help"])
    usage = capsys.readouterr().out.split("\n\n", 1)[0]
    for flag in set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", usage)) - {"--help"}:
        assert f"`{flag}" in README, flag


def test_the_exit_status_table_is_the_one_the_commands_use():
    table = README[README.index("| status | meaning |") :].split("\n\n", 1)[0]
    shown = {int(n) for cell in re.findall(r"^\| ([\d /]+) \|", table, re.M) for n in cell.split("/")}
    assert shown == set(EXIT_STATUSES)


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    return {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in markdown.splitlines()
        if line.startswith("#")
    }


def test_the_front_page_is_short_and_every_link_of_the_docs_leads_somewhere():
    """README.md is a front page (under 250 lines); each concept has its page in docs/, and every
    relative link of README.md, docs/, ARCHITECTURE.md and CONTRIBUTING.md names a file that exists
    and, where it names a heading, one that page has."""
    assert len(README.splitlines()) < 250
    pages = [
        ROOT / "README.md",
        ROOT / "ARCHITECTURE.md",
        ROOT / "CONTRIBUTING.md",
        *sorted((ROOT / "docs").glob("*.md")),
    ]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            destination = page.parent / path if path else page
            if not destination.exists():
                broken.append(f"{page.name}: {target}")
            elif (
                anchor
                and destination.suffix == ".md"
                and anchor not in _anchors(destination.read_text(encoding="utf-8"))
            ):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken
