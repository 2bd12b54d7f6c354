"""Greedy word wrap measured in terminal cells, for text that only ever grows at its end.

Greedy wrapping never moves a row break that is already followed by a full row, so a streamed
line can be wrapped incrementally: only its last row is wrapped again when text arrives.
"""

from __future__ import annotations

import re

from rich.cells import cell_len

_CHUNK = re.compile(r"\s*\S+\s*|\s+")  # a word with the spaces around it (or only spaces)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def printable(text: str) -> str:
    """The text with tabs expanded to four spaces and other control characters (escape sequences
    a model may print) shown as U+FFFD, so they cannot drive the terminal."""
    return _CONTROL.sub("\ufffd", text.replace("\t", "    ").replace("\r", ""))


def row_starts(line: str, width: int) -> list[int]:
    """Offsets at which each row of `line` (no newlines) begins, wrapped to `width` cells.

    Rows break before a word that does not fit; spaces at the end of a row hang past the edge;
    only a word wider than a whole row is cut. The first offset is always 0. Text appended to
    `line` can move only the breaks inside its last row.
    """
    width = max(width, 1)
    starts = [0]
    used = 0
    for match in _CHUNK.finditer(line):
        chunk = match.group()
        word = chunk.rstrip()
        word_cells = cell_len(word)
        if used + word_cells <= width:
            used += cell_len(chunk)
            continue
        if used:  # the word goes to the next row (never cut while it could fit a row of its own)
            starts.append(match.start())
            used = 0
        if word_cells <= width:
            used = cell_len(chunk)
            continue
        offset = match.start()  # a word wider than a row: cut it where each row is full
        for char in word:
            cells = cell_len(char)
            if used + cells > width and used:
                starts.append(offset)
                used = 0
            used += cells
            offset += 1
        used += cell_len(chunk) - word_cells
    return starts


def wrap(line: str, width: int) -> list[str]:
    """`line` cut into rows of at most `width` cells (trailing spaces aside)."""
    starts = row_starts(line, width)
    return [line[a:b] for a, b in zip(starts, [*starts[1:], len(line)], strict=True)]


def shorten(text: str, width: int) -> str:
    """`text` cut to `width` cells at the end of a word, with `…` where it was cut (a single word
    wider than the width is cut inside); as it is when it fits."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    room = width - 1
    kept = ""
    for match in _CHUNK.finditer(text):
        candidate = kept + match.group().rstrip()
        if cell_len(candidate) > room:
            break
        kept = kept + match.group()
    kept = kept.rstrip().rstrip(",;:·(-")
    if not kept:  # the first word alone is too wide: cut inside it
        cells = 0
        for index, char in enumerate(text):
            cells += cell_len(char)
            if cells > room:
                return text[:index] + "…"
    return kept.rstrip() + "…"


def fit(variants: list[str], width: int) -> str:
    """The first of `variants` (longest first) that fits `width` cells, else the last one shortened."""
    for text in variants:
        if cell_len(text) <= width:
            return text
    return shorten(variants[-1], width) if variants else ""


def fit_rows(text: str, width: int, rows: int) -> list[str]:
    """`text` wrapped at words to `width` cells in at most `rows` rows, the last one shortened with `…`
    where the text goes on."""
    wrapped = [row.rstrip() for row in wrap(text, width)]
    if len(wrapped) <= rows:
        return wrapped
    starts = row_starts(text, width)
    return [*wrapped[: rows - 1], shorten(text[starts[rows - 1] :].strip(), width)]


def hanging(line: str, width: int, indent: int) -> list[str]:
    """`line` wrapped at words to `width` cells, every row after the first indented by `indent` spaces."""
    first = wrap(line, width)
    if len(first) <= 1 or width <= indent + 8:
        return [row.rstrip() for row in first]
    rest = line[len(first[0]) :].strip()
    return [first[0].rstrip(), *(" " * indent + row.rstrip() for row in wrap(rest, width - indent))]
