"""The answer panel: the run's streamed text, following its end; a new run starts it again."""

from __future__ import annotations

from llmtop.measure.screen_states import AnswerState
from llmtop.tui.widgets.streamed_text import StreamedText


class AnswerPanel(StreamedText):
    """StreamedText handed what arrived since the last refresh."""

    def show(self, state: AnswerState) -> None:
        """Draw `state`: nothing when no run began and no text came."""
        if state.new_run:
            self.clear()
        self.append(state.text)
