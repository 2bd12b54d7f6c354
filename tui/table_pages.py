"""Which of a table's columns fit a width: the columns split into pages, the first ones (the row's
name) on every page, so that a narrow terminal shows whole columns and the rest one key away."""

from __future__ import annotations

from collections.abc import Sequence


def column_pages(widths: Sequence[int], width: int, keep: int = 1) -> list[list[int]]:
    """Indices of the columns on each page, in order: the first `keep` columns on every page, then as
    many of the others, in order, as fit `width` (a column wider than a page has a page of its own).
    `widths` are the columns' widths as drawn, padding included."""
    kept = list(range(min(keep, len(widths))))
    base = sum(widths[i] for i in kept)
    pages: list[list[int]] = []
    page: list[int] = []
    used = base
    for index in range(len(kept), len(widths)):
        if page and used + widths[index] > width:
            pages.append(kept + page)
            page, used = [], base
        page.append(index)
        used += widths[index]
    if page or not pages:
        pages.append(kept + page)
    return pages
