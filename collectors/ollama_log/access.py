"""Gin's access line, which every Ollama prints as each request ends (0.1 to 0.34):
`[GIN] 2026/12/06 - 13:43:16 | 200 |    2.193542ms |       127.0.0.1 | POST     "/api/create"`.
Read apart from the loads: a request that ran beside llmtop's own makes its tokens/s shared."""

from __future__ import annotations

import re
from dataclasses import dataclass

_GIN = re.compile(r"\[GIN\] [^|]+\|\s*(\d{3})\s*\|\s*(\S+)\s*\|\s*(\S+)\s*\|\s*([A-Z]+)\s+\"([^\"]+)\"")
_GO_DURATION = re.compile(r"([\d.]+)(h|ms|m|µs|us|ns|s)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}
# The endpoints that make a model work (its tokens/s is shared while one of them runs).
GENERATING = ("/api/generate", "/api/chat", "/api/embed", "/api/embeddings", "/v1/chat/completions",
              "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/messages")  # fmt: skip


def go_duration(text: str) -> float | None:
    """Go's time.Duration as printed (`1m2.5s`, `2.193542ms`, `102.752µs`) in seconds; None if not one."""
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(value + unit for value, unit in parts) != text:
        return None
    return sum(float(value) * _GO_UNITS[unit] for value, unit in parts)


@dataclass(frozen=True)
class ServedRequest:
    """A request the server finished, from its access line, on the caller's clock: it `ended` when
    its line arrived and began its latency earlier."""

    ended: float
    latency_s: float
    status: int
    client: str
    method: str
    path: str

    @property
    def began(self) -> float:
        return self.ended - self.latency_s

    @property
    def generating(self) -> bool:
        """A request that makes a model work (generate, chat, embed, the OpenAI-style ones)."""
        return self.method == "POST" and self.path.split("?")[0] in GENERATING

    def overlaps(self, start: float, end: float) -> bool:
        return self.began < end and self.ended > start

    def describe(self) -> str:
        return f"{self.method} {self.path} from {self.client}, {self.latency_s:.1f} s"


def served_request(line: str, now: float) -> ServedRequest | None:
    """The request an access line tells of (arrived at `now`), or None for any other line."""
    found = _GIN.search(line)
    if found is None:
        return None
    status, latency, client, method, path = found.groups()
    seconds = go_duration(latency)
    if seconds is None:
        return None
    return ServedRequest(now, seconds, int(status), client, method, path)
