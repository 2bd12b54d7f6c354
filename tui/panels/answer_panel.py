"""The answer panel: the run's streamed text, following its end; a new run starts it again. A thinking
model's thought is folded: its count, dimmed, in the panel's title, and only the answer as text."""

from __future__ import annotations

from llmtop.measure.screen_states import AnswerState
from llmtop.tui.widgets.streamed_text import StreamedText


class AnswerPanel(StreamedText):
    """StreamedText handed what arrived since the last refresh."""

    def show(self, state: AnswerState) -> None:
        """Draw `state`: nothing when no run began and no text came."""
        if state.new_run:
            self.clear()
        folded = f"[dim]thinking: {state.thoughts} tokens (folded)[/dim]" if state.thoughts else ""
        if folded != self.border_title:
            self.border_title = folded
        self.append(state.text)
