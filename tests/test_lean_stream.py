"""The generation's stream as llmtop reads it (llmtop.ollama.lean_stream): the same chunks the official client
gives, every way a stream can fail, and the official client where this reader cannot go."""

import socket
import threading

import ollama
import pytest

from llmtop.ollama import lean_stream
from llmtop.ollama.api import OllamaServer, StreamBroken

PROMPT = "hi"


def test_the_chunks_are_what_the_official_client_gives(double):
    ours = list(OllamaServer(double.url).generate("llama3.3", PROMPT, {"seed": 1}))
    official = [
        c.model_dump(by_alias=True, mode="json")
        for c in ollama.Client(host=double.url).generate(
            model="llama3.3", prompt=PROMPT, options={"seed": 1}, stream=True
        )
    ]
    assert len(ours) == len(official) == 41

    def same(chunk):  # the clock's figures aside (each generation is timed anew)
        return {k: v for k, v in chunk.items() if v is not None and k != "created_at" and not k.endswith("duration")}

    for mine, theirs in zip(ours, official, strict=True):
        # The official model fills every field it knows (None where the server sent none); ours
        # is the line the server sent: the same keys with a value, the same values.
        assert {k for k, v in theirs.items() if v is not None} == set(mine)
        assert same(mine) == same(theirs)
    # The request is the official client's: the same body.
    (_, _, sent_by_us), (_, _, sent_by_client) = double.requests[-2:]
    assert sent_by_us == sent_by_client


class RawServer:
    """On 127.0.0.1: each connection's request is answered with `answer` (raw bytes), then closed."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            conn, _ = self.listener.accept()
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(65536)
        head, _, body = request.partition(b"\r\n\r\n")
        length = next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
        while len(body) < int(length[15:]):
            body += conn.recv(65536)
        conn.sendall(self.answer)


def chunked(*pieces: bytes) -> bytes:
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces)


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
TOKEN = b'{"model":"llama3.3","created_at":"2026-12-01T00:00:00Z","response":"Hi","done":false}\n'
FINAL = b'{"model":"llama3.3","created_at":"2026-12-01T00:00:01Z","response":"","done":true,"eval_count":1}\n'


def test_lines_split_across_chunks_and_chunks_holding_several_lines():
    server = RawServer(HEAD + chunked(TOKEN[:10], TOKEN[10:] + TOKEN, FINAL) + b"0\r\n\r\n")
    chunks = list(OllamaServer(server.url).generate("llama3.3", PROMPT, {}))
    assert [c["response"] for c in chunks] == ["Hi", "Hi", ""] and chunks[-1]["eval_count"] == 1


def test_a_body_cut_inside_a_chunk_is_a_dropped_stream_after_the_good_chunks():
    server = RawServer(HEAD + chunked(TOKEN) + b"40\r\n" + TOKEN[:20])  # 64 bytes promised, 20 sent
    got = []
    with pytest.raises(StreamBroken, match="dropped mid-stream"):
        for chunk in OllamaServer(server.url).generate("llama3.3", PROMPT, {}):
            got.append(chunk)
    assert [c["response"] for c in got] == ["Hi"]


def test_a_body_with_a_length_is_read_to_its_end():
    """A proxy that buffers the stream may send it whole, with a Content-Length."""
    body = TOKEN + FINAL
    server = RawServer(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    chunks = list(OllamaServer(server.url).generate("llama3.3", PROMPT, {}))
    assert [c["done"] for c in chunks] == [False, True]


def test_a_line_that_is_no_chunk_of_ollamas_breaks_the_stream():
    server = RawServer(HEAD + chunked(b'{"response": 42}\n') + b"0\r\n\r\n")
    with pytest.raises(StreamBroken, match="not the answer Ollama sends"):
        list(OllamaServer(server.url).generate("llama3.3", PROMPT, {}))


def test_a_redirect_is_followed_by_the_official_client(double):
    server = RawServer(
        b"HTTP/1.1 307 Temporary Redirect\r\nLocation: %s/api/generate\r\n" % double.url.encode()
        + b"Content-Length: 0\r\n\r\n"
    )
    chunks = list(OllamaServer(server.url).generate("llama3.3", PROMPT, {}))
    assert chunks[-1]["done"] and len(chunks) == 41


def test_where_a_proxy_applies_the_official_client_reads_the_stream(monkeypatch):
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert lean_stream.usable("http://127.0.0.1:11434")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert not lean_stream.usable("http://gpu-box:11434")
    monkeypatch.setenv("NO_PROXY", "gpu-box")
    assert lean_stream.usable("http://gpu-box:11434")
    assert not lean_stream.usable("unix:///run/ollama.sock")
