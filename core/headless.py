"""The headless reporter: a plan's progress as lines on stderr (the table goes to stdout)."""

from __future__ import annotations

from typing import TextIO

from llmtop import units
from llmtop.session import Phase, SessionObserver
from llmtop.summary import SummaryRow


class HeadlessReporter(SessionObserver):
    """Phase changes, notes and each finished run on stderr, one line each."""

    def __init__(self, stream: TextIO, runner=None) -> None:
        self.stream = stream
        self.runner = runner

    def _write(self, text: str) -> None:
        self.stream.write(f"llmtop: {text}\n")
        self.stream.flush()

    def _where(self) -> str:
        runner = self.runner
        if runner is None or runner.expected_total <= 1:
            return ""
        item = runner.current_item
        left = runner.time_left()
        eta = f", about {units.clock(left)} left" if left is not None else ""
        return f"[run {runner.done + 1} of {runner.total_text}: {item.model} {item.settings.mode}{eta}] "

    def phase(self, phase: Phase, detail: str = "") -> None:
        if phase in (Phase.DONE, Phase.FAILED):
            return
        if phase in (Phase.UNLOADING, Phase.BASELINE) or self.runner is None:
            self._write(f"{self._where()}{phase.value}{': ' + detail if detail else ''}")
        else:
            self._write(f"{phase.value}{': ' + detail if detail else ''}")

    def note(self, message: str) -> None:
        self._write(f"note: {message}")

    def finished(self, row: SummaryRow) -> None:
        rate = units.rate(row.eval_rate_tps) or "n/a"
        energy = f", {row.joules_per_token:.3g} J/token" if row.joules_per_token is not None else ""
        self._write(
            f"{row.model} {row.mode}: {rate} tokens/s, env {row.env or 'n/a'}{energy}"
            + ("" if row.complete else " (incomplete)")
        )
        if row.log_eval_note:
            self.note(row.log_eval_note)
        if row.gpu_baseline_note:
            self.note(f"VRAM/shared {row.gpu_baseline_note}")
