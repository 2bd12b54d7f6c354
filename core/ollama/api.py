"""The calls llmtop makes to an Ollama server, through the official `ollama` client.

Every failure becomes an OllamaError whose text is one line a user can act on.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

import httpx
import pydantic

from llmtop.ollama import lean_stream
from llmtop.ollama.lean_stream import Arrival
from llmtop.units import one_line

# The official `ollama` package builds a default client from OLLAMA_HOST when it is imported and
# raises on a value it cannot read. llmtop reads the setting itself (and passes the host to every
# client), so the package is imported with it hidden and a bad value gets llmtop's one-line error.
_saved_host = os.environ.pop("OLLAMA_HOST", None)
try:
    import ollama
finally:
    if _saved_host is not None:
        os.environ["OLLAMA_HOST"] = _saved_host

CONNECT_TIMEOUT_S = 5.0
START_HINT = "start it with `ollama serve` (or open the Ollama app), or point --host / OLLAMA_HOST at it"

PS_INTERVAL_S = 1.0  # how often /api/ps is asked which models are loaded (a run, llmtop watch)


class OllamaError(Exception):
    """A failure talking to Ollama, with a one-line message for the user (Ollama's own words, their
    lines joined)."""

    def __init__(self, message: object = "") -> None:
        super().__init__(one_line(str(message)))


class ServerUnreachable(OllamaError):
    """Nothing answers at the host, or it is not an Ollama server."""


class ModelNotFound(OllamaError):
    """The server does not have the model."""

    def __init__(self, model: str) -> None:
        super().__init__(
            f"model {model!r} is not on the server: get it with `ollama pull {model}` or run llmtop with --pull"
        )
        self.model = model


class ServerError(OllamaError):
    """The server answered with an error (`{"error": ...}`), e.g. not enough memory for the model."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class StreamBroken(OllamaError):
    """The generation stream ended without its final chunk."""


class Stalled(StreamBroken):
    """The server sent nothing for longer than the run allows (a stuck runner, a stuck load)."""


def _dump(response: Any) -> dict[str, Any]:
    """A client response model as the JSON body the server sent (aliases such as `model_info`)."""
    dumped: dict[str, Any] = response.model_dump(by_alias=True, mode="json")
    return dumped


def _error_text(body: str) -> str:
    try:
        value = json.loads(body)
    except ValueError:
        return body.strip() or "no message"
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        return str(value["error"])
    return body.strip()


def not_ollamas_answer(status: int, body: str, base_url: str, content_type: str | None = None) -> str | None:
    """The message for an error answer that is not Ollama's JSON (a proxy's HTML page, plain text,
    an empty body), with the body's first line where it is short plain text; None for Ollama's
    own `{"error": ...}`. The official client has already taken `error` out of a JSON body, so the
    answer's content type tells them apart; without it, HTML or nothing is not Ollama's."""
    text = body.strip()
    if content_type is not None:
        if content_type.split(";")[0].strip().lower() == "application/json":
            return None
    elif text and not text.startswith("<"):
        return None
    try:
        reason = f" {HTTPStatus(status).phrase}"
    except ValueError:
        reason = ""
    message = f"HTTP {status}{reason} from {base_url}: not Ollama's JSON (a proxy in between?)"
    first = text.splitlines()[0].strip() if text else ""
    if first and not text.startswith("<") and len(first) <= 120 and "text/plain" in (content_type or ""):
        message += f": {first}"
    return message


class _Generation:
    """The generation in progress: the thread that reads it and the connection abort() cuts. Set
    when the generation starts and cleared when it ends (OllamaServer.generate)."""

    def __init__(self, thread: int) -> None:
        self.thread = thread
        self.reader = "no reader yet"
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._cut = False

    def hold_socket(self, sock: socket.socket | None) -> None:
        """The lean reader's socket (None once it is closed)."""
        with self._lock:
            self._socket = sock
            cut = self._cut and sock is not None
        if cut:  # aborted while it was connecting: cut this one too
            _shut(sock)

    def hold_stream(self, stream: Any) -> None:
        """The official client's network stream (httpcore), whose socket is read."""
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            self.hold_socket(sock)

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        """httpcore's trace of the connection: the stream once connected (through a proxy too)."""
        if event.endswith(("connect_tcp.complete", "start_tls.complete")):
            self.hold_stream(info.get("return_value"))

    def cut(self) -> str:
        """Shut the socket being read, so that the blocked read returns; what was cut."""
        with self._lock:
            self._cut = True
            sock = self._socket
        if sock is None:
            return f"nothing yet: {self.reader} had no connection open (it is cut as it connects)"
        try:
            peer = "{}:{}".format(*sock.getpeername()[:2])
        except OSError:
            peer = "a closed connection"
        if not _shut(sock):
            return f"nothing: the connection of {self.reader} to {peer} was already closed"
        return f"the generation's connection to {peer}, read by {self.reader}"


def _shut(sock: socket.socket | None) -> bool:
    if sock is None:
        return False
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        return False
    return True


class OllamaServer:
    """One Ollama server at `base_url` (see llmtop.ollama.hosts.ollama_base_url)."""

    def __init__(
        self,
        base_url: str,
        silence_limit_s: float | None = None,
        headers: Mapping[str, str] | None = None,
        cacert: str | None = None,
    ) -> None:
        """`silence_limit_s`: how long a generation may send nothing, the load included, before it
        is given up as stalled (None: forever). A large model can take minutes to load and then
        stream at a token a second; the connect timeout still catches a dead host. `headers` go
        with every request (a token, basic auth: never shown); `cacert` is the CA file that signs
        an https server's certificate, where the system's CAs do not."""
        self.base_url = base_url
        self.silence_limit_s = silence_limit_s
        self.headers = dict(headers or {})
        self.cacert = cacert
        self._verify: Any = ssl.create_default_context(cafile=cacert) if cacert else True
        self._generation: _Generation | None = None  # the one abort() cuts; no other call can take its place
        self._answer_types = threading.local()  # the content type of each thread's last error answer
        self._client = self._streaming_client()
        self._quick = ollama.Client(
            host=base_url,
            timeout=httpx.Timeout(CONNECT_TIMEOUT_S, read=30.0),
            event_hooks={"response": [self._note_error_type]},
            headers=self.headers,
            verify=self._verify,
        )

    def _note_error_type(self, response: httpx.Response) -> None:
        if response.status_code >= 400:
            self._answer_types.last = response.headers.get("content-type", "")

    def _streaming_client(self) -> ollama.Client:
        def ours(request: httpx.Request) -> _Generation | None:
            # Only the generation's own request, on the thread that reads it: an unload or a pull
            # through this same client never takes its place.
            generation = self._generation
            if generation is not None and generation.thread == threading.get_ident():
                if request.url.path.endswith("/api/generate"):
                    return generation
            return None

        def trace_connection(request: httpx.Request) -> None:
            generation = ours(request)
            if generation is not None:  # the socket as soon as it connects: a load can be cut too
                request.extensions = {**request.extensions, "trace": generation.trace}

        def remember(response: httpx.Response) -> None:
            self._note_error_type(response)
            generation = ours(response.request)
            if generation is not None:
                generation.hold_stream(response.extensions.get("network_stream"))

        return ollama.Client(
            host=self.base_url,
            timeout=httpx.Timeout(CONNECT_TIMEOUT_S, read=self.silence_limit_s),
            event_hooks={"request": [trace_connection], "response": [remember]},
            headers=self.headers,
            verify=self._verify,
            # A new connection for every request, so that the generation's is seen connecting (and
            # is never one an unload used before).
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def abort(self) -> str | None:
        """End the generation in progress from another thread (a watchdog, a quit): its socket is
        shut, so the blocked read returns. Says what it cut; None when no generation was reading."""
        generation = self._generation
        return generation.cut() if generation is not None else None

    def close(self) -> None:
        clients: tuple[Any, ...] = (self._client, self._quick)
        for client in clients:
            try:
                client.close()  # the client's httpx pool
            except (httpx.HTTPError, OSError, RuntimeError):  # a pool already shut, a socket gone
                pass

    def _unreachable(self, why: str) -> ServerUnreachable:
        if "CERTIFICATE_VERIFY_FAILED" in why or "certificate verify failed" in why:
            return ServerUnreachable(
                f"{self.base_url}: its TLS certificate is not trusted here ({why.split(' (_ssl')[0]}): "
                "give the CA that signed it with --cacert FILE"
            )
        return ServerUnreachable(f"cannot reach Ollama at {self.base_url} ({why}): {START_HINT}")

    def _gate(self, status: int) -> ServerError:
        """A 401 or 403: one line that names the host and says it wants credentials."""
        said = "401 Unauthorized" if status == 401 else "403 Forbidden"
        given = "the credentials given were refused" if self.headers else "the server wants credentials"
        return ServerError(
            f"{self.base_url} answered {said}: {given} (--header 'Authorization: Bearer TOKEN', "
            "or user:password@ in --host)",
            status,
        )

    @contextmanager
    def _answers(self, model: str | None = None, stream: bool = False, action: str = "") -> Iterator[None]:
        """Every failure of a call as one OllamaError, the same way for every call: an error answer
        (ModelNotFound for a 404 about `model`, else ServerError with Ollama's message, prefixed
        with `action`), a server that cannot be reached, and, for a `stream`, one that breaks off
        (StreamBroken, after the good chunks)."""
        self._answer_types.last = None
        try:
            yield
        except ollama.ResponseError as exc:
            status = exc.status_code if exc.status_code > 0 else None
            if status == 404 and model is not None:
                raise ModelNotFound(model) from None
            if status in (401, 403):
                raise self._gate(status) from None
            content_type = getattr(self._answer_types, "last", None) if status else None
            message = not_ollamas_answer(status or 0, exc.error, self.base_url, content_type) or _error_text(exc.error)
            raise ServerError(f"{action}: {message}" if action else message, status) from None
        except (ConnectionError, httpx.ConnectError) as exc:
            refused = isinstance(exc, ConnectionError) or "refused" in str(exc).lower()
            raise self._unreachable("connection refused" if refused else str(exc)) from None
        except lean_stream.ConnectFailed as exc:
            raise self._unreachable("connection refused" if exc.refused else str(exc)) from None
        except lean_stream.ReadStalled:
            raise Stalled(f"the server sent nothing for {self.silence_limit_s:.0f} s") from None
        except lean_stream.Dropped as exc:
            raise StreamBroken(f"the connection dropped mid-stream ({exc})") from None
        except lean_stream.BadLine:
            raise StreamBroken("the server sent a chunk that is not the answer Ollama sends") from None
        except httpx.ReadTimeout:
            if not stream:
                raise self._unreachable("no answer in time") from None
            raise Stalled(f"the server sent nothing for {self.silence_limit_s:.0f} s") from None
        except httpx.TimeoutException:
            raise self._unreachable("no answer in time") from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            if not stream:
                raise self._unreachable(f"{type(exc).__name__}: {exc}") from None
            raise StreamBroken(f"the connection dropped mid-stream ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            if not stream:
                raise self._unreachable(f"{type(exc).__name__}: {exc}") from None
            raise StreamBroken(f"the stream failed: {type(exc).__name__}: {exc}") from None
        except json.JSONDecodeError as exc:
            if not stream:
                raise ServerError(f"unexpected answer from {self.base_url}: {exc.msg}") from None
            raise StreamBroken(f"the server sent a line that is not JSON ({exc.msg})") from None
        except pydantic.ValidationError as exc:
            if not stream:
                raise ServerError(f"unexpected answer from {self.base_url}: {str(exc).splitlines()[0]}") from None
            raise StreamBroken("the server sent a chunk that is not the answer Ollama sends") from None
        except ValueError as exc:
            raise ServerError(f"unexpected answer from {self.base_url}: {str(exc).splitlines()[0]}") from None

    def _call(self, model: str | None, call: Callable[[], Any]) -> Any:
        with self._answers(model):
            return call()

    def version(self) -> str:
        """`GET /api/version`; ServerUnreachable when the host does not answer as Ollama does."""
        with self._answers():
            response = httpx.get(
                f"{self.base_url}/api/version", timeout=CONNECT_TIMEOUT_S, headers=self.headers, verify=self._verify
            )
        if response.status_code in (401, 403):
            raise ServerUnreachable(str(self._gate(response.status_code)))
        try:
            version = response.json().get("version") if response.status_code == 200 else None
        except ValueError:
            version = None
        if not isinstance(version, str):
            raise ServerUnreachable(
                f"the server at {self.base_url} did not answer /api/version as Ollama does "
                f"(HTTP {response.status_code}): is it Ollama?"
            )
        return version

    def show(self, model: str) -> dict[str, Any]:
        """`POST /api/show`: details and model_info; ModelNotFound on 404. For a thinking model, also
        its `thinking` controls (`{"values": [...], "default": ...}`), which the official client's
        response model leaves out."""
        shown = _dump(self._call(model, lambda: self._quick.show(model)))
        if "thinking" in (shown.get("capabilities") or ()) and "thinking" not in shown:
            shown["thinking"] = self._thinking_controls(model)
        return shown

    def _thinking_controls(self, model: str) -> Any:
        """`thinking` from /api/show's JSON as the server sent it (None where it cannot be read)."""
        raw = getattr(self._quick, "_client", None)
        if not isinstance(raw, httpx.Client):
            return None
        try:
            answer = raw.post("/api/show", json={"model": model})
            return answer.json().get("thinking") if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None

    def tensors(self, model: str) -> dict[str, Any]:
        """`POST /api/show {"verbose": true}` as the server sent it: `model_info` and, from Ollama 0.6,
        the `tensors` table (name, type, shape), which the official client's response model leaves out;
        ModelNotFound on 404, OllamaError on any other failure."""
        raw = getattr(self._quick, "_client", None)
        if not isinstance(raw, httpx.Client):
            raise OllamaError("the official client has no HTTP client to ask /api/show with")
        try:
            answer = raw.post("/api/show", json={"model": model, "verbose": True})
        except httpx.HTTPError as exc:
            raise ServerUnreachable(f"cannot reach {self.base_url}: {exc}") from None
        if answer.status_code == 404:
            raise ModelNotFound(model)
        if answer.status_code != 200:
            raise ServerError(f"/api/show answered HTTP {answer.status_code}", answer.status_code)
        try:
            shown = answer.json()
        except ValueError:
            raise ServerError("/api/show's answer is not JSON") from None
        return shown if isinstance(shown, dict) else {}

    def tags(self) -> dict[str, Any]:
        """`GET /api/tags`: the models on the server, with their file sizes."""
        return _dump(self._call(None, self._quick.list))

    def ps(self) -> dict[str, Any]:
        """`GET /api/ps`: the loaded models, with size and size_vram."""
        return _dump(self._call(None, self._quick.ps))

    def unload(self, model: str) -> None:
        """`POST /api/generate {"model", "keep_alive": 0}`: ask the server to unload the model."""
        self._call(model, lambda: self._client.generate(model=model, keep_alive=0))

    def wait_unloaded(
        self, model: str, timeout_s: float, is_model: Callable[[str], bool], poll_s: float = 0.25
    ) -> bool:
        """Poll `/api/ps` until the model is gone; False if it is still listed after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            if not any(is_model(m.get("name") or m.get("model") or "") for m in self.ps().get("models") or []):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)

    def generate(
        self, model: str, prompt: str, options: Mapping[str, Any], think: bool | str | None = None
    ) -> Iterator[dict[str, Any]]:
        """`POST /api/generate` with streaming: yields each chunk as a dict, the final one included
        (see generate_timed)."""
        for batch in self.generate_timed(model, prompt, options, think):
            for arrival in batch:
                yield arrival.chunk

    def generate_timed(
        self, model: str, prompt: str, options: Mapping[str, Any], think: bool | str | None = None
    ) -> Iterator[list[Arrival]]:
        """`POST /api/generate` with streaming: yields the chunks as they are read, with the time
        each arrived (llmtop's reader reads them in batches: see llmtop.ollama.lean_stream).
        `think`: the request's `think` (a thinking model: on, off or a level; None: the model's default).

        A `{"error": ...}` line or an HTTP error raises ServerError; a connection that drops or a
        line that is not JSON raises StreamBroken, after every good chunk has been yielded.
        """
        generation = _Generation(threading.get_ident())
        self._generation = generation
        try:
            with self._answers(model, stream=True):
                if lean_stream.usable(self.base_url):
                    try:
                        yield from self._lean_generate(model, prompt, options, generation, think)
                        return
                    except lean_stream.ErrorAnswer as answer:
                        if not 300 <= answer.status < 400:
                            self._answer_types.last = answer.content_type
                            raise ollama.ResponseError(answer.text, answer.status) from None
                        # A redirect: nothing was generated; the official client follows it.
                generation.reader = "the official client"
                chunks = self._client.generate(
                    model=model, prompt=prompt, options=dict(options), stream=True, think=think
                )
                for chunk in chunks:
                    yield [Arrival(_dump(chunk), time.monotonic())]
        finally:
            if self._generation is generation:
                self._generation = None

    def _lean_generate(
        self,
        model: str,
        prompt: str,
        options: Mapping[str, Any],
        generation: _Generation,
        think: bool | str | None = None,
    ) -> Iterator[list[Arrival]]:
        """The generation read by llmtop.ollama.lean_stream: the official client's request and headers, a
        token's chunk a dict straight from its line (see lean_stream for why)."""
        body: dict[str, Any] = {"model": model, "prompt": prompt, "stream": True, "options": dict(options)}
        if think is not None:  # as the client sends it: a top-level field, not an option
            body["think"] = think
        headers = dict(getattr(getattr(self._client, "_client", None), "headers", {}) or {})
        generation.reader = "llmtop's stream reader"
        for batch in lean_stream.post_batches(
            self.base_url,
            "/api/generate",
            body,
            headers,
            CONNECT_TIMEOUT_S,
            self.silence_limit_s,
            generation.hold_socket,
            self._verify if self.cacert else None,
        ):
            for i, arrival in enumerate(batch):
                if error := arrival.chunk.get("error"):
                    if i:
                        yield batch[:i]
                    raise ollama.ResponseError(error)
            yield batch

    def pull(self, model: str) -> Iterator[dict[str, Any]]:
        """`POST /api/pull` with streaming: yields the progress records."""
        with self._answers(stream=True, action=f"cannot pull {model!r}"):
            for progress in self._client.pull(model=model, stream=True):
                yield _dump(progress)
