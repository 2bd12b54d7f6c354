"""Recordings: a session written as it happens to a JSON Lines file, one event a line.

Format version 1. Every line is an object with `event` (its kind) and `t` (seconds on the session's
monotonic clock); the first line is the `recording` event with the format version. The kinds:

    recording  v, wall (UTC start), llmtop_version, interval, plan, settings, log, gpu, power, argv, demo
    model      model, facts, ollama_version, host                 (one per model, after connecting)
    machine    machine                                            (CPU, RAM, GPUs, OS, versions)
    sample     source (ram | ollama-rss | gpu | power), sample    (every collector reading)
    error      source, error                                      (a collector that failed to read)
    log        line                                               (every server-log line read)
    run        model, mode, settings, host, ollama_version, started_at
    phase      model, phase, detail
    note       model, message
    baseline   model, load_kind, memory, process, gpu
    request    model                                              (the generate request is sent)
    token      model, text
    ps         model, sample                                      (Ollama's /api/ps split)
    final      model, chunk                                       (the server's final chunk, as sent)
    end        model, complete, error, load_kind
    summary    model, row                                         (the row the live session computed)
    closed                                                        (the session ended normally)

This module holds the pure part (events to JSON and back) and the writer; replaying is replay.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from llmtop import __version__
from llmtop.collectors.gpu_reading import GpuReading, GpuSample
from llmtop.collectors.ollama_processes import OllamaProcessSample
from llmtop.collectors.power_reading import PowerReading, PowerSample
from llmtop.collectors.system_memory import SystemMemorySample
from llmtop.data_folder import private_folder, recordings_folder
from llmtop.measure.events import Event
from llmtop.measure.server_settings import ServerSettings
from llmtop.measure.settings import RunSettings
from llmtop.measure.summary import PsReading
from llmtop.measure.summary_row import SummaryRow
from llmtop.ollama.model_facts import ModelFacts

FORMAT_VERSION = 1


class RecordingError(Exception):
    """A recording cannot be written or read; the message says why and where."""


# -- to JSON ----------------------------------------------------------------------------------
_PLAIN = (str, int, float, bool, type(None))


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # each dataclass's field names, looked up once


def jsonable(value: Any) -> Any:
    """Dataclasses as dicts, tuples as lists, everything else as json takes it."""
    kind = type(value)
    if kind in _PLAIN:  # most values, and every token's: no further checks
        return value
    if kind is dict:
        return {str(k): jsonable(v) for k, v in value.items()}
    names = _FIELD_NAMES.get(kind)
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        return {name: jsonable(getattr(value, name)) for name in names}
    if isinstance(value, _PLAIN):  # a subclass (an enum of str)
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def encode(event: str, t: float, fields: Mapping[str, Any]) -> str:
    """One line of the recording (without its newline)."""
    return json.dumps({"event": event, "t": t, **jsonable(fields)}, ensure_ascii=False, allow_nan=False)


# -- from JSON --------------------------------------------------------------------------------
def _known(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def memory_sample(data: Mapping[str, Any] | None) -> SystemMemorySample | None:
    return None if data is None else SystemMemorySample(**_known(SystemMemorySample, data))


def process_sample(data: Mapping[str, Any] | None) -> OllamaProcessSample | None:
    if data is None:
        return None
    values = _known(OllamaProcessSample, data)
    values["runner_pids"] = tuple(values.get("runner_pids") or ())
    values["runner_env"] = tuple((str(k), str(v)) for k, v in values.get("runner_env") or ())
    return OllamaProcessSample(**values)


def gpu_sample(data: Mapping[str, Any] | None) -> GpuSample | None:
    if data is None:
        return None
    gpus = tuple(
        GpuReading(**{**_known(GpuReading, g), "clock_limits": tuple(g.get("clock_limits") or ())})
        for g in data.get("gpus") or ()
    )
    return GpuSample(data["t"], gpus, tuple(data.get("problems") or ()))


def power_sample(data: Mapping[str, Any] | None) -> PowerSample | None:
    if data is None:
        return None
    sources = tuple(PowerReading(**_known(PowerReading, r)) for r in data.get("sources") or ())
    return PowerSample(data["t"], sources, tuple(data.get("problems") or ()))


def ps_reading(data: Mapping[str, Any]) -> PsReading:
    return PsReading(**_known(PsReading, data))


def recorded_facts(data: Mapping[str, Any]) -> ModelFacts:
    return ModelFacts(**_known(ModelFacts, data))


def run_settings(data: Mapping[str, Any] | None) -> RunSettings:
    known = _known(RunSettings, data or {})
    server = known.get("server")
    known["server"] = (
        ServerSettings(**_known(ServerSettings, server)) if isinstance(server, Mapping) else ServerSettings()
    )
    return RunSettings(**known)


def summary_row(data: Mapping[str, Any]) -> SummaryRow:
    return SummaryRow.from_dict(data)


SAMPLE_READERS = {"ram": memory_sample, "ollama-rss": process_sample, "gpu": gpu_sample, "power": power_sample}


# -- where recordings go ----------------------------------------------------------------------
def default_folder() -> Path:
    return recordings_folder()


def default_name(models: list[str], when: dt.datetime) -> str:
    """`20261124-183005-llama3.3.jsonl`: sortable, and safe on every file system."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", "+".join(models))[:80]
    return f"{when.strftime('%Y%m%d-%H%M%S')}-{safe}.jsonl"


def _create(path: Path, mode: int) -> tuple[Path, IO[str]]:
    """A new file of its own: `path`, or `NAME-2.jsonl`, `-3`, ... where another llmtop took it
    (two started in the same second). Never a file another process may be writing."""
    for number in range(1, 1000):
        candidate = path if number == 1 else path.with_name(f"{path.stem}-{number}{path.suffix}")
        try:
            descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            continue
        return candidate, os.fdopen(descriptor, "w", encoding="utf-8", newline="\n")
    raise FileExistsError(f"{path} and 998 more names are taken")


# -- the writer -------------------------------------------------------------------------------
FREQUENT = frozenset({"token", "sample"})  # events written by the batch (see Recorder)
FLUSH_EVERY_S = 0.5


class Recorder:
    """Appends events to a file, one line each. Tokens and samples, which come tens of times a
    second, reach the file at least every FLUSH_EVERY_S (two writes a second, not one each); any
    other event is written at once, with everything before it. A crash loses at most the last
    half second of samples and tokens.

    Thread-safe (the samplers, the log follower and the session call it from their threads). A
    write that fails stops the recording and keeps the reason in `problem`; the session goes on.
    """

    def __init__(self, path: Path, private: bool = False) -> None:
        """`private`: a recording of the data folder (readable by its owner alone, its name made
        unique); else the file the user named, replaced if it exists."""
        self.path = path
        self.problem: str | None = None
        self.late = 0  # events offered after close(): what closed it came too soon (Instruments' order)
        self._closed = False
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._flushed_at = time.monotonic()
        try:
            if private:
                private_folder(path.parent)
                self.path, self._file = _create(path, 0o600)
            else:
                self._file = open(path, "w", encoding="utf-8", newline="\n")
        except OSError as exc:
            raise RecordingError(f"cannot record to {path}: {exc.strerror or exc}") from None

    def take(self, event: Event) -> None:
        """A run's event from its stream (measure/events.py): written if it is one a recording keeps."""
        if event.name is not None:
            self.event(event.name, event.t, event.fields())

    def event(self, event: str, t: float, fields: Mapping[str, Any] | None = None) -> None:
        """Write one event (a no-op once the recording has failed; counted in `late` once closed)."""
        line = encode(event, t, fields or {})
        with self._lock:
            if self._file is None:
                self.late += self._closed
                return
            try:
                self._file.write(line + "\n")
                now = time.monotonic()
                if event not in FREQUENT or now - self._flushed_at >= FLUSH_EVERY_S:
                    self._file.flush()
                    self._flushed_at = now
            except (OSError, ValueError) as exc:
                self.problem = f"recording to {self.path} stopped: {getattr(exc, 'strerror', None) or exc}"
                self._close()

    def _close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None

    def close(self, t: float) -> None:
        """Write the `closed` event and close the file."""
        self.event("closed", t)
        with self._lock:
            self._close()
            self._closed = True


def header(
    *,
    interval: float,
    plan: list[dict[str, Any]],
    settings: RunSettings,
    log: Mapping[str, Any],
    gpu: Mapping[str, Any],
    power: Mapping[str, Any] | None = None,
    argv: list[str] | None = None,
    demo: str | None = None,
    sweep: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The fields of the first event; `power`: {"available", "unavailable": why a kind is not
    measured}; `sweep` what a `--sweep` swept (its replay concludes the same)."""
    return {
        "v": FORMAT_VERSION,
        "wall": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "llmtop_version": __version__,
        "interval": interval,
        "plan": plan,
        "settings": settings,
        "log": dict(log),
        "gpu": dict(gpu),
        "power": dict(power) if power is not None else None,
        "argv": argv or [],
        "demo": demo,
        "sweep": dict(sweep) if sweep is not None else None,
    }
