"""How the session's thread tells the run screen what happens: phases, notes and finished runs as
messages, the answer's tokens kept until the screen's refresh drains them."""

from __future__ import annotations

import threading
from typing import Any

from textual.app import App

from llmtop.measure.screen_states import AnswerState
from llmtop.measure.session import Phase, SessionObserver
from llmtop.measure.summary import SummaryRow
from llmtop.tui.messages import PhaseChanged, RunFinished, SessionNote


class AppObserver(SessionObserver):
    """Forwards session events to the app. Tokens are kept per run, on the session's thread, until
    the refresh timer drains them: a new run's text never mixes with the last one's, however late
    the app handles the phase messages (a replay delivers a whole run at once), and nothing is
    kept once it is on screen."""

    def __init__(self, app: App[Any]) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.parts: list[str] = []  # tokens not drained yet
        self.new_run = False  # a run began since the last drain
        self.thoughts = 0  # the run's tokens of thought so far (a thinking model's), shown folded

    def phase(self, phase: Phase, detail: str = "") -> None:
        if phase is Phase.BASELINE:  # every run takes one baseline, before its first token
            with self.lock:
                self.parts = []
                self.new_run = True
                self.thoughts = 0
        self.app.post_message(PhaseChanged(phase, detail))

    def token(self, text: str) -> None:
        with self.lock:
            self.parts.append(text)

    def thought(self, text: str) -> None:
        with self.lock:
            self.thoughts += 1

    def note(self, message: str) -> None:
        self.app.post_message(SessionNote(message))

    def finished(self, row: SummaryRow) -> None:
        self.app.post_message(RunFinished(row))

    def drain(self) -> AnswerState:
        """What the answer pane is to show: whether a new run began since the last drain, and the
        text that arrived since, and the run's tokens of thought so far."""
        with self.lock:
            state = AnswerState(self.new_run, "".join(self.parts), self.thoughts)
            self.parts = []
            self.new_run = False
        return state
