"""A subscriber that keeps every event a session or a plan published, read back by kind."""

from __future__ import annotations

from llmtop.measure import events


class SeenEvents:
    """Subscribed to `stream` (a new one if not given) from the start: what was published, in order."""

    def __init__(self, stream: events.EventStream | None = None) -> None:
        self.stream = stream or events.EventStream()
        self.all: list[events.Event] = []
        self.stream.subscribe(self.all.append)

    def of(self, kind):
        return [event for event in self.all if isinstance(event, kind)]

    @property
    def phases(self):
        return [event.phase for event in self.of(events.PhaseChanged)]

    @property
    def tokens(self):
        return [event.text for event in self.of(events.TokenArrived) if not event.thinking]

    @property
    def notes(self):
        return [event.message for event in self.of((events.Noted, events.PlanNote))]

    @property
    def rows(self):
        return [event.row for event in self.of(events.RunFinished)]
