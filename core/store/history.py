"""Every finished run, kept in a local SQLite file so runs from different days compare in one table.

The file lives in the platform's user data folder (platformdirs; `LLMTOP_DATA_DIR` overrides it).
A damaged or locked file raises HistoryError with a clear message; the caller reports it and goes
on: the history never costs a run.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmtop.data_folder import history_path, private_file, private_folder
from llmtop.measure.plan import KeepingFailed
from llmtop.measure.summary_row import SummaryRow
from llmtop.measure.sweep import SweepResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    model TEXT NOT NULL,
    mode TEXT NOT NULL,
    row_json TEXT NOT NULL,
    machine_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS watched (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    host TEXT NOT NULL,
    model TEXT,
    request_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sweeps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    model TEXT NOT NULL,
    sweep_json TEXT NOT NULL,
    machine_json TEXT NOT NULL
);
"""


BUSY_WAIT_S = 15.0  # how long a write waits for another llmtop's to end
REPAIR_HINT = " (`llmtop history --repair` moves it aside and starts a new one)"


class HistoryError(KeepingFailed):
    """The history cannot be read or written; the message says why and where."""


def default_path() -> Path:
    """The history's file in the data folder."""
    return history_path()


def row_from_dict(values: Mapping[str, Any]) -> SummaryRow:
    """A SummaryRow from its JSON; keys a newer or older llmtop wrote are dropped or defaulted."""
    return SummaryRow.from_dict(values)


class History:
    """Runs in a SQLite file at `path`."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()

    def _connect(self) -> sqlite3.Connection:
        try:
            private_folder(self.path.parent)
            connection = sqlite3.connect(self.path, timeout=2.0)
            connection.executescript(SCHEMA)
            private_file(self.path)
            return connection
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):  # locked, or a folder it cannot write: not damage
                raise HistoryError(f"cannot open the history at {self.path}: {exc}") from None
            raise HistoryError(f"cannot open the history at {self.path}: {exc}{REPAIR_HINT}") from None
        except (OSError, sqlite3.Error) as exc:
            raise HistoryError(f"cannot open the history at {self.path}: {exc}") from None

    def damaged(self) -> str | None:
        """Why the file cannot be read as a history (None: it reads, or there is none yet)."""
        if not self.path.exists():
            return None
        try:
            connection = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=2.0)
            try:
                result = connection.execute("PRAGMA quick_check").fetchone()
                connection.execute("SELECT count(*) FROM runs").fetchone()
            finally:
                connection.close()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                return None  # in use by a run, not damaged
            return str(exc)
        except sqlite3.DatabaseError as exc:
            return str(exc)
        return None if result and result[0] == "ok" else f"integrity check: {result[0] if result else 'no answer'}"

    def repair(self, now: dt.datetime) -> Path:
        """Move a damaged file aside (its name gets `.damaged-` and the time) so that a new history
        starts; return where it went."""
        target = self.path.with_name(f"{self.path.name}.damaged-{now.strftime('%Y%m%d-%H%M%S')}")
        try:
            self.path.replace(target)
        except OSError as exc:
            raise HistoryError(f"cannot move the history at {self.path} aside: {exc.strerror or exc}") from None
        return target

    def _insert(self, sql: str, values: tuple[Any, ...], what: str) -> None:
        """Add one row. Another llmtop writing at the same moment holds the file for a moment: wait
        and try again (for up to BUSY_WAIT_S), so that both rows are kept."""
        deadline = time.monotonic() + BUSY_WAIT_S
        while True:
            try:
                connection = self._connect()
                try:
                    with connection:
                        connection.execute(sql, values)
                finally:
                    connection.close()
                return
            except (sqlite3.Error, HistoryError) as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if busy and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                if isinstance(exc, HistoryError):
                    raise
                raise HistoryError(f"cannot save the {what} in the history at {self.path}: {exc}") from None

    def _select(self, sql: str) -> list[Any]:
        """The rows of a query; [] when there is no history file yet."""
        if not self.path.exists():
            return []
        connection = self._connect()
        try:
            return connection.execute(sql).fetchall()
        except sqlite3.Error as exc:
            raise HistoryError(f"cannot read the history at {self.path}: {exc}") from None
        finally:
            connection.close()

    def add(self, row: SummaryRow, machine: Mapping[str, Any]) -> None:
        self._insert(
            "INSERT INTO runs (model, mode, row_json, machine_json) VALUES (?, ?, ?, ?)",
            (row.model, row.mode, json.dumps(row.to_dict(), ensure_ascii=False), json.dumps(dict(machine))),
            "run",
        )

    def add_sweep(self, result: SweepResult, machine: Mapping[str, Any]) -> None:
        """Keep a sweep's result (llmtop.measure.sweep.SweepResult): its points, conclusion and Modelfile."""
        self._insert(
            "INSERT INTO sweeps (model, sweep_json, machine_json) VALUES (?, ?, ?)",
            (result.model, json.dumps(result.to_dict(), ensure_ascii=False), json.dumps(dict(machine))),
            "sweep",
        )

    def add_request(self, host: str, request: Mapping[str, Any]) -> None:
        """Keep a request `llmtop watch` saw (kind `watch`): WatchedRequest.to_dict() and its server."""
        self._insert(
            "INSERT INTO watched (host, model, request_json) VALUES (?, ?, ?)",
            (host, request.get("model"), json.dumps(dict(request), ensure_ascii=False)),
            "watched request",
        )

    def requests(self, model: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Requests watched, oldest first: each WatchedRequest.to_dict() with `host`, `recorded_at`
        and `kind` ("watch")."""
        from llmtop.ollama.model_facts import same_model

        found = []
        for recorded_at, host, text in self._select("SELECT recorded_at, host, request_json FROM watched ORDER BY id"):
            try:
                request = json.loads(text)
            except ValueError:
                continue
            if isinstance(request, dict) and (model is None or same_model(request.get("model") or "", model)):
                found.append({"kind": "watch", "recorded_at": recorded_at, "host": host, **request})
        return found[-limit:] if limit else found

    def sweeps(self, model: str | None = None) -> list[dict[str, Any]]:
        """Past sweeps, oldest first: each the export's `sweep` object with `model` and `recorded_at`."""
        from llmtop.ollama.model_facts import same_model

        sweeps = []
        for recorded_at, name, text in self._select("SELECT recorded_at, model, sweep_json FROM sweeps ORDER BY id"):
            try:
                sweep = json.loads(text)
            except ValueError:
                continue
            if isinstance(sweep, dict) and (model is None or same_model(name, model)):
                sweeps.append({"recorded_at": recorded_at, "model": name, **sweep})
        return sweeps

    def last_machine(self) -> dict[str, Any]:
        """The machine of the newest run kept ({} when none is)."""
        found = self._select("SELECT machine_json FROM runs ORDER BY id DESC LIMIT 1")
        for (text,) in found:
            try:
                machine = json.loads(text)
            except ValueError:
                return {}
            return machine if isinstance(machine, dict) else {}
        return {}

    def runs_on(self, machine: Mapping[str, Any], model: str | None = None) -> list[SummaryRow]:
        """Past runs on a machine like `machine` (the same CPU, GPUs and RAM), oldest first."""
        from llmtop.ollama.model_facts import same_model

        keys = ("cpu_info", "gpu_info", "ram_total_bytes")
        rows = []
        for row_text, machine_text in self._select("SELECT row_json, machine_json FROM runs ORDER BY id"):
            try:
                past = json.loads(machine_text)
                row = row_from_dict(json.loads(row_text))
            except (ValueError, TypeError):
                continue
            if not isinstance(past, dict) or any(past.get(k) != machine.get(k) for k in keys):
                continue
            if model is None or same_model(row.model, model):
                rows.append(row)
        return rows

    def runs(self, model: str | None = None, limit: int | None = None) -> list[SummaryRow]:
        """Past runs, oldest first; `model` matches the name as given (tag `latest` implied)."""
        from llmtop.ollama.model_facts import same_model

        found = self._select("SELECT row_json FROM runs ORDER BY id")
        rows = []
        for (text,) in found:
            try:
                row = row_from_dict(json.loads(text))
            except (ValueError, TypeError):
                continue  # a row this version cannot read is skipped, not fatal
            if model is None or same_model(row.model, model):
                rows.append(row)
        return rows[-limit:] if limit else rows
