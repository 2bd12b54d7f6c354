"""Runs compared: grouped by model, mode and load kind; mean, standard deviation, speed-up over cpu."""

import statistics

import pytest

from llmtop.measure.comparison import compare
from summary_rows import row


def test_means_deviations_and_speed_up_over_cpu_for_the_same_model():
    rows = [
        row("a", "cpu", 0.98),
        row("a", "auto", 1.30),
        row("a", "cpu", 1.00),
        row("a", "auto", 1.38),
        row("b", "auto", 5.0),
        row("b", "cpu", 2.0),
    ]
    groups = compare(rows)
    assert [(c.model, c.mode) for c in groups] == [("a", "cpu"), ("a", "auto"), ("b", "auto"), ("b", "cpu")]
    cpu, auto, b_auto, b_cpu = groups
    assert cpu.tps == pytest.approx(0.99) and cpu.tps_stdev == pytest.approx(statistics.stdev([0.98, 1.0]))
    assert auto.tps == pytest.approx(1.34) and auto.speedup == pytest.approx(1.34 / 0.99)
    assert cpu.speedup == pytest.approx(1.0)
    assert b_auto.speedup == pytest.approx(2.5)  # against b's cpu run, not a's
    assert b_auto.tps_stdev is None  # one run: no deviation


def test_a_mode_with_a_context_is_compared_with_cpu_at_that_context_only():
    rows = [
        row("a", "cpu", 1.0),
        row("a", "cpu:ctx=32768", 0.5),
        row("a", "auto:ctx=32768", 2.0),
        row("a", "auto", 4.0),
    ]
    by_mode = {c.mode: c for c in compare(rows)}
    assert by_mode["auto:ctx=32768"].speedup == pytest.approx(4.0)  # 2.0 over 0.5, not over 1.0
    assert by_mode["auto"].speedup == pytest.approx(4.0)
    only_long = compare([row("a", "cpu", 1.0), row("a", "auto:ctx=32768", 2.0)])
    assert only_long[1].speedup is None  # no cpu run at that context: no speed-up rather than a wrong one


def test_warm_and_cold_runs_are_separate_groups_each_against_its_own_cpu():
    from dataclasses import replace

    rows = [row("a", "cpu", 1.0), row("a", "auto", 2.0), replace(row("a", "auto", 3.0), load_kind="warm")]
    groups = compare(rows)
    assert [(c.mode, c.load_kind, c.speedup) for c in groups] == [
        ("cpu", "cold", 1.0),
        ("auto", "cold", 2.0),
        ("auto", "warm", None),  # no warm cpu run to compare with
    ]


def test_runs_without_a_rate_count_as_runs_but_not_in_the_mean():
    rows = [row("a", "cpu", 2.0), row("a", "cpu", None, error="out of memory")]
    [group] = compare(rows)
    assert len(group.runs) == 2 and group.incomplete == 1
    assert group.tps == 2.0 and group.tps_stdev is None


def test_a_cpu_run_without_a_rate_gives_no_speed_up():
    [cpu, auto] = compare([row("a", "cpu", None, error="dropped"), row("a", "auto", 3.0)])
    assert cpu.tps is None and auto.speedup is None
