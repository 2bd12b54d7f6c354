"""The summary tables: one row per run (the article's columns and the timing figures), or one per
compared group; columns that do not fit the width go to a second page (`t`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable

from llmtop.measure.summary_row import SummaryRow
from llmtop.tables import SCREEN_RUN_COLUMNS, Column
from llmtop.tui.table_pages import column_pages

CELL_PADDING = 2  # DataTable pads each cell by one on either side
SCROLLBAR = 2  # room kept for the vertical scrollbar a long table shows


class SummaryTable(DataTable):
    """A DataTable of SummaryRow (or of any items `columns` can render); runs compare on one screen.
    Only whole columns are shown: those that fit the width, in order, the first one on every page."""

    DEFAULT_CSS = """
    SummaryTable { height: auto; max-height: 10; }
    """

    def __init__(self, *, id: str | None = None, columns: Sequence[Column] = SCREEN_RUN_COLUMNS) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.table_columns = tuple(columns)
        self.summaries: list[Any] = []
        self.title = ""
        self.page = 0
        self.pages: list[list[int]] = [list(range(len(self.table_columns)))]
        self._laid_out_for: tuple[int, int] | None = None

    @property
    def shown_columns(self) -> tuple[Column, ...]:
        """The columns on the page shown."""
        return tuple(self.table_columns[i] for i in self.pages[self.page])

    def set_title(self, title: str) -> None:
        """The border title; a hint to the other columns is added when they do not all fit."""
        self.title = title
        self._show_title()

    def _show_title(self) -> None:
        more = f"  ·  t: more columns ({self.page + 1}/{len(self.pages)})" if len(self.pages) > 1 else ""
        self.border_title = self.title + more

    def on_mount(self) -> None:
        self._add_columns()

    def on_resize(self) -> None:
        self._fit()

    def _add_columns(self) -> None:
        for column in self.shown_columns:
            self.add_column(column.header, key=column.header)

    def column_widths(self) -> list[int]:
        """Each column's width in cells: its widest cell or header, and the padding."""
        return [
            max([cell_len(c.header)] + [cell_len(c.text(item)) for item in self.summaries]) + CELL_PADDING
            for c in self.table_columns
        ]

    def _fit(self, force: bool = False) -> None:
        """Split the columns into pages for the width (again when the width or the rows change)."""
        width = self.size.width - SCROLLBAR
        if width <= 0:
            return
        key = (width, len(self.summaries))
        if key == self._laid_out_for and not force:
            return
        self._laid_out_for = key
        pages = column_pages(self.column_widths(), width)
        if pages != self.pages:
            self.pages = pages
            self.page = min(self.page, len(pages) - 1)
            self._rebuild()
        self._show_title()

    def next_page(self) -> None:
        """Show the next page of columns (the first after the last)."""
        if len(self.pages) > 1:
            self.page = (self.page + 1) % len(self.pages)
            self._rebuild()
            self._show_title()

    def _rebuild(self) -> None:
        self.clear(columns=True)
        self._add_columns()
        for item in self.summaries:
            self.add_row(*self._cells(item))
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)

    def _cells(self, item: Any) -> list[Text]:
        style = "yellow" if isinstance(item, SummaryRow) and not item.complete else ""
        return [Text(c.text(item), justify="right" if c.right else "left", style=style) for c in self.shown_columns]

    def add_summary(self, item: Any) -> None:
        """Append one row."""
        self.summaries.append(item)
        self.add_row(*self._cells(item))
        self.move_cursor(row=self.row_count - 1)
        self._fit()

    def replace_all(self, items: Sequence[Any]) -> None:
        """Show exactly these rows, the columns as wide as they need (not as wide as earlier rows were)."""
        self.summaries = list(items)
        self._laid_out_for = None
        self._rebuild()
        self._fit()
