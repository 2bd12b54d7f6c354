"""The small core of the log reader: it owns the loads and their lifecycle (a load begins, is planned,
confirmed, fails or ends) and the server-wide facts later loads inherit; each era's module says, in a
table, which lines it reads and what they set, and this module hands every line to the first rule
of the tables that takes it. Pure: lines in, records out; no I/O."""

from __future__ import annotations

import re
from collections.abc import Iterable

from llmtop.collectors.ollama_log import engine_era, llama_server_era, runner_era, server_lines
from llmtop.collectors.ollama_log.lines import clean_line, is_host_memory, library_from_device, logfmt, size_bytes
from llmtop.collectors.ollama_log.records import EVIDENCE_LINES, DeviceBuffer, LoadRecord, ServerFacts
from llmtop.collectors.ollama_log.rules import Line, Rule
from llmtop.units import one_line

_STRUCTURED = re.compile(r"(?:\btime=\S+\s+)?\blevel=([A-Z]+)\s+source=\S+\s+msg=")

# Ollama's own lines (Go slog: `level=INFO source=... msg=...`), by msg: the server's of every era first,
# then the eras', then the server's catch-all for errors.
OLLAMA_RULES: tuple[Rule, ...] = (
    *server_lines.FACTS,
    *runner_era.OLLAMA,
    *engine_era.OLLAMA,
    *server_lines.LOADS,
    *server_lines.ERRORS,
)
# Every other line (llama.cpp's, llama-server's, the ollama command's), by pattern, in this order.
OTHER_RULES: tuple[Rule, ...] = (
    *llama_server_era.LINES,
    *runner_era.LLAMA_CPP,
    *server_lines.PLAIN_ERRORS,
)


class OllamaLogParser:
    """Feed lines in order; `records` grows by one LoadRecord per model load.

    Server-wide facts (version, GPUs, system RAM) are remembered and given to each later load.
    Several loads may be in flight at once (their lines interleave): a confirmation goes to the
    oldest open load whose layer count matches.
    """

    def __init__(self) -> None:
        self.records: list[LoadRecord] = []
        self.lines_read = 0
        self.server = ServerFacts()

    # -- lines ------------------------------------------------------------------------------
    def feed_all(self, lines: Iterable[str], now: float = 0.0) -> list[LoadRecord]:
        """Feed every line; return the records (all of them, not only new ones)."""
        for line in lines:
            self.feed(line, now)
        return self.records

    def feed(self, raw: str, now: float = 0.0) -> LoadRecord | None:
        """Read one line; return the record it added to, if any."""
        self.lines_read += 1
        text = clean_line(raw)
        if not text.strip():
            return None
        structured = _STRUCTURED.search(text)
        if structured:
            line = Line(text, now, logfmt(text[structured.start() :]), structured.group(1))
            return self._read(OLLAMA_RULES, line.msg, line)
        return self._read(OTHER_RULES, text, Line(text, now))

    def _read(self, rules: tuple[Rule, ...], subject: str, line: Line) -> LoadRecord | None:
        for rule in rules:
            found = rule.pattern.search(subject)
            if found is None or (rule.when is not None and not rule.when(line)):
                continue
            record = rule.sets(self, found, line)
            if record is not None and rule.noted:
                self.note(record, line.text)
            return record
        return None

    # -- the loads' lifecycle ---------------------------------------------------------------
    def open_loads(self) -> list[LoadRecord]:
        return [r for r in self.records if not r.closed]

    def begin(self, now: float, time_text: str | None) -> LoadRecord:
        """A new load, with what the server said before it."""
        facts = self.server
        record = LoadRecord(
            first_seen=now,
            started_at=time_text,
            ollama_version=facts.version,
            gpus=list(facts.gpus),
            system_total=facts.system_total,
            hint_library=facts.backend,
            default_context=facts.default_context,
            gpu_problem=facts.gpu_problem,
            server_env={k: v for k, v in facts.env.items() if v},
        )
        if facts.flash_next:
            record.launch["flash_attention"] = facts.flash_next
            facts.flash_next = None
        if not self.records and facts.pending_errors:  # a report that quotes the error first
            record.errors.extend(facts.pending_errors)
            facts.pending_errors.clear()
        self.records.append(record)
        return record

    def newest_open(self, now: float, time_text: str | None = None) -> LoadRecord:
        """The load under way (a new one where none is open)."""
        open_records = self.open_loads()
        return open_records[-1] if open_records else self.begin(now, time_text)

    def confirmed(self, done: int, total: int, now: float, time_text: str | None, engine: str) -> LoadRecord:
        """The runner put `done` of `total` layers on a GPU: the oldest open load still waiting for that
        word whose layer count matches (a new one where none does)."""
        record = next(
            (r for r in self.open_loads() if r.confirmed is None and r.layers_total in (None, total)),
            None,
        ) or self.begin(now, time_text)
        record.confirmed = (done, total)
        record.engine = record.engine or engine
        return record

    def failed(self, model: str | None, message: str, line: str) -> None:
        """The scheduler gave a load up: the error goes to the open load of that model (the newest open
        load where the line names none), which is closed, so a load started at once after it (Ollama
        retries on a new runner) gets its own lines, not this one's."""
        open_records = self.open_loads()
        target = next((r for r in reversed(open_records) if model and r.model_path == model), None)
        if target is None and open_records and (model is None or all(r.model_path is None for r in open_records)):
            target = open_records[-1]
        if target is None:  # no open load of that model: an error of the server's, as before
            self.error(message)
            return
        message = one_line(message)
        if not target.errors or target.errors[-1] != message:
            target.errors.append(message)
        target.closed = True
        self.note(target, line)

    def error(self, message: str) -> None:
        """An error line: the open load's (the last load's when none is open; kept for the first load
        when none has begun)."""
        message = one_line(message)
        open_records = self.open_loads()
        target = open_records[-1] if open_records else (self.records[-1] if self.records else None)
        if target is None:
            self.server.pending_errors.append(message)
        elif not target.errors or target.errors[-1] != message:
            target.errors.append(message)

    @staticmethod
    def note(record: LoadRecord, line: str) -> None:
        """The line joins the load's evidence (its first EVIDENCE_LINES lines)."""
        if len(record.evidence) < EVIDENCE_LINES:
            record.evidence.append(line)

    # -- what several eras' lines set alike --------------------------------------------------
    @staticmethod
    def model_buffer(record: LoadRecord, device: str, size: str, planned: bool = False) -> None:
        """A buffer of the model's weights on a device (Ollama's plan of it, or the runner's own, which
        replaces the plan)."""
        if not planned:
            record.model_buffers[:] = [b for b in record.model_buffers if not b.planned]
        record.model_buffers.append(DeviceBuffer(device, size, size_bytes(size), planned))
        if not is_host_memory(device):
            record.buffer_library = record.buffer_library or library_from_device(device)

    def backend_named(self, library: str | None) -> LoadRecord | None:
        """A line named a GPU backend: the open load's, or (none open) the next load's hint."""
        if library is None or library == "cpu":
            return None
        open_records = self.open_loads()
        if not open_records:
            self.server.backend = library
            return None
        record = open_records[-1]
        record.init_library = record.init_library or library
        return record

    def gpu_named(self, name: str) -> LoadRecord | None:
        """A GPU's name (a runner's device line): the open load's, and the server's for later loads."""
        open_records = self.open_loads()
        target = open_records[-1] if open_records else None
        if target is not None and name not in target.gpus:
            target.gpus.append(name)
        if name not in self.server.gpus:
            self.server.gpus.append(name)
        return target


def parse_lines(lines: Iterable[str]) -> list[LoadRecord]:
    """Every load found in `lines`."""
    return OllamaLogParser().feed_all(lines)
