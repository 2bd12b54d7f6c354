"""Plans (models x modes x repeats, interleaved) and the runner that works through them."""

from __future__ import annotations

import pytest

from helpers.seen_events import SeenEvents
from llmtop.measure.events import CoolingDown, EventStream, ServerRestarting
from llmtop.measure.mode import parse_context, parse_modes
from llmtop.measure.plan import PlannedRun, PlanRunner, build_plan
from llmtop.measure.settings import RunSettings
from llmtop.measure.stopping import StopRequested
from llmtop.measure.summary_row import SummaryRow
from llmtop.store.history import HistoryError
from summary_rows import row


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeSession:
    """Runs take `seconds` on the shared clock; the settings of every run are kept."""

    def __init__(
        self,
        model: str,
        clock: Clock,
        seconds: float = 10.0,
        errors: dict[int, str] | None = None,
        stops: dict[int, StopRequested] | None = None,
    ) -> None:
        self.model = model
        self.clock = clock
        self.seconds = seconds
        self.errors = errors or {}
        self.stops = stops or {}  # the runs a signal stops, as Session.run reports them
        self.asked: list[RunSettings] = []
        self.in_progress: RunSettings | None = None
        self.stopped_by: StopRequested | None = None
        self.events = EventStream()

    def run(self, settings: RunSettings) -> SummaryRow:
        self.asked.append(settings)
        self.clock.now += self.seconds
        self.stopped_by = self.stops.get(len(self.asked))
        error = self.stopped_by.reason if self.stopped_by else self.errors.get(len(self.asked))
        return row(self.model, settings.mode, error=error)

    def abandon(self, reason: str) -> SummaryRow | None:
        return row(self.model, "auto", error=reason) if self.in_progress else None


class FakeHistory:
    def __init__(self, problem: str | None = None) -> None:
        self.problem = problem
        self.kept: list[tuple[SummaryRow, dict]] = []

    def add(self, summary: SummaryRow, machine) -> None:
        if self.problem:
            raise HistoryError(self.problem)
        self.kept.append((summary, dict(machine)))


def test_repeats_are_interleaved_model_by_model():
    base = RunSettings(prompt="hi", seed=7, temperature=0.0)
    plan = build_plan(["a", "b"], parse_modes("cpu,auto"), 2, base)
    assert [(p.model, p.settings.mode, p.repeat) for p in plan] == [
        ("a", "cpu", 1),
        ("a", "auto", 1),
        ("a", "cpu", 2),
        ("a", "auto", 2),
        ("b", "cpu", 1),
        ("b", "auto", 1),
        ("b", "cpu", 2),
        ("b", "auto", 2),
    ]
    # Everything but the layers is the same in every run.
    assert {(p.settings.prompt, p.settings.seed, p.settings.temperature) for p in plan} == {("hi", 7, 0.0)}
    assert [p.settings.num_gpu for p in plan[:2]] == [0, None]
    assert build_plan(["a"], parse_modes("gpu=20"), 1, base)[0].settings.options() == {
        "num_gpu": 20,
        "seed": 7,
        "temperature": 0.0,
    }


def test_num_ctx_is_asked_for_and_a_mode_can_vary_it():
    base = RunSettings(prompt="hi", seed=7, num_ctx=8192)
    plan = build_plan(["a"], parse_modes("cpu,auto:ctx=4k,AUTO:CTX=32768,auto:ctx=4096"), 1, base)
    assert [(p.settings.mode, p.settings.num_ctx) for p in plan] == [
        ("cpu", 8192),  # --num-ctx for a mode that sets no context
        ("auto:ctx=4096", 4096),
        ("auto:ctx=32768", 32768),
    ]
    assert plan[0].settings.options() == {"num_gpu": 0, "num_ctx": 8192, "seed": 7}
    assert plan[2].settings.options() == {"num_ctx": 32768, "seed": 7}
    assert RunSettings().options() == {"seed": 42}  # no num_ctx: Ollama chooses
    assert parse_context("8k") == 8192 and parse_context(" 2048 ") == 2048
    for bad in ("8x", "", "100", "99999999"):
        with pytest.raises(ValueError):
            parse_context(bad)


def test_the_runner_runs_every_planned_run_in_order_and_keeps_the_rows():
    clock = Clock()
    sessions = {"a": FakeSession("a", clock), "b": FakeSession("b", clock)}
    history = FakeHistory()
    runner = PlanRunner(
        sessions,
        build_plan(["a", "b"], parse_modes("cpu,auto"), 1, RunSettings()),
        history=history,
        machine=lambda: {"cpu_info": "Test CPU"},
        clock=clock,
    )
    assert (runner.total, runner.done, runner.time_left()) == (4, 0, None)
    rows = runner.run_all()
    assert [(r.model, r.mode) for r in rows] == [("a", "cpu"), ("a", "auto"), ("b", "cpu"), ("b", "auto")]
    assert [s.mode for s in sessions["a"].asked] == ["cpu", "auto"]
    assert runner.done == 4 and runner.time_left() == 0.0
    assert [(r.model, m) for r, m in history.kept] == [(r.model, {"cpu_info": "Test CPU"}) for r in rows]
    assert runner.run_next() is None


def test_time_left_is_the_mean_duration_times_the_runs_to_go():
    clock = Clock()
    session = FakeSession("a", clock, seconds=30.0)
    runner = PlanRunner({"a": session}, build_plan(["a"], parse_modes("cpu,auto"), 3, RunSettings()), clock=clock)
    runner.run_next()
    runner.run_next()
    assert runner.time_left() == pytest.approx(4 * 30.0)
    session.seconds = 50.0
    runner.run_next()  # the mean is now (30 + 30 + 50) / 3
    assert runner.time_left() == pytest.approx(3 * 110 / 3)


def test_a_history_that_cannot_be_written_is_noted_once_and_the_runs_go_on():
    clock = Clock()
    runner = PlanRunner(
        {"a": FakeSession("a", clock)},
        build_plan(["a"], parse_modes("cpu,auto"), 2, RunSettings()),
        history=FakeHistory("cannot open the history at /x/history.sqlite3: database is locked"),
        clock=clock,
    )
    seen = SeenEvents(runner.events)
    rows = runner.run_all()
    assert len(rows) == 4
    assert seen.notes == [
        "cannot open the history at /x/history.sqlite3: database is locked; "
        "the run is kept in this session and its exports"
    ]
    assert runner.history_problem is not None


def test_an_interrupted_run_stops_the_plan_and_a_failed_one_does_not():
    clock = Clock()
    stop = StopRequested("terminated (SIGTERM)", 143)
    session = FakeSession("a", clock, errors={1: "out of memory"}, stops={3: stop})
    runner = PlanRunner({"a": session}, build_plan(["a"], parse_modes("cpu,auto"), 2, RunSettings()), clock=clock)
    rows = runner.run_all()
    assert [r.error for r in rows] == ["out of memory", None, "terminated (SIGTERM)"]
    assert len(runner.queue) == 1 and runner.stopped and runner.stop_request is stop


def test_runs_added_later_are_counted_and_restart_a_finished_runner():
    clock = Clock()
    runner = PlanRunner({"a": FakeSession("a", clock)}, [PlannedRun("a", RunSettings())], clock=clock)
    runner.run_all()
    runner.abandon("quit")  # nothing in progress: nothing kept, but the runner is stopped
    assert len(runner.rows) == 1
    runner.add(PlannedRun("a", RunSettings(num_gpu=0)))
    assert runner.total == 2 and not runner.stopped
    runner.run_all()
    assert [r.mode for r in runner.rows] == ["auto", "cpu"]


def test_abandon_keeps_the_run_in_progress_and_drops_the_rest():
    clock = Clock()
    session = FakeSession("a", clock)
    history = FakeHistory()
    runner = PlanRunner({"a": session}, build_plan(["a"], parse_modes("cpu,auto"), 2, RunSettings()), history=history)
    session.in_progress = RunSettings()
    kept = runner.abandon("quit before the run finished")
    assert kept is not None and kept.error == "quit before the run finished"
    assert runner.rows == [kept] and not runner.queue and runner.stopped
    assert [r for r, _ in history.kept] == [kept]
    assert runner.run_next() is None


def test_a_run_that_ended_as_the_user_quit_reaches_the_history_before_llmtop_exits():
    """The row is in `rows` (and so in the export) a moment before the history has it: leaving the
    screen right then waits for it (wait_kept), so the history never misses the last run."""
    import threading

    class SlowHistory(FakeHistory):
        def __init__(self) -> None:
            super().__init__()
            self.adding = threading.Event()

        def add(self, summary: SummaryRow, machine) -> None:
            self.adding.set()
            threading.Event().wait(0.5)
            super().add(summary, machine)

    history = SlowHistory()
    runner = PlanRunner(
        {"a": FakeSession("a", Clock())}, build_plan(["a"], parse_modes("auto"), 1, RunSettings()), history
    )
    worker = threading.Thread(target=runner.run_next)
    worker.start()
    assert history.adding.wait(5) and len(runner.rows) == 1  # the row is out, the history not yet written
    assert runner.wait_kept(5)
    assert [r for r, _ in history.kept] == runner.rows
    worker.join(5)
    assert runner.wait_kept(0)  # nothing in flight: at once


def test_the_server_is_restarted_only_between_runs_whose_settings_differ_and_not_within_a_run():
    """Repeats interleave the modes, so each mode change is a restart; a model change with the same
    settings is not. The restart's duration counts as no run's."""
    from llmtop.measure.server_settings import ServerSettings

    clock = Clock()
    sessions = {"a": FakeSession("a", clock), "b": FakeSession("b", clock)}
    restarts: list[ServerSettings] = []

    def restart(settings: ServerSettings) -> None:
        assert runner.restarting is not None  # the screen's phase line says so meanwhile
        clock.now += 3.0
        restarts.append(settings)

    plan = build_plan(["a", "b"], parse_modes("auto,auto:kv=q8_0"), 1, RunSettings())
    runner = PlanRunner(sessions, plan, clock=clock, restart_server=restart, server_settings=ServerSettings())
    seen = SeenEvents(runner.events)
    rows = runner.run_all()
    assert [r.mode for r in rows] == ["auto", "auto:kv=q8_0", "auto", "auto:kv=q8_0"]
    q8 = ServerSettings(kv_cache="q8_0")
    assert restarts == [e.settings for e in seen.of(ServerRestarting)] == [q8, ServerSettings(), q8]
    assert runner.restarting is None and runner.server_settings == q8 and runner.failure is None
    assert runner._durations == [10.0] * 4  # noqa: SLF001 - a restart is no run's time


def test_a_restart_that_fails_ends_the_plan_keeping_the_runs_so_far():
    from llmtop.measure.plan import RestartFailed
    from llmtop.measure.server_settings import ServerSettings

    clock = Clock()

    def restart(settings: ServerSettings) -> None:
        raise RestartFailed("`ollama serve` did not start again (exit status 1): Error: listen tcp: address in use")

    plan = build_plan(["a"], parse_modes("auto,moe=all,auto"), 1, RunSettings())
    runner = PlanRunner({"a": FakeSession("a", clock)}, plan, clock=clock,
                        restart_server=restart, server_settings=ServerSettings())  # fmt: skip
    seen = SeenEvents(runner.events)
    rows = runner.run_all()
    assert [r.mode for r in rows] == ["auto"]
    assert runner.failure.startswith("`ollama serve` did not start again") and not runner.queue
    assert seen.notes == [f"{runner.failure}; the runs so far are kept"]


def test_quitting_while_the_server_restarts_runs_nothing_more():
    from llmtop.measure.server_settings import ServerSettings

    clock = Clock()
    session = FakeSession("a", clock)

    def restart(settings: ServerSettings) -> None:
        assert runner.abandon("quit before the run finished") is None  # no run in progress to keep

    plan = build_plan(["a"], parse_modes("auto,auto:kv=q8_0"), 1, RunSettings())
    runner = PlanRunner({"a": session}, plan, clock=clock, restart_server=restart, server_settings=ServerSettings())
    assert [r.mode for r in runner.run_all()] == ["auto"]
    assert [s.mode for s in session.asked] == ["auto"]  # the second run never began


def test_runs_are_ordered_interleaved_in_a_latin_square_or_shuffled_by_the_seed():
    def order(kind: str, seed: int | None = 42, models=("a",)) -> list[str]:
        return [f"{p.model} {p.settings.mode}" for p in build_plan(list(models), parse_modes("cpu,auto,gpu=20"), 3,
                                                                     RunSettings(), kind, seed)]  # fmt: skip

    assert order("interleaved") == ["a cpu", "a auto", "a gpu=20"] * 3
    assert order("latin") == [
        "a cpu",
        "a auto",
        "a gpu=20",
        "a auto",
        "a gpu=20",
        "a cpu",
        "a gpu=20",
        "a cpu",
        "a auto",
    ]  # fmt: skip - every mode once in every place
    shuffled = order("random")
    assert sorted(shuffled) == sorted(order("interleaved")) and shuffled != order("interleaved")
    assert order("random") == shuffled and order("random", seed=7) != shuffled  # the seed makes the order
    two = order("random", models=("a", "b"))
    assert [name.split()[0] for name in two] == ["a"] * 9 + ["b"] * 9  # each model's runs together
    with pytest.raises(ValueError, match="unknown order 'sideways'"):
        order("sideways")


class CountingSession(FakeSession):
    """Generates `counts[i]` tokens on its i-th run, or the run's num_predict where that is less."""

    def __init__(self, model: str, clock: Clock, counts: list[int]) -> None:
        super().__init__(model, clock)
        self.counts = counts

    def run(self, settings: RunSettings) -> SummaryRow:
        from dataclasses import replace

        made = super().run(settings)
        count = self.counts[len(self.asked) - 1]
        limit = settings.num_predict
        done = "length" if limit is not None and limit < count else "stop"
        return replace(made, eval_count=min(count, limit or count), done_reason=done, num_predict=limit)


def test_the_same_work_asks_every_run_after_the_first_for_as_many_tokens_as_the_first_generated():
    clock = Clock()
    session = CountingSession("a", clock, [40, 55, 30, 61])
    runner = PlanRunner({"a": session}, build_plan(["a"], parse_modes("cpu,auto"), 2, RunSettings()), same_work=True)
    rows = runner.run_all()
    assert [s.num_predict for s in session.asked] == [None, 40, 40, 40]
    assert [r.eval_count for r in rows] == [40, 40, 30, 40] and runner.answer_tokens == 40
    assert [r.ended_early for r in rows] == [False, False, True, False]
    assert rows[2].tokens_text == "30 of 40 tokens: ended at the model's end of text"
    asked = CountingSession("a", clock, [80, 80])
    given = build_plan(["a"], parse_modes("cpu,auto"), 1, RunSettings(num_predict=64))
    PlanRunner({"a": asked}, given, same_work=True).run_all()
    assert [s.num_predict for s in asked.asked] == [64, 64]  # the user's count is kept


def test_a_cool_down_waits_between_runs_and_ends_once_the_machine_is_back_near_idle():
    import time

    clock = Clock()
    looked: list[int] = []

    def cooled(rows) -> bool:
        assert rows is runner.rows
        looked.append(len(session.asked))
        return len(looked) % 3 == 0  # back near idle at the third look

    session = FakeSession("a", clock)
    runner = PlanRunner({"a": session}, build_plan(["a"], parse_modes("cpu,auto"), 2, RunSettings()), cooldown_s=60.0,
                        cooled=cooled)  # fmt: skip
    seen = SeenEvents(runner.events)
    started = time.monotonic()
    runner.run_all()
    assert [e.seconds for e in seen.of(CoolingDown)] == [60.0] * 3
    assert looked == [1, 1, 1, 2, 2, 2, 3, 3, 3]  # between runs, not before the first
    assert time.monotonic() - started < 30  # not the full minute: power came back
    assert runner.cooling_until is None


def test_a_cool_down_ends_once_the_temperatures_and_the_power_read_are_back_near_before():
    from dataclasses import replace
    from types import SimpleNamespace

    from llmtop.measure.cool_down import CoolDownCheck, near_baseline

    assert near_baseline({"k10temp": 49.0, "nvml:0": 44.0}, {"k10temp": 47.0, "nvml:0": 41.5}) is True  # within 3
    assert near_baseline({"k10temp": 61.0}, {"k10temp": 47.0}) is False
    assert near_baseline({"amdgpu": 50.0}, {"k10temp": 47.0}) is None  # no chip read both times: not known
    readings = iter([{"k10temp": 47.0}, {"k10temp": 72.0}, {"k10temp": 55.0}, {"k10temp": 49.5}, {"k10temp": 49.0}])
    check = CoolDownCheck(None, lambda: next(readings))  # before the plan: 47 °C; no power read
    assert check.baseline == {"k10temp": 47.0} and check.waits_on == "the temperatures"
    assert [check([]) for _ in range(3)] == [False, False, True]
    watts = SimpleNamespace(value=150.0)
    power = SimpleNamespace(latest=lambda: SimpleNamespace(sources=(SimpleNamespace(watts=watts.value),)))
    idle = [replace(row("m", "cpu", 1.0), idle_power_w=40.0)]
    both = CoolDownCheck(power, lambda: {"k10temp": 47.0})
    assert both.waits_on == "the temperatures and the power" and both(idle) is False  # cool, but still 150 W
    watts.value = 45.0
    assert both(idle) is True  # 45 W <= 40 * 1.1 + 2
    neither = CoolDownCheck(None, dict)
    assert neither.waits_on == "" and neither(idle) is False  # nothing read: the whole time


def test_a_cool_down_without_power_waits_its_time_and_a_quit_ends_it():
    import threading
    import time

    clock = Clock()
    session = FakeSession("a", clock)
    runner = PlanRunner({"a": session}, build_plan(["a"], parse_modes("cpu,auto"), 1, RunSettings()), cooldown_s=0.4)
    started = time.monotonic()
    runner.run_all()
    assert time.monotonic() - started >= 0.4 and len(session.asked) == 2
    waiting = PlanRunner({"a": FakeSession("a", clock)}, build_plan(["a"], parse_modes("cpu,auto"), 1, RunSettings()),
                         cooldown_s=600.0)  # fmt: skip
    threading.Timer(0.3, waiting.abandon, args=("quit",)).start()
    started = time.monotonic()
    rows = waiting.run_all()
    assert time.monotonic() - started < 60 and len(rows) == 1  # the quit ended the wait; nothing more ran
