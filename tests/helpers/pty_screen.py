"""A screen on a pseudo-terminal: what it wrote, read without blocking."""

from __future__ import annotations

import os


def drain(fd: int) -> bytes:
    """What the screen wrote since (read, so the child never blocks on a full terminal)."""
    import select

    ready, _, _ = select.select([fd], [], [], 0.05)
    if ready:
        try:
            return os.read(fd, 65536)
        except OSError:
            pass
    return b""
