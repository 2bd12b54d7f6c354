"""Every output lands or says why: standard output that fails never costs a file, and the files a
user names are checked before anything runs. Pure helpers around sys.stdout and the file system."""

from __future__ import annotations

import os
import sys
from pathlib import Path

CLOSED_PIPE = 141  # 128 + SIGPIPE: what a Unix tool reports when its reader went away (`| head`)


class OutputFailed(Exception):
    """Standard output cannot be written (a full device, an I/O error); the text says why."""


def prepare_streams() -> None:
    """Text a console cannot encode (Japanese headers on a cp1252 console) is replaced, not fatal."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="replace")
            except (ValueError, OSError):
                pass


def print_out(text: str) -> None:
    """Write `text` to standard output and flush it. A closed pipe raises BrokenPipeError (the
    caller ends quietly); any other failure raises OutputFailed with one line."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputFailed(f"cannot print to standard output: {exc.strerror or exc}") from None


def end_after_closed_pipe() -> int:
    """After the reader of standard output went away: no more writes to it (not even the flush at
    exit, which would print a traceback); the status of a Unix tool that met a closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return CLOSED_PIPE


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
    import datetime as dt
    import traceback

    from llmtop.history import default_path

    line = f"internal error in {where}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(
        ": "
    )
    try:
        log = private_folder(default_path().parent) / "errors.log"
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"--- {dt.datetime.now().isoformat(timespec='seconds')} {line}\n")
            handle.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        private_file(log)
    except OSError:
        return line
    return f"{line} (details in {log})"


def unwritable(path: str, what: str) -> str | None:
    """Why a file cannot be written at `path` (a missing folder, a folder given for a file, no
    permission), checked before a run; None when it can be."""
    target = Path(path).expanduser()
    if target.is_dir():
        return f"{what} {path} is a folder, not a file"
    folder = target.parent
    if not folder.is_dir():
        return f"{what} {path}: the folder {folder} does not exist"
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        return f"{what} {path}: permission denied"
    return None
