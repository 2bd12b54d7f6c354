"""Plain verdicts on compared runs: each difference with its 95% interval, "about the same" where the
interval holds no difference at all (with the runs each that would tell a difference of this size
apart at this spread), and the rate said as seconds for this prompt's answer. Never a bare "faster".

The interval is Welch's, for the difference of two means with their own spreads; the speed-up's is
that interval over the baseline's mean, so a speed-up interval that holds 1.00x is "about the same".
One run a side measures no spread: the verdict says so, and how to measure it. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmtop.collectors.token_timing import rate_over_first
from llmtop.measure.comparison import Comparison, compare, placement_text, same_placement
from llmtop.measure.intervals import MOST_RUNS, Difference, Side, difference, ratio_text
from llmtop.measure.mode import CPU, Mode
from llmtop.measure.summary_row import SummaryRow

RAN_ALIKE = "ran alike"
FEWEST_COMMON_TOKENS = 8
"""Runs that ended early are compared over their first tokens only where all reached this many."""


def speedup_text(d: Difference) -> str:
    """`1.33x (1.21-1.46x)`, or `1.33x` where the spread is unknown."""
    return ratio_text(d.speedup, d.speedup_interval)


def seconds_text(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"


@dataclass(frozen=True)
class Verdict:
    """What one group is against another, in a sentence."""

    subject: str  # `llama3.3 auto`
    base: str  # `llama3.3 cpu`
    kind: str  # "faster", "slower", "about the same", "spread unknown", "ran alike" (the same placement)
    difference: Difference
    runs_needed: int | None
    seconds_saved: float | None  # per answer of `tokens` tokens (negative: it costs)
    tokens: float | None
    text: str
    over_first_tokens: int | None = None  # the rates are over each run's first this many tokens (one ended sooner)

    def to_dict(self) -> dict[str, object]:
        interval = self.difference.speedup_interval if self.kind != RAN_ALIKE else None
        return {
            "subject": self.subject,
            "base": self.base,
            "verdict": self.kind,
            "speedup": round(self.difference.speedup, 4) if self.kind != RAN_ALIKE else None,
            "speedup_low": round(interval[0], 4) if interval else None,
            "speedup_high": round(interval[1], 4) if interval else None,
            "runs_needed_each": self.runs_needed,
            "seconds_saved_per_answer": round(self.seconds_saved, 3) if self.seconds_saved is not None else None,
            "answer_tokens": round(self.tokens) if self.tokens is not None else None,
            "over_first_tokens": self.over_first_tokens,
            "text": self.text,
        }


def _answer_tokens(*groups: Comparison) -> float | None:
    counts = [r.eval_count for g in groups for r in g.runs if r.eval_count]
    return sum(counts) / len(counts) if counts else None


def common_count(rows: Sequence[SummaryRow]) -> int | None:
    """The most first tokens over which every one of `rows` can be timed (their token_marks in common),
    None where one has no marks or they share none from FEWEST_COMMON_TOKENS."""
    counts = [{n for n, _ in row.token_marks} for row in rows]
    if not counts or not all(counts):
        return None
    common = [n for n in set.intersection(*counts) if n >= FEWEST_COMMON_TOKENS]
    return max(common) if common else None


def _clean(*groups: Comparison) -> list[SummaryRow]:
    return [r for g in groups for r in g.runs if not r.concurrent_requests and r.eval_rate_tps is not None]


def _sides(subject: Comparison, base: Comparison) -> tuple[Side | None, Side | None, int | None, str]:
    """The two groups' tokens/s, and what they are over: the server's eval rate of every token, or,
    where a run ended at the model's end of text sooner than the others, the client's rate over the
    first tokens all of them generated (said in the returned words)."""
    rows = _clean(subject, base)
    if not any(r.ended_early for r in rows):
        return subject.side, base.side, None, ""
    count = common_count(rows)
    if count is None:
        return subject.side, base.side, None, "; the rates are over different counts of tokens (a run ended sooner)"

    def side(group: Comparison) -> Side | None:
        rates = [rate_over_first(r.token_marks, count) for r in _clean(group)]
        return Side.of([r for r in rates if r is not None])

    return side(subject), side(base), count, f", over the first {count} tokens of each run (a run ended sooner)"


def verdict(subject_name: str, subject: Comparison, base_name: str, base: Comparison) -> Verdict | None:
    """The sentence for `subject` against `base` (None where either has no rate)."""
    a, b, count, over = _sides(subject, base)
    if a is None or b is None or b.mean <= 0 or a.mean <= 0:
        return None
    d = difference(a, b)
    tokens = _answer_tokens(subject, base)
    saved = tokens / b.mean - tokens / a.mean if tokens else None
    rates = f"{a.mean:.2f} against {b.mean:.2f} tps{over}"
    per_answer = ""
    if saved is not None and tokens:
        verb = "saves" if saved >= 0 else "costs"
        per_answer = f"; {verb} {seconds_text(abs(saved))} per answer of {tokens:.0f} tokens"
    needed = d.runs_needed()
    alike = same_placement(_clean(subject, base)) if subject.model == base.model else None
    if alike is not None:  # the mode changed nothing: whatever differs is the machine's, not the mode's
        kind = RAN_ALIKE
        text = (
            f"{subject_name} and {base_name} ran alike ({placement_text(alike)} in every run): the same "
            f"placement, so no speed-up to name ({rates}: this machine's variation between runs)"
        )
        return Verdict(subject_name, base_name, kind, d, None, None, tokens, text, count)
    if not d.known:
        kind = "spread unknown"
        text = (
            f"{subject_name}: {d.speedup:.2f}x the speed of {base_name} ({rates}), one run "
            f"{'each' if a.runs == b.runs == 1 else 'on a side'}: the noise is not measured (--repeat 3 measures it)"
        )
    elif d.same:
        kind = "about the same"
        more = (
            f"more than {MOST_RUNS} runs each would be needed to tell them apart"
            if needed is not None and needed > MOST_RUNS
            else f"need {needed} runs each to tell a difference this size apart"
            if needed is not None
            else "no difference at all"
        )
        text = f"{subject_name} and {base_name}: about the same ({rates}, {speedup_text(d)}); {more}"
    else:
        kind = "faster" if d.delta > 0 else "slower"
        text = f"{subject_name}: {speedup_text(d)} the speed of {base_name} ({rates}){per_answer}"
    return Verdict(subject_name, base_name, kind, d, needed, saved, tokens, text, count)


def _cpu_at_context(group: Comparison, of: Comparison) -> bool:
    """Whether `group` ran on the CPU alone at the context `of`'s mode set."""
    mode = Mode.of(group.mode)
    return mode.placement == CPU and mode.context_part == Mode.of(of.mode).context_part


def verdicts(groups: Sequence[Comparison]) -> list[Verdict]:
    """Each group against its model's `cpu` at the same context and load kind where the plan had it,
    else against the model's first group; and, where several models ran a mode, each model's group
    against the first model's in that mode."""
    found: list[Verdict] = []
    several_models = len({g.model for g in groups}) > 1
    for group in groups:
        mates = [g for g in groups if g.model == group.model and g.load_kind == group.load_kind]
        cpu = [g for g in mates if _cpu_at_context(g, group)]
        base = cpu[0] if cpu else mates[0]
        if base is not group:
            made = verdict(_name(group, several_models), group, _name(base, several_models), base)
            if made is not None:
                found.append(made)
    if several_models:
        first_model = groups[0].model
        for group in groups:
            if group.model == first_model:
                continue
            same = [g for g in groups if g.model == first_model and g.mode == group.mode]
            if same and same[0].load_kind == group.load_kind:
                made = verdict(_name(group, True), group, _name(same[0], True), same[0])
                if made is not None:
                    found.append(made)
    return found


def early_endings(rows: Sequence[SummaryRow]) -> list[str]:
    """A line for each run that ended at the model's end of text before the tokens it asked for: its
    rate is over fewer tokens than the others' (the same work was asked, not done; the verdicts compare
    over the first tokens all runs generated where the client's clock timed them)."""
    return [
        f"run {number} ({row.model} {row.mode}): {row.tokens_text}; its rate is over fewer tokens than asked"
        for number, row in enumerate(rows, 1)
        if row.ended_early
    ]


def prompt_cache_notes(rows: Sequence[SummaryRow]) -> list[str]:
    """A line for each run whose prompt was partly in llama-server's cache (a warm prompt: its prompt
    rate is over the tokens read, not the prompt), and for each warm run whose model kept no cache
    where an earlier one of the same model had: the cache was dropped, at the cost of reading it all."""
    said = []
    cached_before: set[str] = set()
    for number, row in enumerate(rows, 1):
        total, cached = row.prompt_tokens_total, row.prompt_cached_tokens
        if total and cached:
            said.append(
                f"run {number} ({row.model} {row.mode}): warm prompt: {cached} of its {total} tokens from the "
                "server's cache, only the rest read"
            )
            cached_before.add(row.model)
        elif total and cached == 0 and row.load_kind == "warm" and row.model in cached_before:
            cost = f" (about {total / row.prompt_rate_tps:.2g} s)" if row.prompt_rate_tps else ""
            said.append(
                f"run {number} ({row.model} {row.mode}): cache gone: read all {total} prompt tokens again{cost}"
            )
    return said


def said_of(rows: Sequence[SummaryRow]) -> list[str]:
    """Everything the verdicts section says of `rows`: each difference, each early ending, and each
    run slow for this machine (usual.py)."""
    slow = [f"run {n} ({r.model} {r.mode}): {r.slow_note}" for n, r in enumerate(rows, 1) if r.slow_note]
    return [v.text for v in verdicts(compare(rows))] + early_endings(rows) + prompt_cache_notes(rows) + slow


def _name(group: Comparison, with_model: bool) -> str:
    return f"{group.model} {group.mode}" if with_model else group.mode
