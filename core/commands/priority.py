"""Yielding to the engine: llmtop asks the OS for the lowest CPU priority it grants without
privileges, so that a thread of the engine it measures is never kept waiting for llmtop's own.
Linux and macOS: nice 19; Windows: the below-normal priority class. Asked once, at the start of a
measuring command, before any thread is started (threads inherit it). `--priority normal` leaves it."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from llmtop.data_folder import Failed, attempt

LOWEST_NICE = 19
PRIORITIES = ("low", "normal")


def add_priority_argument(parser: argparse.ArgumentParser) -> None:
    """`--priority low|normal`."""
    parser.add_argument(
        "--priority",
        choices=PRIORITIES,
        default="low",
        help="low (default): llmtop runs at the lowest CPU priority the OS grants without privileges "
        "(nice 19; Windows: below normal), so the engine it measures never waits for it; normal: as started",
    )


def running_at(priority: str) -> str:
    """`--priority`: what llmtop runs at for the rest of the command."""
    return yield_to_engine() if priority == "low" else "normal (--priority normal)"


def yield_to_engine(
    platform: str = sys.platform,
    setpriority: Callable[[int, int, int], None] | None = None,
    getpriority: Callable[[int, int], int] | None = None,
    process: Any = None,
) -> str:
    """Lower this process's priority; what it now runs at ("nice 19"), or why not. `setpriority`,
    `getpriority` (os's) and `process` (a psutil.Process) are the OS's, given for tests."""
    if platform == "win32":
        lowered = attempt(partial(_below_normal, process))
        if isinstance(lowered, Failed):
            return f"normal (the priority class could not be lowered: {lowered.exc})"
        return "below normal priority class"
    set_it = setpriority or getattr(os, "setpriority", None)
    get_it = getpriority or getattr(os, "getpriority", None)
    if set_it is None or get_it is None:
        return "normal (this platform has no nice)"
    try:
        # On Linux this is the calling thread's nice: called before llmtop starts any thread, every
        # thread inherits it.
        set_it(os.PRIO_PROCESS, 0, LOWEST_NICE)
        return f"nice {get_it(os.PRIO_PROCESS, 0)}"
    except OSError as exc:
        return f"normal (nice could not be raised: {exc.strerror or exc})"


def _below_normal(process: Any) -> None:
    import psutil

    target = process or psutil.Process()
    target.nice(psutil.BELOW_NORMAL_PRIORITY_CLASS)  # a constant psutil has on Windows only
