"""`llmtop watch --proxy PORT`: a reverse proxy in front of Ollama that measures every answer.

Everything is forwarded unchanged (any method, any path, any body size, streamed in pieces both
ways); only the Host header names the upstream and hop-by-hop headers are dropped, as any proxy
does. Responses are relayed piece by piece as they come, so a streamed generation reaches the app
token by token. For `/api/generate` and `/api/chat`, the response's NDJSON is read on the side and
its final chunk (counts and durations) is handed to the watch state: apps pointed at the proxy are
measured even where the log has no per-request timings (Ollama before 0.30, a remote server).
A client that goes away mid-stream closes the upstream connection, so Ollama stops generating, as
it would without the proxy; a server that drops the stream cuts the client's the same way.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from llmtop.ollama.hosts import app_url, is_loopback
from llmtop.watch.state import WatchState

PIECE = 64 * 1024
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer",
        "Transfer-Encoding", "Upgrade", "Host", "Content-Length",
    )
)  # fmt: skip
MEASURED = ("/api/generate", "/api/chat")
CLIENT_CHECK_S = 1.0  # how often a proxied request's watcher looks whether its app is still there
UPSTREAM_TIMEOUT_S = 600.0  # a silent load: Ollama's own load timeout is 5 minutes


class FinalChunk:
    """Reads a response body's NDJSON on the side and keeps its last `done` object."""

    def __init__(self) -> None:
        self._partial = b""
        self.final: dict[str, Any] | None = None
        self.error: str | None = None

    def feed(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line)

    def close(self) -> None:
        if self._partial.strip():
            self._line(self._partial)  # a non-streamed answer: one object, maybe without a newline
        self._partial = b""

    def _line(self, line: bytes) -> None:
        try:
            chunk = json.loads(line)
        except ValueError:
            return
        if isinstance(chunk, dict):
            if chunk.get("error"):
                self.error = str(chunk["error"])
            elif chunk.get("done"):
                self.final = chunk


def _request_model(body: bytes) -> str | None:
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return None
    model = payload.get("model") if isinstance(payload, dict) else None
    return model if isinstance(model, str) else None


class OllamaProxy:
    """Listens on `address:port` and forwards to `upstream` (an Ollama base URL)."""

    def __init__(
        self,
        upstream: str,
        port: int,
        state: WatchState,
        address: str = "127.0.0.1",
        clock: Callable[[], float] = time.monotonic,
        headers: Mapping[str, str] | None = None,
        cacert: str | None = None,
        share_credentials: bool = False,
        local_peer: Callable[[str], bool] = is_loopback,
    ) -> None:
        """`headers` (llmtop's --header, credentials) are added to what apps on this machine send,
        where they do not send that header themselves; to what other machines send only with
        `share_credentials` (`local_peer` tells a peer on this machine by its address). `cacert`
        verifies an https upstream."""
        self.upstream = urlsplit(upstream)
        self.headers = dict(headers or {})
        self.share_credentials = share_credentials
        self.local_peer = local_peer
        self.context = ssl.create_default_context(cafile=cacert) if cacert else None
        self.state = state
        self.clock = clock
        proxy = self

        class Handler(_Forward):
            owner = proxy

        self.server = ThreadingHTTPServer((address, port), Handler)  # OSError: the port is taken
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where an app on this machine reaches the proxy."""
        return app_url(str(self.server.server_address[0]), self.port)

    def added_headers(self, peer: str) -> dict[str, str]:
        """llmtop's own headers for a request from `peer`: none for another machine, unless shared."""
        return self.headers if self.share_credentials or self.local_peer(peer) else {}

    def connection(self) -> http.client.HTTPConnection:
        host, port = self.upstream.hostname or "127.0.0.1", self.upstream.port
        if self.upstream.scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=UPSTREAM_TIMEOUT_S, context=self.context)
        return http.client.HTTPConnection(host, port, timeout=UPSTREAM_TIMEOUT_S)

    def upstream_path(self, path: str) -> str:
        prefix = self.upstream.path.rstrip("/")
        return prefix + path

    def start(self) -> OllamaProxy:
        self._thread = threading.Thread(target=self.server.serve_forever, name="llmtop-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Forward(BaseHTTPRequestHandler):
    owner: OllamaProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # the screen is llmtop's; a proxy that prints would break it

    def _forward(self) -> None:
        owner = self.owner
        path = self.path
        body = self._request_body()
        measured = self.command == "POST" and path.split("?", 1)[0] in MEASURED
        number = None
        if measured:
            number = owner.state.proxy_started(owner.clock(), path.split("?", 1)[0], _request_model(body or b""))
        upstream = owner.connection()
        try:
            upstream.putrequest(self.command, owner.upstream_path(path), skip_host=True, skip_accept_encoding=True)
            upstream.putheader("Host", owner.upstream.netloc)
            sent = set()
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    upstream.putheader(name, value)
                    sent.add(name.lower())
            for name, value in owner.added_headers(self.client_address[0]).items():  # where the app sent none
                if name.lower() not in sent:
                    upstream.putheader(name, value)
            if body is not None:
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            watching = self._watch_client(upstream.sock)
            response = upstream.getresponse()
        except OSError as exc:
            upstream.close()
            if self.client_gone:
                if number is not None:
                    owner.state.proxy_finished(owner.clock(), number, None, None)
                self.close_connection = True
                return
            message = f"llmtop proxy: cannot reach Ollama at {owner.upstream.geturl()}: {exc}"
            if number is not None:
                owner.state.proxy_finished(owner.clock(), number, None, message)
            self._answer(502, json.dumps({"error": message}).encode())
            return
        reader = FinalChunk() if measured else None
        try:
            outcome = self._relay(response, reader)
        finally:
            watching.set()
        upstream.close()
        if number is not None and reader is not None:
            reader.close()
            error = reader.error or (None if outcome == "client gone" else outcome)
            owner.state.proxy_finished(owner.clock(), number, reader.final if outcome is None else None, error)

    client_gone = False

    def _watch_client(self, upstream: socket.socket | None) -> threading.Event:
        """While the answer is awaited and relayed, notice an app that hangs up (its socket reads
        the end) and cut the upstream connection, so that Ollama stops generating even while it
        sends nothing (a load, a stuck runner). Set the returned event to stop watching."""
        done = threading.Event()
        client = self.connection

        def watch() -> None:
            while not done.is_set():
                try:
                    ready, _, _ = select.select([client], [], [], CLIENT_CHECK_S)
                    if not ready:
                        continue
                    if client.recv(1, socket.MSG_PEEK):
                        return  # the app sent more (a pipelined request): it is still there
                except (OSError, ValueError):
                    pass
                self.client_gone = True
                if upstream is not None:
                    try:
                        upstream.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return

        threading.Thread(target=watch, name="llmtop-proxy-client", daemon=True).start()
        return done

    def _request_body(self) -> bytes | None:
        """The request's body (None: it has none). Chunked bodies are read whole and sent with a length."""
        length = self.headers.get("Content-Length")
        if length is not None:
            size = int(length)
            parts, left = [], size
            while left > 0:
                piece = self.rfile.read(min(PIECE, left))
                if not piece:
                    break
                parts.append(piece)
                left -= len(piece)
            return b"".join(parts)
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        return None

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _relay(self, response: http.client.HTTPResponse, reader: FinalChunk | None) -> str | None:
        """Send the upstream's answer on; None when it all went through, else what broke."""
        length = response.getheader("Content-Length")
        chunked = length is None and self.command != "HEAD" and response.status not in (204, 304)
        try:
            self.send_response_only(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            if length is not None:
                self.send_header("Content-Length", length)
            elif chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
        except OSError:
            return "client gone"
        while True:
            try:
                piece = response.read1(PIECE)
            except (OSError, http.client.HTTPException) as exc:
                self.close_connection = True  # the client sees the stream cut, as the server cut it
                if self.client_gone:
                    return "client gone"
                return f"the server broke off the answer ({type(exc).__name__})"
            if not piece:
                break
            if reader is not None:
                reader.feed(piece)
            try:
                self.wfile.write(b"%X\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            except OSError:
                self.close_connection = True
                return "client gone"
        if length is not None and response.length:  # the server sent less than it announced
            self.close_connection = True
            return "the server broke off the answer"
        try:
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            return "client gone"
        return None

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _forward
