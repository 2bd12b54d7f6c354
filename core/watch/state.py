"""What `llmtop watch` knows of a server it does not drive: the loaded models (`/api/ps`), each load
(the server log: layers and why), each request (llama-server's timings in the log, Ollama 0.30 on, or
the response's final chunk as the proxy saw it), and per-model totals for the metrics endpoint.

Pure: no I/O, no Textual, no clock of its own (times are given); the pollers, the log follower and
the proxy feed it from their threads, so every method takes the lock. Memory is bounded: the last
MAX_REQUESTS requests and MAX_EVENTS events are kept, the totals are counters.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from llmtop import units
from llmtop.collectors.ollama_log import LoadRecord, RequestTiming
from llmtop.collectors.token_timing import ServerTiming
from llmtop.measure.load_parts import buffers_text
from llmtop.measure.split_reason import split_reason
from llmtop.measure.summary import split_words, vram_share
from llmtop.measure.summary_row import SummaryRow
from llmtop.measure.time_left import answer_left_s, prompt_left_s, prompt_time_left, usual_length
from llmtop.ollama.model_facts import canonical_model_name

MAX_REQUESTS = 1000
MAX_EVENTS = 500
ATTRIBUTE_S = 120.0  # a load and a model first listed this far apart are not the same load
UNATTRIBUTED_S = 30.0  # a log request whose model no /api/ps listing told by then is counted as unknown
FROM_LOG = "log"
FROM_PROXY = "proxy"


@dataclass(frozen=True)
class LoadedModel:
    """One `/api/ps` entry."""

    name: str
    size_bytes: int
    size_vram_bytes: int
    context: int | None
    expires_at: str | None  # the server's time the model is unloaded at, if idle until then
    listed_since: float

    @property
    def vram_share(self) -> float | None:
        return vram_share(self.size_bytes, self.size_vram_bytes)

    def unloads_in_s(self, now: dt.datetime) -> float | None:
        """Seconds until the server unloads it (None: never, or not told)."""
        if not self.expires_at:
            return None
        try:
            when = dt.datetime.fromisoformat(self.expires_at.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.year > 2200:  # keep_alive -1: Ollama writes a far future
            return None
        return (when - now).total_seconds()


@dataclass(frozen=True)
class WatchedRequest:
    """One request another program sent: what its source told of it."""

    number: int
    model: str | None
    source: str  # FROM_LOG or FROM_PROXY
    started: float  # monotonic: first seen
    ended: float | None = None
    endpoint: str | None = None  # the proxy's: /api/generate, /api/chat
    prompt_tokens: int | None = None
    prompt_tps: float | None = None
    prompt_progress: float | None = None  # 0 to 1 while the prompt is read (log)
    prompt_left_s: float | None = None  # the prompt's time left (counted down to the snapshot's time)
    prompt_seen_at: float | None = None  # monotonic: when the log's newest progress line was read
    usual_tokens: int | None = None  # while it generates: its model's usual answer length here (snapshot)
    answer_left_s: float | None = None  # the time to that length at its rate (None: past it, or unknown)
    eval_tokens: int | None = None  # so far while it generates, then in all
    eval_tps: float | None = None  # live while it generates (log: tg), then eval_count / eval_duration
    cancelled: bool = False
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.ended is not None

    def counted_down(self, now: float) -> WatchedRequest:
        """This request with its prompt's time left as of `now`: less the time since its progress line."""
        if self.done or self.prompt_seen_at is None:
            return self
        return replace(self, prompt_left_s=prompt_left_s(self.prompt_left_s, self.prompt_seen_at, now))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WatchedRequest:
        """A request as to_dict() wrote it (the history): its times relative, as `seconds` says."""
        seconds = data.get("seconds")
        complete = bool(data.get("complete"))
        return cls(
            number=int(data.get("number") or 0),
            model=data.get("model"),
            source=str(data.get("source") or FROM_LOG),
            started=0.0,
            ended=float(seconds) if isinstance(seconds, (int, float)) else (0.0 if complete else None),
            endpoint=data.get("endpoint"),
            prompt_tokens=data.get("prompt_tokens"),
            prompt_tps=data.get("prompt_tps"),
            eval_tokens=data.get("eval_tokens"),
            eval_tps=data.get("eval_tps"),
            cancelled=bool(data.get("cancelled")),
            error=data.get("error"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "model": self.model,
            "source": self.source,
            "endpoint": self.endpoint,
            "prompt_tokens": self.prompt_tokens,
            "prompt_tps": self.prompt_tps,
            "eval_tokens": self.eval_tokens,
            "eval_tps": self.eval_tps,
            "seconds": None if self.ended is None else self.ended - self.started,
            "complete": self.done and not self.cancelled and self.error is None,
            "cancelled": self.cancelled,
            "error": self.error,
        }


@dataclass
class ModelTotals:
    """What the metrics endpoint counts per model."""

    requests: int = 0
    prompt_tokens: int = 0
    eval_tokens: int = 0
    last_eval_tps: float | None = None
    layers_offloaded: int | None = None
    layers_total: int | None = None
    context: int | None = None


@dataclass(frozen=True)
class WatchEvent:
    t: float
    kind: str  # load, unload, evicted, request, done, spill, cpu-layers, layers, memory, server
    text: str
    model: str | None = None


def canonical(name: str | None) -> str | None:
    """`llama3.3` -> `llama3.3:latest`, as `/api/ps` names a model (a request may leave the tag out)."""
    return canonical_model_name(name) if name else None


def layers_text(load: LoadRecord) -> str | None:
    if load.layers_offloaded is None or not load.layers_total:
        return None
    return f"{load.layers_offloaded}/{load.layers_total} layers on the GPU"


@dataclass
class WatchState:
    """A watch session's knowledge; fed from several threads."""

    requests: deque[WatchedRequest] = field(default_factory=lambda: deque(maxlen=MAX_REQUESTS))
    events: deque[WatchEvent] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    loaded: dict[str, LoadedModel] = field(default_factory=dict)
    totals: dict[str, ModelTotals] = field(default_factory=dict)
    server_problem: str | None = None
    proxied: bool = False  # requests are counted from the proxy (the log's only give live progress)
    listeners: list[Callable[[WatchEvent], object]] = field(default_factory=list)  # each new event
    # each request that ended (the history)
    finished_listeners: list[Callable[[WatchedRequest], object]] = field(default_factory=list)
    # (event, t, fields) of each input: a recorder
    taps: list[Callable[[str, float, Mapping[str, Any]], object]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _number: int = 0
    _by_task: dict[tuple[int, int], int] = field(default_factory=dict)  # (load, task) -> request number
    _load_models: dict[int, str] = field(default_factory=dict)  # id(load) -> the model it loaded
    _slots_seen: dict[tuple[int, int], tuple[float, int]] = field(default_factory=dict)  # (load, task) -> (t, decoded)
    _loads_seen: dict[int, LoadRecord] = field(default_factory=dict)
    _memory_said: set[int] = field(default_factory=set)  # id(load) of the loads whose buffers were said
    _unattributed: dict[int, list[int]] = field(
        default_factory=dict
    )  # id(load) -> requests ended before its model was known

    # -- events -------------------------------------------------------------------------------------
    def subscribe(self, listener: Callable[[WatchEvent], None]) -> list[WatchEvent]:
        """Call `listener` with each new event from now on; the events so far, none missed between."""
        with self._lock:
            self.listeners.append(listener)
            return list(self.events)

    def _event(self, t: float, kind: str, text: str, model: str | None = None) -> None:
        event = WatchEvent(t, kind, text, model)
        self.events.append(event)
        for listener in self.listeners:
            listener(event)

    def _totals(self, model: str) -> ModelTotals:
        return self.totals.setdefault(model, ModelTotals())

    # -- /api/ps ------------------------------------------------------------------------------------
    def _tap(self, event: str, t: float, fields: Mapping[str, Any]) -> None:
        for tap in self.taps:
            tap(event, t, fields)

    def observe_ps(self, t: float, models: Sequence[Mapping[str, Any]], wall: dt.datetime | None = None) -> None:
        """The loaded models at `t` (`wall`: the time of day then, default now): loads, unloads and
        evictions are told as events."""
        wall = wall or dt.datetime.now(dt.timezone.utc)
        self._tap("ps", t, {"models": list(models), "wall": wall.isoformat()})
        with self._lock:
            returned = self.server_problem is not None
            if returned:
                self._event(t, "server", "the server answers again")
                self.server_problem = None
            now: dict[str, LoadedModel] = {}
            listed: list[LoadedModel] = []
            for entry in models:
                name = str(entry.get("name") or entry.get("model") or "?")
                context = entry.get("context_length")
                before = self.loaded.get(name)
                if returned and before is not None and before.expires_at != entry.get("expires_at"):
                    before = None  # the server restarted (or reloaded it) while it was away: a new load
                now[name] = LoadedModel(
                    name,
                    int(entry.get("size") or 0),
                    int(entry.get("size_vram") or 0),
                    context if isinstance(context, int) and context > 0 else None,
                    entry.get("expires_at"),
                    before.listed_since if before else t,
                )
                if before is None:
                    listed.append(now[name])
            for load_id, numbers in list(self._unattributed.items()):
                load = self._loads_seen.get(load_id)
                if load is None or t - load.first_seen > UNATTRIBUTED_S:  # no listing told its model
                    del self._unattributed[load_id]
                    for number in numbers:
                        self._finished(t, self._find(number)[1] or WatchedRequest(number, None, FROM_LOG, t))
            before_now, self.loaded = self.loaded, now
            for model in listed:  # once listed, a load the log showed before can be attributed to it
                self._listed(t, model)
            for name, gone in before_now.items():
                if name not in now and returned:  # not evicted: the server went away (and restarted?)
                    self._event(t, "unload", f"{name} is no longer loaded: the server was away", name)
                elif name not in now:
                    expires = gone.unloads_in_s(wall)
                    evicted = expires is not None and expires > 2.0  # unloaded before its time: to make room
                    self._event(
                        t,
                        "evicted" if evicted else "unload",
                        f"{name} unloaded"
                        + (" before its keep-alive ran out (evicted to make room?)" if evicted else ""),
                        name,
                    )

    def _listed(self, t: float, model: LoadedModel) -> None:
        split = split_words(model.vram_share)
        self._event(
            t, "load", f"{model.name} loaded: {units.human_bytes(model.size_bytes)}, {split} (/api/ps)", model.name
        )
        totals = self._totals(model.name)
        totals.context = model.context or totals.context
        for load in list(self._loads_seen.values()):  # loads the log showed before the listing
            self._attribute(t, load)

    def _attribute(self, t: float, load: LoadRecord) -> str | None:
        """The model a load loaded: the listed model whose first listing is nearest the load's first
        line (the log and `/api/ps` are read on their own clocks, either may come first); the one
        model loaded, where none was listed near it."""
        name = self._load_models.get(id(load))
        if name is not None:
            return name
        near = [m for m in self.loaded.values() if abs(m.listed_since - load.first_seen) <= ATTRIBUTE_S]
        if not near and len(self.loaded) == 1:  # a load from before llmtop started, of the one model loaded
            near = list(self.loaded.values())
        if not near:
            return None
        name = min(near, key=lambda m: abs(m.listed_since - load.first_seen)).name
        self._load_models[id(load)] = name
        self._apply_load(t, load, name)
        for number in self._unattributed.pop(id(load), []):  # counted now that their model is known
            index, request = self._find(number)
            if request is not None:
                self.requests[index] = replace(request, model=name)
                self._finished(t, self.requests[index])
        return name

    def server_down(self, t: float, problem: str) -> None:
        self._tap("server-down", t, {"problem": problem})
        with self._lock:
            if self.server_problem is None:
                self._event(t, "server", f"the server does not answer: {problem}; still watching")
            self.server_problem = problem

    # -- the log --------------------------------------------------------------------------------------
    def load_times(self) -> list[float]:
        """When each model load among the events kept began (a memory timeline's marks)."""
        return [e.t for e in list(self.events) if e.kind == "load" and e.model]

    def model_of(self, load: LoadRecord) -> str | None:
        """The model a load loaded, where a `/api/ps` listing told it (see _attribute)."""
        return self._load_models.get(id(load))

    def observe_load(self, t: float, load: LoadRecord) -> None:
        """A load the log shows (called at each line that adds to it)."""
        with self._lock:
            first = id(load) not in self._loads_seen
            self._loads_seen[id(load)] = load
            if len(self._loads_seen) > 50:
                oldest = next(iter(self._loads_seen))
                del self._loads_seen[oldest]
                self._load_models.pop(oldest, None)
            model = self._load_models.get(id(load))
            if model is not None:
                self._apply_load(t, load, model)
            elif self._attribute(t, load) is None and first:
                self._event(t, "load", "a model load begins (server log)")
            for request in load.requests:
                self._log_request(t, load, request)

    def _apply_load(self, t: float, load: LoadRecord, model: str) -> None:
        totals = self._totals(model)
        layers = (load.layers_offloaded, load.layers_total)
        if layers != (totals.layers_offloaded, totals.layers_total) and load.layers_offloaded is not None:
            totals.layers_offloaded, totals.layers_total = layers
            reason = split_reason(load)
            self._event(t, "layers", f"{model}: {reason or layers_text(load)}", model)
            if load.layers_total and load.layers_offloaded < load.layers_total:
                on_cpu = load.layers_total - load.layers_offloaded
                self._event(t, "cpu-layers", f"{model}: {on_cpu} layers run on the CPU", model)
        if load.context_seq or load.context_flag:
            totals.context = load.context_seq or load.context_flag
        if load.runner_started_s is not None and id(load) not in self._memory_said:  # every buffer is logged
            self._memory_said.add(id(load))
            buffers = buffers_text(load)
            if buffers:
                self._event(t, "memory", f"{model}: {buffers} (server log)", model)

    def _log_request(self, t: float, load: LoadRecord, request: RequestTiming) -> None:
        key = (id(load), request.task)
        model = self.model_of(load)
        number = self._by_task.get(key)
        if number is None:
            if self.proxied:  # the proxy counts requests; the log's task only shows progress
                return
            self._number += 1
            number = self._by_task[key] = self._number
            while len(self._by_task) > 2 * MAX_REQUESTS:  # thousands of requests an hour: memory stays flat
                del self._by_task[next(iter(self._by_task))]
            self.requests.append(WatchedRequest(number, model, FROM_LOG, request.first_seen))
            self._event(t, "request", f"request {number} to {model or 'a model'} begins (server log)", model)
        index, current = self._find(number)
        if current is None or current.done:
            return
        finished = request.eval_ms is not None or request.cancelled or request.released
        took = ((request.prompt_ms or 0.0) + (request.eval_ms or 0.0)) / 1000 if request.eval_ms is not None else None
        updated = replace(
            current,
            started=t - took if finished and took else current.started,  # the log's own times, not its lines'
            model=current.model or model,
            prompt_tokens=request.prompt_tokens or request.prompt_done or current.prompt_tokens,
            prompt_tps=request.prompt_tps or request.prompt_live_tps or current.prompt_tps,
            prompt_progress=request.prompt_progress,
            prompt_left_s=prompt_time_left(request),
            prompt_seen_at=request.progress_seen,
            eval_tokens=request.eval_tokens or request.decoded or current.eval_tokens,
            eval_tps=request.eval_tps or request.tg_3s_tps or request.tg_tps or current.eval_tps,
            cancelled=request.cancelled,
            ended=t if finished else None,
        )
        self.requests[index] = updated
        if finished and updated.model is None:  # the model is told by the next /api/ps listing
            self._unattributed.setdefault(id(load), []).append(number)
        elif finished:
            self._finished(t, updated)

    def observe_slots(self, t: float, load: LoadRecord, slots: Sequence[Mapping[str, Any]]) -> None:
        """llama-server's `/slots` for `load`, read at `t`: each busy slot's task, the prompt tokens it
        has read and the tokens decoded so far; the rate since the last reading (core/watch/slots.py)."""
        with self._lock:
            for slot in slots:
                task = slot.get("id_task")
                if not slot.get("is_processing") or not isinstance(task, int) or task < 0:
                    continue
                upcoming = slot.get("next_token")
                first = upcoming[0] if isinstance(upcoming, list) and upcoming else upcoming
                decoded = first.get("n_decoded") if isinstance(first, Mapping) else None
                decoded = decoded if isinstance(decoded, int) and decoded > 0 else None
                read = slot.get("n_prompt_tokens_processed")
                key = (id(load), task)
                before, rate = self._slots_seen.get(key), None
                if decoded is not None:
                    if before is not None and t > before[0] and decoded > before[1]:
                        rate = (decoded - before[1]) / (t - before[0])
                    self._slots_seen[key] = (t, decoded)
                    while len(self._slots_seen) > 2 * MAX_REQUESTS:
                        del self._slots_seen[next(iter(self._slots_seen))]
                progress = RequestTiming(task, t, prompt_done=read if isinstance(read, int) and read > 0 else None)
                progress.decoded, progress.tg_tps = decoded, rate
                self._log_request(t, load, progress)

    def _find(self, number: int) -> tuple[int, WatchedRequest | None]:
        for index in range(len(self.requests) - 1, -1, -1):
            if self.requests[index].number == number:
                return index, self.requests[index]
        return -1, None

    def _finished(self, t: float, request: WatchedRequest) -> None:
        model = request.model or "unknown"
        totals = self._totals(model)
        totals.requests += 1
        totals.prompt_tokens += request.prompt_tokens or 0
        totals.eval_tokens += request.eval_tokens or 0
        if request.eval_tps is not None:
            totals.last_eval_tps = request.eval_tps
        for listener in self.finished_listeners:
            listener(request)
        self._event(t, "done", f"request {request.number} to {model}: {describe(request)}", request.model)

    # -- the proxy ------------------------------------------------------------------------------------
    def proxy_started(self, t: float, endpoint: str, model: str | None) -> int:
        """A request to a generating endpoint went through the proxy; its number."""
        with self._lock:
            self._number += 1
            self._tap("proxy-start", t, {"number": self._number, "endpoint": endpoint, "model": model})
            model = canonical(model)
            self.requests.append(WatchedRequest(self._number, model, FROM_PROXY, t, endpoint=endpoint))
            self._event(t, "request", f"request {self._number} to {model or 'a model'} begins ({endpoint})", model)
            return self._number

    def proxy_finished(self, t: float, number: int, final: Mapping[str, Any] | None, error: str | None = None) -> None:
        """The response ended: its final chunk (None: it ended without one, `error` says why)."""
        self._tap("proxy-end", t, {"number": number, "final": dict(final) if final else None, "error": error})
        with self._lock:
            index, current = self._find(number)
            if current is None:
                return
            timing = ServerTiming.from_final_chunk(dict(final)) if final else None
            model = canonical((final or {}).get("model")) or current.model
            updated = replace(
                current,
                model=model,
                ended=t,
                prompt_tokens=timing.prompt_eval_count if timing else None,
                prompt_tps=timing.prompt_rate_tps if timing else None,
                eval_tokens=timing.eval_count if timing else None,
                eval_tps=timing.eval_rate_tps if timing else None,
                error=error if final is None else None,
                cancelled=final is None and error is None,
            )
            self.requests[index] = updated
            if final is not None:
                self._finished(t, updated)
            else:
                self._event(t, "done", f"request {number} to {model or 'a model'} ended early: {error or 'cancelled'}")

    # -- llmtop MODEL's own runs (--metrics) ----------------------------------------------------------
    def observe_row(self, t: float, row: SummaryRow) -> None:
        """A run of `llmtop MODEL` ended (a SummaryRow): counted as a request of its model."""
        with self._lock:
            model = canonical(row.model) or row.model
            totals = self._totals(model)
            if row.eval_count is not None:
                totals.requests += 1
                totals.eval_tokens += row.eval_count
                totals.prompt_tokens += row.prompt_eval_count or 0
            if row.eval_rate_tps is not None:
                totals.last_eval_tps = row.eval_rate_tps
            if row.layers_offloaded is not None:
                totals.layers_offloaded, totals.layers_total = row.layers_offloaded, row.layers_total
            totals.context = row.context or totals.context
            self._event(t, "done", f"run of {model} ({row.mode}) ended", model)

    # -- reading --------------------------------------------------------------------------------------
    def snapshot(self, now: float | None = None) -> WatchSnapshot:
        """Copies to read without the lock (the screen, the metrics endpoint, the exports); `now`
        (monotonic) counts each prompt's time left down from its newest progress line to then."""
        with self._lock:
            totals = {name: replace(t) for name, t in self.totals.items()}
            requests = list(self.requests)
            loaded = dict(self.loaded)
        if now is not None:
            requests = [r.counted_down(now) if r.prompt_left_s is not None else r for r in requests]
            requests = with_answer_left(requests)
        return WatchSnapshot(requests, loaded, totals)

    def loads_under_way(self, since: float) -> list[tuple[LoadRecord, str | None]]:
        """The loads the log shows begun at `since` or later and not yet over (a load whose end the log
        never said is not going on forever), each with its model where a listing named it."""
        with self._lock:
            return [
                (load, self._load_models.get(id(load)))
                for load in self._loads_seen.values()
                if not load.closed and not load.errors and load.first_seen >= since
            ]

    @property
    def tasks_tracked(self) -> int:
        """How many log requests (load, task) are remembered to tell a new one from one seen: bounded."""
        with self._lock:
            return len(self._by_task)

    def warn(self, t: float, kind: str, text: str, model: str | None = None) -> None:
        """A warning found elsewhere (the memory collectors: a spill)."""
        with self._lock:
            self._event(t, kind, text, model)


class WatchSnapshot(NamedTuple):
    """A watched server at one moment, copied out of its lock."""

    requests: list[WatchedRequest]  # the last MAX_REQUESTS, oldest first
    loaded: dict[str, LoadedModel]  # by model name
    totals: dict[str, ModelTotals]  # by model name, since the watch began


def live_wall(t: float) -> float:
    """The time of day (epoch seconds) of monotonic time `t`, in this process."""
    return time.time() - (time.monotonic() - t)


def with_answer_left(requests: Sequence[WatchedRequest]) -> list[WatchedRequest]:
    """`requests` with each generating one's usual length (its model's answers among the complete
    requests seen: time_left.usual_length) and the time to it at its live rate."""
    lengths: dict[str | None, list[int]] = {}
    for r in requests:
        if r.done and not r.cancelled and r.error is None and r.eval_tokens:
            lengths.setdefault(r.model, []).append(r.eval_tokens)
    shown = []
    for r in requests:
        generating = r.model and not r.done and r.eval_tokens and r.eval_tps
        usual = usual_length(lengths.get(r.model, [])) if generating else None
        if usual is not None:
            r = replace(r, usual_tokens=usual, answer_left_s=answer_left_s(usual, r.eval_tokens or 0, r.eval_tps))
        shown.append(r)
    return shown


def describe(request: WatchedRequest) -> str:
    """`prompt 26 tokens at 1281.6 tokens/s, 57 tokens at 12.34 tokens/s (server log)`."""
    if request.cancelled:
        return "cancelled"
    parts = []
    if request.prompt_tokens is not None:
        rate = f" at {request.prompt_tps:.1f} tokens/s" if request.prompt_tps else ""
        parts.append(f"prompt {request.prompt_tokens} tokens{rate}")
    if request.eval_tokens is not None:
        rate = f" at {request.eval_tps:.2f} tokens/s" if request.eval_tps else ""
        parts.append(f"{request.eval_tokens} tokens{rate}")
    source = "server log" if request.source == FROM_LOG else request.endpoint or "proxy"
    return (", ".join(parts) or "no counts") + f" ({source})"
