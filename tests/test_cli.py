"""`llmtop` as a user runs it: a subprocess against the double, its exit status, stdout and files."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.cli import command, llmtop, no_traceback
from ollama_double import OOM_MESSAGE
from waiting import eventually


@pytest.mark.parametrize("suffix", ["json", "csv", "md"])
def test_headless_run_exports_the_servers_eval_rate(double_factory, tmp_path, suffix):
    double = double_factory(token_rate=60, tokens=60, load_delay_s=0.2, vram_fraction=0.36)
    out = tmp_path / f"out.{suffix}"
    result = llmtop("llama3.3", "--host", double.url, "--headless", "--no-log", "--export", str(out))
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    table = result.stdout.splitlines()
    assert table[0].startswith(
        "| model | params | quant | size | env | mode | ctx | GPU layers | tps | speed-up | RAM | VRAM |"
    )
    assert table[2].startswith("| llama3.3 | 70.6B | Q4_K_M | 42.5GB | CPU+GPU | auto | ")
    assert table[2].endswith("| 1 |")
    final = double.finals[-1]
    server_rate = final["eval_count"] / (final["eval_duration"] / 1e9)
    if suffix == "json":
        run = json.loads(out.read_text(encoding="utf-8"))["runs"][0]
        assert run["eval_rate_tps"] == pytest.approx(server_rate, rel=0.005)
        assert run["client_rate_tps"] == pytest.approx(server_rate, rel=0.05)
        assert isinstance(run["ram_delta_bytes"], int) and isinstance(run["ram_peak_bytes"], int)
        assert run["complete"] is True and run["ollama_version"] == "0.5.11"
        assert run["layers_total"] == 81 and run["layers_offloaded"] is None
    elif suffix == "csv":
        assert out.read_text().splitlines()[0].startswith("model,parameter_size,quantization,size_bytes,env,")
    else:
        assert out.read_text(encoding="utf-8").splitlines()[2] == table[2]
    assert f"{server_rate:.2f}" in table[2]


def test_ollama_host_is_honoured(double):
    result = llmtop("llama3.3", "--headless", env={"OLLAMA_HOST": double.url.removeprefix("http://")})
    assert result.returncode == 0, result.stderr
    assert double.finals


def test_cpu_flag_sends_num_gpu_zero(double):
    result = llmtop("llama3.3", "--host", double.url, "--headless", "--cpu")
    assert result.returncode == 0, result.stderr
    assert double.requests[-1][2]["options"] == {"num_gpu": 0, "seed": 42}
    assert "| CPU |" in result.stdout


def test_unreachable_server_is_one_line_and_status_2(closed_port_url):
    result = llmtop("llama3.3", "--host", closed_port_url, "--headless")
    no_traceback(result)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert closed_port_url in lines[0] and "ollama serve" in lines[0]


def test_missing_model_says_how_to_get_it(double):
    result = llmtop("nosuch:7b", "--host", double.url, "--headless")
    no_traceback(result)
    assert result.returncode == 2
    assert "ollama pull nosuch:7b" in result.stderr and "--pull" in result.stderr


def test_pull_fetches_a_missing_model_then_runs(double):
    result = llmtop("phi4", "--host", double.url, "--headless", "--pull")
    assert result.returncode == 0, result.stderr
    assert "pulling manifest" in result.stderr and "success" in result.stderr
    assert ("POST", "/api/pull", {"model": "phi4", "insecure": False, "stream": True}) in double.requests


def test_out_of_memory_exports_the_incomplete_run(double_factory, tmp_path):
    double = double_factory(fault="oom")
    out = tmp_path / "out.json"
    result = llmtop("llama3.3", "--host", double.url, "--headless", "--export", str(out))
    no_traceback(result)
    assert result.returncode == 1
    assert OOM_MESSAGE in result.stderr
    run = json.loads(out.read_text())["runs"][0]
    assert run["complete"] is False and run["error"] == OOM_MESSAGE


def test_dropped_stream_keeps_the_partial_run(double_factory, tmp_path):
    double = double_factory(fault="drop", fault_after=20, token_rate=100)
    out = tmp_path / "out.json"
    result = llmtop("llama3.3", "--host", double.url, "--headless", "--export", str(out))
    no_traceback(result)
    assert result.returncode == 1
    run = json.loads(out.read_text())["runs"][0]
    assert run["complete"] is False and "dropped" in run["error"]
    assert run["client_rate_tps"] > 0 and run["eval_rate_tps"] is None
    assert "incomplete" in result.stdout


def _thread_nices(pid: int) -> list[int]:
    """The nice value of each thread of process `pid` (Linux: field 19 of /proc/PID/task/TID/stat)."""
    nices = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        nices.append(int(fields[16]))
    return nices


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_ctrl_c_mid_run_keeps_and_exports_the_run(double_factory, tmp_path):
    double = double_factory(token_rate=10, tokens=2000)
    out, recording = tmp_path / "out.json", tmp_path / "run.jsonl"
    environment = {k: v for k, v in os.environ.items() if k != "OLLAMA_HOST"}
    proc = subprocess.Popen(
        command("llama3.3", "--host", double.url, "--headless", "--export", str(out), "--record", str(recording)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    eventually(  # a few tokens in
        lambda: (
            proc.poll() is not None
            or (recording.exists() and recording.read_text(encoding="utf-8").count('"event": "token"') >= 3)
        ),
        30,
    )
    if sys.platform.startswith("linux"):  # every thread of llmtop's yields to the engine (--priority low)
        assert set(_thread_nices(proc.pid)) == {19}
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert "Traceback" not in stderr
    assert proc.returncode == 130
    head = json.loads(recording.read_text(encoding="utf-8").splitlines()[0])
    assert head["priority"] == ("nice 19" if sys.platform != "win32" else "below normal priority class")
    run = json.loads(out.read_text())["runs"][0]
    assert run["complete"] is False and run["error"].startswith("interrupted")
    assert run["client_rate_tps"] is not None
    assert "| llama3.3 |" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "0"], "--interval"),
        (["--interval", "fast"], "not a number"),
        (["--export", "out.txt"], ".md, .csv or .json"),
        (["--cpu", "--num-gpu", "3"], "not allowed with"),
        (["--num-gpu", "-1"], "0 or more"),
        (["--prompt", " "], "prompt is empty"),
        (["--host", "ftp://x"], "unsupported scheme"),
        (["--num-ctx", "lots"], "not a context size"),
        (["--num-ctx", "100"], "between 256 and 16777216"),
        (["--modes", "auto:ctx=1x"], "not a context size"),
        (["--modes", "auto:ctx"], "ctx without a value in mode 'auto:ctx'"),
        (["--modes", "auto:"], "empty part in mode 'auto:'"),
        (["--modes", "auto:kv=q5"], "unknown KV cache type 'q5': use f16, q8_0, q4_0"),
        (["--modes", "auto:fa=maybe"], "fa= takes on or off"),
        (["--modes", "moe=some"], "moe= takes all or a number of layers"),
        (["--modes", "auto:np=0"], "np= takes a number of parallel slots from 1 to 64"),
        (["--modes", "auto:kv=f16:kv=q8_0"], "kv= twice"),
        (["--modes", "auto:turbo=1"], "use cpu, auto or gpu=N, then any of ctx=N, kv=TYPE"),
    ],
)
def test_bad_flags_give_a_usage_error(args, message):
    result = llmtop("llama3.3", "--headless", *args)
    no_traceback(result)
    assert result.returncode == 2
    assert "usage: llmtop" in result.stderr and message in result.stderr


def test_server_settings_without_serve_are_one_line_and_status_2_before_anything_runs(double):
    """kv=, fa=, moe= and np= are settings of `ollama serve`: llmtop never restarts a server it did not
    start, so without --serve it says so and what to do, and asks the server nothing."""
    result = llmtop("llama3.3", "--host", double.url, "--headless", "--modes", "auto,auto:kv=q8_0,moe=all")
    no_traceback(result)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "llmtop: auto:kv=q8_0, auto:moe=all set the server's own settings (LLAMA_ARG_CPU_MOE, OLLAMA_KV_CACHE_TYPE), "
        "and llmtop never restarts a server it did not start: add --serve, and llmtop starts `ollama serve` itself "
        "and restarts it between runs whose settings differ"
    ]
    assert double.requests == [] and double.gets == []
    sweep = llmtop("llama3.3", "--host", double.url, "--headless", "--sweep", "moe=0,8,16")
    assert sweep.returncode == 2 and sweep.stderr.startswith(
        "llmtop: --sweep moe=... sets the server's own settings (LLAMA_ARG_N_CPU_MOE), and llmtop never restarts"
    )
    assert len(sweep.stderr.splitlines()) == 1 and double.requests == [] and double.gets == []


def test_bad_model_name_and_bad_ollama_host():
    result = llmtop("not a model", "--headless")
    assert result.returncode == 2 and "not a model name" in result.stderr
    result = llmtop("llama3.3", "--headless", env={"OLLAMA_HOST": "http://host:notaport"})
    assert result.returncode == 2 and "OLLAMA_HOST" in result.stderr
    no_traceback(result)


def test_version_and_help():
    from llmtop import __version__

    assert llmtop("--version").stdout.strip() == f"llmtop {__version__}"
    help_text = llmtop("--help").stdout
    for phrase in ("eval rate", "TTFT", "baseline", "--headless", "--export", "OLLAMA_HOST", "q quit"):
        assert phrase in help_text


@pytest.mark.parametrize("value", ["0", "fast", "61"])
def test_a_bad_interval_is_the_same_line_and_status_in_every_command_that_takes_it(value):
    said = {}
    for argv in (["llama3.3"], ["watch", "--headless"]):
        result = llmtop(*argv, "--interval", value)
        no_traceback(result)
        assert result.returncode == 2
        said[argv[0]] = result.stderr.strip().splitlines()[-1].split("error: ", 1)[1]
    assert said["llama3.3"] == said["watch"] and said["watch"].startswith("argument --interval: ")


@pytest.mark.parametrize("option", ["--export", "--record"])
@pytest.mark.parametrize("problem", ["format", "folder"])
def test_a_bad_file_option_is_the_same_line_and_status_in_every_command_that_takes_it(tmp_path, option, problem):
    commands = {
        "--export": (["llama3.3"], ["watch", "--headless"], ["replay", "x.jsonl"], ["demo"], ["history"]),
        "--record": (["llama3.3"], ["watch", "--headless"]),
    }[option]
    # --record takes any name: its "format" case is a folder given as the file
    path = {"format": tmp_path / "out.txt" if option == "--export" else tmp_path, "folder": tmp_path / "no" / "x.json"}[
        problem
    ]
    said = set()
    for argv in commands:
        result = llmtop(*argv, option, str(path))
        no_traceback(result)
        assert result.returncode == 2, (argv, result.stderr)
        said.add(result.stderr.strip().splitlines()[-1].split("error: ", 1)[1])
    assert len(said) == 1, said
    assert option in said.pop()


def test_help_names_every_subcommand():
    from llmtop.commands.cli import SUBCOMMAND_MODULES

    text = llmtop("--help").stdout
    for name in SUBCOMMAND_MODULES:
        assert f"llmtop {name}" in text, name
