"""Token timing: the server's rates from the final chunk, and the client's clock on chunks."""

import pytest

from llmtop.collectors.token_timing import ServerTiming, TokenClock, rate_series, windowed_rate

# A final chunk as Ollama sends it (durations in nanoseconds).
FINAL = {
    "model": "llama3.3",
    "created_at": "2024-12-07T10:22:55.181Z",
    "response": "",
    "done": True,
    "done_reason": "stop",
    "total_duration": 94_211_812_100,
    "load_duration": 21_543_123_400,
    "prompt_eval_count": 26,
    "prompt_eval_duration": 3_120_000_000,
    "eval_count": 94,
    "eval_duration": 69_548_689_300,
}


def test_eval_rate_is_eval_count_over_eval_duration():
    timing = ServerTiming.from_final_chunk(FINAL)
    assert timing.eval_rate_tps == pytest.approx(94 / 69.5486893)
    assert timing.prompt_rate_tps == pytest.approx(26 / 3.12)
    assert timing.load_s == pytest.approx(21.5431234)
    assert timing.done_reason == "stop"


@pytest.mark.parametrize(
    "change", [{"eval_duration": 0}, {"eval_count": 0}, {"eval_duration": None}, {"eval_count": True}]
)
def test_no_rate_without_both_figures(change):
    assert ServerTiming.from_final_chunk({**FINAL, **change}).eval_rate_tps is None


def test_client_clock_measures_ttft_and_rate_between_first_and_last_token():
    clock = TokenClock(request_at=100.0)
    assert clock.ttft_s is None and clock.client_rate_tps is None
    for i in range(11):
        clock.token(102.5 + i * 0.1)
    assert clock.ttft_s == pytest.approx(2.5)
    assert clock.client_rate_tps == pytest.approx(10.0)  # 10 intervals in 1.0 s
    assert clock.count == 11


def test_one_token_gives_no_rate():
    clock = TokenClock(request_at=0.0)
    clock.token(1.0)
    assert clock.client_rate_tps is None
    assert clock.ttft_s == 1.0


def test_windowed_rate_counts_tokens_in_the_window():
    times = [10.0 + i * 0.25 for i in range(41)]  # 4 tokens/s for 10 s
    assert windowed_rate(times, 20.0, 2.0) == pytest.approx(4.0)
    assert windowed_rate(times, 10.5, 2.0) == pytest.approx(4.0)  # window clipped to the first token
    assert windowed_rate(times, 9.0, 2.0) is None
    assert windowed_rate([], 5.0, 2.0) is None
    # After the last token the rate decays: nothing new arrives in the window.
    assert windowed_rate(times, 23.0, 2.0) == 0.0


def test_rate_series_is_downsampled_to_a_fixed_number_of_points():
    times = [i / 30 for i in range(30 * 7200)]  # two hours at 30 tokens/s
    series = rate_series(times, 0.0, 7200.0, points=80)
    assert len(series) == 80
    assert all(v == pytest.approx(30.0, rel=0.01) for _, v in series)
    assert rate_series([], 0.0, 1.0, 10) == []
    assert rate_series(times, 5.0, 5.0, 10) == []


def test_bursts_are_told_apart_from_a_fast_stream():
    burst = TokenClock(0.0)
    for i in range(40):
        burst.token(1.0 + i * 0.00005)  # 40 tokens within 2 ms: one delivery
    assert burst.in_bursts()
    fast = TokenClock(0.0)
    for i in range(40):
        fast.token(1.0 + i * 0.002)  # 500 tokens a second, one by one
    assert not fast.in_bursts() and fast.client_rate_tps == pytest.approx(500)


def test_a_few_tokens_that_came_two_at_a_time_are_no_burst_but_all_at_once_is():
    """As a busy server on two cores sends a short run's first chunks (seen on real Ollama 0.34 in CI):
    a handful of gaps cannot tell a buffering proxy from chance, so the client rate stands."""
    few = TokenClock(0.0)
    for t in (1.0, 1.0, 1.0, 1.03, 1.06, 1.06):
        few.token(t)
    assert not few.in_bursts() and few.client_rate_tps == pytest.approx(5 / 0.06)
    at_once = TokenClock(0.0)
    for _ in range(5):
        at_once.token(2.0)
    assert at_once.in_bursts() and at_once.client_rate_tps is None
    many = TokenClock(0.0)
    for i in range(40):
        many.token(1.0 + (i // 10) * 0.1)  # four deliveries of ten: a proxy's buffers
    assert many.in_bursts()


# Real Ollama 0.34.4 under a CPU burner on 2 cores, `ollama serve` stopped after 20 tokens: the gaps
# (ms) between the tokens as llmtop's reader timed them; late wake-ups gave 4, 2 and 7 tokens at once.
BUSY_SERVER_GAPS_MS = (181.45, 0, 0, 0, 129.81, 0, 207.82, 0, 0, 0, 0, 0, 0, 45.5, 79.21, 42.44, 42.44, 53.56, 48.85)


def test_a_busy_machines_late_wake_ups_are_no_burst():
    """Most gaps are nothing, but the deliveries hold 2 tokens on average: the client's span from
    first to last token still times the generation."""
    clock = TokenClock(0.0)
    t = 1.0
    clock.token(t)
    for gap in BUSY_SERVER_GAPS_MS:
        t += gap / 1000
        clock.token(t)
    assert not clock.in_bursts()
    assert clock.client_rate_tps == pytest.approx(19 / (sum(BUSY_SERVER_GAPS_MS) / 1000))
