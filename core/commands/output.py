"""Every output lands or says why: standard output that fails never costs a file, and the files a
user names are checked before anything runs. Pure helpers around sys.stdout and the file system."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from llmtop.exit_status import EXIT_CLOSED_PIPE, EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from llmtop.watch.state import WatchedRequest


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
    return EXIT_CLOSED_PIPE


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


def export_requests(requests: list[WatchedRequest], path: str) -> int:
    """--export of a watch, live or replayed: the requests to PATH, said on stderr; the exit status."""
    from llmtop.store.exports import write_requests

    try:
        written = write_requests(requests, Path(path))
    except OSError as exc:
        sys.stderr.write(f"llmtop: cannot write {path}: {exc.strerror or exc}\n")
        return EXIT_FAILED
    sys.stderr.write(f"llmtop: wrote {written}\n")
    return EXIT_OK
