"""The one way tests wait: for what they check, not for a while. `eventually(check)` polls `check`
until it gives a true value and returns it; on timeout it fails with what was asked and the last
value seen (or the last assertion that failed), so a slow machine makes a test slower, never wrong.
An assertion inside `check` means "not yet"; `give_up(why)` inside it fails the wait at once (what
can no longer come true, such as a process that already ended)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

POLL_S = 0.02
TIMEOUT_S = 20.0


class GaveUp(AssertionError):
    """Raised by give_up(): the wait fails now, not at its deadline."""


def give_up(why: str) -> None:
    """Inside a check: what it waits for can no longer happen; the wait fails at once with `why`."""
    raise GaveUp(why)


class _Deadline:
    """One wait: `check` asked until it gives a true value, or AssertionError once `timeout` is up."""

    def __init__(self, check: Callable[[], Any], timeout: float, what: str | None) -> None:
        self.check, self.timeout, self.what = check, timeout, what
        self.ends = time.monotonic() + timeout

    def done(self) -> tuple[bool, Any]:
        """(True, the value) once `check` holds; (False, None) while there is time left."""
        try:
            value = self.check()
        except GaveUp:
            raise
        except AssertionError as exc:
            value = exc
        else:
            if value:
                return True, value
        if time.monotonic() >= self.ends:
            asked = self.what or getattr(self.check, "__name__", "the check")
            raise AssertionError(f"not within {self.timeout:g} s: {asked} (last: {value!r})")
        return False, None


def eventually(check: Callable[[], T], timeout: float = TIMEOUT_S, what: str | None = None) -> T:
    """`check()`'s first true value within `timeout` seconds; AssertionError otherwise."""
    wait = _Deadline(check, timeout, what)
    while not (found := wait.done())[0]:
        time.sleep(POLL_S)
    return found[1]  # type: ignore[no-any-return]


async def eventually_async(
    check: Callable[[], T],
    timeout: float = TIMEOUT_S,
    what: str | None = None,
    pause: Callable[[], Awaitable[Any]] | None = None,
) -> T:
    """As eventually(), for an app under Pilot: the event loop runs between the checks (`pause`,
    e.g. `pilot.pause`; asyncio.sleep by default), so the app's timers and messages go on."""
    wait = _Deadline(check, timeout, what)
    while not (found := wait.done())[0]:
        await (pause() if pause is not None else asyncio.sleep(POLL_S))
    return found[1]  # type: ignore[no-any-return]


async def on_screen(pilot: Any, check: Callable[[], T], timeout: float = TIMEOUT_S, what: str | None = None) -> T:
    """`check()`'s first true value while the app under `pilot` runs; then one more of its live
    frames (`app.frames`), so that what the state held when the check passed is drawn."""
    value = await eventually_async(check, timeout, what, pause=lambda: pilot.pause(POLL_S))
    await next_frame(pilot, timeout)
    return value


async def next_frame(pilot: Any, timeout: float = TIMEOUT_S, frames: int = 1) -> None:
    """Until the app under `pilot` has drawn `frames` more live refreshes."""
    seen = pilot.app.frames
    await eventually_async(lambda: pilot.app.frames >= seen + frames, timeout, "a frame", lambda: pilot.pause(POLL_S))
