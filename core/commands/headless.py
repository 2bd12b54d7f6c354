"""What headless commands print as they go: a plan's progress as lines on stderr (the table goes to
stdout), and a watch's events as lines on stdout."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from llmtop import units
from llmtop.measure.session import Phase, SessionObserver
from llmtop.measure.summary import SummaryRow
from llmtop.units import NA
from llmtop.watch.state import WatchEvent, live_wall


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
        rate = units.rate(row.eval_rate_tps) or NA
        energy = f", {row.joules_per_token:.3g} J/token" if row.joules_per_token is not None else ""
        tokens = f", {row.thinking_text or row.tokens_text}" if row.thinking_text or row.tokens_text else ""
        self._write(
            f"{row.model} {row.mode}: {rate} tokens/s, env {row.env or NA}{energy}{tokens}"
            + ("" if row.complete else " (incomplete)")
        )
        if row.log_eval_note:
            self.note(row.log_eval_note)
        if row.gpu_baseline_note:
            self.note(f"VRAM/shared {row.gpu_baseline_note}")
        if row.slow_note:
            self.note(row.slow_note)
        if row.limit_note:
            self.note(f"held to its limit: {row.limit_note}")


def watch_printer(
    stream: TextIO, host: str | None = None, wall: Callable[[float], float] = live_wall
) -> Callable[[WatchEvent], None]:
    """One line per event, stamped with the time it happened (`wall`: a replay gives its own)."""
    prefix = f"[{host}] " if host else ""

    def print_event(event: WatchEvent) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(wall(event.t)))
        try:
            stream.write(f"llmtop watch: {stamp} {prefix}{event.text}\n")
            stream.flush()
        except (OSError, ValueError):
            pass

    return print_event
