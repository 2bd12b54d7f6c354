"""llmtop's data folder (the history, the recordings, errors.log): where it is, files in it readable
by their owner alone, the line that reports a bug with its traceback kept there, and the two
boundaries where llmtop catches any exception (`guarded` for a reader, `attempt` for a reason shown
to the user). Every layer may use it: it imports nothing of llmtop's."""

from __future__ import annotations

import datetime as dt
import os
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
D = TypeVar("D")


def data_folder() -> Path:
    """The platform's user data folder for llmtop (platformdirs); `LLMTOP_DATA_DIR` overrides it."""
    override = os.environ.get("LLMTOP_DATA_DIR")
    if override:
        return Path(override)
    from platformdirs import user_data_dir

    return Path(user_data_dir("llmtop", appauthor=False))


def history_path() -> Path:
    """The history's SQLite file."""
    return data_folder() / "history.sqlite3"


def recordings_folder() -> Path:
    """Where recordings go unless --record names a file."""
    return data_folder() / "recordings"


def private_folder(folder: Path) -> Path:
    """`folder`, created if needed and readable by its owner alone (700): llmtop's data folder holds
    every prompt and every answer, as a shell's history does."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        if folder.stat().st_mode & 0o077:
            folder.chmod(0o700)
    except OSError:
        pass
    return folder


def private_file(path: Path) -> None:
    """Make a file of the data folder readable by its owner alone (600)."""
    try:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except OSError:
        pass


def internal_error(where: str, exc: BaseException) -> str:
    """One line for an unexpected exception in `where` (a bug), its traceback appended to
    `errors.log` in the data folder, whose path the line gives."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    line = f"internal error in {where}: {type(exc).__name__}: {first}".rstrip(": ")
    log = _write_error(line, exc)
    return line if log is None else f"{line} (details in {log})"


def _write_error(line: str, exc: BaseException) -> Path | None:
    """`line` and the traceback of `exc` appended to errors.log; its path, None where it cannot be written."""
    try:
        log = private_folder(data_folder()) / "errors.log"
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"--- {dt.datetime.now().isoformat(timespec='seconds')} {line}\n")
            handle.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        private_file(log)
    except OSError:
        return None
    return log


_READERS_REPORTED: set[str] = set()  # the readers that wrote to errors.log in this process
_REPORTED_LOCK = threading.Lock()


def reader_failed(reader: str, exc: BaseException) -> None:
    """A reader (a collector, a probe) caught what it did not expect from a driver, a library or the
    system and carries on without that figure: written to `errors.log` with the reader's name and the
    traceback, once per reader a process, so that a reader broken by a new driver says so without
    filling the log at every sample."""
    with _REPORTED_LOCK:
        if reader in _READERS_REPORTED:
            return
        _READERS_REPORTED.add(reader)
    first = str(exc).splitlines()[0] if str(exc) else ""
    line = f"{reader} could not read: {type(exc).__name__}: {first}".rstrip(": ")
    _write_error(f"{line} (said once a run)", exc)  # a folder that cannot be written: the figure is still left out


def guarded(reader: str, call: Callable[[], T], default: D, expected: tuple[type[BaseException], ...] = ()) -> T | D:
    """`call()` into a driver, a library or the system, or `default` where it raises: quietly for the
    `expected` errors (a process that just exited, a file gone mid-read), and for anything else after
    `reader_failed` has written it with the reader's name, so the figure is left out, never a crash."""
    try:
        return call()
    except expected:
        return default
    except Exception as exc:  # a reader's boundary: what a new driver raises is written, once per reader
        reader_failed(reader, exc)
        return default


@dataclass(frozen=True)
class Failed:
    """What `attempt` caught."""

    exc: Exception

    @property
    def detail(self) -> str:
        """The error's own words, or its type where it has none."""
        return str(self.exc) or type(self.exc).__name__

    @property
    def text(self) -> str:
        """`Type: words`, for a line that names what failed."""
        return f"{type(self.exc).__name__}: {self.exc}"


def attempt(call: Callable[[], T]) -> T | Failed:
    """`call()`, or what it raised, where any failure becomes a reason the user reads (a backend tried at
    start or read at a tick, a thread's loop, an optional OS call): a new driver's own error is a line
    on screen, and the other backends and the run go on."""
    try:
        return call()
    except Exception as exc:  # a reason's boundary: the caller shows what failed, in its own words
        return Failed(exc)
