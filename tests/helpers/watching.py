"""`llmtop watch` from outside: a generate through it, its Prometheus endpoint scraped."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request

from waiting import eventually


def generate(url: str, prompt: str = "hello", stream: bool = True, model: str = "llama3.3") -> list[dict]:
    """What an app does: POST /api/generate and read the answer to its end."""
    body = json.dumps({"model": model, "prompt": prompt, "stream": stream}).encode()
    request = urllib.request.Request(f"{url}/api/generate", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return [json.loads(line) for line in response.read().splitlines() if line.strip()]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def sample_value(text: str, name: str, labels: str = "") -> float | None:
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def ready(port: int) -> None:
    """Until watch answers scrapes and has polled the server (it follows the log before it polls)."""
    eventually(lambda: answers_scrapes(port) and re.search(r"^llmtop_server_up(\{[^}]*\})? 1\.0$", scrape(port), re.M))


def answers_scrapes(port: int) -> bool:
    try:
        scrape(port)
        return True
    except OSError:
        return False
