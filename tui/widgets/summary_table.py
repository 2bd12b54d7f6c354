"""The summary tables: one row per run (the article's columns and the timing figures), or one per
compared group."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from llmtop.figures import RUN_COLUMNS, Column
from llmtop.summary import SummaryRow


class SummaryTable(DataTable):
    """A DataTable of SummaryRow (or of any items `columns` can render); runs compare on one screen."""

    DEFAULT_CSS = """
    SummaryTable { height: auto; max-height: 10; }
    """

    def __init__(self, *, id: str | None = None, columns: Sequence[Column] = RUN_COLUMNS) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.table_columns = tuple(columns)
        self.summaries: list[Any] = []

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        for column in self.table_columns:
            self.add_column(column.header, key=column.header)

    def _cells(self, item: Any) -> list[Text]:
        style = "yellow" if isinstance(item, SummaryRow) and not item.complete else ""
        return [Text(c.text(item), justify="right" if c.right else "left", style=style) for c in self.table_columns]

    def add_summary(self, item: Any) -> None:
        """Append one row."""
        self.summaries.append(item)
        self.add_row(*self._cells(item))
        self.move_cursor(row=self.row_count - 1)

    def replace_all(self, items: Sequence[Any]) -> None:
        """Show exactly these rows, the columns as wide as they need (not as wide as earlier rows were)."""
        self.clear(columns=True)
        self._add_columns()
        self.summaries = []
        for item in items:
            self.add_summary(item)
