"""The generation's stream, read in batches straight from the socket.

Every call llmtop makes goes through the official `ollama` client, except the one that runs while
the model generates: there the official client validates each chunk into a response model, on top
of httpx's per-chunk event machinery, and wakes its thread once a token. Here the request is still
the official client's own (its request model, its headers: user agent, OLLAMA_API_KEY), sent by the
standard library's HTTP client, and the answer is read from the socket by this module:

- The first byte is waited for, so the time to first token is exact.
- From then on the socket is read at most READS_PER_S times a second, whatever the token rate:
  everything that has arrived is read at once. A slower stream is read as each chunk arrives, with
  one wake-up a chunk.
- Each batch is timed by the kernel's receive timestamp of its last byte (SO_TIMESTAMPNS, Linux;
  elsewhere, and over TLS, the time of the read). A batch of several chunks that had waited for the
  read is spread evenly between the last time the socket was found empty and that timestamp, so a
  chunk's time is off by at most one read interval (1/READS_PER_S); a chunk read alone, the first
  one, and chunks that arrived together while the reader waited, are timed as they arrived.

Where this reader cannot do what httpx would (a proxy from the environment, a redirect), the
official client reads the stream instead.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import ssl
import struct
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

READS_PER_S = 10
"""At most this many reads of a stream a second once its first chunk has come (each wake-up of a
thread costs about 0.1 ms of CPU on a small virtual machine: bench/versus_top.py)."""

READ_SIZE = 262144

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35 if hasattr(socket, "SO_PASSCRED") else None)
"""The kernel's receive timestamp option (35 on Linux, where Python may not name it)."""

MAX_HEAD = 65536  # an answer's status line and headers, at most


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


class Arrival(NamedTuple):
    """One chunk of the stream and when it arrived (a time.monotonic() reading)."""

    chunk: dict[str, Any]
    at: float


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


def spread(count: int, since: float, at: float) -> list[float]:
    """Times for `count` chunks read together that arrived after `since`, the last at `at`: evenly
    spaced, ending at `at` (each off by at most at - since)."""
    step = max(at - since, 0.0) / count
    return [at - (count - 1 - i) * step for i in range(count)]


def post_batches(
    base_url: str,
    path: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    connect_timeout: float,
    read_timeout: float | None,
    on_socket: Callable[[socket.socket | None], None] = lambda sock: None,
    context: ssl.SSLContext | None = None,
) -> Iterator[list[Arrival]]:
    """POST `body` as JSON to `base_url` + `path` and yield the lines of the answer as they are
    read, a list of Arrivals per read. `on_socket` is given the connected socket (so that another
    thread can shut it) and None at the end; `context` verifies an https server (default: the
    system's CAs)."""
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
        sock = connection.sock
        assert sock is not None
        on_socket(sock)
        try:
            connection.request(
                "POST", parts.path.rstrip("/") + path, body=json.dumps(body).encode(), headers=dict(headers)
            )
            yield from _answer(_Receiver(sock, read_timeout))
        except TimeoutError:
            raise ReadStalled() from None
        except (ConnectionError, OSError) as exc:
            raise Dropped(type(exc).__name__) from None
    finally:
        on_socket(None)
        connection.close()


class _Receiver:
    """Reads what has arrived on a socket, at most READS_PER_S times a second once `paced`."""

    def __init__(self, sock: socket.socket, read_timeout: float | None) -> None:
        self._sock = sock
        self._timeout = read_timeout
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._stamped = False
        if not self._tls and SO_TIMESTAMPNS is not None and hasattr(sock, "recvmsg"):
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                self._stamped = True
            except OSError:
                pass
        sock.setblocking(False)
        self._to_monotonic = time.monotonic() - time.time()  # kernel stamps are wall-clock times
        self._woke_at = self._woke_before = float("-inf")
        self.paced = False  # set once the first chunk has come
        self.empty_at = time.monotonic()  # when the socket was last found with nothing to read
        self.waited = True  # whether the last batch was waited for (it arrived while nothing else waited)

    def receive(self) -> tuple[bytes, float, float]:
        """The bytes that have arrived (b"" at the end of the stream), when the last of them arrived,
        and the earliest time any of them can have arrived."""
        gap = 1.0 / READS_PER_S
        # A stream faster than the reads (the last read found data waiting, or came within `gap` of
        # the one before): wait out the gap, then take what has come. A slower one: wait for it.
        faster = not self.waited or self._woke_at - self._woke_before < gap
        if self.paced and faster and self._woke_at + gap > (now := time.monotonic()):
            time.sleep(self._woke_at + gap - now)
        since = self.empty_at
        data, at = self._drain()
        self.waited = data is None
        while data is None:
            since = time.monotonic()
            if not self._wait():
                raise TimeoutError()
            data, at = self._drain()
        now = time.monotonic()
        self._woke_before, self._woke_at = self._woke_at, now
        self.empty_at = now
        return data, min(max(at, since), now), since

    def _wait(self) -> bool:
        if self._tls and self._sock.pending():  # type: ignore[attr-defined]
            return True
        ready, _, _ = select.select([self._sock], [], [], self._timeout)
        return bool(ready)

    def _drain(self) -> tuple[bytes | None, float]:
        """Everything readable now (None if nothing, b"" at the end) and the last byte's arrival.
        A read that does not fill the buffer has taken all there was: no second call to learn it."""
        pieces: list[bytes] = []
        at = 0.0
        while True:
            try:
                if self._stamped:
                    data, ancillary, _, _ = self._sock.recvmsg(READ_SIZE, 64)
                    for level, kind, value in ancillary:
                        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                            seconds, nanoseconds = struct.unpack("qq", value[:16])
                            at = seconds + nanoseconds / 1e9 + self._to_monotonic
                else:
                    data = self._sock.recv(READ_SIZE)
            except (BlockingIOError, ssl.SSLWantReadError):
                break
            if not data:
                if not pieces:
                    return b"", time.monotonic()
                break
            pieces.append(data)
            if len(data) < READ_SIZE and not self._tls:  # (TLS hands out one record at a time)
                break
        if not pieces:
            return None, 0.0
        return b"".join(pieces), at or time.monotonic()


def _answer(receiver: _Receiver) -> Iterator[list[Arrival]]:
    """Status, headers, then the body's lines: an error status raises ErrorAnswer with its text."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > MAX_HEAD:
            raise Dropped("LineTooLong")
        data, at, since = receiver.receive()
        if not data:
            raise Dropped("RemoteDisconnected")
        buffer += data
    head, buffer = buffer.split(b"\r\n\r\n", 1)
    status_line, *header_lines = head.decode("iso-8859-1").split("\r\n")
    try:
        status = int(status_line.split(" ", 2)[1])
    except (IndexError, ValueError):
        raise Dropped("BadStatusLine") from None
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    length = int(headers["content-length"]) if headers.get("content-length", "").isdigit() else None
    first: Piece = (buffer, at, since)  # what came with the headers
    body = _chunked_body(receiver, first) if chunked else _plain_body(receiver, first, length)
    if status >= 300:
        text = b"".join(piece for piece, _, _ in body).decode("utf-8", errors="replace")
        raise ErrorAnswer(status, text, headers.get("content-type", ""))
    yield from _lines(receiver, body)


Piece = tuple[bytes, float, float]  # bytes of the body, when the last arrived, the earliest any did


def _plain_body(receiver: _Receiver, first: Piece, length: int | None) -> Iterator[Piece]:
    """A body framed by its length, or by the end of the connection."""
    buffer, at, since = first
    got = len(buffer)
    if buffer:
        yield buffer[:length] if length is not None else buffer, at, since
    while length is None or got < length:
        data, at, since = receiver.receive()
        if not data:
            if length is None:
                return
            raise Dropped("IncompleteRead")
        got += len(data)
        yield data, at, since


def _chunked_body(receiver: _Receiver, first: Piece) -> Iterator[Piece]:
    """A chunked body (Ollama's streams) unframed from what each read gives; what one read brings
    is given out at once, however many chunks it holds. Cut short: Dropped."""
    buffer, at, since = first
    size: int | None = None  # of the chunk being read; None while its size line is awaited
    while True:
        out: list[bytes] = []
        while True:
            if size is None:
                line_end = buffer.find(b"\r\n")
                if line_end < 0:
                    break
                try:
                    size = int(buffer[:line_end].split(b";", 1)[0], 16)
                except ValueError:
                    raise Dropped("IncompleteRead") from None
                buffer = buffer[line_end + 2 :]
                if size == 0:  # the last chunk (trailers, if any, are of no use here)
                    if out:
                        yield b"".join(out), at, since
                    return
            if len(buffer) < size + 2:
                break
            out.append(buffer[:size])
            buffer = buffer[size + 2 :]
            size = None
        if out:
            yield b"".join(out), at, since
        data, at, since = receiver.receive()
        if not data:
            raise Dropped("IncompleteRead")
        buffer += data


def _lines(receiver: _Receiver, body: Iterator[Piece]) -> Iterator[list[Arrival]]:
    """The body's lines as chunks, timed (see the module's docstring). A line that is not a chunk
    raises (json's error or BadLine) once the good chunks read with it have been given out."""
    pending = b""
    for data, at, since in body:
        lines = (pending + data).split(b"\n")
        pending = lines.pop()
        chunks, failure = _parsed(lines)
        if chunks:
            if len(chunks) == 1 or receiver.waited:
                times = [at] * len(chunks)
            else:
                times = spread(len(chunks), since, at)
            receiver.paced = True
            yield [Arrival(chunk, t) for chunk, t in zip(chunks, times, strict=True)]
        if failure is not None:
            raise failure
    if pending.strip():
        yield [Arrival(_chunk(pending), time.monotonic())]


def _parsed(lines: list[bytes]) -> tuple[list[dict[str, Any]], Exception | None]:
    chunks = []
    for line in lines:
        if line.strip():
            try:
                chunks.append(_chunk(line))
            except (ValueError, BadLine) as exc:
                return chunks, exc
    return chunks, None


def _chunk(line: bytes) -> dict[str, Any]:
    part = json.loads(line)
    if not isinstance(part, dict) or not isinstance(part.get("response", ""), str):
        raise BadLine()
    return part
