"""Servers behind a gate: a token header, credentials in the URL, https with a CA of its own; a
401/403 in one line; and the secrets in no output at all (screen, exports, recording, history,
metrics, errors)."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from helpers.cli import llmtop, no_traceback
from llmtop.ollama.api import OllamaServer, ServerUnreachable
from llmtop.ollama.hosts import access_headers, redact_argv, redact_url

TOKEN = "sk-SECRET-7f3a9c"
PASSWORD = "hunter2-PASSWORD"


def test_headers_and_url_credentials():
    basic = base64.b64encode(f"me:{PASSWORD}".encode()).decode()
    assert access_headers(f"https://me:{PASSWORD}@gpu-box.example", None) == {"Authorization": f"Basic {basic}"}
    assert access_headers(f"me:{PASSWORD}@gpu-box:11434", ["Authorization: Bearer T", "X-Team: a b"]) == {
        "Authorization": "Bearer T",  # the header given wins over the URL's
        "X-Team": "a b",
    }
    with pytest.raises(ValueError) as caught:
        access_headers(None, [f"Authorization Bearer {TOKEN}"])
    assert TOKEN not in str(caught.value)
    assert redact_url(f"https://me:{PASSWORD}@gpu-box.example/x") == "https://***@gpu-box.example/x"
    assert redact_argv(["m", "--header", f"Authorization: Bearer {TOKEN}", f"--host=http://u:{PASSWORD}@h"]) == [
        "m",
        "--header",
        "Authorization: ***",
        "--host=http://***@h",
    ]


def test_a_gate_without_credentials_is_one_line_naming_the_host(double_factory):
    double = double_factory(require_header=("Authorization", f"Bearer {TOKEN}"))
    result = llmtop("llama3.3", "--host", double.url, "--headless", "--no-log", "--no-record")
    no_traceback(result)
    assert result.returncode == 2
    assert result.stderr == (
        f"llmtop: {double.url} answered 401 Unauthorized: the server wants credentials "
        "(--header 'Authorization: Bearer TOKEN', or user:password@ in --host)\n"
    )
    wrong = llmtop("llama3.3", "--host", double.url, "--headless", "--no-log", "--header", "Authorization: Bearer nope")
    assert wrong.returncode == 2 and "answered 403 Forbidden: the credentials given were refused" in wrong.stderr
    assert "nope" not in wrong.stderr
    bad = llmtop("llama3.3", "--header", f"Authorization Bearer {TOKEN}")
    assert bad.returncode == 2 and "argument --header: expected 'Name: value'" in bad.stderr and TOKEN not in bad.stderr


def test_no_secret_in_any_output(double_factory, tmp_path):
    basic = base64.b64encode(f"me:{PASSWORD}".encode()).decode()
    double = double_factory(token_rate=100, tokens=20, require_header=("X-Api-Key", TOKEN))
    host = double.url.replace("http://", f"http://me:{PASSWORD}@")
    outputs = {name: tmp_path / name for name in ("runs.json", "runs.csv", "runs.md", "run.jsonl")}
    data = tmp_path / "data"
    result = llmtop(
        "llama3.3", "--host", host, "--header", f"X-Api-Key: {TOKEN}", "--headless", "--no-log",
        "--export", str(outputs["runs.json"]), "--record", str(outputs["run.jsonl"]),
        env={"LLMTOP_DATA_DIR": str(data)},
    )  # fmt: skip
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert double.requests, "the gated double answered: the header and the basic auth went with every request"
    for suffix in ("csv", "md"):
        llmtop("replay", str(outputs["run.jsonl"]), "--headless", "--export", str(outputs[f"runs.{suffix}"]))
    history = llmtop("history", "--export", str(tmp_path / "history.json"), env={"LLMTOP_DATA_DIR": str(data)})
    assert history.returncode == 0, history.stderr
    texts = {"stdout": result.stdout, "stderr": result.stderr, "history export": history.stdout}
    texts.update({name: path.read_text(encoding="utf-8") for name, path in outputs.items()})
    texts["history export file"] = (tmp_path / "history.json").read_text(encoding="utf-8")
    for database in data.glob("*.sqlite3"):
        with sqlite3.connect(database) as connection:
            texts[database.name] = "\n".join(str(row) for row in connection.execute("SELECT * FROM runs"))
    assert len(texts) >= 8
    for name, text in texts.items():
        for secret in (TOKEN, PASSWORD, basic):
            assert secret not in text, (name, secret)
    header = json.loads(outputs["run.jsonl"].read_text(encoding="utf-8").splitlines()[0])
    assert "X-Api-Key: ***" in header["argv"] and f"http://***@127.0.0.1:{double.port}" in header["argv"]
    assert json.loads(outputs["runs.json"].read_text(encoding="utf-8"))["runs"][0]["host"] == double.url


def _certificate(folder: Path) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def test_https_with_a_ca_of_its_own(double_factory, tmp_path):
    cert, key = _certificate(tmp_path)
    double = double_factory(token_rate=100, tokens=15, tls=(cert, key))
    assert double.url.startswith("https://")
    untrusted = llmtop("llama3.3", "--host", double.url, "--headless", "--no-log", "--no-record")
    no_traceback(untrusted)
    assert untrusted.returncode == 2
    assert untrusted.stderr.startswith(f"llmtop: {double.url}: its TLS certificate is not trusted here")
    assert untrusted.stderr.rstrip().endswith("give the CA that signed it with --cacert FILE")
    trusted = llmtop("llama3.3", "--host", double.url, "--cacert", cert, "--headless", "--no-log", "--no-record")
    assert trusted.returncode == 0, trusted.stderr
    assert double.finals  # the generation went through, over TLS (the lean reader's path)
    server = OllamaServer(double.url, cacert=cert)
    try:
        assert server.version() == "0.5.11"
    finally:
        server.close()
    with pytest.raises(ServerUnreachable):
        OllamaServer(double.url).version()
    missing = llmtop("llama3.3", "--cacert", str(tmp_path / "none.pem"))
    assert missing.returncode == 2 and "argument --cacert: cannot read" in missing.stderr


def test_the_proxy_adds_the_credentials_apps_do_not_send(double_factory):
    import urllib.error
    import urllib.request

    from llmtop.watch.proxy import OllamaProxy
    from llmtop.watch.state import WatchState

    double = double_factory(tokens=5, require_header=("Authorization", f"Bearer {TOKEN}"))
    proxy = OllamaProxy(double.url, 0, WatchState(), headers={"Authorization": f"Bearer {TOKEN}"}).start()
    try:
        with urllib.request.urlopen(f"{proxy.url}/api/tags", timeout=10) as answer:
            assert answer.status == 200 and json.loads(answer.read())["models"]
        request = urllib.request.Request(f"{proxy.url}/api/tags", headers={"Authorization": "Bearer the-apps-own"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403  # an app's own credentials are passed on as they are
    finally:
        proxy.stop()
