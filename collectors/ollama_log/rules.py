"""The shape of an era's table: a Rule is a kind of line (its pattern) and what it sets; a Line is one
cleaned log line as a rule sees it."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from llmtop.collectors.ollama_log.records import LoadRecord, ServerFacts


@dataclass(frozen=True, slots=True)
class Line:
    """One line, colour codes and quoting gone; `fields`: an Ollama (Go slog) line's `key=value` pairs,
    empty for the lines of llama.cpp and llama-server; `now`: when it was read, on the caller's clock."""

    text: str
    now: float
    fields: Mapping[str, str] = field(default_factory=dict)
    level: str | None = None

    @property
    def msg(self) -> str:
        return self.fields.get("msg", "")

    @property
    def time_text(self) -> str | None:
        return self.fields.get("time")


class Log(Protocol):
    """The core (reader.OllamaLogParser) as the eras' rules see it: the loads, the server's facts, and
    the steps of a load's life."""

    records: list[LoadRecord]
    server: ServerFacts

    def open_loads(self) -> list[LoadRecord]: ...
    def begin(self, now: float, time_text: str | None) -> LoadRecord: ...
    def newest_open(self, now: float, time_text: str | None = None) -> LoadRecord: ...
    def confirmed(self, done: int, total: int, now: float, time_text: str | None, engine: str) -> LoadRecord: ...
    def failed(self, model: str | None, message: str, line: str) -> None: ...
    def error(self, message: str) -> None: ...
    def model_buffer(self, record: LoadRecord, device: str, size: str, planned: bool = False) -> None: ...
    def backend_named(self, library: str | None) -> LoadRecord | None: ...
    def gpu_named(self, name: str) -> LoadRecord | None: ...


Sets = Callable[[Log, re.Match[str], Line], "LoadRecord | None"]


@dataclass(frozen=True, slots=True)
class Rule:
    """A kind of line: `pattern` searched in an Ollama line's msg (in the whole line for the others), and
    `sets`, what such a line sets; it returns the load it added to, if any. `when`: a further test of
    the line. `noted`: the line joins that load's evidence. The first rule of a table that takes a line
    reads it."""

    pattern: re.Pattern[str]
    sets: Sets
    when: Callable[[Line], bool] | None = None
    noted: bool = True


def message(*texts: str) -> re.Pattern[str]:
    """A pattern for an Ollama line whose msg is one of `texts`, exactly."""
    return re.compile("^(?:" + "|".join(re.escape(text) for text in texts) + ")$")
