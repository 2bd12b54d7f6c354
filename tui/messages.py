"""Messages from the session thread to the app (posted with `post_message`, which is thread-safe)."""

from __future__ import annotations

from textual.message import Message

from llmtop.measure.session import Phase
from llmtop.measure.summary_row import SummaryRow


class PhaseChanged(Message):
    def __init__(self, phase: Phase, detail: str) -> None:
        super().__init__()
        self.phase = phase
        self.detail = detail


class SessionNote(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class RunFinished(Message):
    def __init__(self, row: SummaryRow) -> None:
        super().__init__()
        self.row = row


class PlanDone(Message):
    """The runner's queue is done (or it was stopped): nothing more will run until `r`."""
