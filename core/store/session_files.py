"""The files a session is written to (--export, --chart, --report), each tried on its own: one that
cannot be written costs none of the others. The commands print the outcomes, the TUI's `e` shows them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmtop.measure.summary import SummaryRow
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
) -> list[Written]:
    """Write each file asked for (none without rows): the table (a sweep's section with it), the
    tokens/s chart, the HTML report with the rows' `curves`."""

    def the_report(path: str) -> str:
        from llmtop.store.report import SessionReport, write_report  # imported only when asked for

        return str(write_report(path, SessionReport(rows, curves, machine, lang, sweep)))

    writers: tuple[tuple[str, str | None, Callable[[str], object]], ...] = (
        ("export", export, lambda p: write_export(rows, p, lang, machine, sweep)),
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
