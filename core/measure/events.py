"""What happens in a run, as typed events on one stream.

The session and the plan runner publish; the screen, the headless lines, the recorder and the metrics
endpoint subscribe when they are built (`EventStream.subscribe`). A recorded event is one of these
written down (`name` is its kind in the recording, store/recording.py), and a replay hands the same
events back to the session (store/replay.py), so the replayed screen and the live one take one path.
A subscriber is called on the publishing thread (the session's, the stream reader's, a sampler's):
it does little, and hands the rest to its own thread (the screen posts a message).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from llmtop.collectors.cpu_load import CpuReading
from llmtop.collectors.gpu_reading import GpuSample
from llmtop.collectors.ollama_processes import OllamaProcessSample
from llmtop.collectors.system_memory import SystemMemorySample
from llmtop.measure.server_settings import ServerSettings
from llmtop.measure.settings import RunSettings
from llmtop.measure.summary import PsReading
from llmtop.measure.summary_row import SummaryRow


class Phase(enum.Enum):
    """Where a run is. The model load and the prompt evaluation both happen before the first
    token and cannot be told apart from the API alone, so `LOADING` covers both."""

    IDLE = "idle"
    UNLOADING = "unloading"
    BASELINE = "baseline"
    LOADING = "loading"
    PROMPT = "prompt"
    GENERATING = "generating"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Event:
    """Something that happened at `t` (the session's clock: monotonic, or a replay's own)."""

    t: float
    name: ClassVar[str | None] = None  # its kind in a recording; None: never recorded

    def fields(self) -> dict[str, Any]:
        """What a recording keeps of it, besides its kind and time."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "t"}


@dataclass(frozen=True)
class RunEvent(Event):
    """Something that happened in a run of `model`."""

    model: str

    def fields(self) -> dict[str, Any]:
        return {"model": self.model, **{f.name: getattr(self, f.name) for f in fields(self)[2:]}}


@dataclass(frozen=True)
class RunOpened(RunEvent):
    """A run begins, with what it asks."""

    name: ClassVar[str | None] = "run"
    settings: RunSettings
    mode: str
    host: str | None
    ollama_version: str | None
    started_at: str | None  # the wall clock (UTC, ISO 8601)


@dataclass(frozen=True)
class PhaseChanged(RunEvent):
    name: ClassVar[str | None] = "phase"
    phase: Phase
    detail: str = ""

    def fields(self) -> dict[str, Any]:
        return {"model": self.model, "phase": self.phase.value, "detail": self.detail}


@dataclass(frozen=True)
class Noted(RunEvent):
    """Something the user should know about the run (a baseline that did not settle, a cut stream)."""

    name: ClassVar[str | None] = "note"
    message: str


@dataclass(frozen=True)
class BaselineTaken(RunEvent):
    """Memory settled (or the wait ran out): the readings every delta of the run is taken from."""

    name: ClassVar[str | None] = "baseline"
    load_kind: str | None  # cold: the model was unloaded first; warm: it stayed loaded
    memory: SystemMemorySample | None
    process: OllamaProcessSample | None
    gpu: GpuSample | None


@dataclass(frozen=True)
class RequestSent(RunEvent):
    """The generate request went: the token clock starts here."""

    name: ClassVar[str | None] = "request"


@dataclass(frozen=True)
class TokenArrived(RunEvent):
    """A streamed chunk: a token of the answer, or of a thinking model's thought."""

    name: ClassVar[str | None] = "token"
    text: str
    thinking: bool = False

    def fields(self) -> dict[str, Any]:
        kept: dict[str, Any] = {"model": self.model, "text": self.text}
        if self.thinking:  # an answer's token (nearly all of them) is written without it
            kept["thinking"] = True
        return kept


@dataclass(frozen=True)
class PsRead(RunEvent):
    """Ollama's split of the model as `/api/ps` gave it."""

    name: ClassVar[str | None] = "ps"
    sample: PsReading


@dataclass(frozen=True)
class CpuRead(RunEvent):
    """The CPU's use, read at the generation's first token and at its end."""

    name: ClassVar[str | None] = "cpu"
    reading: CpuReading

    def fields(self) -> dict[str, Any]:
        return {"model": self.model, "reading": self.reading.to_dict()}


@dataclass(frozen=True)
class FinalChunk(RunEvent):
    """The server's last chunk, as sent: its counts and durations."""

    name: ClassVar[str | None] = "final"
    chunk: Mapping[str, Any]


@dataclass(frozen=True)
class RunEnded(RunEvent):
    """The run is over: complete, or why not."""

    name: ClassVar[str | None] = "end"
    complete: bool
    error: str | None
    load_kind: str | None


@dataclass(frozen=True)
class RowMade(RunEvent):
    """The run's summary row, as the session made it (and the history judged it)."""

    name: ClassVar[str | None] = "summary"
    row: SummaryRow


@dataclass(frozen=True)
class RunFinished(RunEvent):
    """The run's last phase is set and its row is final: what the screen and the headless lines show."""

    row: SummaryRow


@dataclass(frozen=True)
class PlanNote(Event):
    """Something the user should know about the plan (the history cannot keep a run, a restart failed)."""

    message: str


@dataclass(frozen=True)
class ServerRestarting(Event):
    """The `ollama serve` llmtop started is restarted with the next run's settings."""

    settings: ServerSettings


@dataclass(frozen=True)
class CoolingDown(Event):
    """The machine is given up to `seconds` to come back near its rest before the next run."""

    seconds: float


@dataclass(frozen=True)
class RunKept(Event):
    """A finished run is in the plan's rows and the history."""

    row: SummaryRow


Subscriber = Callable[[Event], object]


class EventStream:
    """One run's (or one plan's) events, handed to each subscriber in the order they were published."""

    def __init__(self) -> None:
        self._subscribers: tuple[Subscriber, ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> None:
        """`subscriber` is called with every event published from now on."""
        with self._lock:
            self._subscribers = (*self._subscribers, subscriber)

    def publish(self, event: Event) -> None:
        for subscriber in self._subscribers:
            subscriber(event)


def handlers(table: Mapping[type[Any], Callable[[Any], object]]) -> Subscriber:
    """A subscriber that hands each event to the handler of its type, and ignores the other kinds."""
    lookup = dict(table)

    def take(event: Event) -> None:
        handler = lookup.get(type(event))
        if handler is not None:
            handler(event)

    return take
