"""Thinking models (qwen3, deepseek-r1, gpt-oss): `--think on|off|low|medium|high`, the tokens of thought
counted apart from the answer's, the time to the first thought and to the first word of the answer,
on the screen (the thought folded) as in the exports, the report and a replay. The double streams
the thought as Ollama 0.34 does: chunks whose `thinking` holds it and whose `response` is empty."""

from __future__ import annotations

import json

import pytest

from helpers.cli import llmtop, no_traceback
from ollama_double import LLAMA33

QWEN3 = dict(LLAMA33, name="qwen3:latest", parameter_size="8.2B", capabilities=["completion", "tools", "thinking"])
GPT_OSS = dict(QWEN3, name="gpt-oss:latest", thinking={"values": ["low", "medium", "high"], "default": "medium"})
MODELS = {"llama3.3:latest": dict(LLAMA33), "qwen3:latest": QWEN3, "gpt-oss:latest": GPT_OSS}


@pytest.fixture
def thinking(double_factory):
    return double_factory(models=MODELS, thinking_tokens=12, tokens=20, token_rate=200, vram_fraction=0.5)


def generate_bodies(double):
    return [b for _, path, b in double.requests if path == "/api/generate" and b.get("prompt")]


def test_thoughts_and_answer_are_counted_apart_with_both_times_to_first_token(thinking, tmp_path):
    out, recording = tmp_path / "t.json", tmp_path / "t.jsonl"
    result = llmtop("qwen3", "--host", thinking.url, "--no-log", "--headless", "--export", str(out),
                    "--record", str(recording))  # fmt: skip
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert "think" not in generate_bodies(thinking)[-1]  # the model's own default: it thinks
    (run,) = json.loads(out.read_text(encoding="utf-8"))["runs"]
    assert (run["thinking_tokens"], run["answer_tokens"], run["eval_count"]) == (12, 20, 32)
    assert 0 < run["ttft_thought_s"] == run["ttft_s"] < run["ttft_answer_s"]  # the first token is a thought
    assert run["think"] is None
    assert "12 thinking + 20 answer tokens, first thought " in result.stderr
    assert f"answer {run['ttft_answer_s']:.2f}s" in result.stderr
    replayed = tmp_path / "again.json"
    again = llmtop("replay", str(recording), "--headless", "--export", str(replayed))
    assert again.returncode == 0, again.stderr
    (same,) = json.loads(replayed.read_text(encoding="utf-8"))["runs"]
    assert {k: same[k] for k in ("thinking_tokens", "answer_tokens", "ttft_thought_s", "ttft_answer_s")} == {
        k: run[k] for k in ("thinking_tokens", "answer_tokens", "ttft_thought_s", "ttft_answer_s")
    }


def test_think_off_is_honoured_and_said(thinking, tmp_path):
    out = tmp_path / "t.json"
    result = llmtop("qwen3", "--host", thinking.url, "--no-log", "--headless", "--think", "off", "--export", str(out),
                    "--report", str(tmp_path / "t.html"))  # fmt: skip
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert generate_bodies(thinking)[-1]["think"] is False
    (run,) = json.loads(out.read_text(encoding="utf-8"))["runs"]
    assert (run["think"], run["thinking_tokens"], run["answer_tokens"], run["ttft_thought_s"]) == (False, 0, 20, None)
    assert run["ttft_answer_s"] == run["ttft_s"]
    page = (tmp_path / "t.html").read_text(encoding="utf-8")
    assert "<dt" in page and ">thinking</dt><dd>0 thinking + 20 answer tokens, answer " in page


def test_the_official_client_behind_a_proxy_streams_the_thought_and_sends_think_too(thinking, tmp_path):
    """Behind an HTTP proxy from the environment the official `ollama` client reads the stream (the
    double is its own proxy): its chunks keep `thinking`, so the thought is counted apart as on
    llmtop's own reader, and `--think off` reaches the request."""
    import os

    env = {k: v for k, v in os.environ.items() if k.upper() not in ("NO_PROXY", "HTTP_PROXY")}
    env["HTTP_PROXY"] = thinking.url
    out = tmp_path / "t.json"
    result = llmtop("qwen3", "--host", thinking.url, "--no-log", "--headless", "--export", str(out), env=env)
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert thinking.proxied > 0, "the official client did not go through the proxy"
    (run,) = json.loads(out.read_text(encoding="utf-8"))["runs"]
    assert (run["thinking_tokens"], run["answer_tokens"], run["eval_count"]) == (12, 20, 32)
    assert 0 < run["ttft_thought_s"] < run["ttft_answer_s"]
    off = llmtop("qwen3", "--host", thinking.url, "--no-log", "--headless", "--think", "off", "--export", str(out),
                 env=env)  # fmt: skip
    assert off.returncode == 0, off.stderr
    assert generate_bodies(thinking)[-1]["think"] is False
    (run,) = json.loads(out.read_text(encoding="utf-8"))["runs"]
    assert (run["thinking_tokens"], run["answer_tokens"]) == (0, 20)


@pytest.mark.parametrize(
    ("model", "think", "said"),
    [
        (
            "llama3.3",
            "on",
            "llmtop: --think on: llama3.3 is not a thinking model (/api/show lists no `thinking` "
            "capability), so Ollama would refuse the request: leave --think out",
        ),  # fmt: skip
        ("gpt-oss", "on", "llmtop: --think on: gpt-oss takes --think low, medium, high (/api/show's thinking.values)"),
    ],
)
def test_a_think_the_model_cannot_take_is_one_line_and_status_2_before_any_run(thinking, model, think, said):
    result = llmtop(model, "--host", thinking.url, "--no-log", "--headless", "--think", think)
    no_traceback(result)
    assert result.returncode == 2 and said in result.stderr
    assert generate_bodies(thinking) == []


def test_a_level_reaches_the_request_and_off_runs_on_a_model_that_does_not_think(thinking, tmp_path):
    high = llmtop("gpt-oss", "--host", thinking.url, "--no-log", "--headless", "--no-history", "--think", "high")
    assert high.returncode == 0, high.stderr
    assert generate_bodies(thinking)[-1]["think"] == "high"
    plain = llmtop("llama3.3", "--host", thinking.url, "--no-log", "--headless", "--no-history", "--think", "off",
                   "--export", str(tmp_path / "p.json"))  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    (run,) = json.loads((tmp_path / "p.json").read_text(encoding="utf-8"))["runs"]
    assert (run["thinking_tokens"], run["answer_tokens"]) == (0, 20)


async def test_the_screen_folds_the_thought_and_shows_the_answer(thinking):
    from helpers.screens import cells_of, until
    from llmtop.collectors.system_collectors import SystemCollectors
    from llmtop.measure.plan import PlannedRun, PlanRunner
    from llmtop.measure.session import Session
    from llmtop.measure.settings import RunSettings
    from llmtop.ollama.api import OllamaServer
    from llmtop.tui.app import LlmtopApp

    collectors = SystemCollectors(0.05)
    session = Session(OllamaServer(thinking.url), "qwen3", collectors)
    session.connect()
    collectors.start()
    app = LlmtopApp(PlanRunner({"qwen3": session}, [PlannedRun("qwen3", RunSettings())]))
    try:
        async with app.run_test(size=(140, 50)) as pilot:
            await until(pilot, lambda: len(app.runner.rows) == 1)
            answer = app.query_one("#text")
            await until(pilot, lambda: "thinking: 12 tokens (folded)" in str(answer.border_title))
            assert "t0 " not in answer.text and answer.text.startswith("AI")  # the answer alone, as text
            assert cells_of(app.runs_table, 0)["thinking"].startswith("12 thinking + 20 answer tokens")
    finally:
        collectors.stop()


def test_think_as_a_mode_compares_the_model_without_and_with_thought_in_one_plan(thinking, tmp_path):
    """`--modes auto:think=off,auto:think=on`: one plan, each run asks the think of its mode (over
    --think's), and the two are told apart by their modes in the rows and the comparison."""
    out = tmp_path / "modes.json"
    result = llmtop("qwen3", "--host", thinking.url, "--no-log", "--headless", "--no-history", "--think", "on",
                    "--modes", "auto:think=off,auto:think=on", "--export", str(out))  # fmt: skip
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert [body["think"] for body in generate_bodies(thinking)] == [False, True]
    runs = json.loads(out.read_text(encoding="utf-8"))["runs"]
    assert [(r["mode"], r["think"], r["thinking_tokens"]) for r in runs] == [
        ("auto:think=off", False, 0),
        ("auto:think=on", True, 12),
    ]
    assert "auto, think off" in result.stdout and "auto, think on" in result.stdout


def test_a_mode_whose_think_the_model_cannot_take_is_refused_by_name_before_any_run(thinking):
    result = llmtop("llama3.3", "--host", thinking.url, "--no-log", "--headless", "--modes", "auto,auto:think=on")
    no_traceback(result)
    assert result.returncode == 2, result.stderr
    assert (
        "llmtop: mode auto:think=on: llama3.3 is not a thinking model (/api/show lists no `thinking` capability), "
        "so Ollama would refuse the request: leave think= out"
    ) in result.stderr
    assert generate_bodies(thinking) == []
