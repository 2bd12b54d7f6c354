"""Word wrap in terminal cells, and wrapping a line that grows one piece at a time."""

import random

import pytest

from llmtop.tui.word_wrap import printable, row_starts, wrap


def test_words_move_to_the_next_row_whole():
    assert wrap("hello world this is a test of wrapping", 10) == [
        "hello ",
        "world this ",
        "is a test ",
        "of ",
        "wrapping",
    ]


def test_only_a_word_wider_than_a_row_is_cut():
    assert wrap("supercalifragilistic is long", 8) == ["supercal", "ifragili", "stic is ", "long"]
    assert wrap("ab supercalifragilistic", 8) == ["ab ", "supercal", "ifragili", "stic"]


def test_wide_characters_take_two_cells():
    assert wrap("日本語のテキストを折り返す", 7) == ["日本語", "のテキ", "ストを", "折り返", "す"]


def test_an_empty_line_is_one_empty_row():
    assert wrap("", 10) == [""]
    assert row_starts("", 10) == [0]


@pytest.mark.parametrize("seed", range(5))
def test_rewrapping_only_the_last_row_gives_the_same_rows_as_wrapping_the_whole_line(seed):
    """What the streamed-text pane relies on: text arriving moves no break but the last row's."""
    rng = random.Random(seed)
    pieces = ["a", "bb", "ccc", "dddddddddddd", "日本", "  ", "x" * 30, "end."]
    for _ in range(300):
        width = rng.randint(1, 15)
        line, rows = "", [""]
        for _ in range(rng.randint(1, 30)):
            piece = rng.choice(pieces) + rng.choice(["", " ", "  "])
            cut = rng.randint(1, len(piece))
            for part in (piece[:cut], piece[cut:]):  # a token may end mid-word
                if part:
                    line += part
                    rows += wrap(rows.pop() + part, width)
        assert rows == wrap(line, width), (line, width)


def test_control_characters_cannot_reach_the_terminal():
    assert printable("a\tb\x1b[2Jc\rd\x07") == "a    b\ufffd[2Jcd\ufffd"


def test_shorten_cuts_at_a_word_and_says_so():
    from llmtop.tui.word_wrap import shorten

    reason = "no GPU read (nvml: no NVIDIA driver: the NVML library is not found)"
    assert shorten(reason, 200) == reason
    assert shorten(reason, 40) == "no GPU read (nvml: no NVIDIA driver…"
    assert shorten("abcdefghijkl", 5) == "abcd…"  # one word wider than the room: cut inside it
    assert all(len(shorten(reason, w)) <= w for w in range(1, 80))


def test_fit_takes_the_longest_variant_that_fits():
    from llmtop.tui.word_wrap import fit

    variants = ["Ollama's split (/api/ps): 35% GPU / 65% CPU, 15.2 GB of 44.0 GB", "/api/ps: 35% GPU / 65% CPU"]
    assert fit(variants, 80) == variants[0]
    assert fit(variants, 40) == variants[1]
    assert fit(variants, 20) == "/api/ps: 35% GPU /…"


def test_fit_rows_ends_the_last_row_with_an_ellipsis_at_a_word():
    from llmtop.tui.word_wrap import fit_rows

    why = "why: 27/81 layers on the GPU: Ollama's estimate for all of them is 44.4 GiB and 15.6 GiB was available"
    assert fit_rows(why, 200, 1) == [why]
    rows = fit_rows(why, 40, 2)
    assert len(rows) == 2 and rows[1].endswith("…") and all(len(r) <= 40 for r in rows)
    assert " ".join(rows)[:-1] in why


def test_hanging_indents_the_rows_after_the_first():
    from llmtop.tui.word_wrap import hanging

    rows = hanging("  q         quit (a run in progress is kept, marked incomplete)", 40, 12)
    assert rows[0].startswith("  q ") and all(r.startswith(" " * 12) for r in rows[1:])
    assert all(len(r) <= 40 for r in rows)
