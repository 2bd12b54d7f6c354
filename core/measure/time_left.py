"""Whether to keep waiting: the time left of a model's load, of a long prompt and of the answer, from
what has been seen so far. Pure: each estimate is the rate so far carried to the end, and None where
there is nothing to carry (no progress yet, nothing to reach).

- load: the bytes the Ollama processes and the GPU took since the baseline, against the model's
  size, at the rate they grew since the request;
- prompt: llama-server's last progress line (Ollama 0.30 on logs one every batch once a prompt has
  taken 3 s), its time left at the rate so far, less the time since the line was read, so that the
  estimate counts down between the lines;
- answer: the tokens asked for (`num_predict`, which a plan sets to the first run's count), less
  those come, at the live rate. The model may end its answer sooner: this is the most it will take.
  Another app's request (`llmtop watch`) asks for a count llmtop does not see: there the model's usual
  length here stands for it, the median of its answers seen (USUAL_ANSWERS or more).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from llmtop.collectors.ollama_log import RequestTiming

USUAL_ANSWERS = 3  # answers of a model seen before its usual length is said


def carried(done: float, total: float, elapsed_s: float) -> float | None:
    """Seconds until `done` reaches `total` at the rate so far (done / elapsed_s); None where there is
    no rate yet or nothing left."""
    if done <= 0 or elapsed_s <= 0 or total <= done:
        return None
    return (total - done) / (done / elapsed_s)


def load_left_s(size_bytes: int | None, loaded_bytes: int | None, elapsed_s: float) -> float | None:
    """A load's time left: `loaded_bytes` of the model's `size_bytes` read in `elapsed_s`."""
    if not size_bytes or loaded_bytes is None:
        return None
    return carried(loaded_bytes, size_bytes, elapsed_s)


def prompt_time_left(request: RequestTiming) -> float | None:
    """A prompt's time left as of its last progress line, while it is being read: each token of a prompt
    costs a little more than the one before (attention reads every token before it), so the time so far
    is fitted as a*n + b*n^2 through the last two progress lines and carried to the prompt's end; from
    one line, at the rate so far. Tokens the slot had in its cache (a warm prompt) are not read: only
    those after them count."""
    p, t = request.prompt_progress, request.prompt_elapsed_s
    if p is None or t is None or p <= 0 or p >= 1 or request.decoded is not None or request.eval_ms is not None:
        return None
    done = request.prompt_done
    if not done:
        return t * (1 - p) / p
    cached = min(request.prompt_cached or 0, done - 1)
    total = request.prompt_total or done / p
    linear = t * (total - done) / (done - cached)
    if len(request.prompt_points) < 2:
        return linear
    (n1, t1), (n2, t2) = ((n - cached, s) for n, s in request.prompt_points[-2:])
    if not 0 < n1 < n2:
        return linear
    b = (t2 / n2 - t1 / n1) / (n2 - n1)
    if b <= 0:  # not slowing down: the rate so far
        return linear
    a = t1 / n1 - b * n1
    read = total - cached
    return max(a * read + b * read * read - t, 0.0)


def prompt_left_s(left_at_line_s: float | None, line_seen_at: float | None, now: float) -> float | None:
    """A prompt's time left: what its last progress line gave, counted down since the line was read
    (0 once that time has passed: the prompt is about to end)."""
    if left_at_line_s is None or line_seen_at is None:
        return None
    return max(left_at_line_s - max(now - line_seen_at, 0.0), 0.0)


def answer_left_s(asked: int | None, count: int, rate_tps: float | None) -> float | None:
    """The answer's time left at most: `asked` tokens (num_predict) less the `count` come, at `rate_tps`."""
    if not asked or not rate_tps or rate_tps <= 0 or count >= asked:
        return None
    return (asked - count) / rate_tps


def usual_length(counts: Sequence[int]) -> int | None:
    """A model's usual answer length: the median of the token counts of its answers seen; None with
    fewer than USUAL_ANSWERS."""
    known = [c for c in counts if c > 0]
    return round(statistics.median(known)) if len(known) >= USUAL_ANSWERS else None
