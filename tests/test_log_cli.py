"""`llmtop parse-log` and `llmtop MODEL --serve/--log` as a user runs them."""

import json
import os
import sys
from pathlib import Path

import pytest

from helpers.cli import llmtop, no_traceback, stand_in_path

FIXTURES = Path(__file__).parent / "fixtures" / "ollama-logs"


@pytest.mark.parametrize("log", sorted(FIXTURES.glob("*.log")), ids=lambda p: p.stem)
def test_parse_log_json_gives_each_excerpts_expected_values(log):
    result = llmtop("parse-log", str(log), "--json")
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    found = [json.loads(line) for line in result.stdout.splitlines()]
    want = json.loads(log.with_suffix(".json").read_text(encoding="utf-8"))["expected"]
    wanted = want if isinstance(want, list) else [want]  # a list: a log of several loads
    assert len(found) == len(wanted)
    for load, one in zip(found, wanted, strict=True):
        assert {key: load.get(key) for key in one} == one
    keys = ("layers_offloaded", "layers_total", "library", "ollama_version", "context", "layers_overflowing", "fit")
    for key in (*keys, "requests", "split_reason"):
        assert all(key in load for load in found)


def test_parse_log_on_ollama_0_33_says_why_no_gpu_and_each_requests_rates():
    log = FIXTURES / "09_docker_cpu_0_33_driver_too_old.log"
    result = llmtop("parse-log", str(log))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("load 1: 0/27 layers on the GPU; backend cpu; Ollama 0.33.2;")
    assert "context per request 4096; Ollama's VRAM-based default context 4096" in lines[0]
    assert lines[1] == (
        "  why: 0/27 layers on the GPU: the NVIDIA driver is too old for NVIDIA GeForce RTX 3060 Laptop GPU "
        "(driver 546; Ollama needs 550 or newer)"
    )
    assert lines[2] == (
        "  request 0: prompt 871 tokens in 13.73 s (63.42 tokens/s); eval 42 tokens in 3.52 s (11.92 tokens/s as "
        "Ollama counts them; the log prints 11.64)"
    )
    assert lines[3].startswith("load 2: 0/25 layers on the GPU; backend cpu;")


def test_parse_log_text_and_stdin():
    log = FIXTURES / "01_windows_rocm_newengine_gemma3_27b.log"
    text = llmtop("parse-log", str(log)).stdout
    assert text.startswith("load 1: 63/63 layers on the GPU; backend rocm;")
    assert "weights on GPU 16.2 GiB on ROCm0" in text and "error llama runner terminated" in text
    import subprocess

    piped = subprocess.run(
        [sys.executable, "-m", "llmtop", "parse-log", "-", "--json"],
        input=(FIXTURES / "02_windows_cuda_0_5_phi4_estimate.log").read_bytes(),
        capture_output=True,
    )
    assert piped.returncode == 0
    assert json.loads(piped.stdout)["estimate_only"] is True


def test_parse_log_bad_input(tmp_path):
    missing = llmtop("parse-log", str(tmp_path / "nope.log"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    folder = llmtop("parse-log", str(tmp_path))
    assert folder.returncode == 2 and "folder" in folder.stderr
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(os.urandom(200_000) + b"\n" + b"y" * 3_000_000)
    result = llmtop("parse-log", str(garbage), "--json")
    no_traceback(result)
    assert result.returncode == 1 and "no model load found" in result.stderr
    # Garbage around a real load: the readable load is still reported.
    mixed = tmp_path / "mixed.log"
    mixed.write_bytes(os.urandom(5000) + b"\n" + (FIXTURES / "02_windows_cuda_0_5_phi4_estimate.log").read_bytes())
    result = llmtop("parse-log", str(mixed), "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["layers_offloaded"] == 29
    for args in (["parse-log"], ["parse-log", "a", "b"]):
        usage = llmtop(*args)
        assert usage.returncode == 2 and "usage: llmtop parse-log" in usage.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="a shell-script stand-in")
def test_serve_starts_ollama_and_reads_the_layers_from_its_log(tmp_path):
    out = tmp_path / "out.json"
    result = llmtop("llama3.3", "--serve", "--headless", "--export", str(out), env={"PATH": stand_in_path(tmp_path)})
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert "`ollama serve` started by llmtop" in result.stderr
    run = json.loads(out.read_text())["runs"][0]
    assert (run["layers_offloaded"], run["layers_total"], run["env"]) == (27, 81, "CPU+GPU")
    assert run["env_source"] == "server log" and run["library"] == "cuda"
    assert run["host"].startswith("http://127.0.0.1:") and run["ollama_version"] == "0.5.11"
    assert "| CPU+GPU | auto | 2048 | 27/81 |" in result.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="a shell-script stand-in")
def test_serve_cpu_run(tmp_path):
    out = tmp_path / "out.json"
    result = llmtop(
        "llama3.3", "--serve", "--cpu", "--headless", "--export", str(out), env={"PATH": stand_in_path(tmp_path)}
    )
    assert result.returncode == 0, result.stderr
    run = json.loads(out.read_text())["runs"][0]
    assert (run["layers_offloaded"], run["env"], run["env_source"]) == (0, "CPU", "server log")


def test_serve_without_ollama_installed(tmp_path):
    result = llmtop("llama3.3", "--serve", "--headless", env={"PATH": str(tmp_path)})
    no_traceback(result)
    assert result.returncode == 2 and "install Ollama" in result.stderr


def test_log_file_options(tmp_path, double):
    result = llmtop("llama3.3", "--host", double.url, "--headless", "--log", str(tmp_path))
    assert result.returncode == 2 and "is a folder: --log takes the server log file" in result.stderr
    missing = tmp_path / "later.log"  # Ollama not started yet: the run goes on, the file is awaited
    result = llmtop("llama3.3", "--host", double.url, "--headless", "--log", str(missing))
    assert result.returncode == 0, result.stderr
    assert f"note: no log file at {missing} yet: it is read from when it appears" in result.stderr
    result = llmtop("llama3.3", "--serve", "--host", double.url, "--headless")
    assert result.returncode == 2 and "not allowed with --host" in result.stderr
    log = tmp_path / "server.log"
    log.write_text("")
    result = llmtop("llama3.3", "--host", double.url, "--headless", "--log", str(log))
    assert result.returncode == 0 and f"server log: file {log}" in result.stderr


def test_parse_log_prints_each_request_of_a_llama_server_log(tmp_path):
    from helpers.log_lines import LLAMA_SERVER_LOAD, REQUEST

    log = tmp_path / "server.log"
    log.write_text("\n".join(LLAMA_SERVER_LOAD + REQUEST) + "\n")
    result = llmtop("parse-log", str(log))
    assert result.returncode == 0
    assert (
        "  request 79: prompt 7303 tokens in 10.95 s (666.92 tokens/s); eval 64 tokens in 20.84 s "
        "(3.07 tokens/s as Ollama counts them; the log prints 3.07)" in result.stdout
    )
    (load,) = [json.loads(line) for line in llmtop("parse-log", str(log), "--json").stdout.splitlines()]
    assert load["requests"][0]["eval_tokens"] == 64 and load["requests"][0]["prompt_tps"] == 666.92
