"""Every output lands or says why: a full or closed standard output, a console that cannot encode
the headers, two llmtops at once, paths checked before anything runs, a private data folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.cli import command, llmtop, no_traceback

FIXTURES = Path(__file__).parent / "fixtures" / "ollama-logs"


def environment(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k != "OLLAMA_HOST"}, **extra}


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_standard_output_costs_no_export(double, tmp_path):
    out = tmp_path / "run.json"
    args = command("llama3.3", "--host", double.url, "--headless", "--no-log", "--export", str(out))
    with open("/dev/full", "w") as full:
        result = subprocess.run(args, stdout=full, stderr=subprocess.PIPE, text=True, env=environment(), timeout=60)
    assert "Traceback" not in result.stderr
    assert result.returncode == 1
    assert "llmtop: cannot print to standard output: No space left on device" in result.stderr
    assert json.loads(out.read_text())["runs"][0]["complete"] is True


def into_a_closed_pipe(*args: str) -> tuple[str, str]:
    """Run `llmtop ARGS | head -c 1` in bash: llmtop's exit status, and its stderr."""
    result = subprocess.run(
        " ".join([*command(*args), "| head -c 1 > /dev/null; echo ${PIPESTATUS[0]}"]),
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        env=environment(),
        timeout=60,
    )
    return result.stdout.strip(), result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="a shell pipe")
def test_a_closed_pipe_ends_quietly_and_keeps_the_export(double, tmp_path):
    out = tmp_path / "run.json"
    status, stderr = into_a_closed_pipe(
        "llama3.3", "--host", double.url, "--headless", "--no-log", "--export", str(out)
    )
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
    assert status in ("0", "141")
    assert json.loads(out.read_text())["runs"][0]["complete"] is True


@pytest.mark.skipif(sys.platform == "win32", reason="a shell pipe")
@pytest.mark.parametrize(
    "subcommand", [["parse-log", str(FIXTURES / "01_windows_rocm_newengine_gemma3_27b.log")], ["doctor"]]
)
def test_every_subcommand_ends_quietly_on_a_closed_pipe(subcommand):
    status, stderr = into_a_closed_pipe(*subcommand)
    assert "Traceback" not in stderr
    assert status in ("0", "141")


def test_a_console_that_cannot_encode_japanese_gets_replacement_characters(double):
    result = llmtop(
        "llama3.3", "--host", double.url, "--headless", "--no-log", "--lang", "ja", env={"PYTHONIOENCODING": "ascii"}
    )
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("| ??? | ??? |")


def test_two_llmtops_started_together_leave_two_recordings_that_both_replay(double_factory):
    double = double_factory(token_rate=200)
    args = command("llama3.3", "--host", double.url, "--headless", "--no-log", "--no-history")
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment())
    second = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment())
    results = [p.communicate(timeout=60) for p in (first, second)]
    paths = sorted(
        line.split("recorded to ")[1].split(" (")[0]
        for _, err in results
        for line in err.splitlines()
        if "recorded to" in line
    )
    assert len(set(paths)) == 2, results
    for path in paths:
        replayed = llmtop("replay", path, "--headless", "--speed", "max")
        assert replayed.returncode == 0, replayed.stderr
        assert "| llama3.3 |" in replayed.stdout


@pytest.mark.parametrize(
    ("option", "value", "why"),
    [
        ("--export", "{tmp}/missing/run.json", "the folder {tmp}/missing does not exist"),
        ("--export", "{tmp}", "is a folder, not a file"),
        ("--chart", "{tmp}/missing/tps.svg", "the folder {tmp}/missing does not exist"),
    ],
)
def test_a_path_that_cannot_be_written_is_refused_before_anything_runs(double, tmp_path, option, value, why):
    if option == "--export" and value == "{tmp}":
        value = "{tmp}/run.json"
        (tmp_path / "run.json").mkdir()
    result = llmtop("llama3.3", "--host", double.url, "--headless", "--no-log", option, value.format(tmp=tmp_path))
    no_traceback(result)
    assert result.returncode == 2 and why.format(tmp=tmp_path) in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("llmtop: error:")
    assert not any(path == "/api/generate" for _, path, _ in double.requests)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_the_data_folder_and_its_files_are_private(double):
    result = llmtop("llama3.3", "--host", double.url, "--headless", "--no-log")
    assert result.returncode == 0, result.stderr
    data = Path(os.environ["LLMTOP_DATA_DIR"])
    assert data.stat().st_mode & 0o777 == 0o700
    assert (data / "history.sqlite3").stat().st_mode & 0o777 == 0o600
    (recording,) = (data / "recordings").iterdir()
    assert recording.stat().st_mode & 0o777 == 0o600 and (data / "recordings").stat().st_mode & 0o777 == 0o700


def test_tokens_that_arrive_in_one_burst_give_no_client_rate(double_factory, tmp_path):
    double = double_factory(fault="burst", token_rate=100, tokens=40)
    out = tmp_path / "run.json"
    result = llmtop("llama3.3", "--host", double.url, "--headless", "--no-log", "--export", str(out))
    assert result.returncode == 0, result.stderr
    run = json.loads(out.read_text())["runs"][0]
    assert run["client_rate_tps"] is None and "bursts" in run["client_rate_note"]
    final = double.finals[-1]
    assert run["eval_rate_tps"] == pytest.approx(final["eval_count"] / (final["eval_duration"] / 1e9))
