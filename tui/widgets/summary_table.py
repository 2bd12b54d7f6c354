"""The summary table: one row per run, the article's columns and the timing figures."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from llmtop.exports import TABLE_COLUMNS
from llmtop.summary import SummaryRow


class SummaryTable(DataTable):
    """A DataTable whose rows are SummaryRow; runs compare on one screen."""

    DEFAULT_CSS = """
    SummaryTable { height: auto; max-height: 10; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.summaries: list[SummaryRow] = []

    def on_mount(self) -> None:
        for column in TABLE_COLUMNS:
            self.add_column(column.header, key=column.header)

    def add_summary(self, row: SummaryRow) -> None:
        """Append one run's row."""
        self.summaries.append(row)
        cells = [
            Text(c.text(row), justify="right" if c.right else "left", style="" if row.complete else "yellow")
            for c in TABLE_COLUMNS
        ]
        self.add_row(*cells)
        self.move_cursor(row=self.row_count - 1)
