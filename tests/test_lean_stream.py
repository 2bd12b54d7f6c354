"""The generation's stream as llmtop reads it (llmtop.ollama.lean_stream): the same chunks the official client
gives, every way a stream can fail, and the official client where this reader cannot go."""

import socket
import threading
import time

import ollama
import pytest

from llmtop.collectors.token_timing import TokenClock
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


def test_a_batch_spread_ends_at_its_last_arrival_and_stays_after_the_socket_was_empty():
    assert lean_stream.spread(1, 10.0, 10.5) == [10.5]
    assert lean_stream.spread(4, 10.0, 10.4) == pytest.approx([10.1, 10.2, 10.3, 10.4])
    assert lean_stream.spread(3, 10.0, 9.0) == [9.0, 9.0, 9.0]  # a clock step: never spread backwards


class PacedServer(RawServer):
    """Sends the head, waits `first_after` s, then each chunk `every` s apart (all at once with
    every=None, as a buffering proxy would), noting when each chunk went (time.monotonic())."""

    def __init__(self, tokens: int, every: float | None, first_after: float = 0.0) -> None:
        self.tokens, self.every, self.first_after = tokens, every, first_after
        self.sent: list[float] = []
        super().__init__(b"")

    def _answer(self, conn: socket.socket) -> None:
        super()._answer(conn)  # reads the request (and sends the empty answer)
        conn.sendall(HEAD)
        time.sleep(self.first_after)
        if self.every is None:
            self.sent = [time.monotonic()] * (self.tokens + 1)
            conn.sendall(chunked(*[TOKEN] * self.tokens, FINAL) + b"0\r\n\r\n")
            return
        for _ in range(self.tokens):
            self.sent.append(time.monotonic())
            conn.sendall(chunked(TOKEN))
            time.sleep(self.every)
        self.sent.append(time.monotonic())
        conn.sendall(chunked(FINAL) + b"0\r\n\r\n")


def timed_batches(server: RawServer) -> list[list[lean_stream.Arrival]]:
    return list(OllamaServer(server.url).generate_timed("llama3.3", PROMPT, {}))


def test_a_fast_stream_is_read_a_bounded_number_of_times_each_chunk_timed_within_one_read_interval():
    server = PacedServer(tokens=300, every=0.004)  # about 250 tokens a second for 1.2 s or more
    batches = timed_batches(server)
    arrivals = [a for batch in batches for a in batch]
    assert [a.chunk["done"] for a in arrivals] == [False] * 300 + [True]
    span = server.sent[-1] - server.sent[0]
    # At most READS_PER_S reads a second once the first chunk has come (and the first on its own).
    assert len(batches) <= span * lean_stream.READS_PER_S + 3, (len(batches), span)
    times = [a.at for a in arrivals]
    assert times == sorted(times)
    errors = [got - sent for got, sent in zip(times, server.sent, strict=True)]
    # Each time is between the last empty read and the batch's last arrival: off by at most one
    # read interval, plus what it takes a loaded machine to come back from its sleep.
    assert max(abs(e) for e in errors) < 1 / lean_stream.READS_PER_S + 0.1, errors
    assert abs(errors[0]) < 0.05  # the first chunk was waited for: timed as it came


def test_a_slow_stream_is_read_chunk_by_chunk_each_timed_as_it_came(monkeypatch):
    server = PacedServer(tokens=8, every=0.2, first_after=0.3)
    reader, sleep, naps = threading.current_thread(), time.sleep, []

    def counted(seconds):
        if threading.current_thread() is reader:
            naps.append(seconds)
        sleep(seconds)

    monkeypatch.setattr(time, "sleep", counted)
    batches = timed_batches(server)
    assert naps == []  # slower than the reads: one wake-up a chunk, when it comes (no pacing sleep)
    assert [len(b) for b in batches] == [1] * 9
    errors = [b[0].at - sent for b, sent in zip(batches, server.sent, strict=True)]
    assert all(-0.001 < e < 0.05 for e in errors), errors  # as it came (a loaded machine wakes late)


def test_a_stream_delivered_at_once_keeps_its_chunks_together_so_a_buffering_proxy_shows():
    server = PacedServer(tokens=50, every=None, first_after=0.2)
    arrivals = [a for batch in timed_batches(server) for a in batch]
    assert len(arrivals) == 51 and len({a.at for a in arrivals}) == 1
    clock = TokenClock(arrivals[0].at - 1.0)
    for arrival in arrivals[:-1]:
        clock.token(arrival.at)
    assert clock.in_bursts()


def test_good_chunks_read_with_a_malformed_line_are_given_out_before_the_error():
    server = RawServer(HEAD + chunked(TOKEN + TOKEN + b"{not json\n") + b"0\r\n\r\n")
    got = []
    with pytest.raises(StreamBroken, match="not JSON"):
        for chunk in OllamaServer(server.url).generate("llama3.3", PROMPT, {}):
            got.append(chunk)
    assert [c["response"] for c in got] == ["Hi", "Hi"]
