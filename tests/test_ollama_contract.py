"""The double agrees with the real thing: the same scenarios against tests/ollama_double.py and each
real Ollama (tests/real_ollama.py), compared on every field llmtop reads (READS), on the status codes
and error bodies, on `keep_alive: 0`, and on the order of the log lines llmtop's parser takes.

Where the double and a real version differ, the difference is named in KNOWN_DIFFERENCES with why; a
difference not named there fails the test, and a named one that no longer shows fails it too.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest
from conftest import OLLAMA_VERSIONS

from helpers.contract import api_get, in_order, normal_kind, parsed_kinds
from llmtop.collectors.ollama_log import served_request
from real_ollama import RANDOM_LLAMA
from waiting import eventually

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Ollama is built here for Linux")

# Every field llmtop reads from each answer (core/ollama/api.py, model_facts.py, watch/state.py,
# collectors/token_timing.py): "a.b" a key inside a key, "models[]" each item of a list, "*" any key.
READS: dict[str, tuple[str, ...]] = {
    "GET /api/version": ("version",),
    "GET /api/tags": ("models[].name", "models[].model", "models[].size", "models[].details.parameter_size",
                      "models[].details.quantization_level", "models[].details.family"),
    "POST /api/show": ("details.parameter_size", "details.quantization_level", "details.family",
                       "model_info.general.architecture", "model_info.*.block_count", "model_info.*.context_length"),
    "GET /api/ps": ("models[].name", "models[].model", "models[].size", "models[].size_vram",
                    "models[].expires_at", "models[].context_length"),
    "stream chunk": ("model", "response", "done"),
    "final chunk": ("model", "response", "done", "done_reason", "total_duration", "load_duration",
                    "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"),
    "unload (keep_alive 0)": ("done", "done_reason"),
    "unknown model: show": ("error",),
    "unknown model: generate": ("error",),
    "bad option": ("error",),
}  # fmt: skip

# (scenario, field or "status") -> (the real versions it concerns, why the double differs there)
KNOWN_DIFFERENCES: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    ("GET /api/ps", "models[].context_length"): (
        ("article",),
        "0.5.11's /api/ps has no context_length (added in 0.6); the double gives it on every version, and "
        "llmtop reads the context from the log where /api/ps has none",
    ),
    ("unknown model: show", "words"): (
        ("newest",),
        "0.34 names a missing model with its tag (`model 'NAME:latest' not found`) where 0.5.11 and 0.24, and "
        "the double, name it as asked; llmtop shows Ollama's own words either way",
    ),
}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "bool", int: "int", float: "number", str: "str", list: "list", dict: "dict"}.get(
        type(value), type(value).__name__
    )


def _find(value: Any, path: str) -> Any:
    """The value at `path`; KeyError where it is missing."""
    head, _, rest = path.partition(".")
    if isinstance(value, dict) and head.endswith("[]"):
        items = value[head[:-2]]
        if not items:
            raise KeyError(path)
        return _find(items[0], rest) if rest else items[0]
    if head == "*" and isinstance(value, dict):
        for key, item in value.items():
            if key.endswith("." + rest) or key == rest:
                return item
        raise KeyError(path)
    if not isinstance(value, dict):
        raise KeyError(path)
    if head not in value and path in value:  # model_info's keys hold dots themselves
        return value[path]
    return _find(value[head], rest) if rest else value[head]


def shape(answer: Any, paths: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for path in paths:
        try:
            found[path] = _kind(_find(answer, path))
        except (KeyError, TypeError, IndexError):
            found[path] = "missing"
    return found


def observe(url: str, model: str) -> dict[str, dict[str, str]]:
    """Every scenario against the server at `url`: the kind of each field llmtop reads, and the status."""
    seen: dict[str, dict[str, str]] = {}

    def note(scenario: str, status: int, answer: Any) -> None:
        seen[scenario] = {"status": str(status), **shape(answer, READS[scenario])}

    for scenario in ("GET /api/version", "GET /api/tags"):
        status, answer, _ = api_get(url, scenario.split()[1])
        note(scenario, status, answer)
    status, answer, _ = api_get(url, "/api/show", {"model": model})
    note("POST /api/show", status, answer)
    status, final, lines = api_get(
        url, "/api/generate", {"model": model, "prompt": "Hello", "options": {"num_predict": 8, "seed": 42}}
    )
    note("stream chunk", status, lines[0] if len(lines) > 1 else None)
    note("final chunk", status, final)
    # num_predict stops the answer: eval_count is it, and done_reason says so (the summary's "ended early")
    seen["final chunk"]["eval_count value"] = str(final.get("eval_count"))
    seen["final chunk"]["done_reason value"] = str(final.get("done_reason"))
    status, answer, _ = api_get(url, "/api/ps")
    note("GET /api/ps", status, answer)
    status, answer, _ = api_get(url, "/api/generate", {"model": model, "keep_alive": 0})
    note("unload (keep_alive 0)", status, answer)
    seen["unload (keep_alive 0)"]["done_reason value"] = str(answer.get("done_reason"))
    deadline = time.monotonic() + 15
    while api_get(url, "/api/ps")[1].get("models") and time.monotonic() < deadline:
        time.sleep(0.1)
    seen["unload (keep_alive 0)"]["listed after"] = str(bool(api_get(url, "/api/ps")[1].get("models")))
    for scenario, path, body in (
        ("unknown model: show", "/api/show", {"model": "no-such-model"}),
        ("unknown model: generate", "/api/generate", {"model": "no-such-model", "prompt": "Hello"}),
        ("bad option", "/api/generate", {"model": model, "prompt": "Hello", "options": {"num_ctx": "many"}}),
    ):
        status, answer, _ = api_get(url, path, body)
        note(scenario, status, answer)
        said = answer.get("error") if isinstance(answer, dict) else None
        seen[scenario]["words"] = str(said).replace(model, "MODEL")  # what llmtop shows of it
    return seen


def differences(double: dict[str, dict[str, str]], real: dict[str, dict[str, str]]) -> set[tuple[str, str]]:
    return {
        (scenario, key)
        for scenario in real
        for key in real[scenario]
        if double.get(scenario, {}).get(key) != real[scenario][key]
    }


@pytest.fixture(scope="module")
def double_seen(request):
    from ollama_double import DoubleConfig, OllamaDouble

    double = OllamaDouble(DoubleConfig(tokens=12, token_rate=100)).start()  # an answer num_predict 8 stops
    try:
        return observe(double.url, "llama3.3")
    finally:
        double.stop()


@pytest.mark.parametrize("kind", OLLAMA_VERSIONS)
def test_the_double_answers_as_the_real_ollama_does(real_ollama, double_seen, kind):
    server = real_ollama(kind)
    real = observe(server.url, RANDOM_LLAMA)
    found = differences(double_seen, real)
    named = {key for key, (kinds, _) in KNOWN_DIFFERENCES.items() if kind in kinds}
    unexplained = {d: (double_seen.get(d[0], {}).get(d[1]), real[d[0]][d[1]]) for d in found - named}
    assert not unexplained, f"the double differs from Ollama {server.version} (double, real): {unexplained}"
    assert named <= found, f"named differences that no longer show: {named - found}"


def test_every_field_llmtop_reads_is_named():
    """The fields the contract compares are the ones llmtop reads: each is read somewhere in llmtop."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    source = "".join(p.read_text(encoding="utf-8") for p in root.glob("co*/**/*.py"))
    for scenario, paths in READS.items():
        for path in paths:
            if path.startswith("model_info."):  # its keys hold dots: "general.architecture", "<arch>.block_count"
                needle = path.removeprefix("model_info.").replace("*", "")
            else:
                needle = '"' + path.split(".")[-1].removesuffix("[]") + '"'
            assert needle in source, (scenario, path)


# The lines a load's log has on the real server that the double leaves out, by version, and why
# leaving them out changes nothing llmtop shows.
LOG_LEFT_OUT: dict[str, dict[str, str]] = {
    "article": {
        "llm_load_print_meta: n_layer": "the block count, which the double's plan line gives as layers.model",
    },
}


def kinds_of_a_load(server, model: str, era: str, folder) -> tuple[list[str], list[str], tuple[str, str]]:
    """The kinds of the lines llmtop takes from one load, on the double (ServerLog `era`, a machine
    without a GPU) and on the real `server` loading `model`: (double's, real's, (real log, double's log))."""
    from ollama_double import DoubleConfig, OllamaDouble, ServerLog

    log = folder / "double.log"
    with log.open("w") as out:
        writer = ServerLog(lambda t: (out.write(t), out.flush()), era)
        double = OllamaDouble(DoubleConfig(tokens=4, gpu_name=None), log=writer).start()
        try:
            api_get(double.url, "/api/generate", {"model": "llama3.3", "prompt": "Hello", "options": {"num_gpu": 0}})
        finally:
            double.stop()
    api_get(server.url, "/api/generate", {"model": model, "prompt": "Hello", "options": {"num_predict": 4}})
    if era == "llama-server":  # llama-server logs the slot's release just after the answer's last byte
        eventually(lambda: "slot      release:" in server.log_text(), 10, "llama-server's release line")
    logs = (server.log_text(), log.read_text())
    return [normal_kind(k) for k in parsed_kinds(logs[1])], [normal_kind(k) for k in parsed_kinds(logs[0])], logs


def test_the_doubles_log_lines_come_in_the_real_order(real_ollama, tmp_path):
    """The lines of a load that llmtop's parser takes: the double's (era 0.5, a machine without a
    GPU) are the real 0.5.11's, in the same order; what it leaves out is named in LOG_LEFT_OUT."""
    doubled, real, logs = kinds_of_a_load(real_ollama("article"), RANDOM_LLAMA, "0.5", tmp_path)
    assert in_order(doubled, real) == [], (doubled, real)
    assert sorted(set(real) - set(doubled)) == sorted(LOG_LEFT_OUT["article"]), (doubled, real)
    # Both print gin's access line as each request ends, which tells a shared server.
    for text in logs:
        served = [r for r in (served_request(line, 0.0) for line in text.splitlines()) if r is not None]
        assert any(r.generating and r.status == 200 and r.latency_s > 0 for r in served), text[-1500:]


# The double's Go-engine log is that of 0.6 to 0.1x (fixtures 01 and 05, users' real logs); 0.24
# words a load otherwise. What each prints that the other does not, and why llmtop reads both:
GO_ENGINE_ERA_DIFFERENCES = {
    "only the double (0.6-0.1x)": {
        "offload": "the plan line before the runner; 0.24 logs its plan as `model weights`/`kv cache` by device",
        "starting llama server": "0.24 says `starting runner` (both are read as a load's start)",
    },
    "only 0.24": {
        "starting runner": "0.24's start line, read as the older one",
        "kv cache": "0.24's plan of the KV cache by device (parse-log shows it)",
        "total memory": "0.24's plan total (parse-log shows it)",
        "load": "the runner's load request (its GPU layers), which 0.6-0.1x printed without a msg llmtop needs",
    },
}


def test_the_doubles_go_engine_log_against_real_0_24(real_ollama, tmp_path):
    """Gemma 3 on Ollama's own engine: the double's lines (era go-engine, no GPU) against real 0.24's,
    every difference named in GO_ENGINE_ERA_DIFFERENCES, and the lines both print in the same order
    but for the weights and the compute graph, which 0.24 gives as a plan before the offload where
    0.6-0.1x gave them after."""
    from real_ollama import GEMMA

    doubled, real, _ = kinds_of_a_load(real_ollama("last Go engine"), GEMMA, "go-engine", tmp_path)
    assert set(doubled) - set(real) == set(GO_ENGINE_ERA_DIFFERENCES["only the double (0.6-0.1x)"]), (doubled, real)
    assert set(real) - set(doubled) == set(GO_ENGINE_ERA_DIFFERENCES["only 0.24"]), (doubled, real)
    both = [k for k in doubled if k in real and k not in ("model weights", "compute graph")]
    assert in_order(both, real) == [], (doubled, real)


# The double's 0.30+ log (ServerLog era "llama-server") against real 0.34's on a machine without a GPU:
# what each prints that llmtop takes and the other does not, and why that changes nothing llmtop shows.
LLAMA_SERVER_ERA_DIFFERENCES: dict[str, dict[str, str]] = {
    "only the double": {},
    "only the newest": {
        "cmn  common_param: -": "the devices llama-server lists (`CPU : ... (24105 MiB, 24105 MiB free)`): parse-log's",
        "common_memory_breakdown_print: |": "the fit step's table, before the load: parse-log's, not the run's parts",
        "common_params_fit_impl: projected": "the fit step's projection (parse-log's `fit`)",
        "common_params_fit_impl: will": "the fit step's margin (parse-log's `fit`)",
        "slot launch_slot_: id": "a request's start: the double prints request lines only with llama_server_log",
        "slot   operator(): id": "the prompt's length and the tokens its slot had cached (test_real_ollama.py)",
        "slot print_timing: id": "a request's timings: the same (tests/test_watch.py holds them)",
        "slot      release: id": "a request's end: the same",
    },
}


def test_the_doubles_llama_server_log_against_the_newest_real_ollama(real_ollama, tmp_path):
    """The double's llama-server lines (era llama-server, no GPU) and real newest Ollama's, in the same
    order; every line kind only one of them prints is named in LLAMA_SERVER_ERA_DIFFERENCES."""
    doubled, real, logs = kinds_of_a_load(real_ollama("newest"), RANDOM_LLAMA, "llama-server", tmp_path)
    assert set(doubled) - set(real) == set(LLAMA_SERVER_ERA_DIFFERENCES["only the double"]), (doubled, real)
    assert set(real) - set(doubled) == set(LLAMA_SERVER_ERA_DIFFERENCES["only the newest"]), (doubled, real)
    both = [k for k in doubled if k in real]
    assert in_order(both, real) == [], (doubled, real)
