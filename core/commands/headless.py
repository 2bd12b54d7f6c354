"""What headless commands print as they go: a plan's progress as lines on stderr (the table goes to
stdout), and a watch's events as lines on stdout."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO

from llmtop import units
from llmtop.measure import events
from llmtop.measure.events import Phase
from llmtop.measure.plan import PlanRunner
from llmtop.measure.server_settings import serve_line
from llmtop.measure.summary_row import SummaryRow
from llmtop.units import NA
from llmtop.watch.state import WatchEvent, live_wall


class HeadlessReporter:
    """A plan's progress on `stream` (stderr), one line each: phase changes, notes, restarts of the
    server, cool-downs and each finished run. Subscribes to the runner's events as it is built."""

    def __init__(self, stream: TextIO, runner: PlanRunner) -> None:
        self.stream = stream
        self.runner = runner
        runner.events.subscribe(
            events.handlers(
                {
                    events.PhaseChanged: lambda event: self.phase(event.phase, event.detail),
                    events.Noted: lambda event: self.note(event.message),
                    events.PlanNote: lambda event: self.note(event.message),
                    events.RunFinished: lambda event: self.finished(event.row),
                    events.ServerRestarting: lambda event: self._write(
                        f"restarting the ollama serve llmtop started: {serve_line(event.settings)}"
                    ),
                    events.CoolingDown: lambda event: self._write(
                        f"cooling down between runs: up to {event.seconds:g} s, {cool_down_until(runner.cooled)}"
                    ),
                }
            )
        )

    def _write(self, text: str) -> None:
        self.stream.write(f"llmtop: {text}\n")
        self.stream.flush()

    def _where(self) -> str:
        runner = self.runner
        if runner.expected_total <= 1:
            return ""
        item = runner.current_item
        left = runner.time_left()
        eta = f", about {units.clock(left)} left" if left is not None else ""
        where = f"{item.model} {item.settings.mode}" if item is not None else ""
        return f"[run {runner.done + 1} of {runner.total_text}: {where}{eta}] "

    def phase(self, phase: Phase, detail: str = "") -> None:
        if phase in (Phase.DONE, Phase.FAILED):
            return
        if phase in (Phase.UNLOADING, Phase.BASELINE):
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


def cool_down_until(check: Any) -> str:
    """What ends a cool-down sooner, in words (`check`: the runner's cool_down.CoolDownCheck)."""
    waits_on = getattr(check, "waits_on", "")
    if not waits_on:
        return "its whole time (llmtop reads neither power nor temperatures here)"
    verb = "are" if " and " in waits_on or waits_on.endswith("s") else "is"
    return f"less once {waits_on} {verb} back near where they were before the first run"


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
