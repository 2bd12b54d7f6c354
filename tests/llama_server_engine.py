"""Ollama 0.30 and later with its real runner: upstream llama.cpp's `llama-server`.

`LlamaServerEngine` is the engine of the Ollama double (tests/ollama_double.py's `Engine`) inside the
`ollama serve` process of tests/engine_double.py, when `EngineOllama(llama_server=BINARY)` starts it.
As Ollama 0.30 does (llm/llama_server.go; ../shared/ollama-0.30.md): one `llama-server` child per
model, started with `--model BLOB --port P --host 127.0.0.1 --no-webui --offline -c NUM_CTX*NP -np NP
--log-verbosity 4 --no-log-prefix --no-log-timestamps`, `-ngl N` only when num_gpu is set (else
llama.cpp's fit step chooses), `--load-mode none` for a load on the CPU (mmap off, "reason=cpu");
its whole output copied into the server log after Ollama's own lines; each request proxied to its
`/completion` stream, the final event's `timings` (`prompt_n`, `prompt_ms`, `predicted_n`,
`predicted_ms`) becoming the API's `prompt_eval_*` and `eval_*`.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from engine_double import PARAMETERS, TEMPLATE, copy_into_log, free_port
from ollama_double import EngineFailed

OLLAMA_VERSION = "0.33.2"  # the llama-server era
NO_GPU_CONTEXT = 4096  # Ollama's VRAM-based default context with no GPU (routes.go: "vram-based default context")
NUM_BATCH = 512  # Ollama's default num_batch, passed as -b and -ub


class _Server:
    """One `llama-server` child and what Ollama knows of it."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, context: int) -> None:
        self.process = process
        self.port = port
        self.context = context
        self.buffer_bytes = 0
        self.lock = threading.Lock()  # one request at a time: -np 1, as OLLAMA_NUM_PARALLEL=1

    def exit_text(self) -> str:
        code = self.process.wait()
        return f"exit status {code}" if code >= 0 else f"signal: {-code}"

    def post(self, path: str, body: dict[str, Any], timeout: float = 600) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - 127.0.0.1 only


class LlamaServerEngine:
    """The server's side of Ollama 0.30's runners: start a llama-server per model, proxy its
    `/completion` stream, stop it."""

    def __init__(self, binary: str, log: Any, write: Any, settings: dict[str, str]) -> None:
        self.binary = binary
        self.log = log
        self.write = write
        self.settings = settings
        self._servers: dict[str, _Server] = {}
        self._lock = threading.Lock()

    def started(self) -> None:
        """Ollama's line at start-up, after its GPU discovery: the context requests that set none get."""
        self.log.structured(
            "routes.go:2058", '"vram-based default context"', f'total_vram="0 B" default_num_ctx={NO_GPU_CONTEXT}'
        )

    def load(self, name: str, model: dict[str, Any], options: dict[str, Any]) -> bool:
        with self._lock:
            server = self._servers.get(name)
            if server is not None and server.process.poll() is None:
                return False
            self._start(name, model, options)
            return True

    def _start(self, name: str, model: dict[str, Any], options: dict[str, Any]) -> None:
        import psutil

        from ollama_double import gib

        started = time.monotonic()
        blob = model["blob"]
        context = int(options.get("num_ctx") or NO_GPU_CONTEXT)
        log = self.log
        if options.get("use_mmap") is not True:  # no GPU: Ollama switches mmap off
            log.structured(
                "sched.go:1147", '"disabling mmap for llama-server load by default"', f"model={blob} reason=cpu"
            )
        log.structured("server.go:109", '"using llama-server for model"', f"model={blob}")
        port = free_port()
        argv = [self.binary, "--model", blob, "--port", str(port), "--host", "127.0.0.1", "--no-webui", "--offline"]
        argv += ["-c", str(context), "-np", "1", "--log-verbosity", "4", "--no-log-prefix", "--no-log-timestamps"]
        if options.get("use_mmap") is not True:
            argv += ["--load-mode", "none"]
        argv += ["-b", str(NUM_BATCH), "-ub", str(NUM_BATCH)]
        if self.settings.get("threads"):
            argv += ["-t", self.settings["threads"]]
        if options.get("num_gpu") is not None:
            argv += ["-ngl", str(options["num_gpu"])]
        log.structured("llama_server.go:433", '"starting llama-server"', f'cmd="{" ".join(argv)}"')
        memory = psutil.virtual_memory()
        log.structured(
            "sched.go:613",
            '"system memory"',
            f'total="{gib(memory.total)}" free="{gib(memory.available)}" free_swap="0 B"',
        )
        log.structured("llama_server.go:1048", '"loading model via llama-server"', f"model={blob}")
        process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        server = _Server(process, port, context)
        assert process.stdout is not None
        threading.Thread(target=copy_into_log, args=(process.stdout, self.write, server), daemon=True).start()
        log.structured("llama_server.go:1295", '"waiting for llama-server to start responding"')
        while not self._healthy(server):
            if process.poll() is not None:
                error = f"llama-server process has terminated: {server.exit_text()}"
                # Ollama 0.32.15's scheduler (server/sched.go) gives the load up at level INFO, naming the model.
                log.structured("sched.go:641", '"Load failed"', f'model={blob} error="{error}"')
                raise EngineFailed(error)
            time.sleep(0.05)
        log.structured("llama_server.go:1362", f'"llama-server started in {time.monotonic() - started:.2f} seconds"')
        log.structured("sched.go:728", '"loaded runners"', "count=1")
        self._servers[name] = server

    @staticmethod
    def _healthy(server: _Server) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health", timeout=2) as answer:  # noqa: S310
                return answer.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def generate(self, name: str, prompt: str, options: dict[str, Any]) -> Iterator[str | dict[str, Any]]:
        server = self._servers[name]
        text = TEMPLATE.format(prompt=prompt)
        body = {
            "prompt": text,
            "stream": True,
            "n_predict": int(options.get("num_predict") or self.settings["max_tokens"]),
            "seed": int(options.get("seed", -1)),
            "temperature": float(options.get("temperature", PARAMETERS["temperature"])),
            "top_k": int(options.get("top_k", PARAMETERS["top_k"])),
            "top_p": float(options.get("top_p", PARAMETERS["top_p"])),
            "return_tokens": True,
        }
        with server.lock:
            try:
                with server.post("/tokenize", {"content": text, "add_special": True}) as answer:
                    context: list[int] = list(json.load(answer)["tokens"])
                with server.post("/completion", body) as stream:
                    for raw in stream:
                        line = raw.decode("utf-8").strip()
                        kind, _, data = line.partition(": ")
                        if kind not in ("data", "error") or not data:
                            continue
                        event = json.loads(data)
                        if kind == "error" or "error" in event:  # e.g. a prompt longer than the context
                            error = event.get("error", event)
                            raise EngineFailed(error.get("message", str(error)) if isinstance(error, dict) else error)
                        context.extend(event.get("tokens") or [])
                        if event.get("content"):
                            yield event["content"]
                        if event.get("stop"):
                            yield self._final(event, context)
                            return
            except (urllib.error.URLError, OSError, json.JSONDecodeError):
                pass
            # The runner is gone (or no longer answers): as Ollama, stop it and report the lost stream.
            if server.process.poll() is None:
                server.process.kill()
            self.log.terminated(server.exit_text())
            with self._lock:
                self._servers.pop(name, None)
            raise EngineFailed("an error was encountered while running the model: unexpected EOF")

    @staticmethod
    def _final(event: dict[str, Any], context: list[int]) -> dict[str, Any]:
        """The final chunk's counts and durations, from llama-server's `timings` as Ollama maps them."""
        timings = event["timings"]
        return {
            "done_reason": "length" if event.get("stop_type") == "limit" else "stop",
            "context": context,
            "prompt_eval_count": int(timings["prompt_n"]),
            "prompt_eval_duration": int(float(timings["prompt_ms"]) * 1e6),
            "eval_count": int(timings["predicted_n"]),
            "eval_duration": int(float(timings["predicted_ms"]) * 1e6),
        }

    def unload(self, name: str) -> None:
        with self._lock:
            server = self._servers.pop(name, None)
        if server is None:
            return
        with server.lock:
            server.process.terminate()
            try:
                server.process.wait(15)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()

    def loaded(self) -> dict[str, tuple[int, int, int]]:
        with self._lock:
            return {
                name: (s.buffer_bytes, 0, s.context) for name, s in self._servers.items() if s.process.poll() is None
            }
