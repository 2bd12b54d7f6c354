"""The sampler thread: fixed-rate samples in a bounded buffer, failures kept apart."""

import threading
from dataclasses import dataclass

import pytest

from llmtop.collectors.sampler import Sampler
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
