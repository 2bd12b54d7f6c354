"""The generation's stream, read line by line over the standard library's HTTP client.

Every call llmtop makes goes through the official `ollama` client, except the one that runs while
the model generates: there the official client validates each chunk into a response model (and
llmtop turned it back into a dict), on top of httpx's per-chunk event machinery; together about
0.36 ms of CPU a token, 1% of a core at 30 tokens/s, taken from the machine whose CPU runs the
model. Read here, a token costs about 0.17 ms (bench/own_cost.py). The request is the official
client's own (its request model, its headers: user agent, OLLAMA_API_KEY), and where this reader
cannot do what httpx would (a proxy from the environment, a redirect), the official client reads
the stream instead.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit


class ConnectFailed(Exception):
    """Nothing could be connected to (refused, no such host, no answer in time)."""

    def __init__(self, why: str, refused: bool = False) -> None:
        super().__init__(why)
        self.refused = refused


class ReadStalled(Exception):
    """The server sent nothing for longer than the read timeout."""


class Dropped(Exception):
    """The connection broke off mid-stream."""


class BadLine(Exception):
    """A line of the stream that is not a chunk as Ollama sends them."""


class ErrorAnswer(Exception):
    """The server answered with an error status (or a redirect, which this reader does not follow)."""

    def __init__(self, status: int, text: str, content_type: str) -> None:
        super().__init__(text)
        self.status, self.text, self.content_type = status, text, content_type


def usable(base_url: str) -> bool:
    """Whether this reader can reach `base_url` as httpx would: http or https, and no proxy from the
    environment applies to it."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    proxies = urllib.request.getproxies()
    if parts.scheme not in proxies and "all" not in proxies:
        return True
    return bool(urllib.request.proxy_bypass(parts.hostname))


def post_lines(
    base_url: str,
    path: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    connect_timeout: float,
    read_timeout: float | None,
    on_socket: Callable[[socket.socket | None], None] = lambda sock: None,
    context: ssl.SSLContext | None = None,
) -> Iterator[dict[str, Any]]:
    """POST `body` as JSON to `base_url` + `path` and yield each line of the answer as a dict.
    `on_socket` is given the connected socket (so that another thread can shut it) and None at the end;
    `context` verifies an https server (default: the system's CAs)."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, parts.port, timeout=connect_timeout, context=context or ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(host, parts.port, timeout=connect_timeout)
    try:
        try:
            connection.connect()
        except ConnectionRefusedError as exc:
            raise ConnectFailed(str(exc), refused=True) from None
        except (TimeoutError, OSError) as exc:
            raise ConnectFailed(str(exc) or type(exc).__name__) from None
        assert connection.sock is not None
        connection.sock.settimeout(read_timeout)
        on_socket(connection.sock)
        yield from _answer_lines(connection, parts.path.rstrip("/") + path, body, headers)
    finally:
        on_socket(None)
        connection.close()


def _chunk(line: bytes) -> dict[str, Any]:
    part = json.loads(line)
    if not isinstance(part, dict) or not isinstance(part.get("response", ""), str):
        raise BadLine()
    return part


def _body(response: http.client.HTTPResponse) -> Iterator[bytes]:
    """The body as it arrives. A chunked body (Ollama's streams) is unframed here from what each
    network read gives, with no call into http.client per chunk (its chunk reader costs more than
    the rest of a token's handling); one cut short raises IncompleteRead."""
    if not response.chunked:
        while data := response.read1(65536):
            yield data
        return
    reader = response.fp  # the socket's buffered reader, where http.client left off after the headers
    buffer = b""
    while True:
        while b"\r\n" not in buffer:
            buffer = _more(reader, buffer)
        size_line, buffer = buffer.split(b"\r\n", 1)
        try:
            size = int(size_line.split(b";", 1)[0], 16)
        except ValueError:
            raise http.client.IncompleteRead(buffer) from None
        if size == 0:  # the last chunk (trailers, if any, are of no use here)
            response.close()
            return
        while len(buffer) < size + 2:
            buffer = _more(reader, buffer)
        yield buffer[:size]
        buffer = buffer[size + 2 :]


def _more(reader: Any, buffer: bytes) -> bytes:
    data: bytes = reader.read1(65536)
    if not data:
        raise http.client.IncompleteRead(buffer)
    return buffer + data


def _answer_lines(
    connection: http.client.HTTPConnection, path: str, body: Mapping[str, Any], headers: Mapping[str, str]
) -> Iterator[dict[str, Any]]:
    try:
        connection.request("POST", path, body=json.dumps(body).encode(), headers=dict(headers))
        response = connection.getresponse()
        if response.status >= 300:
            text = response.read().decode("utf-8", errors="replace")
            raise ErrorAnswer(response.status, text, response.getheader("content-type") or "")
        pieces = _body(response)
        pending = b""
        for data in pieces:
            lines = (pending + data).split(b"\n")
            pending = lines.pop()
            for line in lines:
                if line.strip():
                    yield _chunk(line)
        if pending.strip():
            yield _chunk(pending)
    except TimeoutError:
        raise ReadStalled() from None
    except (http.client.HTTPException, ConnectionError, OSError) as exc:
        raise Dropped(type(exc).__name__) from None
