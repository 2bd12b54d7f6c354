"""README.md's two set-up commands are the ones CI runs, and its help table matches --help."""

from pathlib import Path

from llmtop.cli import build_parser

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


def test_every_option_of_the_cli_is_documented():
    for action in build_parser()._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                assert f"`{flag}" in README, flag
