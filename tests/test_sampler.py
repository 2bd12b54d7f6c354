"""Samplers: fixed-rate samples in a bounded buffer, failures kept apart, on a thread of their own
or on one timer shared by several."""

import threading
import time
from dataclasses import dataclass

import pytest

from llmtop.collectors.sampler import SLOW_READ_S, Sampler, SharedTimer
from waiting import eventually


@dataclass(frozen=True)
class Reading:
    t: float
    value: int


def test_samples_have_increasing_monotonic_times_and_the_buffer_is_bounded():
    counter = iter(range(10**9))
    sampler = Sampler("count", lambda now: Reading(now, next(counter)), interval=0.005, capacity=10)
    sampler.start()
    eventually(lambda: sampler.latest() is not None and sampler.latest().value >= 30)
    sampler.stop()
    samples = sampler.all()
    assert len(samples) == 10
    assert [s.value for s in samples] == list(range(samples[0].value, samples[0].value + 10))
    assert all(a.t < b.t for a, b in zip(samples, samples[1:], strict=False))
    assert not sampler.running


def test_a_failing_reader_records_its_error_and_adds_no_sample():
    calls = []

    def read(now):
        calls.append(now)
        if len(calls) < 3:
            raise PermissionError("denied")
        return Reading(now, len(calls))

    sampler = Sampler("flaky", read, interval=0.005)
    assert sampler.sample_now() is None
    assert sampler.last_error == "PermissionError: denied"
    assert sampler.all() == []
    sampler.start()
    eventually(lambda: sampler.latest() is not None)
    sampler.stop()
    assert sampler.last_error is None
    assert sampler.all()[0].value == 3


def test_between_selects_by_time():
    times = iter([1.0, 2.0, 3.0, 4.0])
    sampler = Sampler("t", lambda now: Reading(now, 0), interval=1.0, clock=lambda: next(times))
    for _ in range(4):
        sampler.sample_now()
    assert [s.t for s in sampler.between(2.0, 3.0)] == [2.0, 3.0]
    assert [s.t for s in sampler.between(3.5)] == [4.0]


def test_stop_ends_the_thread_promptly_even_with_a_long_interval():
    started = threading.Event()

    def read(now):
        started.set()
        return Reading(now, 1)

    sampler = Sampler("slow", read, interval=30.0)
    sampler.start()
    assert started.wait(5)
    sampler.stop(timeout=5)
    assert not sampler.running


def test_bad_interval_and_double_start_are_refused():
    with pytest.raises(ValueError):
        Sampler("x", lambda now: None, interval=0)
    sampler = Sampler("x", lambda now: None, interval=1.0)
    sampler.start()
    with pytest.raises(RuntimeError):
        sampler.start()
    sampler.stop()


def test_a_shared_timer_reads_every_sampler_on_one_thread_each_on_its_own_schedule():
    threads: dict[str, set[str]] = {"fast": set(), "slow": set()}

    def reader(name):
        def read(now):
            threads[name].add(threading.current_thread().name)
            return Reading(now, 0)

        return read

    fast = Sampler("fast", reader("fast"), interval=0.01)
    slow = Sampler("slow", reader("slow"), interval=0.04)
    timer = SharedTimer([fast, slow])
    timer.start()
    eventually(lambda: len(slow.all()) >= 5)
    timer.stop()
    assert threads["fast"] == threads["slow"] == {"llmtop-samplers"}
    assert not fast.running and not slow.running  # no thread of their own
    # Each on its own fixed-rate schedule: about four fast samples to a slow one (ticks the
    # loaded machine missed are skipped, never run twice: at most one sample per interval).
    fast_times = [s.t for s in fast.all()]
    slow_times = [s.t for s in slow.all()]
    assert len(fast_times) >= 2 * len(slow_times)
    assert len(slow_times) <= (slow_times[-1] - slow_times[0]) / 0.04 + 1.5


def test_a_slow_reader_leaves_the_shared_timer_for_a_thread_of_its_own():
    names: list[str] = []

    def slow_read(now):
        names.append(threading.current_thread().name)
        time.sleep(SLOW_READ_S * 1.5)
        return Reading(now, 0)

    quick = Sampler("quick", lambda now: Reading(now, 0), interval=0.01)
    slow = Sampler("gpu", slow_read, interval=0.01)
    timer = SharedTimer([quick, slow])
    timer.start()
    eventually(lambda: "llmtop-gpu" in names)
    count = len(quick.all())
    eventually(lambda: len(quick.all()) >= count + 20)  # the quick one is no longer held up
    timer.stop()
    assert timer.moved == [slow] and not slow.running
    assert names[:2] == ["llmtop-samplers", "llmtop-samplers"]


def test_a_sample_taken_on_another_thread_that_comes_in_late_is_kept_in_time_order():
    sampler = Sampler("count", lambda now: None, interval=1.0, capacity=4)
    for t in (1.0, 2.0, 4.0):
        sampler.push(Reading(t, int(t)))
    sampler.push(Reading(3.0, 3))  # read before the 4.0 one, pushed after it
    assert [s.t for s in sampler.all()] == [1.0, 2.0, 3.0, 4.0]
    assert [s.t for s in sampler.between(2.5, 3.5)] == [3.0]
    sampler.push(Reading(2.5, 2))  # the buffer is full: the oldest goes
    assert [s.t for s in sampler.all()] == [2.0, 2.5, 3.0, 4.0]
    assert [s.t for s in sampler.between(2.0, 2.5)] == [2.0, 2.5]
    assert sampler.between(4.5) == [] and sampler.between(0.0, 0.5) == []


def test_the_buffer_keeps_what_a_sample_repeats_once():
    from llmtop.collectors.system_memory import SystemMemorySample

    sampler = Sampler("ram", lambda now: None, interval=0.25)
    total = 64 * 2**30
    sampler.push(SystemMemorySample(1.0, int(str(total)), 10 * 2**30, 0, int(str(8 * 2**30))))
    sampler.push(SystemMemorySample(1.25, int(str(total)), 11 * 2**30, 0, int(str(8 * 2**30))))
    first, second = sampler.all()
    assert second.total_bytes is first.total_bytes and second.swap_total_bytes is first.swap_total_bytes
    assert second.available_bytes == 11 * 2**30 and second.t == 1.25  # what changed is its own
