"""A program on a pseudo terminal, as a user sees it: its output drawn by a terminal emulator
(`pyte`), so a test reads the screen's text, presses keys, and waits for what it expects to show."""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Callable

import pyte


def spawn_on_pty(argv: list[str], env: dict[str, str], columns: int = 120, lines: int = 40) -> tuple[int, int]:
    """Start `argv` on a new pseudo terminal of `columns` x `lines`: (its pid, the terminal's fd)."""
    env = dict(env, TERM="xterm-256color", COLUMNS=str(columns), LINES=str(lines))
    pid, fd = os.forkpty()
    if pid == 0:
        try:
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    import fcntl
    import struct
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    return pid, fd


class Terminal:
    """`argv` started on a pseudo terminal of `columns` x `lines`; `screen()` is what it shows."""

    def __init__(self, argv: list[str], env: dict[str, str], columns: int = 120, lines: int = 40) -> None:
        self.started = time.monotonic()
        self.pid, self.fd = spawn_on_pty(argv, env, columns, lines)
        self._screen = pyte.Screen(columns, lines)
        self._stream = pyte.ByteStream(self._screen)
        self.raw = bytearray()
        self.status: int | None = None
        self.closed = False

    def pump(self, wait_s: float = 0.05) -> None:
        """Read what the program wrote (so it never blocks on a full terminal) and draw it."""
        if self.closed:
            return
        ready, _, _ = select.select([self.fd], [], [], wait_s)
        if not ready:
            return
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            return
        self.raw += data
        self._stream.feed(data)

    def screen(self) -> str:
        return "\n".join(self._screen.display)

    def running(self) -> bool:
        self.pump(0.0)
        if self.status is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status is None

    def wait_for(self, check: Callable[[str], object], timeout: float, what: str) -> str:
        """Pump until `check(screen text)` is true; the screen. AssertionError (with the screen) on timeout
        or if the program ends first."""
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            text = self.screen()
            if check(text):
                return text
            if not self.running():
                raise AssertionError(f"ended (status {self.status}) before {what}:\n{text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout:g} s: {what}:\n{text}")

    def press(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def finish(self, timeout: float = 30) -> int:
        """Wait for the program to exit (killed after `timeout`); its exit status."""
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise AssertionError("did not exit in time")
        while self._drained():
            pass
        self._close()
        assert self.status is not None
        return self.status

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)

    def _drained(self) -> bool:
        before = len(self.raw)
        self.pump(0.05)
        return len(self.raw) > before

    def kill(self) -> None:
        """Kill the program if it still runs, and close the terminal (after finish(): nothing)."""
        if self.status is None and self.running():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        self._close()
