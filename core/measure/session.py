"""One llmtop session: connect, look the model up, then run the controlled experiment.

A run is: unload the model if loaded, take a baseline once memory has settled, generate with
streaming while the collectors sample and `/api/ps` is polled, then summarise. The session
reports what happens to an observer (the TUI, or the headless printer) and never touches a
screen itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import threading
import time
from collections.abc import Callable
from typing import Any

from llmtop.collectors.cpu_load import CpuReading
from llmtop.collectors.gpu_reading import GpuSample
from llmtop.collectors.log_watch import LogWatcher
from llmtop.collectors.ollama_log import LoadRecord, RequestTiming
from llmtop.collectors.sampler import Sampler
from llmtop.collectors.system_collectors import SystemCollectors
from llmtop.collectors.system_memory import SystemMemorySample
from llmtop.collectors.token_timing import ServerTiming, TokenClock
from llmtop.data_folder import internal_error
from llmtop.measure.energy import EDGE_S
from llmtop.measure.settings import DEFAULT_PROMPT, STALL_TIMEOUT_S, RunSettings
from llmtop.measure.stopping import StopRequested
from llmtop.measure.summary import PsReading, RunRecord, SummaryRow, baseline_start, summarize
from llmtop.measure.timeline import RunCurves, run_curves, run_start
from llmtop.ollama.api import PS_INTERVAL_S, OllamaError, OllamaServer, Stalled, StreamBroken
from llmtop.ollama.model_facts import ModelFacts, model_facts, same_model
from llmtop.units import NA

__all__ = ["DEFAULT_PROMPT", "Phase", "RunSettings", "Session", "SessionObserver"]

PS_SETTLED_S = 10.0  # once the model is listed, its split changes only if it is reloaded: ask less often
UNLOAD_TIMEOUT_S = 60.0
UNLOAD_UNCHECKED_S = 3.0  # the wait after an unload that /api/ps cannot confirm
SETTLE_TOLERANCE = 0.01  # two consecutive readings within 1% count as settled
SETTLE_TIMEOUT_S = 10.0
GPU_SETTLE_BYTES = 32 * 1024 * 1024  # GPU memory that moves less than this between two readings is steady
LOG_GRACE_S = 0.5
ABORT_GRACE_S = 2.0  # how long a cut stream's read is given to return before it is left behind
IDLE_POWER_S = 1.0  # where power is read, the baseline lasts at least this long: the idle power's window


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


class SessionObserver:
    """Receives a session's events; override what you need. Called on the session's thread."""

    def phase(self, phase: Phase, detail: str = "") -> None: ...

    def token(self, text: str) -> None: ...

    def thought(self, text: str) -> None:
        """A thinking model's token of thought (its `thinking` field), before the answer."""

    def note(self, message: str) -> None: ...

    def finished(self, row: SummaryRow) -> None: ...


class Session:
    """A connected server, one model, and the collectors; `run()` performs one measured run."""

    def __init__(
        self,
        server: OllamaServer,
        model: str,
        collectors: SystemCollectors,
        observer: SessionObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        log: LogWatcher | None = None,
        log_reason: str | None = None,
        stall_timeout_s: float = STALL_TIMEOUT_S,
    ) -> None:
        """`stall_timeout_s`: once tokens flow, a gap this long ends the run as stalled (0: never)."""
        self.server = server
        self.stall_timeout_s = stall_timeout_s
        self.log = log
        self.log_reason = log_reason  # why there is no log, when there is none
        self.model = model
        self.collectors = collectors
        self.observer = observer or SessionObserver()
        self._clock = clock
        self.version: str | None = None
        self.facts: ModelFacts | None = None
        self.current: RunRecord | None = None
        self.last: RunRecord | None = None  # the run in progress, else the latest one
        self.phase = Phase.IDLE
        self.phase_since = clock()
        self.rows: list[SummaryRow] = []
        self.curves: list[RunCurves | None] = []  # each row's memory timeline and tokens/s, if kept
        self.keep_curves = False  # a report was asked for: keep them (about 130 kB a run)
        # Looks at each finished run's row before it is kept (usual.py: slow for this machine).
        self.judge: Callable[[SummaryRow], SummaryRow] | None = None
        # The model's usual answer length here (usual.py), for "answer ready in about ..." where a run
        # asks for no count; read as a run begins.
        self.usual_answer: Callable[[str], int | None] | None = None
        self.cancel = threading.Event()
        self._lock = threading.Lock()
        self._abandoned: RunRecord | None = None
        self.stopped_by: StopRequested | None = None  # the signal that stopped the latest run, if one did
        self._ps: Sampler[PsReading] | None = None
        self._ps_listed_at: float | None = None
        # Called with (event, time, fields) at each step of a run: how a recorder sees the session.
        self.on_event: Callable[[str, float, dict[str, Any]], None] | None = None
        if log is not None:
            log.subscribe(self._on_log)

    # -- set-up ---------------------------------------------------------------------------
    def connect(self) -> ModelFacts:
        """`/api/version`, `/api/show`, `/api/tags`: raises OllamaError with a user's message."""
        self.version = self.server.version()
        show = self.server.show(self.model)
        self.facts = model_facts(self.model, show, self.server.tags())
        return self.facts

    def now(self) -> float:
        """The session's clock (monotonic; a replay's own)."""
        return self._clock()

    def _emit(self, event: str, t: float | None = None, **fields: Any) -> None:
        if self.on_event is not None:
            self.on_event(event, self._clock() if t is None else t, {"model": self.model, **fields})

    # -- one run ----------------------------------------------------------------------------
    def _set_phase(self, phase: Phase, detail: str = "") -> None:
        self.phase = phase
        self.phase_since = self._clock()
        if self.current is not None:
            self.current.phases.append((self.phase_since, phase.value))
        self._emit("phase", self.phase_since, phase=phase.value, detail=detail)
        self.observer.phase(phase, detail)

    def _note(self, message: str) -> None:
        self._emit("note", message=message)
        self.observer.note(message)

    def _on_log(self, load: LoadRecord) -> None:
        """The log shows our run's load: its runner is to be found now; once the log says the
        runner has started, the rest of the wait is the prompt."""
        record = self.current
        if record is None or self.phase is not Phase.LOADING or load.first_seen < record.clock.request_at:
            return
        if load.runner_started_s is None:
            self.collectors.expect_load()
        else:
            self._set_phase(Phase.PROMPT, f"model loaded in {load.runner_started_s:.2f} s (server log)")

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

    def _is_ours(self, name: str) -> bool:
        return same_model(name, self.model)

    def _read_ps(self, now: float) -> PsReading | None:
        """Ollama's split for our model: every second until it is listed, then every PS_SETTLED_S."""
        if self._ps_listed_at is not None and now - self._ps_listed_at < PS_SETTLED_S:
            return None
        listed = self.server.ps().get("models") or []
        names = [str(entry.get("name") or entry.get("model") or "") for entry in listed]
        for entry, name in zip(listed, names, strict=True):
            if self._is_ours(name):
                context = entry.get("context_length")
                reading = PsReading(
                    now,
                    int(entry.get("size") or 0),
                    int(entry.get("size_vram") or 0),
                    context if isinstance(context, int) and context > 0 else None,
                    tuple(other for other in names if other and not self._is_ours(other)),
                )
                self._ps_listed_at = now
                self._emit("ps", now, sample=reading)
                return reading
        return None

    def _loaded(self) -> bool:
        return any(self._is_ours(m.get("name") or m.get("model") or "") for m in self.server.ps().get("models") or [])

    def _unload(self, settings: RunSettings) -> str:
        """Unload the model unless the settings keep it loaded; return the load kind of the run.
        `/api/ps` only tells whether it is loaded: when it fails, the model is unloaded all the
        same and given a bounded wait, and the run goes on."""
        try:
            loaded = self._loaded()
        except OllamaError as exc:
            self._note(f"/api/ps failed ({exc}): Ollama's split is {NA}; unloading without being able to check")
            self.server.unload(self.model)  # its answer says the unload was taken
            self.cancel.wait(UNLOAD_UNCHECKED_S)
            return "cold"
        if not loaded:
            return "cold"
        if settings.keep_loaded:
            return "warm"
        self._set_phase(Phase.UNLOADING, "model is loaded: unloading it for a clean baseline")
        self.server.unload(self.model)
        try:
            unloaded = self.server.wait_unloaded(self.model, UNLOAD_TIMEOUT_S, self._is_ours)
        except OllamaError as exc:
            self._note(f"/api/ps failed while waiting for the unload ({exc}); waiting {UNLOAD_UNCHECKED_S:.0f} s")
            self.cancel.wait(UNLOAD_UNCHECKED_S)
            return "cold"
        if not unloaded:
            self._note(f"{self.model} was still loaded after {UNLOAD_TIMEOUT_S:.0f} s; the baseline includes it")
            return "warm"
        return "cold"

    def _baseline(self) -> tuple[SystemMemorySample | None, Any, GpuSample | None]:
        """Wait until RAM and GPU memory (dedicated and shared) are steady, then take the baseline:
        two consecutive readings of each within 1% (GPU memory: or within GPU_SETTLE_BYTES), as a
        driver may free an unloaded model's memory a moment after Ollama answers the unload."""
        self._set_phase(Phase.BASELINE, "waiting for memory to settle")
        started = self._clock()
        self.collectors.sample_power()
        memory, gpus = self.collectors.memory, self.collectors.gpu
        interval = memory.interval
        deadline = self._clock() + SETTLE_TIMEOUT_S
        previous = memory.sample_now()
        previous_gpu = gpus.sample_now() if gpus is not None else None
        while True:
            if self.cancel.wait(interval):
                break
            current = memory.sample_now()
            current_gpu = gpus.sample_now() if gpus is not None else None
            ram_steady = (
                previous is not None
                and current is not None
                and (abs(current.used_bytes - previous.used_bytes) <= SETTLE_TOLERANCE * previous.used_bytes)
            )
            unsettled = gpu_unsettled(previous_gpu, current_gpu)
            if ram_steady and unsettled is None:
                break
            if self._clock() >= deadline:
                what = "memory" if not ram_steady else unsettled
                self._note(f"{what} did not settle within {SETTLE_TIMEOUT_S:.0f} s; baseline taken anyway")
                break
            previous, previous_gpu = current, current_gpu
        if self.collectors.power is not None:  # long enough to tell the machine's idle power
            self.cancel.wait(max(0.0, IDLE_POWER_S - (self._clock() - started)))
        gpu = gpus.sample_now() if gpus is not None else None
        return memory.latest(), self.collectors.processes.sample_now(), gpu

    # -- a run's steps: the live run and a replay (replay.py) go through these same ones ----------
    def open_run(
        self,
        mode: str,
        host: str | None,
        ollama_version: str | None,
        started_at: str | None,
        t: float,
        num_ctx: int | None = None,
        num_predict: int | None = None,
        think: bool | str | None = None,
    ) -> RunRecord:
        """A new run: its record becomes the run in progress."""
        assert self.facts is not None, "connect() first"
        self.cancel.clear()
        self._ps = None
        record = RunRecord(
            facts=self.facts,
            mode=mode,
            host=host,
            ollama_version=ollama_version,
            started_at=started_at,
            clock=TokenClock(t),
            num_ctx=num_ctx,
            num_predict=num_predict,
            think=think,
            power_unavailable=dict(self.collectors.power_unavailable),
            gpu_unavailable=self.collectors.gpu_unavailable if self.collectors.gpu is None else None,
        )
        self.current = self.last = record
        return record

    def request_sent(self, record: RunRecord, t: float) -> None:
        """The generate request went at `t`: the token clock and Ollama's split start over."""
        record.clock = TokenClock(t)
        self._emit("request", t)
        self._ps = self._ps_sampler()
        self._ps_listed_at = None

    def _ps_sampler(self) -> Sampler[PsReading]:
        """Ollama's split for one run: `/api/ps` every second until the model is listed."""
        return Sampler("ollama-ps", self._read_ps, PS_INTERVAL_S, capacity=7200, clock=self._clock)

    def ps_read(self, reading: PsReading) -> None:
        """Ollama's split as `/api/ps` gave it (a replay: the recorded reading)."""
        if self._ps is None:
            self._ps = self._ps_sampler()
        self._ps.push(reading)

    def token_arrived(self, record: RunRecord, text: str, t: float) -> None:
        """A streamed chunk with `text` arrived at `t`."""
        self._emit("token", t, text=text)
        record.clock.token(t)
        if text and record.first_answer_at is None:
            record.first_answer_at = t
        self.observer.token(text)

    def thought_arrived(self, record: RunRecord, text: str, t: float) -> None:
        """A thinking model's chunk of thought (`thinking`, not `response`) arrived at `t`: a token of
        the rate like any other, counted apart from the answer's."""
        self._emit("token", t, text=text, thinking=True)
        record.clock.token(t)
        record.thinking_tokens += 1
        if record.first_thought_at is None:
            record.first_thought_at = t
        self.observer.thought(text)

    def _read_cpu(self, record: RunRecord, t: float) -> None:
        reading = self.collectors.read_cpu(t)
        if reading is not None:
            self.cpu_read(record, reading)

    def cpu_read(self, record: RunRecord, reading: CpuReading) -> None:
        """The CPU's use as read at the generation's first token or its end (cpu_load.py)."""
        self._emit("cpu", reading.t, reading=reading.to_dict())
        record.cpu.append(reading)

    def final_arrived(self, record: RunRecord, chunk: dict[str, Any], t: float) -> None:
        """The server's final chunk: its counts and durations make the run complete."""
        self._emit("final", t, chunk=chunk)
        record.server = ServerTiming.from_final_chunk(chunk)
        record.complete = True

    def close_run(self, record: RunRecord, end: float) -> SummaryRow:
        """The run is over at `end`: its row, kept in `rows`; a recorder sees the end and the row."""
        if self.log is not None and record.served is None:  # what else the server worked on meanwhile
            record.served = tuple(self.log.served_between(record.clock.request_at, end))
            record.tasks = tuple(self.log.tasks_between(record.clock.request_at, end))
        self._emit("end", end, complete=record.complete, error=record.error, load_kind=record.load_kind)
        row = self.summarize(record, end)
        if self.judge is not None:
            row = self.judge(row)
        self._emit("summary", end, row=row)
        curves = self._curves(record, end) if self.keep_curves else None
        self.curves.append(curves)  # before the row: a reader that finds the row finds its curves
        self.rows.append(row)
        self.current = None
        return row

    # -- the live run -----------------------------------------------------------------------------
    def run(self, settings: RunSettings) -> SummaryRow:
        """Perform one run and return its row (also appended to `rows`). Never raises OllamaError
        or KeyboardInterrupt: a failed or interrupted run returns a row with complete=False."""
        self.stopped_by = None
        started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        record = self.open_run(
            settings.mode,
            self.server.base_url,
            self.version,
            started_at,
            self._clock(),
            settings.num_ctx,
            settings.num_predict,
            settings.think,
        )
        self._emit(
            "run",
            record.clock.request_at,
            settings=settings,
            mode=record.mode,
            host=record.host,
            ollama_version=record.ollama_version,
            started_at=record.started_at,
        )
        try:
            record.load_kind = self._unload(settings)
            record.baseline_memory, record.baseline_process, record.baseline_gpu = self._baseline()
            if self.usual_answer is not None and record.num_predict is None:  # the machine is read by now
                record.usual_tokens = self.usual_answer(self.model)
            self._emit(
                "baseline",
                load_kind=record.load_kind,
                memory=record.baseline_memory,
                process=record.baseline_process,
                gpu=record.baseline_gpu,
            )
            if not self.cancel.is_set():
                self._generate(record, settings)
        except OllamaError as exc:
            record.error = record.stalled or str(exc)
        except KeyboardInterrupt as exc:  # Ctrl+C, SIGTERM, SIGHUP: the run so far is kept (stopping.py)
            self.stopped_by = exc if isinstance(exc, StopRequested) else StopRequested("interrupted (Ctrl+C)", 130)
            record.error = self.stopped_by.reason
        except Exception as exc:  # a bug: the run ends as incomplete, what was measured is kept
            record.error = internal_error("the run", exc)
            self._note(record.error)
        return self._finish(record)

    def _generate(self, record: RunRecord, settings: RunSettings) -> None:
        """Stream the generation on a reading thread while this one watches it: a stall, a quit or
        a signal ends the run here even if the read never returns (the reader is then left behind)."""
        self._set_phase(Phase.LOADING, "loading the model and evaluating the prompt")
        self.collectors.sample_power()  # the baseline's end and the run's start, to the moment
        self.request_sent(record, self._clock())
        self.collectors.expect_load()  # a load starts a runner: find it while it lives
        ps = self._ps
        assert ps is not None
        ps.start()
        stream = _StreamReading(self, record, settings)
        try:
            stream.start()
            self._guard_the_stream(record, stream)
            if self.cancel.is_set() and isinstance(stream.failure, OllamaError):  # cut because the user quit
                record.error = record.error or "stopped by the user"
            else:
                stream.raise_failure()
        except BaseException:
            if not stream.done.is_set():  # a signal, or a bug here: cut the stream, keep the run
                self.server.abort()
                stream.abandon()
            raise
        finally:
            self.collectors.sample_power()  # the last token has come: the generation's energy ends here
            record.ended_at = self._clock()
            if record.cpu:
                self._read_cpu(record, record.ended_at)
            self.collectors.expect_load(False)
            ps.stop()
            self._ps_listed_at = None
            ps.sample_now()  # the model is still loaded: one last reading of Ollama's split
            if not record.complete and self.log is not None:
                time.sleep(LOG_GRACE_S)  # a crashing runner's last words reach the log just after
            else:
                self._await_request_timing(record)
                self._await_access_line(record)

    def _stream_chunk(self, record: RunRecord, chunk: dict[str, Any], arrived: float) -> bool:
        """One chunk of the stream, on the reading thread, that `arrived` at that time.monotonic()
        reading; False once the run is over."""
        now = arrived if self._clock is time.monotonic else self._clock()
        if chunk.get("done"):
            with self._lock:  # abandon() reads and closes the record under it, from another thread
                if record is not self._abandoned:
                    self.final_arrived(record, chunk, now)
            return False
        thought = chunk.get("thinking")
        if thought and isinstance(thought, str) and not chunk.get("response"):
            self.thought_arrived(record, thought, now)
        else:
            self.token_arrived(record, chunk.get("response") or "", now)
        if record.clock.count == 1:
            self._read_cpu(record, now)  # what else keeps the CPU busy while generating, from here
            self.collectors.sample_power()  # the generation phase's energy starts here
            self.collectors.expect_load(False)  # a runner that loads the model has started by now
            self._set_phase(Phase.GENERATING)
        if self.cancel.is_set():
            with self._lock:
                if record is not self._abandoned:
                    record.error = "stopped by the user"
            return False
        return True

    def _await_request_timing(self, record: RunRecord) -> None:
        """llama-server logs a request's timing as it ends, just when the final chunk comes: give
        the log follower a moment (at most LOG_GRACE_S) to read it, so the row has it."""
        load = self.log.latest_load() if self.log is not None else None
        if load is None or not load.llama_server:
            return
        deadline = self._clock() + LOG_GRACE_S
        while self._clock() < deadline:
            request = self.log_request(record)
            if request is not None and (request.eval_ms is not None or request.cancelled):
                return
            time.sleep(0.02)

    def _await_access_line(self, record: RunRecord) -> None:
        """Ollama prints a request's access line as it ends, just after the final chunk: give the log
        follower a moment (at most LOG_GRACE_S) to read the run's own, so the requests served
        meanwhile are told from it."""
        if self.log is None or record.ended_at is None:
            return
        deadline = self._clock() + LOG_GRACE_S
        while self._clock() < deadline:
            if any(r.ended >= record.ended_at for r in self.log.served_between(record.clock.request_at, self._clock())):
                return
            time.sleep(0.02)

    def _guard_the_stream(self, record: RunRecord, stream: _StreamReading) -> None:
        """The stall watchdog, until the stream ends: once tokens flow, no token for
        `stall_timeout_s` ends the run; so does a quit (`cancel`). The stream is cut, and if its
        read has not returned within ABORT_GRACE_S the reader is left behind and the run ends all
        the same. A silent load is the silence limit's (OllamaServer: Ollama's own load timeout
        plus a margin), checked here too in case the read's own timeout does not fire."""
        limit = self.stall_timeout_s
        step = min(1.0, limit / 4) if limit > 0 else 1.0
        silence = self.server.silence_limit_s
        while not stream.done.wait(step):
            now = self._clock()
            last = record.clock.last_at
            if self.cancel.is_set():
                why = None
            elif limit > 0 and last is not None and now - last > limit:
                why = f"no token for {limit:.0f} s (--stall-timeout)"
            elif last is None and silence is not None and now - record.clock.request_at > silence + ABORT_GRACE_S:
                why = f"the server sent nothing for {silence:.0f} s"
            else:
                continue
            record.stalled = why
            cut = self.server.abort()
            if stream.done.wait(ABORT_GRACE_S):
                return
            stream.abandon()
            self._note(f"the stream's read did not return after cutting {cut or 'nothing'}: left behind")
            if why is not None:
                raise Stalled(why)
            return

    def stall_s(self, record: RunRecord | None = None) -> float | None:
        """Seconds since the last token of a run that is generating; None otherwise."""
        record = record or self.current
        if record is None or record.clock.last_at is None or self.phase is not Phase.GENERATING:
            return None
        return self._clock() - record.clock.last_at

    def _finish(self, record: RunRecord) -> SummaryRow:
        with self._lock:
            if record is self._abandoned:  # the screen already kept this run when the user quit
                return self.summarize(record)
            row = self.close_run(record, record.ended_at if record.ended_at is not None else self._clock())
        self._set_phase(Phase.DONE if row.complete else Phase.FAILED, record.error or "")
        self.observer.finished(row)
        return row

    def latest_ps(self) -> PsReading | None:
        """Ollama's latest account of the split for the run in progress (or the last run)."""
        return self._ps.latest() if self._ps is not None else None

    @property
    def ps_problem(self) -> str | None:
        """Why the latest `/api/ps` reading failed, if it did."""
        return self._ps.last_error if self._ps is not None else None

    def abandon(self, reason: str) -> SummaryRow | None:
        """Give up the run in progress without waiting for it (the user quits): the row of what
        was measured so far is kept in `rows` with complete=False. None when no run is going."""
        with self._lock:
            record = self.current
            if record is None:
                return None
            self.cancel.set()
            if not record.complete:
                record.error = reason
            row = self.close_run(record, record.ended_at if record.ended_at is not None else self._clock())
            self._abandoned = record
            return row

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


def gpu_unsettled(previous: GpuSample | None, current: GpuSample | None) -> str | None:
    """What of the GPUs' memory still moves between two readings ("shared GPU memory on NAME"),
    None when all of it is steady (or nothing is read)."""
    if previous is None or current is None:
        return None
    before = {g.key: g for g in previous.gpus}
    for gpu in current.gpus:
        old = before.get(gpu.key)
        if old is None:
            continue
        for label, now, then in (
            ("dedicated GPU memory", gpu.dedicated_used, old.dedicated_used),
            ("shared GPU memory", gpu.shared_used, old.shared_used),
        ):
            if now is None or then is None:
                continue
            if abs(now - then) > max(GPU_SETTLE_BYTES, SETTLE_TOLERANCE * then):
                return f"{label} on {gpu.name}"
    return None


class _StreamReading:
    """The generation's stream, read on a thread of its own (see Session._generate)."""

    def __init__(self, session: Session, record: RunRecord, settings: RunSettings) -> None:
        self.session, self.record, self.settings = session, record, settings
        self.done = threading.Event()
        self.failure: BaseException | None = None
        self._abandoned = False
        self._thread = threading.Thread(target=self._read, name="llmtop-stream", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def abandon(self) -> None:
        """The run ends without this reader: whatever it reads from now on is dropped."""
        self._abandoned = True

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    def _read(self) -> None:
        session, record = self.session, self.record
        try:
            settings = self.settings
            batches = session.server.generate_timed(session.model, settings.prompt, settings.options(), settings.think)
            for batch in batches:
                if self._abandoned or not all(session._stream_chunk(record, *arrival) for arrival in batch):
                    break
            else:
                if not self._abandoned:
                    raise StreamBroken("the stream ended without its final chunk")
        except BaseException as exc:  # handed to the session's thread, which decides
            self.failure = exc
        finally:
            self.done.set()
