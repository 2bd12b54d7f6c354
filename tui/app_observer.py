"""How the run screen follows a plan's event stream: phases, notes and finished runs as messages, the
answer's tokens kept until the screen's refresh drains them."""

from __future__ import annotations

import threading
from typing import Any

from textual.app import App

from llmtop.measure import events
from llmtop.measure.events import Phase
from llmtop.measure.screen_states import AnswerState
from llmtop.tui.messages import PhaseChanged, RunFinished, SessionNote


class AppObserver:
    """Subscribes the app to a plan's events (the sessions' and the runner's). Tokens are kept per
    run, on the publishing thread, until the refresh timer drains them: a new run's text never mixes
    with the last one's, however late the app handles the phase messages (a replay delivers a whole
    run at once), and nothing is kept once it is on screen."""

    def __init__(self, app: App[Any], stream: events.EventStream) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.parts: list[str] = []  # tokens not drained yet
        self.new_run = False  # a run began since the last drain
        self.thoughts = 0  # the run's tokens of thought so far (a thinking model's), shown folded
        stream.subscribe(
            events.handlers(
                {
                    events.PhaseChanged: self._phase,
                    events.TokenArrived: self._token,
                    events.Noted: lambda event: self._note(event.message),
                    events.PlanNote: lambda event: self._note(event.message),
                    events.RunFinished: lambda event: self.app.post_message(RunFinished(event.row)),
                }
            )
        )

    def _phase(self, event: events.PhaseChanged) -> None:
        if event.phase is Phase.BASELINE:  # every run takes one baseline, before its first token
            with self.lock:
                self.parts = []
                self.new_run = True
                self.thoughts = 0
        self.app.post_message(PhaseChanged(event.phase, event.detail))

    def _token(self, event: events.TokenArrived) -> None:
        with self.lock:
            if event.thinking:
                self.thoughts += 1
            else:
                self.parts.append(event.text)

    def _note(self, message: str) -> None:
        self.app.post_message(SessionNote(message))

    def drain(self) -> AnswerState:
        """What the answer pane is to show: whether a new run began since the last drain, and the
        text that arrived since, and the run's tokens of thought so far."""
        with self.lock:
            state = AnswerState(self.new_run, "".join(self.parts), self.thoughts)
            self.parts = []
            self.new_run = False
        return state
