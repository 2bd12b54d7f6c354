"""The headless reporter: a run's progress as lines on stderr (the summary goes to stdout)."""

from __future__ import annotations

from typing import TextIO

from llmtop.session import Phase, SessionObserver


class HeadlessReporter(SessionObserver):
    """Phase changes and notes on stderr, one line each."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def phase(self, phase: Phase, detail: str = "") -> None:
        if phase in (Phase.DONE, Phase.FAILED):
            return
        self.stream.write(f"llmtop: {phase.value}{': ' + detail if detail else ''}\n")
        self.stream.flush()

    def note(self, message: str) -> None:
        self.stream.write(f"llmtop: note: {message}\n")
        self.stream.flush()
