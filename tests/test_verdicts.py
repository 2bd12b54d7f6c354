"""Plain verdicts on compared runs (core/measure/verdicts.py, intervals.py): each difference with its
95% interval, "about the same" with the runs needed where the interval holds no difference, the
rate as seconds per answer, and never a bare "faster"."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from llmtop.collectors.token_timing import rate_over_first, token_marks
from llmtop.measure.comparison import compare
from llmtop.measure.intervals import MOST_RUNS, Side, difference, t95
from llmtop.measure.verdicts import common_count, verdicts
from llmtop.store.exports import session_markdown, to_json
from summary_rows import row


def runs(model: str, mode: str, *rates: float, tokens: int = 60):
    return [replace(row(model, mode, rate), eval_count=tokens) for rate in rates]


def test_a_difference_outside_the_noise_is_said_with_its_interval_and_the_seconds_it_saves():
    rows = runs("m", "cpu", 1.0, 1.1, 0.9) + runs("m", "auto", 2.0, 2.2, 1.8)
    (said,) = verdicts(compare(rows))
    # By hand: means 1.0 and 2.0, sds 0.1 and 0.2, 3 runs each: se 0.1291, Welch's df 2.94, t 3.182.
    low, high = said.difference.speedup_interval
    assert (low, high) == (pytest.approx(1.589, abs=0.001), pytest.approx(2.411, abs=0.001))
    assert said.kind == "faster" and said.seconds_saved == pytest.approx(30.0)  # 60 tokens: 60 s, then 30 s
    assert (
        said.text
        == "auto: 2.00x (1.59-2.41x) the speed of cpu (2.00 against 1.00 tps); saves 30 s per answer of 60 tokens"
    )
    slower = verdicts(compare(runs("m", "cpu", 2.0, 2.2, 1.8) + runs("m", "auto", 1.0, 1.1, 0.9)))[0]
    assert slower.kind == "slower" and "costs 30 s per answer of 60 tokens" in slower.text


def test_overlapping_runs_are_about_the_same_with_the_runs_each_that_would_tell_them_apart():
    rows = runs("m", "cpu", 1.0, 1.1, 0.9) + runs("m", "auto", 1.05, 1.15, 0.95)
    (said,) = verdicts(compare(rows))
    assert said.kind == "about the same" and said.difference.same
    # A difference of 0.05 at sds of 0.1: t * sqrt(0.02 / n) < 0.05 first at n = 32 (t = 1.96).
    assert said.runs_needed == 32
    assert said.text == (
        "auto and cpu: about the same (1.05 against 1.00 tps, 1.05x (0.82-1.28x)); need 32 runs each to tell a "
        "difference this size apart"
    )
    assert "faster" not in said.text and "saves" not in said.text
    tiny = verdicts(compare(runs("m", "cpu", 1.0, 1.1, 0.9) + runs("m", "auto", 1.001, 1.101, 0.901)))[0]
    assert tiny.runs_needed == MOST_RUNS + 1 and "more than 100 runs each" in tiny.text


def marks_at(rate: float, count: int) -> tuple[tuple[int, float], ...]:
    """A run's token_marks at a steady `rate` over `count` tokens."""
    return token_marks([i / rate for i in range(count)])


def test_runs_that_ended_sooner_are_compared_over_the_first_tokens_every_run_generated():
    """The server's rates say auto is twice as fast, but auto's runs ended at the model's end of text
    after 20 of 60 tokens asked: over the first 16 tokens of each run (the marks all reached), the
    client's clock times both at 10 tokens/s (auto's answer was short, not fast)."""
    cpu = [
        replace(r, num_predict=60, done_reason="length", token_marks=marks_at(10.0, 60))
        for r in runs("m", "cpu", 10.0, 10.0, 10.0)
    ]
    auto = [
        replace(r, num_predict=60, done_reason="stop", eval_count=20, token_marks=marks_at(10.0, 20))
        for r in runs("m", "auto", 20.0, 20.0, 20.0)
    ]
    assert [n for n, _ in auto[0].token_marks] == [8, 12, 16, 20]
    assert common_count(cpu + auto) == 16
    assert rate_over_first(auto[0].token_marks, 16) == pytest.approx(10.0)
    (said,) = verdicts(compare(cpu + auto))
    assert said.kind == "about the same" and said.over_first_tokens == 16
    assert "(10.00 against 10.00 tps, over the first 16 tokens of each run (a run ended sooner)" in said.text
    assert said.to_dict()["over_first_tokens"] == 16
    plain = verdicts(compare([replace(r, done_reason="length", eval_count=60) for r in auto] + cpu))
    assert plain[0].over_first_tokens is None  # nobody ended early: the server's rates of every token
    unmarked = [replace(r, token_marks=()) for r in auto]  # a proxy's bursts: the client could not time them
    (said,) = verdicts(compare(cpu + unmarked))
    assert said.kind == "faster" and "the rates are over different counts of tokens (a run ended sooner)" in said.text
    five = [replace(r, eval_count=5, token_marks=marks_at(10.0, 5)) for r in auto]  # too few to time
    assert common_count(cpu + five) is None


def test_one_run_a_side_says_the_noise_is_not_measured():
    (said,) = verdicts(compare(runs("m", "cpu", 1.0) + runs("m", "auto", 1.3)))
    assert said.kind == "spread unknown" and said.difference.speedup_interval is None
    assert said.text == (
        "auto: 1.30x the speed of cpu (1.30 against 1.00 tps), one run each: the noise is not measured "
        "(--repeat 3 measures it)"
    )


def test_without_cpu_each_mode_is_judged_against_the_first_and_models_against_the_first_model():
    rows = runs("a", "auto", 5.0, 5.2) + runs("a", "gpu=20", 6.0, 6.2) + runs("b", "auto", 7.0, 7.2)
    said = [(v.subject, v.base, v.kind) for v in verdicts(compare(rows))]
    assert said == [("a gpu=20", "a auto", "faster"), ("b auto", "a auto", "faster")]


def test_the_speedup_column_keeps_its_interval_and_the_exports_say_the_verdicts():
    rows = runs("m", "cpu", 1.0, 1.1, 0.9) + runs("m", "auto", 2.0, 2.2, 1.8)
    table = session_markdown(rows)
    assert "| 2.00x (1.59-2.41x) |" in table
    assert "### Verdicts\n\n- auto: 2.00x (1.59-2.41x) the speed of cpu" in table
    assert "Verdicts" not in session_markdown(rows, columns=("tps", "speed-up"))  # the article's table alone
    document = json.loads(to_json(rows))
    (said,) = document["verdicts"]
    assert said["verdict"] == "faster" and said["runs_needed_each"] is not None
    assert said["speedup_low"] == pytest.approx(1.589, abs=0.001) and said["seconds_saved_per_answer"] == 30.0
    auto = next(c for c in document["comparison"] if c["mode"] == "auto")
    assert auto["speedup_low"] == pytest.approx(said["speedup_low"], abs=1e-4)
    assert auto["speedup_high"] == pytest.approx(said["speedup_high"], abs=1e-4)


def test_the_interval_arithmetic():
    assert (t95(1), t95(2.9), t95(4), t95(1000)) == (12.706, 3.182, 2.776, 1.96)
    same = difference(Side(2.0, 0.0, 3), Side(1.0, 0.0, 3))  # no spread at all: the difference is exact
    assert (same.low, same.high) == (1.0, 1.0) and not same.same
    assert Side.of([1.0]) == Side(1.0, None, 1) and Side.of([]) is None


def placed(rows, env: str, offloaded: int, total: int = 81):
    return [replace(r, env=env, layers_offloaded=offloaded, layers_total=total) for r in rows]


def test_modes_that_ran_with_the_same_placement_ran_alike_and_name_no_speed_up():
    """Real Ollama 0.5.11 on a machine without a GPU: cpu and auto both 0/81 layers on a GPU, env CPU;
    auto's runs were 2.56x cpu's only because the machine was busier during cpu's."""
    rows = placed(runs("tiny", "cpu", 0.19), "CPU", 0) + placed(runs("tiny", "auto", 0.49), "CPU", 0)
    (said,) = verdicts(compare(rows))
    assert said.kind == "ran alike"
    assert said.text == (
        "auto and cpu ran alike (0 of 81 layers on a GPU, env CPU in every run): the same placement, so no "
        "speed-up to name (0.49 against 0.19 tps: this machine's variation between runs)"
    )
    assert "2.56x" not in said.text and said.to_dict()["speedup"] is None
    auto = next(c for c in compare(rows) if c.mode == "auto")
    assert auto.alike == ("CPU", 0, 81, 0)
    exported = json.loads(to_json(rows))
    assert exported["comparison"][1]["ran_alike"] == "0 of 81 layers on a GPU, env CPU"
    assert exported["verdicts"][0]["verdict"] == "ran alike"
    table = session_markdown(rows)
    assert "| ran alike |" in table and "2.58x" not in table and "2.56x" not in table


def test_a_different_placement_in_any_run_is_compared_as_usual():
    cpu = placed(runs("tiny", "cpu", 0.19, 0.2), "CPU", 0)
    auto = placed(runs("tiny", "auto", 0.49), "CPU", 0) + placed(runs("tiny", "auto", 0.5), "CPU+GPU", 60)
    (said,) = verdicts(compare(cpu + auto))
    assert said.kind != "ran alike" and "the speed of cpu" in said.text
    unknown = runs("tiny", "cpu", 0.19) + runs("tiny", "auto", 0.49)  # no log: the placement is not known
    assert verdicts(compare(unknown))[0].kind == "spread unknown"
