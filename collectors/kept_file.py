"""A small file read again and again, kept open between reads (the /proc files the samplers read)."""

from __future__ import annotations

import os
from pathlib import Path


class KeptFile:
    """A file kept open and read again from its start at each `read()`: a /proc file regenerates
    its text on every read from offset 0, and one open and close less a sample is a third of what
    reading /proc/meminfo costs. Reopened once when a read fails (a file replaced)."""

    def __init__(self, path: Path, reopen: bool = True) -> None:
        """`reopen`: open the path again when a read fails (False for a process's file: its pid may
        belong to another process by then)."""
        self.path = path
        self.reopen = reopen
        self._fd: int | None = None

    def read(self) -> bytes:
        for attempt in (0, 1) if self.reopen else (1,):
            try:
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_RDONLY)
                return self._read_all(self._fd)
            except OSError:
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _read_all(fd: int) -> bytes:
        parts: list[bytes] = []
        offset = 0
        while True:
            part = os.pread(fd, 65536, offset)
            if not part:
                return b"".join(parts)
            parts.append(part)
            offset += len(part)

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
