"""The files a session is written to (--export, --chart, --report), each tried on its own: one that
cannot be written costs none of the others. The commands print the outcomes, the TUI's `e` shows them."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmtop.measure.plan import PlanRunner
from llmtop.measure.summary_row import SummaryRow
from llmtop.measure.sweep import SweepResult
from llmtop.measure.timeline import RunCurves
from llmtop.store.charts import write_chart
from llmtop.store.exports import write_export


@dataclass(frozen=True)
class Written:
    """One file asked for: `written` the path it was written to, or `problem` why it was not."""

    what: str  # "export", "chart" or "report"
    path: str
    written: str | None = None
    problem: str | None = None


def write_session_files(
    rows: Sequence[SummaryRow],
    *,
    export: str | None,
    chart: str | None,
    report: str | None,
    lang: str,
    machine: Mapping[str, Any],
    sweep: SweepResult | None = None,
    curves: Sequence[RunCurves | None] = (),
    columns: Sequence[str] | None = None,
    plan: Mapping[str, Any] | None = None,
) -> list[Written]:
    """Write each file asked for (none without rows): the table (a sweep's section with it), the
    tokens/s chart, the HTML report with the rows' `curves` (`columns`: the Markdown table's, in the
    export and the report's Markdown)."""

    def the_report(path: str) -> str:
        from llmtop.store.report import SessionReport, write_report  # imported only when asked for

        return str(write_report(path, SessionReport(rows, curves, machine, lang, sweep, columns=columns)))

    writers: tuple[tuple[str, str | None, Callable[[str], object]], ...] = (
        ("export", export, lambda p: write_export(rows, p, lang, machine, sweep, columns, plan)),
        ("chart", chart, lambda p: write_chart(rows, p)),
        ("report", report, the_report),
    )
    outcomes = []
    for what, path, write in writers:
        if not path or not rows:
            continue
        try:
            outcomes.append(Written(what, path, written=str(write(path))))
        except OSError as exc:
            outcomes.append(Written(what, path, problem=f"cannot write {path}: {exc.strerror or exc}"))
    return outcomes


def write_plan_files(
    runner: PlanRunner,
    *,
    export: str,
    chart: str | None,
    report: str | None,
    lang: str,
    columns: Sequence[str] | None = None,
) -> list[Written]:
    """`write_session_files` for the runs of a plan so far (the screen's `e`): its machine, its
    sweep, and with a report the rows' curves."""
    rows = list(runner.rows)
    curves = [runner.curves_of(row) for row in rows] if report else []
    return write_session_files(
        rows,
        export=export,
        chart=chart,
        report=report,
        lang=lang,
        machine=runner.machine,
        sweep=runner.sweep_result(),
        curves=curves,
        columns=columns,
    )


def export_name(model: str, now: dt.datetime) -> str:
    """The export's name where none was given: `llmtop-MODEL-YYYYmmdd-HHMMSS.md`, the model's name
    made safe for a file name."""
    return f"llmtop-{re.sub(r'[^A-Za-z0-9._-]+', '_', model)}-{now.strftime('%Y%m%d-%H%M%S')}.md"


def outcome_messages(outcomes: Sequence[Written], runs: int) -> list[tuple[str, bool]]:
    """What the screen says of the files written: (message, whether it is a failure), each failure
    on its own, then one line for what was written."""
    messages = [(o.problem or "", True) for o in outcomes if o.problem]
    written = [o for o in outcomes if o.written]
    if written and written[0].what == "export":
        also = "".join(f" and the {o.what} to {o.path}" for o in written[1:])
        messages.append((f"wrote {runs} run(s) to {written[0].path}{also}", False))
    elif written:
        messages.append(("wrote " + " and ".join(f"the {o.what} to {o.path}" for o in written), False))
    return messages
