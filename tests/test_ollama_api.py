"""The real `ollama` client against the double: every call llmtop makes, and every failure."""

import pytest

from llmtop.ollama.api import (
    ModelNotFound,
    OllamaServer,
    ServerError,
    ServerUnreachable,
    StreamBroken,
    not_ollamas_answer,
)
from ollama_double import OOM_MESSAGE
from waiting import eventually


def test_version_show_tags_ps(double):
    server = OllamaServer(double.url)
    assert server.version() == "0.5.11"
    show = server.show("llama3.3")
    assert show["details"]["quantization_level"] == "Q4_K_M"
    assert show["model_info"]["llama.block_count"] == 80
    assert server.tags()["models"][0]["size"] == 42520413916
    assert server.ps()["models"] == []


def test_generate_streams_chunks_then_the_final_one(double):
    server = OllamaServer(double.url)
    chunks = list(server.generate("llama3.3", "hi", {"num_gpu": 0}))
    assert [c["done"] for c in chunks] == [False] * 40 + [True]
    final = chunks[-1]
    assert final["done_reason"] == "stop"
    assert final["eval_count"] == 40
    assert final["eval_duration"] == double.finals[0]["eval_duration"]
    body = double.requests[-1][2]
    assert body["options"] == {"num_gpu": 0} and body["stream"] is True


def test_unload_then_ps_no_longer_lists_the_model(double_factory):
    double = double_factory(preloaded=("llama3.3:latest",), unload_delay_s=0.3)
    server = OllamaServer(double.url)
    assert [m["name"] for m in server.ps()["models"]] == ["llama3.3:latest"]
    server.unload("llama3.3")
    assert double.requests[-1][2] == {"model": "llama3.3", "keep_alive": 0, "stream": False}
    assert server.wait_unloaded("llama3.3", 5.0, lambda name: name == "llama3.3:latest", poll_s=0.05)
    assert server.ps()["models"] == []


def test_unload_that_never_happens_times_out(double_factory):
    double = double_factory(preloaded=("llama3.3:latest",), unload_delay_s=30)
    assert not OllamaServer(double.url).wait_unloaded("llama3.3", 0.2, lambda n: True, poll_s=0.05)


def test_unknown_model(double):
    server = OllamaServer(double.url)
    with pytest.raises(ModelNotFound, match="ollama pull nosuch"):
        server.show("nosuch")
    with pytest.raises(ModelNotFound):
        list(server.generate("nosuch", "hi", {}))


def test_out_of_memory_is_the_servers_own_message(double_factory):
    server = OllamaServer(double_factory(fault="oom").url)
    with pytest.raises(ServerError) as info:
        list(server.generate("llama3.3", "hi", {}))
    assert str(info.value) == OOM_MESSAGE
    assert info.value.status == 500


@pytest.mark.parametrize(
    ("fault", "error", "text"),
    [
        ("drop", StreamBroken, "dropped mid-stream"),
        ("malformed", StreamBroken, "not JSON"),
        ("stream_error", ServerError, "unexpected EOF"),
    ],
)
def test_mid_stream_faults_come_after_the_good_chunks(double_factory, fault, error, text):
    server = OllamaServer(double_factory(fault=fault, fault_after=7).url)
    received = []
    with pytest.raises(error, match=text):
        for chunk in server.generate("llama3.3", "hi", {}):
            received.append(chunk)
    assert len(received) == 7


def test_refused_connection(closed_port_url):
    server = OllamaServer(closed_port_url)
    with pytest.raises(ServerUnreachable) as info:
        server.version()
    assert closed_port_url in str(info.value) and "ollama serve" in str(info.value)
    with pytest.raises(ServerUnreachable):
        server.ps()


def test_a_server_that_is_not_ollama(double_factory):
    with pytest.raises(ServerUnreachable, match="is it Ollama"):
        OllamaServer(double_factory(fault="not_ollama").url).version()


def test_pull_reports_progress_and_then_the_model_exists(double):
    server = OllamaServer(double.url)
    statuses = [p["status"] for p in server.pull("phi4")]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    assert server.show("phi4")["details"]["parameter_size"] == "70.6B"


def test_failed_pull(double_factory):
    with pytest.raises(ServerError, match="cannot pull 'phi4': pull model manifest"):
        list(OllamaServer(double_factory(pull_fails=True).url).pull("phi4"))


def test_a_proxys_html_error_page_is_said_to_be_not_ollamas_answer(double_factory):
    double = double_factory(fault="proxy_502")
    with pytest.raises(ServerError) as info:
        list(OllamaServer(double.url).generate("llama3.3", "hi", {}))
    assert str(info.value) == f"HTTP 502 Bad Gateway from {double.url}: not Ollama's JSON (a proxy in between?)"
    assert "<html>" not in str(info.value) and info.value.status == 502


def test_one_mapping_for_every_call(closed_port_url):
    server = OllamaServer(closed_port_url)
    for call in (server.version, server.tags, server.ps, lambda: server.show("x"), lambda: list(server.pull("x"))):
        with pytest.raises(ServerUnreachable, match="connection refused"):
            call()
    with pytest.raises(ServerUnreachable, match="connection refused"):
        list(server.generate("x", "hi", {}))


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ('{"error": "model requires more memory"}', "application/json; charset=utf-8", None),
        ("model requires more memory", None, None),  # the client took it out of Ollama's JSON
        (
            "<html><body>502</body></html>",
            "text/html",
            "HTTP 502 Bad Gateway from U: not Ollama's JSON (a proxy in between?)",
        ),
        (
            "upstream connect error",
            "text/plain",
            "HTTP 502 Bad Gateway from U: not Ollama's JSON (a proxy in between?): upstream connect error",
        ),
        ("", "", "HTTP 502 Bad Gateway from U: not Ollama's JSON (a proxy in between?)"),
        ("x" * 300, "text/plain", "HTTP 502 Bad Gateway from U: not Ollama's JSON (a proxy in between?)"),
    ],
)
def test_answers_that_are_not_ollamas(body, content_type, message):
    assert not_ollamas_answer(502, body, "U", content_type) == message


@pytest.mark.parametrize("reader", ["llmtop's stream reader", "the official client"])
def test_abort_cuts_the_generation_and_never_an_unload(double_factory, monkeypatch, reader):
    """The model loaded, so the run unloads it first through the same client: abort() still cuts the
    generation's own connection, says what it cut, and says so when no generation is reading. The
    official client reads the stream where a proxy from the environment applies (the double is its own)."""
    import threading

    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    double = double_factory(token_rate=100, tokens=400, fault="stall", fault_after=3, preloaded=("llama3.3:latest",))
    if reader == "the official client":
        monkeypatch.setenv("HTTP_PROXY", double.url)
    server = OllamaServer(double.url, silence_limit_s=60)
    assert server.abort() is None  # nothing is reading
    server.unload("llama3.3")
    got: list[dict] = []
    failure: list[BaseException] = []

    def read() -> None:
        try:
            got.extend(server.generate("llama3.3", "hi", {}))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    eventually(lambda: len(got) >= 3, 10, "three chunks read")
    cut = server.abort()
    thread.join(5)
    assert not thread.is_alive()  # the stalled read returned
    assert cut == f"the generation's connection to 127.0.0.1:{double.port}, read by {reader}"
    assert isinstance(failure[0], StreamBroken)
    assert server.abort() is None  # the generation is over: nothing left to cut
