"""One llmtop session: connect, look the model up, then run the controlled experiment.

A run is: unload the model if loaded, take a baseline once memory has settled, generate with
streaming while the collectors sample and `/api/ps` is polled, then summarise. Every step of a
run is a typed event (events.py) the session takes (run_steps.py: the run's record is updated) and
publishes on its stream, where the screen, the headless lines and the recorder read it; a replay hands
the recorded events to the same `take`. The session never touches a screen itself.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

from llmtop.collectors.gpu_reading import GpuSample
from llmtop.collectors.log_watch import LogWatcher
from llmtop.collectors.ollama_log import LoadRecord
from llmtop.collectors.sampler import Sampler
from llmtop.collectors.system_collectors import SystemCollectors
from llmtop.collectors.system_memory import SystemMemorySample
from llmtop.data_folder import internal_error
from llmtop.measure.events import (
    BaselineTaken,
    CpuRead,
    EventStream,
    FinalChunk,
    Noted,
    Phase,
    PhaseChanged,
    PsRead,
    RequestSent,
    RunFinished,
    RunOpened,
    TokenArrived,
)
from llmtop.measure.run_steps import RunSteps
from llmtop.measure.settings import DEFAULT_PROMPT, STALL_TIMEOUT_S, RunSettings
from llmtop.measure.stopping import StopRequested
from llmtop.measure.summary import PsReading, RunRecord
from llmtop.measure.summary_row import SummaryRow
from llmtop.ollama.api import PS_INTERVAL_S, OllamaError, OllamaServer, Stalled, StreamBroken
from llmtop.ollama.model_facts import ModelFacts, model_facts, same_model
from llmtop.units import NA

__all__ = ["DEFAULT_PROMPT", "Phase", "RunSettings", "Session"]

PS_SETTLED_S = 10.0  # once the model is listed, its split changes only if it is reloaded: ask less often
UNLOAD_TIMEOUT_S = 60.0
UNLOAD_UNCHECKED_S = 3.0  # the wait after an unload that /api/ps cannot confirm
SETTLE_TOLERANCE = 0.01  # two consecutive readings within 1% count as settled
SETTLE_TIMEOUT_S = 10.0
GPU_SETTLE_BYTES = 32 * 1024 * 1024  # GPU memory that moves less than this between two readings is steady
LOG_GRACE_S = 0.5
ABORT_GRACE_S = 2.0  # how long a cut stream's read is given to return before it is left behind
IDLE_POWER_S = 1.0  # where power is read, the baseline lasts at least this long: the idle power's window


class Session(RunSteps):
    """A connected server, one model, and the collectors; `run()` performs one measured run, each of
    its steps taken as an event (run_steps.py)."""

    def __init__(
        self,
        server: OllamaServer,
        model: str,
        collectors: SystemCollectors,
        events: EventStream | None = None,
        clock: Callable[[], float] = time.monotonic,
        log: LogWatcher | None = None,
        log_reason: str | None = None,
        stall_timeout_s: float = STALL_TIMEOUT_S,
        judge: Callable[[SummaryRow], SummaryRow] | None = None,
        usual_answer: Callable[[str], int | None] | None = None,
        connected: tuple[str | None, ModelFacts] | None = None,
    ) -> None:
        """`events`: where the session publishes its runs' events (a stream of its own if not given).
        `stall_timeout_s`: once tokens flow, a gap this long ends the run as stalled (0: never).
        `judge` looks at each finished run's row before it is kept (usual.py: slow for this machine);
        `usual_answer` gives the model's usual answer length here, for "answer ready in about ..."
        where a run asks for no count, read as a run begins. `connected`: the server's version and the
        model's facts, where they were read already (else `connect()`)."""
        super().__init__(model, collectors, events, clock, log, judge, connected)
        self.server = server
        self.stall_timeout_s = stall_timeout_s
        self.log_reason = log_reason  # why there is no log, when there is none
        self._usual_answer = usual_answer
        self.cancel = threading.Event()
        self._lock = threading.Lock()
        self._abandoned: RunRecord | None = None
        self.stopped_by: StopRequested | None = None  # the signal that stopped the latest run, if one did
        if log is not None:
            log.subscribe(self._on_log)

    # -- set-up ---------------------------------------------------------------------------
    def connect(self) -> ModelFacts:
        """`/api/version`, `/api/show`, `/api/tags`: raises OllamaError with a user's message."""
        self.version, self.facts = connect(self.server, self.model)
        return self.facts

    # -- one run ----------------------------------------------------------------------------
    def _set_phase(self, phase: Phase, detail: str = "") -> None:
        self.take(PhaseChanged(self._clock(), self.model, phase, detail))

    def _note(self, message: str) -> None:
        self.take(Noted(self._clock(), self.model, message))

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
                self.take(PsRead(now, self.model, reading))  # the step keeps it in the run's sampler
                return None
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

    def _ps_sampler(self) -> Sampler[PsReading]:
        """Ollama's split for one run: `/api/ps` every second until the model is listed."""
        return Sampler("ollama-ps", self._read_ps, PS_INTERVAL_S, capacity=7200, clock=self._clock)

    def _read_cpu(self, t: float) -> None:
        reading = self.collectors.read_cpu(t)
        if reading is not None:
            self.take(CpuRead(reading.t, self.model, reading))

    # -- the live run -----------------------------------------------------------------------------
    def run(self, settings: RunSettings) -> SummaryRow:
        """Perform one run and return its row (also appended to `rows`). Never raises OllamaError
        or KeyboardInterrupt: a failed or interrupted run returns a row with complete=False."""
        self.stopped_by = None
        self.cancel.clear()
        started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        host = self.server.base_url
        self.take(RunOpened(self._clock(), self.model, settings, settings.mode, host, self.version, started_at))
        record = self.current
        assert record is not None
        try:
            load_kind = record.load_kind = self._unload(settings)  # kept should the baseline be cut short
            memory, process, gpu = self._baseline()
            if self._usual_answer is not None and record.num_predict is None:  # the machine is read by now
                record.usual_tokens = self._usual_answer(self.model)
            self.take(BaselineTaken(self._clock(), self.model, load_kind, memory, process, gpu))
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
        self.take(RequestSent(self._clock(), self.model))
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
        except BaseException:  # cleanup only: the stream is cut, and what was raised goes on up
            if not stream.done.is_set():  # a signal, or a bug here: cut the stream, keep the run
                self.server.abort()
                stream.abandon()
            raise
        finally:
            self.collectors.sample_power()  # the last token has come: the generation's energy ends here
            record.ended_at = self._clock()
            if record.cpu:
                self._read_cpu(record.ended_at)
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
        if record is not self.current:  # its run is over (a quit, a reader left behind): nothing more of it
            return False
        if chunk.get("done"):
            with self._lock:  # abandon() reads and closes the record under it, from another thread
                if record is self.current and record is not self._abandoned:
                    self.take(FinalChunk(now, self.model, chunk))
            return False
        thought = chunk.get("thinking")
        if thought and isinstance(thought, str) and not chunk.get("response"):
            self.take(TokenArrived(now, self.model, thought, thinking=True))
        else:
            self.take(TokenArrived(now, self.model, chunk.get("response") or ""))
        if record.clock.count == 1:
            self._read_cpu(now)  # what else keeps the CPU busy while generating, from here
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

    def _finish(self, record: RunRecord) -> SummaryRow:
        with self._lock:
            if record is self._abandoned:  # the screen already kept this run when the user quit
                return self.summarize(record)
            row = self.close_run(record, record.ended_at if record.ended_at is not None else self._clock())
        self._set_phase(Phase.DONE if row.complete else Phase.FAILED, record.error or "")
        self.take(RunFinished(self._clock(), self.model, row))
        return row

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


def connect(server: OllamaServer, model: str) -> tuple[str | None, ModelFacts]:
    """The server's version and the model's facts (`/api/version`, `/api/show`, `/api/tags`): raises
    OllamaError with a user's message."""
    version = server.version()
    show = server.show(model)
    return version, model_facts(model, show, server.tags())
