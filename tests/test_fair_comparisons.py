"""Fair comparisons as a user runs them (`llmtop MODEL --modes ... --repeat N`): the same work in every
run (--num-predict, or the first run's count), the order of the runs (--order) recorded, the
verdicts with their intervals, and a cool-down between runs (--cooldown)."""

from __future__ import annotations

import json

from helpers.cli import llmtop, no_traceback
from llmtop.collectors.temperatures import TemperatureReader


def generates(double):
    return [body for _, path, body in double.requests if path == "/api/generate" and body.get("prompt")]


def test_num_predict_64_in_a_latin_square_every_run_generates_64_and_the_json_has_the_order(double_factory, tmp_path):
    """The issue's command: every run generated 64 tokens, the order in the JSON, the verdict line with
    its interval."""
    double = double_factory(token_rate=150, cpu_token_rate=60, tokens=80, vram_fraction=27 / 81)
    out = tmp_path / "c.json"
    result = llmtop("llama3.3", "--host", double.url, "--no-log", "--modes", "cpu,auto", "--repeat", "3",
                    "--num-predict", "64", "--order", "latin", "--headless", "--export", str(out))  # fmt: skip
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert [b["options"].get("num_predict") for b in generates(double)] == [64] * 6
    document = json.loads(out.read_text(encoding="utf-8"))
    runs = document["runs"]
    assert [r["mode"] for r in runs] == ["cpu", "auto", "auto", "cpu", "cpu", "auto"]  # round 2 rotated
    assert all(r["eval_count"] == 64 and r["num_predict"] == 64 and r["done_reason"] == "length" for r in runs)
    assert document["plan"] == {"order": "latin", "seed": 42, "num_predict": 64, "same_work": False,
                                "cooldown_s": 0.0}  # fmt: skip
    (verdict,) = document["verdicts"]
    assert verdict["verdict"] == "faster" and verdict["speedup_low"] > 1.0
    assert verdict["seconds_saved_per_answer"] > 0 and verdict["answer_tokens"] == 64
    assert "### Verdicts" in result.stdout and f"- {verdict['text']}" in result.stdout
    assert "saves" in verdict["text"] and "per answer of 64 tokens" in verdict["text"]
    assert "llmtop: llama3.3 cpu: " in result.stderr and "64 tokens (of 64 asked)" in result.stderr


def test_a_plan_asks_every_run_after_the_first_for_the_first_runs_count_and_says_which_ended_early(
    double_factory, tmp_path
):
    """Without --num-predict: the first run generates what the model decides (45 tokens), every later
    run asks for 45; a run whose model ends sooner (the CPU's answer: 20) is said to have ended early."""
    double = double_factory(token_rate=200, tokens=45, cpu_tokens=20, vram_fraction=27 / 81)
    out = tmp_path / "c.json"
    result = llmtop("llama3.3", "--host", double.url, "--no-log", "--modes", "auto,cpu", "--repeat", "2",
                    "--headless", "--export", str(out))  # fmt: skip
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert [b["options"].get("num_predict") for b in generates(double)] == [None, 45, 45, 45]
    document = json.loads(out.read_text(encoding="utf-8"))
    runs = document["runs"]
    assert [r["eval_count"] for r in runs] == [45, 20, 45, 20]
    assert "run 2 (llama3.3 cpu): 20 of 45 tokens: ended at the model's end of text" in result.stdout
    # The verdict compares the modes over the first 16 tokens of each run (the marks all four reached).
    assert [[n for n, _ in r["token_marks"]] for r in runs[:2]] == [[8, 12, 16, 24, 32, 45], [8, 12, 16, 20]]
    (verdict,) = document["verdicts"]
    assert verdict["over_first_tokens"] == 16 and "over the first 16 tokens of each run" in verdict["text"]
    assert "llama3.3 cpu: " in result.stderr and "20 of 45 tokens: ended at the model's end of text" in result.stderr
    one = llmtop("llama3.3", "--host", double.url, "--no-log", "--headless", "--no-history")
    assert one.returncode == 0 and "num_predict" not in generates(double)[-1]["options"]  # one run: the model decides


def test_overlapping_modes_are_about_the_same_with_the_runs_needed(double_factory, tmp_path):
    """Runs whose rates swing (100 and 60 tokens/s, in turn) overlap: no winner is named, and the line
    says how many runs each would tell a difference this size apart."""
    import time

    rates = [100.0, 60.0, 60.0, 100.0, 100.0, 60.0]  # by generation: auto 100, 60, 100; gpu=27 60, 100, 60
    double = double_factory(tokens=30, vram_fraction=27 / 81)
    double.config.next_token = lambda: time.sleep(1 / rates[(double.generations - 1) % len(rates)])
    out = tmp_path / "c.json"
    result = llmtop("llama3.3", "--host", double.url, "--no-log", "--modes", "auto,gpu=27", "--repeat", "3",
                    "--headless", "--no-history", "--export", str(out))  # fmt: skip
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    (verdict,) = json.loads(out.read_text(encoding="utf-8"))["verdicts"]
    assert verdict["verdict"] == "about the same" and verdict["speedup_low"] < 1.0 < verdict["speedup_high"]
    assert 10 < verdict["runs_needed_each"] <= 100
    line = "- gpu=27 and auto: about the same ("
    assert line in result.stdout and f"need {verdict['runs_needed_each']} runs each" in result.stdout
    assert "faster" not in verdict["text"] and "saves" not in verdict["text"]


def test_bad_fairness_options_are_one_line_and_status_2(double):
    for args, words in (
        (["--num-predict", "-3"], "must be 0 (the model decides) or more, got -3"),
        (["--num-predict", "many"], "not a whole number of tokens: 'many'"),
        (["--order", "sideways"], "invalid choice: 'sideways'"),
        (["--cooldown", "-1"], "must be between 0 and 3600 seconds"),
    ):
        result = llmtop("llama3.3", "--host", double.url, "--headless", *args)
        no_traceback(result)
        assert result.returncode == 2 and words in result.stderr, (args, result.stderr)


def test_a_cool_down_between_runs_is_said_and_waited(double_factory):
    import time

    double = double_factory(token_rate=200, tokens=10, vram_fraction=0.5)
    started = time.monotonic()
    result = llmtop("llama3.3", "--host", double.url, "--no-log", "--modes", "cpu,auto", "--cooldown", "1.5",
                    "--headless", "--no-history")  # fmt: skip
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "cooling down" in line]
    if TemperatureReader().read():  # a machine with hwmon sensors: they end it sooner
        assert said == ["llmtop: cooling down between runs: up to 1.5 s, less once the temperatures are back near "
                        "where they were before the first run"]  # fmt: skip
        return
    assert said == ["llmtop: cooling down between runs: up to 1.5 s, its whole time (llmtop reads neither power nor "
                    "temperatures here)"]  # fmt: skip
    assert time.monotonic() - started >= 1.5  # no power or temperature is read here: the whole time
