"""The run screen under Pilot: a plan of one run, waiting until a condition is drawn, a table's cells."""

from __future__ import annotations

from llmtop.measure.plan import PlannedRun, PlanRunner
from llmtop.measure.session import RunSettings
from llmtop.tui.widgets.summary_table import SummaryTable
from waiting import on_screen


def one_run(session, settings=None):
    """A plan of one run of the session's model."""
    return PlanRunner({session.model: session}, [PlannedRun(session.model, settings or RunSettings())])


async def until(pilot, condition, timeout=15.0):
    """Until `condition()` holds and the app has drawn a frame after it."""
    await on_screen(pilot, condition, timeout)


def cells_of(table: SummaryTable, index: int) -> dict[str, str]:
    """A table's row as its cells say it, by column header, whichever page of columns is shown."""
    return {c.header: c.text(table.summaries[index]) for c in table.table_columns}
