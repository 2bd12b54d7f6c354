"""Every way out keeps the run: Ctrl+C, SIGTERM (`kill`, `timeout`, `docker stop`, systemd), SIGHUP
(the terminal closed, an SSH session dropped) and, on Windows, Ctrl+Break all stop llmtop the same
way. The run in progress is kept as far as it got, with the reason, and exported, added to the
history and recorded; then llmtop exits with the status a shell expects (128 + the signal's
number). A second signal ends llmtop at once, as if nothing handled it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from llmtop.exit_status import EXIT_SIGBREAK, EXIT_SIGHUP, EXIT_SIGINT, EXIT_SIGTERM

# signal name -> (the reason a kept run gives, the exit status)
_REASONS = {
    "SIGINT": ("interrupted (Ctrl+C)", EXIT_SIGINT),
    "SIGTERM": ("terminated (SIGTERM)", EXIT_SIGTERM),
    "SIGHUP": ("hung up (SIGHUP: the terminal or the session closed)", EXIT_SIGHUP),
    "SIGBREAK": ("interrupted (Ctrl+Break or the console closed)", EXIT_SIGBREAK),
}


class StopRequested(KeyboardInterrupt):
    """A signal asked llmtop to stop; `reason` goes into the kept run, `status` is the exit status."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def handled_signals() -> dict[int, tuple[str, int]]:
    """The signals this platform has, with their reason and exit status."""
    found = {}
    for name, meaning in _REASONS.items():
        number = getattr(signal, name, None)
        if number is not None:
            found[int(number)] = meaning
    return found


def stop_for(signum: int) -> StopRequested:
    reason, status = handled_signals().get(signum, (f"stopped by signal {signum}", 128 + signum))
    return StopRequested(reason, status)


class SignalStop:
    """Turns the first of the handled signals into a stop, and the second into an exit at once.

    `on_stop(stop)` is called on the main thread when the first signal comes; without it, the
    handler raises StopRequested there (headless: the run in progress catches it and is kept).
    `defer()` makes a later first signal only be remembered (`requested`), for the part where the
    files are being written."""

    def __init__(self, on_stop: Callable[[StopRequested], None] | None = None) -> None:
        self.on_stop = on_stop
        self.requested: StopRequested | None = None
        self._raising = True
        self._previous: dict[int, object] = {}

    def install(self, signals: tuple[int, ...] | None = None) -> SignalStop:
        """Handle `signals` (default: every one this platform has, SIGINT included)."""
        for signum in signals if signals is not None else tuple(handled_signals()):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except (ValueError, OSError):  # not the main thread, or not allowed here
                continue
        return self

    def defer(self) -> None:
        """From now on a first signal is remembered, not raised."""
        self._raising = False

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            try:
                signal.signal(signum, previous)  # type: ignore[arg-type]
            except (ValueError, OSError, TypeError):
                continue
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None:  # the second signal: as if nothing handled it
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.requested = stop_for(signum)
        if self.on_stop is not None:
            self.on_stop(self.requested)
        elif self._raising:
            raise self.requested

    @contextmanager
    def handled_by(self, on_stop: Callable[[StopRequested], None]) -> Iterator[SignalStop]:
        """Within the block, the first signal is handed to `on_stop` (the screen stops as `q` does)."""
        before, self.on_stop = self.on_stop, on_stop
        try:
            yield self
        finally:
            self.on_stop = before

    def __enter__(self) -> SignalStop:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()
