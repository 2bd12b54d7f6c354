"""A stand-in Ollama server: a real HTTP server on 127.0.0.1 that speaks Ollama's API.

It streams `/api/generate` as chunked NDJSON (`application/x-ndjson`), ends with the final
chunk's counts and nanosecond durations measured on its own clock, answers errors with
`{"error": ...}` bodies and the status codes Ollama uses, unloads on `keep_alive: 0`, and lists
loaded models in `/api/ps`. Faults are injected through `DoubleConfig`.

Run it by hand for the screenshots or to try llmtop without Ollama:
    python tests/ollama_double.py --port 11500 --rate 30
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from spilling_machine import Shape, experts_overlap

# What the article's model looks like to the API (llama3.3:70b, Q4_K_M, 80 blocks).
LLAMA33 = {
    "name": "llama3.3:latest",
    "size": 42520413916,
    "digest": "a6eb4748fd2990ad2952b2335a95a7f952d1a06119a0aa6a2df6cd052a93a3fa",
    "family": "llama",
    "parameter_size": "70.6B",
    "quantization_level": "Q4_K_M",
    "parameter_count": 70553706496,
    "block_count": 80,
}

# An MoE model like the article's last one (Tanuki 8x8B, Q4_K_M): 32 blocks of 8 experts, 2 used a token;
# the experts are 95% of the weights. `auto_layers`: Ollama's own choice on the spilling machine;
# `kv_mib_a_token`: its f16 KV cache (32 layers, 8 KV heads of 128).
TANUKI = {
    "name": "tanuki-8x8b:latest",
    "size": 27_400_000_000,
    "digest": "0c7a4a5cbbcd0c1b5d2e7a0c9b9e2f3d4c5b6a7980a1b2c3d4e5f60718293a4b",
    "family": "llama",
    "parameter_size": "47.0B",
    "quantization_level": "Q4_K_M",
    "parameter_count": 47_000_000_000,
    "block_count": 32,
    "expert_count": 8,
    "expert_used_count": 2,
    "expert_share": 0.95,
    "auto_layers": 9,
    "kv_mib_a_token": 0.125,
}

WORDS = (
    "AI は 今後 10 年 で 医療 、 教育 、 製造 の 現場 に 深く 入り 込み 、 人 と 協働 する 道具 と "
    "なる でしょう 。 一方 で 、 電力 消費 や 偏り 、 雇用 へ の 影響 と いった 課題 に 社会 全体 で "
    "向き合う 必要 が あり ます 。"
).split()

OOM_MESSAGE = "model requires more system memory (45.2 GiB) than is available (30.1 GiB)"


class EngineFailed(Exception):
    """The engine could not load or run the model; the text is the error Ollama would send."""


class Engine(Protocol):
    """A real engine behind the double (tests/engine_double.py): it loads models, generates the
    tokens and measures the final chunk's durations on its own clocks."""

    def load(self, name: str, model: dict[str, Any], options: dict[str, Any]) -> bool:
        """Load the model unless it is loaded (True when this call loaded it); EngineFailed."""

    def generate(self, name: str, prompt: str, options: dict[str, Any]) -> Iterator[str | dict[str, Any]]:
        """Each token's text, then a dict with the final chunk's counts and durations."""

    def unload(self, name: str) -> None:
        """Stop the model's runner and free its memory."""

    def loaded(self) -> dict[str, tuple[int, int, int]]:
        """Every loaded model: (size, size_vram) in bytes and context_length, as /api/ps reports them."""


@dataclass
class DoubleConfig:
    """How the double behaves; change fields between requests to script a test."""

    version: str = "0.5.11"
    models: dict[str, dict[str, Any]] = field(default_factory=lambda: {"llama3.3:latest": dict(LLAMA33)})
    token_rate: float = 200.0  # tokens/s while generating
    cpu_token_rate: float | None = None  # tokens/s when the request asks for num_gpu 0 (default: token_rate)
    tokens: int = 40  # eval_count of a full answer (the model's end of text; options.num_predict stops it sooner)
    cpu_tokens: int | None = None  # the same when the request asks for num_gpu 0 (default: tokens)
    # A thinking model (its dict's "capabilities" has "thinking"): this many chunks of thought, in the
    # `thinking` field with an empty `response`, before the answer, unless the request says think false.
    thinking_tokens: int = 0
    load_delay_s: float = 0.05
    prompt_delay_s: float = 0.02
    unload_delay_s: float = 0.05
    vram_fraction: float = 0.0  # size_vram / size in /api/ps when num_gpu is not 0
    preloaded: tuple[str, ...] = ()
    # "404" | "oom" | "drop" | "malformed" | "stream_error" | "no_final" | "not_ollama" | "proxy_502" | "ps_500"
    # | "stall" (stops sending after fault_after tokens, the connection kept open) | "burst" (every token at once)
    # | "reset" (the connection reset mid-stream: a TCP RST) | "silent" (nothing at all, not even the headers:
    # a load that hangs) | "slow_first_byte" (1.5 s before the answer) | "huge_line" (one token's line of 5 MB)
    # | "long" (this generation goes on at 50 tokens/s until it is stopped: the one a signal is sent during)
    fault: str | None = None
    fault_after: int = 5  # tokens sent before a mid-stream fault
    fault_from: int = 1  # the first generation (counted from 1, unloads left out) that the fault applies to
    fault_once: bool = False  # the fault applies to that generation alone
    pull_fails: bool = False
    llama_server_log: bool = False  # also write llama-server's request timings into the log (Ollama 0.30 on)
    # Behind a gate, as a reverse proxy puts it: this header and value or 401 (none) / 403 (another value).
    require_header: tuple[str, str] | None = None
    tls: tuple[str, str] | None = None  # (certificate, key) PEM files: the double speaks https
    gpu_name: str | None = "NVIDIA GeForce RTX 4060 Ti"  # None: a machine without a GPU
    machine_memory: tuple[int, int] | None = None  # RAM total and available, for the log of a machine without a GPU
    # Benchmarks: `next_token()` replaces the sleep of 1/token_rate before each token (a runner
    # doing CPU work); `on_load(name)` / `on_unload(name)` start and stop a runner process.
    next_token: Callable[[], None] | None = None
    on_load: Callable[[str], None] | None = None
    on_unload: Callable[[str], None] | None = None
    # A real engine (tests/engine_double.py) generates instead of the paced words above.
    engine: Engine | None = None
    # A machine whose GPU is too small (tests/spilling_machine.py): the layers decide the token rate,
    # the GPU's counters and whether the load fails for want of memory.
    machine: Any = None


def log_time() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class ServerLog:
    """Writes the lines Ollama prints around a model load, as 0.3-0.5, as 0.6-0.2x or as 0.30 on did
    (formats as in the real excerpts in tests/fixtures/ollama-logs/), to any `write(str)` callable."""

    ERAS = ("0.5", "go-engine", "llama-server")
    DEFAULT_CONTEXT = {"0.5": 2048, "go-engine": 4096, "llama-server": 4096}  # num_ctx when a request sets none

    BUFFERS = {"cuda": "CUDA0", "rocm": "ROCm0", "vulkan": "Vulkan0"}
    LIBRARY_NAMES = {"cuda": "CUDA", "rocm": "ROCm", "vulkan": "Vulkan"}  # 0.30+ discovery's spelling

    # llama.cpp's bytes a KV value takes, by cache type (q8_0: 34 bytes a block of 32, q4_0: 18)
    KV_BYTES = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
    KV_F16_MIB_A_TOKEN = 640 / 2048  # the 70B's K and V of 80 layers: 640 MiB at 2,048 tokens in f16

    def __init__(
        self, write: Any, era: str = "0.5", library: str = "cuda", server_env: dict[str, str] | None = None
    ) -> None:
        """`era`: "0.5", the llama.cpp runner's lines (`llm_load_tensors:`), or "go-engine", Ollama's own
        engine's (0.6 to 0.2x: `runner --ollama-engine`, ggml.go's `offloaded N/M layers to GPU`).
        "llama-server", llama-server's (0.30 on: `starting llama-server`, llama.cpp's `load_tensors:`).
        `library`: the GPU's, `cuda` or `rocm`. `server_env`: the settings `ollama serve` was started
        with (OLLAMA_FLASH_ATTENTION, OLLAMA_KV_CACHE_TYPE, OLLAMA_NUM_PARALLEL, and from 0.30
        LLAMA_ARG_CPU_MOE / LLAMA_ARG_N_CPU_MOE), as each era obeys them: 0.5.11 a quantized KV cache
        only with flash attention on, llama-server unless flash attention is off."""
        if era not in self.ERAS:
            raise ValueError(f"unknown log era {era!r}: one of {', '.join(self.ERAS)}")
        self.write = write
        self.era = era
        self.library = library
        self.buffer = self.BUFFERS[library]
        env = server_env or {}
        flash = env.get("OLLAMA_FLASH_ATTENTION", "").strip().lower()
        self.flash = flash in ("1", "true")
        self.flash_flag = "on" if self.flash else "off" if flash in ("0", "false") and era == "llama-server" else "auto"
        kv = env.get("OLLAMA_KV_CACHE_TYPE", "").strip().lower()
        honoured = self.flash if era != "llama-server" else self.flash_flag != "off"
        self.kv_type = kv if honoured and kv in self.KV_BYTES else "f16"
        self.kv_flag = era == "llama-server" and kv in self.KV_BYTES and honoured
        parallel = env.get("OLLAMA_NUM_PARALLEL", "").strip()
        self.parallel = int(parallel) if parallel.isdigit() and int(parallel) > 0 else 1
        # llama-server reads LLAMA_ARG_* from its environment, which Ollama 0.30+ passes on; older runners do not.
        self.cpu_moe: int | None = None  # layers whose experts stay in system memory (a large number: all)
        if era == "llama-server":
            if env.get("LLAMA_ARG_CPU_MOE", "").strip().lower() in ("1", "true", "on"):
                self.cpu_moe = 1 << 30
            elif (layers := env.get("LLAMA_ARG_N_CPU_MOE", "").strip()).isdigit():
                self.cpu_moe = int(layers)

    def kv_mib(
        self, model: dict[str, Any], context: int, kv_type: str | None = None, slots: int | None = None
    ) -> float:
        """The KV cache's MiB for `context` tokens a slot (this server's type and slots by default)."""
        per_token = float(model.get("kv_mib_a_token", self.KV_F16_MIB_A_TOKEN))
        cells = context * (self.parallel if slots is None else slots)
        return per_token * cells * self.KV_BYTES[kv_type or self.kv_type] / 2

    def shape(self, model: dict[str, Any], context: int) -> Shape:
        """What this server's settings make of a load of `model` (for the spilling machine)."""
        experts, used = model.get("expert_count"), model.get("expert_used_count")
        share = float(model.get("expert_share", 0.0)) if experts and used else 0.0
        kv_extra = (self.kv_mib(model, context) - self.kv_mib(model, context, "f16", 1)) * 2**20
        moe = min(self.cpu_moe or 0, model["block_count"]) if share else 0
        return Shape(share, used / experts if share else 1.0, moe, int(kv_extra))

    def line(self, text: str) -> None:
        self.write(text + "\n")

    def structured(self, source: str, msg: str, fields: str = "") -> None:
        self.line(f"time={log_time()} level=INFO source={source} msg={msg}" + (f" {fields}" if fields else ""))

    def listening(self, host: str, version: str, gpu_name: str | None, memory: tuple[int, int] | None = None) -> None:
        """The start-up lines; `gpu_name` None is a machine without a GPU (`memory`: its RAM total
        and available, in bytes)."""
        self.structured("routes.go:1238", f'"Listening on {host} (version {version})"')
        if self.era == "llama-server" and gpu_name is not None:  # real 0.34.4's words (../shared/vulkan-gpu.md)
            self.structured(
                "types.go:32",
                '"inference compute"',
                f"id=0 filter_id=0 library={self.LIBRARY_NAMES[self.library]} compute=0.0 name={self.buffer} "
                f'description="{gpu_name}" libdirs=ollama driver=0.0 pci_id="" type=discrete total="15.6 GiB" '
                'available="14.9 GiB"',
            )
            self.structured(
                "routes.go:2115", '"vram-based default context"', 'total_vram="15.6 GiB" default_num_ctx=4096'
            )
            return
        if gpu_name is None:
            total, available = memory or (0, 0)
            self.structured(
                "types.go:130",
                '"inference compute"',
                f'id=0 library=cpu variant="" compute="" driver=0.0 name="" total="{gib(total)}" '
                f'available="{gib(available)}"',
            )
            return
        self.structured(
            "types.go:131",
            '"inference compute"',
            (
                f'id=GPU-5c9d1f3a library=cuda variant=v12 compute=8.9 driver=12.4 name="{gpu_name}" '
                if self.library == "cuda"
                else f'id=0 library=rocm variant="" compute=gfx1102 driver=6.2 name="{gpu_name}" '
            )
            + 'total="15.6 GiB" available="14.9 GiB"',
        )

    def load(
        self,
        model: dict[str, Any],
        gpu_layers: int,
        cpu_only: bool,
        context: int = 2048,
        asked: bool = True,
        gpu_reserved: int | None = None,
    ) -> tuple[int, int] | None:
        """A load's lines: `gpu_layers` on the GPU (`cpu_only`: the request asked for none), `asked`:
        the request set num_gpu (llama-server gets `-ngl` only then). `gpu_reserved`: the bytes the
        GPU holds beside the weights (the spilling machine's KV cache and compute buffers), so that
        llama-server's buffer lines add up to what the GPU's counters show. From 0.30 on: (the bytes of
        every buffer logged, those on the GPU), which real 0.34's /api/ps gives as size and size_vram."""
        total = model["block_count"] + 1
        if self.era == "llama-server":
            return self._llama_server_load(model, gpu_layers, cpu_only, context, asked, gpu_reserved)
        library = "cpu" if cpu_only else self.library
        estimate = (
            f"layers.requested={0 if cpu_only else -1} layers.model={total} layers.offload={gpu_layers} "
            'layers.split="" memory.available="[15.6 GiB]" memory.gpu_overhead="0 B" '
            'memory.required.full="44.4 GiB" memory.required.partial="15.2 GiB" memory.required.kv="640.0 MiB" '
            'memory.required.allocations="[15.2 GiB]"'
        )
        blob = f"/root/.ollama/models/blobs/sha256-{model['digest']}"
        flags = (
            f"--ctx-size {context * self.parallel} --batch-size 512 --n-gpu-layers {gpu_layers} --threads 8"
            + (f" --flash-attn --kv-cache-type {self.kv_type}" if self.flash else "")
            + f" --parallel {self.parallel} --port 41233"
        )
        if self.era == "go-engine":
            self._go_engine_load(total, gpu_layers, library, estimate, f"--model {blob} {flags}")
            return
        self.structured("memory.go:326", f'"offload to {library}"', estimate)
        runner = "cpu_avx2" if cpu_only else {"cuda": "cuda_v12", "rocm": "rocm_v6"}[self.library]
        self.structured(
            "server.go:388",
            '"starting llama server"',
            f'cmd="/usr/lib/ollama/runners/{runner}/ollama_llama_server --model {blob} {flags}"',
        )
        if cpu_only:  # a CPU runner prints no "offloaded" line (as in fixture 08)
            self.line("llm_load_tensors:        CPU buffer size = 40550.27 MiB")
            self._context(0, total, context * self.parallel)
            return
        self.line(f"llm_load_tensors: offloading {min(gpu_layers, total - 1)} repeating layers to GPU")
        self.line(f"llm_load_tensors: offloaded {gpu_layers}/{total} layers to GPU")
        gpu_mib = 40550.27 * gpu_layers / total
        self.line(f"llm_load_tensors:        CPU buffer size = {40550.27 - gpu_mib:8.2f} MiB")
        self.line(f"llm_load_tensors: {self.buffer:>9} buffer size = {gpu_mib:8.2f} MiB")
        self._context(gpu_layers, total, context * self.parallel)

    def _context(self, gpu_layers: int, total: int, cells: int) -> None:
        """llama.cpp's context lines as 0.5.11's runner prints them (the real order): flash attention,
        the KV cache per device and by type, the compute buffers."""
        self.line(f"llama_new_context_with_model: flash_attn    = {int(self.flash)}")
        kv_mib = self.KV_F16_MIB_A_TOKEN * cells * self.KV_BYTES[self.kv_type] / 2
        on_gpu = kv_mib * min(gpu_layers, total - 1) / (total - 1)
        if on_gpu:
            self.line(f"llama_kv_cache_init: {self.buffer:>10} KV buffer size = {on_gpu:8.2f} MiB")
        if kv_mib - on_gpu:
            self.line(f"llama_kv_cache_init:        CPU KV buffer size = {kv_mib - on_gpu:8.2f} MiB")
        half = kv_mib / 2
        self.line(
            f"llama_new_context_with_model: KV self size  = {kv_mib:7.2f} MiB, K ({self.kv_type}): {half:7.2f} MiB, "
            f"V ({self.kv_type}): {half:7.2f} MiB"
        )
        if gpu_layers:
            self.line(f"llama_new_context_with_model: {self.buffer:>10} compute buffer size =   266.50 MiB")
            self.line("llama_new_context_with_model:  CUDA_Host compute buffer size =    24.01 MiB")
        else:
            self.line("llama_new_context_with_model:        CPU compute buffer size =   266.50 MiB")

    def _llama_server_load(
        self, model: dict[str, Any], gpu_layers: int, cpu_only: bool, context: int, asked: bool, reserved: int | None
    ) -> tuple[int, int]:
        """Ollama 0.30 on (real 0.34.4's words, fixture 11; a GPU's lines as llama.cpp prints them): Ollama's
        start line, then llama-server's own output, with the experts that LLAMA_ARG_*CPU_MOE keeps in
        system memory as llama.cpp's debug lines name them (Ollama runs it at --log-verbosity 4)."""
        blocks, size = model["block_count"], model["size"]
        total = blocks + 1
        blob = f"/root/.ollama/models/blobs/sha256-{model['digest']}"
        self.structured("server.go:100", '"using llama-server for model"', f"model={blob}")
        flags = (
            f"--model {blob} --port 41233 --host 127.0.0.1 --no-webui --offline -c {context * self.parallel} "
            f"-np {self.parallel} --log-verbosity 4 --no-log-prefix --no-log-timestamps"
            + (" --load-mode none" if cpu_only else "")
            + (f" --cache-type-k {self.kv_type} --cache-type-v {self.kv_type}" if self.kv_flag else "")
            + f" --flash-attn {self.flash_flag} -b 512 -ub 512"
            + (f" -ngl {gpu_layers}" if asked else "")
            + " --context-shift --keep 4"
        )
        self.structured("llama_server.go:436", '"starting llama-server"', f'cmd="/usr/lib/ollama/llama-server {flags}"')
        self.line(f"print_info: n_layer               = {blocks}")
        shape = self.shape(model, context)
        layer_mib = size / total / 2**20
        on_gpu = min(max(gpu_layers, 0), total)
        kept = min(shape.cpu_moe, blocks)  # llama.cpp overrides the first N blocks' expert tensors
        if shape.expert_share:
            self.line(f"print_info: n_expert              = {model['expert_count']}")
            self.line(f"print_info: n_expert_used         = {model['expert_used_count']}")
            for block in range(kept):
                for tensor in ("ffn_gate_exps", "ffn_down_exps", "ffn_up_exps"):
                    mib = int(layer_mib * shape.expert_share / 3)
                    self.line(f"tensor blk.{block}.{tensor}.weight ({mib} MiB q4_K) buffer type overridden to CPU")
        kept_mib = layer_mib * shape.expert_share * experts_overlap(total, on_gpu, kept)
        gpu_mib = layer_mib * on_gpu - kept_mib
        self.line(f"load_tensors: loading model tensors, this can take a while... (mmap = {str(not cpu_only).lower()})")
        if self.library and not cpu_only:
            if on_gpu:
                self.line(f"load_tensors: offloading {min(on_gpu, blocks)} repeating layers to GPU")
            if on_gpu == total:
                self.line("load_tensors: offloading output layer to GPU")
            self.line(f"load_tensors: offloaded {on_gpu}/{total} layers to GPU")
        host = "CPU" if cpu_only else "CPU_Mapped"  # real 0.34.4 (llama.cpp b10xxx): the host's buffers first
        self.line(f"load_tensors: {host:>12} model buffer size = {size / 2**20 - gpu_mib:10.2f} MiB")
        if gpu_mib > 0:
            self.line(f"load_tensors: {self.buffer:>12} model buffer size = {gpu_mib:10.2f} MiB")
        self.line(f"llama_context: n_ctx_seq             = {context}")
        self.line(f"llama_context: flash_attn            = {self.flash_flag}")
        kv_mib = self.kv_mib(model, context)
        kv_gpu = kv_mib * min(on_gpu, blocks) / blocks
        if kv_mib - kv_gpu:
            self.line(f"llama_kv_cache:        CPU KV buffer size = {kv_mib - kv_gpu:8.2f} MiB")
        if kv_gpu:
            self.line(f"llama_kv_cache: {self.buffer:>10} KV buffer size = {kv_gpu:8.2f} MiB")
        cells = context * self.parallel
        half = kv_mib / 2
        self.line(
            f"llama_kv_cache: size = {kv_mib:8.2f} MiB ({cells:6d} cells, {blocks:3d} layers, "
            f"{self.parallel}/{self.parallel} seqs), K ({self.kv_type}): {half:8.2f} MiB, "
            f"V ({self.kv_type}): {half:8.2f} MiB"
        )
        if self.flash_flag != "off":
            self.line("resolve_fused_ops: Flash Attention enabled")
        if on_gpu:
            compute = 266.50 if reserved is None else max(reserved / 2**20 - kv_gpu, 0.0)
            self.line(f"sched_reserve: {self.buffer:>10} compute buffer size = {compute:10.2f} MiB")
            host_buffer = f"{self.LIBRARY_NAMES[self.library]}_Host"  # llama.cpp's pinned host memory: CUDA_Host
            self.line(f"sched_reserve: {host_buffer:>10} compute buffer size =    24.01 MiB")
            gpu, host = max(gpu_mib, 0.0) + kv_gpu + compute, 24.01
        else:
            self.line("sched_reserve:        CPU compute buffer size =   266.50 MiB")
            gpu, host = 0.0, 266.50
        host += size / 2**20 - max(gpu_mib, 0.0) + kv_mib - kv_gpu
        return int((gpu + host) * 2**20), int(gpu * 2**20)

    def _go_engine_load(self, total: int, gpu_layers: int, library: str, estimate: str, args: str) -> None:
        """Ollama's own engine (0.6 to 0.2x), as in fixtures 01 and 05: the runner is `ollama runner
        --ollama-engine` and ggml.go prints the offload and the weights per buffer."""
        self.structured("server.go:175", "offload", f"library={library} {estimate}")
        self.structured(
            "server.go:438", '"starting llama server"', f'cmd="/usr/local/bin/ollama runner --ollama-engine {args}"'
        )
        self.structured("runner.go:925", '"starting ollama engine"')
        repeating = min(gpu_layers, total - 1)
        self.structured("ggml.go:359", f'"offloading {repeating} repeating layers to GPU"')
        self.structured("ggml.go:365", f'"offloading output layer to {"GPU" if gpu_layers >= total else "CPU"}"')
        self.structured("ggml.go:375", f'"offloaded {gpu_layers}/{total} layers to GPU"')
        gpu_gib = 39.6 * gpu_layers / total
        if gpu_layers:
            self.structured("ggml.go:377", '"model weights"', f'buffer={self.buffer} size="{gpu_gib:.1f} GiB"')
        self.structured("ggml.go:377", '"model weights"', f'buffer=CPU size="{39.6 - gpu_gib:.1f} GiB"')
        if gpu_layers:  # as fixture 01: the graph per backend, after the weights
            self.structured(
                "ggml.go:666", '"compute graph"', f'backend={self.buffer} buffer_type={self.buffer} size="1.1 GiB"'
            )
        self.structured("ggml.go:666", '"compute graph"', 'backend=CPU buffer_type=CPU size="10.5 MiB"')

    def access(self, status: int, seconds: float, client: str, method: str, path: str) -> None:
        """gin's access line, printed as each request ends (every Ollama, 0.1 to 0.34)."""
        when = dt.datetime.now().strftime("%Y/%m/%d - %H:%M:%S")
        self.line(f'[GIN] {when} | {status} | {go_duration_text(seconds):>13} | {client:>15} | {method:<7} "{path}"')

    def started(self, seconds: float) -> None:
        if self.era == "llama-server":
            self.structured("llama_server.go:1374", f'"llama-server started in {seconds:.2f} seconds"')
            return
        self.structured("server.go:626", f'"llama runner started in {seconds:.2f} seconds"')

    def terminated(self, error: str) -> None:
        self.line(f'time={log_time()} level=ERROR source=server.go:464 msg="llama runner terminated" error="{error}"')

    # llama-server's own lines (Ollama 0.30 on copies them into its log), as tools/server prints them.
    def prompt_progress(self, task: int, tokens: int, progress: float, seconds: float) -> None:
        self.line(
            f"slot print_timing: id  0 | task {task} | prompt processing, n_tokens = {tokens:6d}, progress = "
            f"{progress:.2f}, t = {seconds:7.2f} s / {tokens / seconds:.2f} tokens per second"
        )

    def decoding(self, task: int, decoded: int, rate: float) -> None:
        self.line(f"slot print_timing: id  0 | task {task} | n_decoded = {decoded:6d}, tg = {rate:6.2f} t/s")

    def request_timings(self, task: int, prompt: tuple[int, float], evaluated: tuple[int, float]) -> None:
        """The lines after a request: (tokens, milliseconds) of the prompt and of the generation."""
        for label, (tokens, ms) in (("prompt eval time", prompt), ("       eval time", evaluated)):
            per_token = ms / tokens if tokens else 0.0
            rate = 1000 * tokens / ms if ms else 0.0
            self.line(
                f"slot print_timing: id  0 | task {task} | {label} = {ms:10.2f} ms / {tokens:5d} tokens "
                f"({per_token:8.2f} ms per token, {rate:8.2f} tokens per second)"
            )


def go_duration_text(seconds: float) -> str:
    """A duration as Go's time.Duration prints it: `6.909257441s`, `2.193542ms`, `102.752µs`."""
    if seconds >= 60:
        minutes, rest = divmod(seconds, 60)
        return f"{int(minutes)}m" + f"{rest:.9f}".rstrip("0").rstrip(".") + "s"
    if seconds >= 1:
        return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"
    for unit, scale in (("ms", 1e3), ("µs", 1e6)):
        if seconds * scale >= 1:
            return f"{seconds * scale:.6f}".rstrip("0").rstrip(".") + unit
    return f"{round(seconds * 1e9)}ns"


def gib(size: int) -> str:
    """Bytes as Ollama's log prints them (format.HumanBytes2): `23.4 GiB`, `640.0 MiB`."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _now_text() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


INTEGER_OPTIONS = ("num_ctx", "num_gpu", "num_predict", "seed", "num_batch", "num_thread", "num_keep", "top_k")
NUMBER_OPTIONS = ("temperature", "top_p", "min_p", "repeat_penalty")


def _mistyped_option(options: dict[str, Any]) -> str | None:
    """Ollama's error for an option of the wrong type (api/types.go: `option "num_ctx" must be of type
    integer`), as tests/test_ollama_contract.py saw the real servers answer it; None when all are fine."""
    for key, value in options.items():
        if key in INTEGER_OPTIONS and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return f'option "{key}" must be of type integer'
        if key in NUMBER_OPTIONS and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return f'option "{key}" must be of type float'
    return None


def _canonical(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    connections: set[Any]

    def process_request(self, request: Any, client_address: Any) -> None:
        if not hasattr(self, "connections"):
            self.connections = set()
        self.connections.add(request)  # kept, so that go_away() can close them as a dying server does
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-stream (llmtop quitting) is normal, not an error."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class OllamaDouble:
    """Start with `start()`, stop with `stop()`; `url` is its base URL, `requests` what it got."""

    def __init__(self, config: DoubleConfig | None = None, port: int = 0, log: ServerLog | None = None) -> None:
        self.config = config or DoubleConfig()
        self.log = log
        self.requests: list[tuple[str, str, dict[str, Any]]] = []  # POSTs, with their bodies
        self.gets: list[str] = []  # the path of every GET
        self.finals: list[dict[str, Any]] = []  # every final chunk sent, as sent
        self.prompts: list[str] = []  # every generate request's prompt, as received
        self.loaded: dict[str, dict[str, Any]] = {}
        self.stalled = threading.Event()  # set to release a stalled stream (stop() sets it)
        self.generations = 0  # generate requests with a prompt so far
        self.proxied = 0  # requests that came as to a proxy (absolute-form targets)
        self._lock = threading.Lock()
        for name in self.config.preloaded:
            self._load(name, None)
        double = self

        class Handler(_Handler):
            owner = double

        self._server = _Server(("127.0.0.1", port), Handler)
        if self.config.tls is not None:
            import ssl

            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.config.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"{'https' if self.config.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> OllamaDouble:
        if self.log is not None:
            self.log.listening(
                f"127.0.0.1:{self.port}", self.config.version, self.config.gpu_name, self.config.machine_memory
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="ollama-double", daemon=True
        )
        self._thread.start()
        return self

    def go_away(self) -> None:
        """The server dies: it stops listening and every open connection is closed."""
        self.stop()
        self._server.server_close()
        for connection in list(getattr(self._server, "connections", ())):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        self.stalled.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> OllamaDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _find(self, name: str) -> dict[str, Any] | None:
        return self.config.models.get(_canonical(name))

    def _load(self, name: str, options: dict[str, Any] | None) -> bool:
        """Load the model as the options ask; False when the machine has not the memory for it."""
        model = self._find(name)
        if model is None:
            return True
        num_gpu = (options or {}).get("num_gpu")
        total = model["block_count"] + 1
        machine = self.config.machine
        if num_gpu is None:
            auto = int(model.get("auto_layers", machine.auto_layers)) if machine is not None else None
            layers = auto if auto is not None else round(total * self.config.vram_fraction)
        else:
            layers = min(num_gpu, total)
        vram = int(model["size"] * layers / total)
        era = self.log.era if self.log is not None else "0.5"
        context = int((options or {}).get("num_ctx") or ServerLog.DEFAULT_CONTEXT[era])
        shape = self.log.shape(model, context) if self.log is not None else Shape()
        size = model["size"] + 1_500_000_000
        if self.log is not None:
            reserved = machine.overhead(shape) if machine is not None else None
            logged = self.log.load(model, layers, num_gpu == 0, context, num_gpu is not None, reserved)
            if logged is not None and machine is None:  # 0.30+: /api/ps gives the buffers llama-server logged
                size, vram = logged
        rate = None
        if machine is not None:
            weights = model["size"]
            if not machine.fits(weights, total, layers, shape):
                if self.log is not None:
                    self.log.line("llama_model_load: error loading model: unable to allocate ROCm0 buffer")
                    self.log.terminated("error loading model: unable to allocate ROCm0 buffer")
                return False
            dedicated, shared = machine.placement(weights, total, layers, shape)
            machine.fill(dedicated, shared, machine.overhead(shape) if layers else 0)
            machine.draw(weights, total, layers, shape)
            vram = min(dedicated + shared, weights)
            rate = machine.token_rate(weights, total, layers, shape)
        with self._lock:
            fresh = _canonical(name) not in self.loaded
            self.loaded[_canonical(name)] = {
                "size": size,
                "size_vram": vram,
                "context_length": context,
                "rate": rate,
            }
        if fresh and self.config.on_load is not None:
            self.config.on_load(_canonical(name))
        return True

    def _unload_later(self, name: str) -> None:
        engine = self.config.engine
        if engine is not None:  # as Ollama's scheduler: the runner is stopped, then the model is no longer listed
            threading.Thread(target=engine.unload, args=(_canonical(name),), daemon=True).start()
            return

        def unload() -> None:
            time.sleep(self.config.unload_delay_s)
            with self._lock:
                was_loaded = self.loaded.pop(_canonical(name), None) is not None
            if was_loaded and self.config.machine is not None:
                self.config.machine.release()
                self.config.machine.draw(0, 0, -1)
            if was_loaded and self.config.on_unload is not None:
                self.config.on_unload(_canonical(name))

        threading.Thread(target=unload, daemon=True).start()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ollama-double"
    # As Go's net/http does for Ollama: TCP_NODELAY. Without it, Nagle's algorithm and the client's
    # delayed ACK hold the first chunk back by about 40 ms, which is the double's, not Ollama's.
    disable_nagle_algorithm = True
    owner: OllamaDouble

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def _logged(self, handle: Callable[[], None]) -> None:
        """Handle a request; then, as Ollama's gin does, the access line in the server log."""
        began, self._status = time.monotonic(), 0
        try:
            handle()
        finally:
            if self.owner.log is not None and self._status:
                path = urllib.parse.urlsplit(self.path).path or self.path
                self.owner.log.access(
                    self._status, time.monotonic() - began, self.client_address[0], self.command, path
                )

    def do_GET(self) -> None:
        self._logged(self._get)

    def do_POST(self) -> None:
        self._logged(self._post)

    # -- plumbing --------------------------------------------------------------------------
    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        self.owner.requests.append((self.command, self.path, body))
        return body

    def _json(self, status: int, value: Any) -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _line(self, value: Any) -> None:
        self._chunk(json.dumps(value, ensure_ascii=False).encode() + b"\n")

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _drop(self, reset: bool = False) -> None:
        """Close the connection in the middle of the chunked body, as a dying runner does; `reset`:
        abort it (a TCP RST, as a crashed host or a middlebox sends)."""
        self.wfile.flush()
        self.close_connection = True
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- routes -----------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _refused(self) -> bool:
        """Behind a gate: answer 401 or 403 as the reverse proxy would, and say so."""
        wanted = self.owner.config.require_header
        if wanted is None:
            return False
        got = self.headers.get(wanted[0])
        if got == wanted[1]:
            return False
        if self.command == "POST":
            self._body()
        self._json(401 if got is None else 403, {"error": "unauthorized" if got is None else "forbidden"})
        return True

    def parse_request(self) -> bool:
        """A request for `http://host:port/path` (the absolute form a client sends to a proxy) is
        answered as one for `/path`: the double serves as the HTTP proxy of the environment too."""
        if not super().parse_request():
            return False
        if self.path.startswith(("http://", "https://")):
            self.owner.proxied += 1
            self.path = "/" + self.path.split("://", 1)[1].partition("/")[2]
        return True

    def _get(self) -> None:
        cfg = self.owner.config
        if self._refused():
            return
        self.owner.gets.append(self.path)
        if cfg.fault == "not_ollama":
            self._json(404, {"detail": "Not Found"})
            return
        if self.path == "/":
            data = b"Ollama is running"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif self.path == "/api/version":
            self._json(200, {"version": cfg.version})
        elif self.path == "/api/tags":
            self._json(200, {"models": [self._tag(m) for m in cfg.models.values()]})
        elif self.path == "/api/ps" and cfg.fault == "ps_500" and self._ps_fails():
            self._error(500, "internal error")
        elif self.path == "/api/ps":
            with self.owner._lock:
                loaded = dict(self.owner.loaded)
            if cfg.engine is not None:
                loaded = {
                    name: {"size": size, "size_vram": vram, "context_length": context}
                    for name, (size, vram, context) in cfg.engine.loaded().items()
                }
            expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)).isoformat()
            models = []
            for name, state in loaded.items():
                entry = self._tag(cfg.models[name])
                entry.pop("modified_at")
                entry.update(
                    size=state["size"],
                    size_vram=state["size_vram"],
                    expires_at=expires,
                    context_length=state["context_length"],
                )
                models.append(entry)
            self._json(200, {"models": models})
        else:
            self._error(404, "404 page not found")

    def _ps_fails(self) -> bool:
        """ps_500 from the run before generation `fault_from` on, its unload included (with fault_once,
        until the next generation begins)."""
        cfg, count = self.owner.config, self.owner.generations
        return count >= cfg.fault_from - 1 and not (cfg.fault_once and count > cfg.fault_from)

    def _post(self) -> None:
        if self._refused():
            return
        body = self._body()
        if self.path == "/api/show":
            self._show(body)
        elif self.path == "/api/generate":
            self._generate(body)
        elif self.path == "/api/pull":
            self._pull(body)
        else:
            self._error(404, "404 page not found")

    @staticmethod
    def _details(model: dict[str, Any]) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": model["family"],
            "families": [model["family"]],
            "parameter_size": model["parameter_size"],
            "quantization_level": model["quantization_level"],
        }

    def _tag(self, model: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": model["name"],
            "model": model["name"],
            "modified_at": "2024-12-07T10:21:40.123456789+09:00",
            "size": model["size"],
            "digest": model["digest"],
            "details": self._details(model),
        }

    def _show(self, body: dict[str, Any]) -> None:
        name = body.get("model") or body.get("name") or ""
        model = self.owner._find(name)
        if model is None:
            self._error(404, f"model '{name}' not found")
            return
        arch = model["family"]
        self._json(
            200,
            {
                "license": model.get("license", "LLAMA 3.3 COMMUNITY LICENSE AGREEMENT"),
                "modelfile": f"FROM {model['name']}\n",
                "parameters": model.get("parameters", 'stop "<|eot_id|>"'),
                "template": model.get("template", "{{ .Prompt }}"),
                "details": self._details(model),
                "model_info": model.get("model_info")
                or {
                    "general.architecture": arch,
                    "general.parameter_count": model["parameter_count"],
                    "general.file_type": 15,
                    f"{arch}.block_count": model["block_count"],
                    f"{arch}.context_length": 131072,
                    f"{arch}.embedding_length": 8192,
                    **{f"{arch}.{key}": model[key] for key in ("expert_count", "expert_used_count") if key in model},
                },
                "capabilities": list(model.get("capabilities", ["completion", "tools"])),
                **({"thinking": model["thinking"]} if "thinking" in model else {}),
                "modified_at": "2024-12-07T10:21:40.123456789+09:00",
            },
        )

    def _generate(self, body: dict[str, Any]) -> None:
        cfg = self.owner.config
        name = body.get("model") or ""
        self.owner.prompts.append(str(body.get("prompt") or ""))
        if body.get("prompt"):
            self.owner.generations += 1
            count = self.owner.generations
            if count < cfg.fault_from or (cfg.fault_once and count > cfg.fault_from):
                cfg = dataclasses.replace(cfg, fault=None)  # not this generation's fault
        elif cfg.fault_once or cfg.fault_from > 1:  # an unload: a fault aimed at one generation spares it
            cfg = dataclasses.replace(cfg, fault=None)
        if self.owner._find(name) is None or cfg.fault == "404":
            self._error(404, f"model '{name}' not found")  # 0.5.11 to 0.34's words
            return
        wrong = _mistyped_option(body.get("options") or {})
        if wrong is not None:  # as real Ollama (0.5.11 to 0.34) answers it: a 500, not a 400
            self._error(500, wrong)
            return
        think = body.get("think")
        model = self.owner._find(name) or {}
        if think not in (None, False, "false") and "thinking" not in (model.get("capabilities") or ()):
            self._error(400, f'"{name}" does not support thinking')  # 0.34's words
            return
        if cfg.fault == "proxy_502" and body.get("prompt"):  # a reverse proxy whose upstream failed
            page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            self.send_response(502)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        if body.get("keep_alive") == 0 and not body.get("prompt"):
            self.owner._unload_later(name)
            self._json(
                200, {"model": name, "created_at": _now_text(), "response": "", "done": True, "done_reason": "unload"}
            )
            return
        if cfg.engine is not None:
            self._generate_with_engine(cfg.engine, _canonical(name), body)
            return
        started = time.monotonic_ns()
        already = _canonical(name) in self.owner.loaded
        if not self.owner._load(name, body.get("options")):
            time.sleep(cfg.load_delay_s)
            from spilling_machine import OOM_ERROR

            self._error(500, OOM_ERROR)
            return
        if not already:
            time.sleep(cfg.load_delay_s)
        loaded_at = time.monotonic_ns()
        if not already and self.owner.log is not None and cfg.fault != "oom":
            self.owner.log.started((loaded_at - started) / 1e9)
        if cfg.fault == "slow_first_byte":  # a long load or prompt: the first byte comes late, then all is well
            time.sleep(1.5)
        if cfg.fault == "silent":  # a load that hangs: no answer at all, the connection open
            self.owner.stalled.wait(600)
            return
        if cfg.fault == "oom":
            with self.owner._lock:
                self.owner.loaded.pop(_canonical(name), None)
            self._error(500, OOM_MESSAGE)
            return
        cpu_only = (body.get("options") or {}).get("num_gpu") == 0
        rate = cfg.cpu_token_rate if cpu_only and cfg.cpu_token_rate else cfg.token_rate
        machine_rate = (self.owner.loaded.get(_canonical(name)) or {}).get("rate")
        if machine_rate:
            rate = machine_rate
        if cfg.llama_server_log and self.owner.log is not None and cfg.prompt_delay_s >= 1:
            time.sleep(cfg.prompt_delay_s / 2)  # a long prompt: llama-server says how far it has got
            self.owner.log.prompt_progress(len(self.owner.finals), 2560, 0.5, cfg.prompt_delay_s / 2)
            time.sleep(cfg.prompt_delay_s / 2)
        else:
            time.sleep(cfg.prompt_delay_s)
        prompt_done = time.monotonic_ns()
        streaming = body.get("stream") is not False  # `"stream": false`: one JSON object at the end
        if streaming:
            self._start_stream()
        count = 0
        words: list[str] = []
        held: list[bytes] = []  # "burst": a buffering proxy, which sends the whole answer at once
        if cfg.fault == "long":
            cfg = dataclasses.replace(cfg, tokens=100_000)
            rate = 50.0
        options = body.get("options") or {}
        answer = cfg.cpu_tokens if cfg.cpu_tokens is not None and options.get("num_gpu") == 0 else cfg.tokens
        think = body.get("think")
        thinks = "thinking" in ((self.owner._find(name) or {}).get("capabilities") or ())
        thoughts = cfg.thinking_tokens if thinks and think not in (False, "false") else 0
        limit = options.get("num_predict")
        ended = "stop"  # the model's end of text, as Ollama says it; "length": num_predict stopped it
        if isinstance(limit, int) and 0 < limit < thoughts + answer:  # num_predict counts thought and answer
            thoughts = min(thoughts, limit)
            answer, ended = limit - thoughts, "length"
        for i in range(thoughts):  # Ollama's thinking parser: the thought in `thinking`, `response` empty
            time.sleep(1.0 / rate)
            if streaming:
                self._line({"model": name, "created_at": _now_text(), "response": "", "thinking": f"t{i} ",
                            "done": False})  # fmt: skip
            count += 1
        for i in range(answer):
            if cfg.fault == "stall" and i == cfg.fault_after:  # a stuck runner: silence, the connection open
                self.owner.stalled.wait(600)
                return
            if cfg.fault in ("drop", "reset", "malformed", "stream_error") and i == cfg.fault_after:
                if cfg.fault in ("drop", "reset"):
                    if self.owner.log is not None:
                        self.owner.log.terminated("exit status 2")
                    self._drop(reset=cfg.fault == "reset")
                elif cfg.fault == "malformed":
                    self._chunk(b'{"model":"' + name.encode() + b'","response":"tok\n')
                    self._end_stream()
                else:
                    self._line({"error": "an error was encountered while running the model: unexpected EOF"})
                    self._end_stream()
                return
            if cfg.next_token is not None:
                cfg.next_token()
            else:
                time.sleep(1.0 / rate)
            word = WORDS[i % len(WORDS)]
            if cfg.fault == "huge_line" and i == cfg.fault_after:
                word = "x" * 5_000_000
            if cfg.llama_server_log and self.owner.log is not None and i and i % 10 == 0:
                self.owner.log.decoding(len(self.owner.finals), i, i / ((time.monotonic_ns() - prompt_done) / 1e9))
            line = {"model": name, "created_at": _now_text(), "response": word, "done": False}
            if not streaming:
                words.append(word)
            elif cfg.fault == "burst":
                held.append(json.dumps(line, ensure_ascii=False).encode() + b"\n")
            else:
                self._line(line)
            count += 1
        if held:
            self._chunk(b"".join(held))
        finished = time.monotonic_ns()
        if cfg.fault == "no_final":
            self._end_stream()
            return
        final = {
            "model": name,
            "created_at": _now_text(),
            "response": "",
            "done": True,
            "done_reason": ended,
            "context": [128006, 882, 128007],
            "total_duration": finished - started,
            "load_duration": loaded_at - started,
            "prompt_eval_count": 26,
            "prompt_eval_duration": prompt_done - loaded_at,
            "eval_count": count,
            "eval_duration": finished - prompt_done,
        }
        self.owner.finals.append(final)
        if cfg.llama_server_log and self.owner.log is not None:
            prompt = (final["prompt_eval_count"], final["prompt_eval_duration"] / 1e6)
            self.owner.log.request_timings(len(self.owner.finals) - 1, prompt, (count, final["eval_duration"] / 1e6))
        if not streaming:
            self._json(200, dict(final, response="".join(words)))
            return
        self._line(final)
        self._end_stream()

    def _generate_with_engine(self, engine: Engine, name: str, body: dict[str, Any]) -> None:
        """As Ollama does: load (500 with the error if the runner fails), then stream what the
        runner generates; a runner that dies mid-stream ends the stream with an error line."""
        started = time.monotonic_ns()
        options = body.get("options") or {}
        try:
            engine.load(name, self.owner._find(name) or {}, options)
        except EngineFailed as exc:
            self._error(500, str(exc))
            return
        loaded_at = time.monotonic_ns()
        streaming = body.get("stream") is not False
        if streaming:
            self._start_stream()
        text = []
        try:
            for item in engine.generate(name, body.get("prompt") or "", options):
                if isinstance(item, str):
                    if streaming:
                        self._line({"model": name, "created_at": _now_text(), "response": item, "done": False})
                    else:
                        text.append(item)
                    continue
                final = {  # Ollama's keys, in Ollama's order
                    "model": name,
                    "created_at": _now_text(),
                    "response": "",
                    "done": True,
                    "done_reason": item["done_reason"],
                    "context": item["context"],
                    "total_duration": time.monotonic_ns() - started,
                    "load_duration": loaded_at - started,
                    "prompt_eval_count": item["prompt_eval_count"],
                    "prompt_eval_duration": item["prompt_eval_duration"],
                    "eval_count": item["eval_count"],
                    "eval_duration": item["eval_duration"],
                }
                self.owner.finals.append(final)
                if not streaming:
                    self._json(200, dict(final, response="".join(text)))
                    return
                self._line(final)
        except EngineFailed as exc:
            if not streaming:
                self._error(500, str(exc))
                return
            self._line({"error": str(exc)})
        self._end_stream()

    def _pull(self, body: dict[str, Any]) -> None:
        cfg = self.owner.config
        name = _canonical(body.get("model") or body.get("name") or "")
        if cfg.pull_fails:
            self._error(500, "pull model manifest: file does not exist")
            return
        self._start_stream()
        self._line({"status": "pulling manifest"})
        digest = "sha256:4824460d29f2058aaf6e1118a63a7a197a09bed509f0e7d4e2efb1ee273b447d"
        total = 2_019_377_376
        for done in (0, total // 2, total):
            self._line({"status": f"pulling {digest[7:19]}", "digest": digest, "total": total, "completed": done})
        for status in ("verifying sha256 digest", "writing manifest", "success"):
            self._line({"status": status})
        self._end_stream()
        model = dict(LLAMA33, name=name)
        cfg.models[name] = model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=11500)
    parser.add_argument("--rate", type=float, default=30.0, help="tokens/s")
    parser.add_argument("--cpu-rate", type=float, help="tokens/s of a CPU-only request (default: --rate)")
    parser.add_argument("--tokens", type=int, default=120)
    parser.add_argument("--load", type=float, default=2.0, help="seconds to 'load' the model")
    parser.add_argument("--vram-fraction", type=float, default=0.36)
    args = parser.parse_args()
    config = DoubleConfig(
        token_rate=args.rate,
        cpu_token_rate=args.cpu_rate,
        tokens=args.tokens,
        load_delay_s=args.load,
        vram_fraction=args.vram_fraction,
    )
    double = OllamaDouble(config, port=args.port).start()
    print(f"Ollama double at {double.url} (Ctrl+C to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        double.stop()


if __name__ == "__main__":
    main()
