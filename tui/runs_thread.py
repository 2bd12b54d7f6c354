"""The runs of a plan on their own daemon thread: a blocked read from a slow server must never keep
the app from quitting, and a bug there is said on screen, never a frozen phase."""

from __future__ import annotations

import threading
from collections.abc import Callable

from textual.message import Message

from llmtop.data_folder import internal_error
from llmtop.measure.plan import PlanRunner
from llmtop.tui.messages import PlanDone, SessionNote


class RunsThread:
    """Works through the runner's queue, one thread at a time; posts PlanDone when the queue is empty."""

    def __init__(self, runner: PlanRunner, post: Callable[[Message], object]) -> None:
        self.runner = runner
        self._post = post
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Work through the queue, unless a thread already does (it takes what was added)."""
        if self.running:
            return
        self._thread = threading.Thread(target=self._run, name="llmtop-runs", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.runner.run_all()
        except Exception as exc:  # a bug on the runs' thread: said on screen, never a frozen phase
            self._post(SessionNote(internal_error("the plan", exc)))
        self._post(PlanDone())
