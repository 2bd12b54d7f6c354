"""A thinking model on real Ollama (the newest): the tests' random llama with a chat template that has
thinking tags, so that Ollama lists the `thinking` capability and streams the model's output as
thought. It never closes its thought (a random model does not write `</think>`): every token is a
thought, the answer is empty; `--think off` makes every token answer. Both counts and both times to
first token are llmtop's, from the stream."""

from __future__ import annotations

import sys

import pytest

from helpers.real_runs import exported, run_llmtop
from real_ollama import RANDOM_LLAMA, THINKING_TEMPLATE, model_files

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Ollama is built here for Linux")

THINKER = "r81-think"
TOKENS = 12


def test_a_real_thinking_model_streams_thought_that_llmtop_counts_apart_and_think_off_is_honoured(
    real_ollama, tmp_path
):
    server = real_ollama("newest")
    server.create(THINKER, model_files()[RANDOM_LLAMA], {"num_predict": TOKENS}, template=THINKING_TEMPLATE)
    assert "thinking" in server.api("/api/show", {"model": THINKER})["capabilities"]
    thinking = tmp_path / "on"
    thinking.mkdir()
    result = run_llmtop(server, thinking, THINKER, "--host", server.url, "--log", str(server.log_path))
    assert result.returncode == 0, result.stderr
    (run,) = exported(thinking)
    assert (run["thinking_tokens"], run["answer_tokens"], run["eval_count"]) == (TOKENS, 0, TOKENS)
    assert run["ttft_thought_s"] == run["ttft_s"] > 0 and run["ttft_answer_s"] is None
    assert f"{TOKENS} thinking + 0 answer tokens, first thought " in result.stderr
    off = tmp_path / "off"
    off.mkdir()
    result = run_llmtop(server, off, THINKER, "--host", server.url, "--log", str(server.log_path), "--think", "off")
    assert result.returncode == 0, result.stderr
    (run,) = exported(off)
    assert (run["think"], run["thinking_tokens"], run["answer_tokens"]) == (False, 0, TOKENS)
    assert run["ttft_answer_s"] == run["ttft_s"] and run["ttft_thought_s"] is None
    refused = run_llmtop(server, tmp_path, RANDOM_LLAMA, "--host", server.url, "--no-log", "--think", "on")
    assert refused.returncode == 2 and f"{RANDOM_LLAMA} is not a thinking model" in refused.stderr
