"""A run's record as its events make it: the steps the live session and a replay both take.

Every step of a run is a typed event (events.py). `RunSteps.take` hands the event to its step, which
updates the run in progress (RunRecord), then publishes it on the stream; a run's end makes its row
(measure/summary.py), judged and kept in `rows`. The live `Session` (session.py) adds the server, the
baseline and the stream's watchdog on top; a replay (store/replay.py) hands the recorded events to the
same `take`, so its rows are the live ones field for field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from llmtop.collectors.log_watch import LogWatcher
from llmtop.collectors.ollama_log import LoadRecord, RequestTiming
from llmtop.collectors.sampler import Sampler
from llmtop.collectors.system_collectors import SystemCollectors
from llmtop.collectors.token_timing import ServerTiming, TokenClock
from llmtop.measure.energy import EDGE_S
from llmtop.measure.events import (
    BaselineTaken,
    CpuRead,
    Event,
    EventStream,
    FinalChunk,
    Phase,
    PhaseChanged,
    PsRead,
    RequestSent,
    RowMade,
    RunEnded,
    RunOpened,
    TokenArrived,
)
from llmtop.measure.summary import PsReading, RunRecord, baseline_start, summarize
from llmtop.measure.summary_row import SummaryRow
from llmtop.measure.timeline import RunCurves, run_curves, run_start
from llmtop.ollama.api import PS_INTERVAL_S
from llmtop.ollama.model_facts import ModelFacts


class RunSteps:
    """One model's runs, as their events make them: the run in progress (`current`), the latest
    (`last`), its phase, and every finished run's row and curves."""

    def __init__(
        self,
        model: str,
        collectors: SystemCollectors,
        events: EventStream | None,
        clock: Callable[[], float],
        log: LogWatcher | None = None,
        judge: Callable[[SummaryRow], SummaryRow] | None = None,
        connected: tuple[str | None, ModelFacts] | None = None,
    ) -> None:
        """`events`: where the runs' events are published (a stream of its own if not given). `judge`
        looks at each finished run's row before it is kept (usual.py: slow for this machine).
        `connected`: the server's version and the model's facts, where they were read already."""
        self.model = model
        self.collectors = collectors
        self.events = events or EventStream()
        self._clock = clock
        self.log = log
        self._judge = judge
        self.version: str | None = connected[0] if connected else None
        self.facts: ModelFacts | None = connected[1] if connected else None
        self.current: RunRecord | None = None
        self.last: RunRecord | None = None  # the run in progress, else the latest one
        self.phase = Phase.IDLE
        self.phase_since = clock()
        self.rows: list[SummaryRow] = []
        self.curves: list[RunCurves | None] = []  # each row's memory timeline and tokens/s, if kept
        self.keep_curves = False  # a report was asked for: keep them (about 130 kB a run)
        self._ps: Sampler[PsReading] | None = None
        self._ps_listed_at: float | None = None  # when `/api/ps` last listed the model: asked less often then

    def now(self) -> float:
        """The session's clock (monotonic; a replay's own)."""
        return self._clock()

    def take(self, event: Event) -> None:
        """One step of a run, live or replayed: the run's record takes the event, then every
        subscriber sees it (and after it, the row a run's end made)."""
        step = _STEPS.get(type(event))
        made = step(self, event) if step is not None else None
        self.events.publish(event)
        if made is not None:
            self.events.publish(made)

    def _opened(self, event: RunOpened) -> None:
        """A new run: its record becomes the run in progress."""
        assert self.facts is not None, "connect() first"
        self._ps = None
        asked = event.settings
        self.current = self.last = RunRecord(
            facts=self.facts,
            mode=event.mode,
            host=event.host,
            ollama_version=event.ollama_version,
            started_at=event.started_at,
            clock=TokenClock(event.t),
            num_ctx=asked.num_ctx,
            num_predict=asked.num_predict,
            think=asked.think,
            power_unavailable=dict(self.collectors.power_unavailable),
            gpu_unavailable=self.collectors.gpu_unavailable if self.collectors.gpu is None else None,
        )

    def _phase_changed(self, event: PhaseChanged) -> None:
        self.phase = event.phase
        self.phase_since = event.t
        if self.current is not None:
            self.current.phases.append((event.t, event.phase.value))

    def _baseline_taken(self, event: BaselineTaken) -> None:
        record = self.current
        if record is not None:
            record.load_kind = event.load_kind
            record.baseline_memory, record.baseline_process = event.memory, event.process
            record.baseline_gpu = event.gpu

    def _request_sent(self, event: RequestSent) -> None:
        """The generate request went: the token clock and Ollama's split start over."""
        if self.current is not None:
            self.current.clock = TokenClock(event.t)
        self._ps = self._ps_sampler()
        self._ps_listed_at = None

    def _token_arrived(self, event: TokenArrived) -> None:
        """A token of the answer, or of thought: a token of the rate like any other, thoughts counted
        apart from the answer's."""
        record = self.current
        if record is None:
            return
        record.clock.token(event.t)
        if event.thinking:
            record.thinking_tokens += 1
            if record.first_thought_at is None:
                record.first_thought_at = event.t
        elif event.text and record.first_answer_at is None:
            record.first_answer_at = event.t

    def _ps_read(self, event: PsRead) -> None:
        if self._ps is None:
            self._ps = self._ps_sampler()
        self._ps.push(event.sample)

    def _cpu_read(self, event: CpuRead) -> None:
        if self.current is not None:
            self.current.cpu.append(event.reading)

    def _final_chunk(self, event: FinalChunk) -> None:
        """The server's final chunk: its counts and durations make the run complete."""
        if self.current is not None:
            self.current.server = ServerTiming.from_final_chunk(dict(event.chunk))
            self.current.complete = True

    def _run_ended(self, event: RunEnded) -> RowMade | None:
        """The run is over at `event.t`: its row (judged), kept in `rows` with its curves."""
        record = self.current
        if record is None:
            return None
        record.complete, record.error, record.load_kind = event.complete, event.error, event.load_kind
        record.ended_at = event.t
        if self.log is not None and record.served is None:  # what else the server worked on meanwhile
            record.served = tuple(self.log.served_between(record.clock.request_at, event.t))
            record.tasks = tuple(self.log.tasks_between(record.clock.request_at, event.t))
        row = self.summarize(record, event.t)
        if self._judge is not None:
            row = self._judge(row)
        curves = self._curves(record, event.t) if self.keep_curves else None
        self.curves.append(curves)  # before the row: a reader that finds the row finds its curves
        self.rows.append(row)
        self.current = None
        return RowMade(event.t, self.model, row)

    def close_run(self, record: RunRecord, end: float) -> SummaryRow:
        """The run is over at `end`: its row, kept in `rows`; the subscribers see the end and the row."""
        ended = RunEnded(end, self.model, record.complete, record.error, record.load_kind)
        assert record is self.current, "the run in progress is the one to close"
        self.take(ended)
        return self.rows[-1]

    def _ps_sampler(self) -> Sampler[PsReading]:
        """Ollama's split for one run, as its `ps` events bring it (the live session asks `/api/ps`)."""
        return Sampler("ollama-ps", lambda now: None, PS_INTERVAL_S, capacity=7200, clock=self._clock)

    def latest_ps(self) -> PsReading | None:
        """Ollama's latest account of the split for the run in progress (or the last run)."""
        return self._ps.latest() if self._ps is not None else None

    @property
    def ps_problem(self) -> str | None:
        """Why the latest `/api/ps` reading failed, if it did."""
        return self._ps.last_error if self._ps is not None else None

    def log_request(self, record: RunRecord | None = None) -> RequestTiming | None:
        """The run's request as llama-server's lines in the log time it (Ollama 0.30 on)."""
        record = record or self.last
        if self.log is None or record is None:
            return None
        return self.log.request_since(record.clock.request_at)

    def log_load(self, record: RunRecord | None = None) -> LoadRecord | None:
        """The load the log shows for a run (default: the latest run)."""
        record = record or self.last
        if self.log is None or record is None:
            return None
        return self.log.load_since(record.clock.request_at)

    def stall_s(self, record: RunRecord | None = None) -> float | None:
        """Seconds since the last token of a run that is generating; None otherwise."""
        record = record or self.current
        if record is None or record.clock.last_at is None or self.phase is not Phase.GENERATING:
            return None
        return self._clock() - record.clock.last_at

    def summarize(self, record: RunRecord, end: float | None = None) -> SummaryRow:
        """The row of `record` from what has been measured, up to `end` (default: the run's end,
        or now for a run still going)."""
        if end is None:
            end = record.ended_at if record.ended_at is not None else self._clock()
        ps = self._ps.all() if self._ps is not None else []
        return summarize(
            dataclasses.replace(
                record,
                log_load=self.log_load(record),
                log_request=self.log_request(record),
                ended_at=end,
                memory=self.collectors.memory.between(record.clock.request_at, end),
                processes=self.collectors.processes.between(record.clock.request_at, end),
                gpu=self.collectors.gpu.between(record.clock.request_at, end) if self.collectors.gpu else [],
                ps=ps,
                power=self._power(record, end),
            )
        )

    def _power(self, record: RunRecord, end: float) -> list[Any]:
        """The run's power samples, from its baseline's start (its idle power) to `end`."""
        if self.collectors.power is None:
            return []
        since = baseline_start(record)
        return self.collectors.power.between(since if since is not None else record.clock.request_at, end + EDGE_S)

    def _curves(self, record: RunRecord, end: float) -> RunCurves:
        """The run's memory timeline and tokens/s from its baseline to `end`, from the buffers."""
        collectors, since = self.collectors, run_start(record)
        return run_curves(
            record,
            collectors.memory.between(since, end),
            collectors.processes.between(since, end),
            collectors.gpu.between(since, end) if collectors.gpu else [],
            end,
        )


_STEPS: dict[type[Event], Callable[[RunSteps, Any], RowMade | None]] = {
    RunOpened: RunSteps._opened,
    PhaseChanged: RunSteps._phase_changed,
    BaselineTaken: RunSteps._baseline_taken,
    RequestSent: RunSteps._request_sent,
    TokenArrived: RunSteps._token_arrived,
    PsRead: RunSteps._ps_read,
    CpuRead: RunSteps._cpu_read,
    FinalChunk: RunSteps._final_chunk,
    RunEnded: RunSteps._run_ended,
}
