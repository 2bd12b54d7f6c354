"""The contract tests' reading of Ollama's answers and log lines: one GET, the kinds of lines in order."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from llmtop.collectors.ollama_log import OllamaLogParser, logfmt


def api_get(url: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any, list[Any]]:
    """(status, the answer's JSON, every line of a streamed answer)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=300) as answer:
            lines = [json.loads(line) for line in answer.read().decode().splitlines() if line.strip()]
            return answer.status, lines[-1] if lines else None, lines
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        try:
            return exc.code, json.loads(text), []
        except ValueError:
            return exc.code, text, []


def parsed_kinds(text: str) -> list[str]:
    """The kinds of the lines llmtop's parser took (those that added to a load), in order, once each."""
    parser = OllamaLogParser()
    kinds: list[str] = []
    for line in text.splitlines():
        if parser.feed(line) is not None:
            kind = line_kind(line)
            if kind not in kinds:
                kinds.append(kind)
    return kinds


def normal_kind(kind: str) -> str:
    import re

    return re.sub(r"\d+(\.\d+)?", "N", kind)


def in_order(double: list[str], real: list[str]) -> list[str]:
    """The double's kinds that the real log does not have in the same order (a subsequence check)."""
    remaining = iter(real)
    return [kind for kind in double if not any(kind == seen for seen in remaining)]


def line_kind(line: str) -> str:
    fields = logfmt(line) if "msg=" in line else {}
    if "msg" in fields:
        return fields["msg"]
    head, _, rest = line.partition(":")
    return f"{head}: {rest.split()[0] if rest.split() else ''}"
