"""Read Ollama's server log: one LoadRecord per model load, from every format Ollama has printed.

Pure: lines in, records out; no I/O. The formats, by era (source file in the ollama repository):
- Go scheduler's plan, 0.1.3x-0.5: `source=memory.go msg="offload to cuda" layers.requested=-1
  layers.model=41 layers.offload=29 ... memory.required.full="9.6 GiB"` (an estimate only);
  0.6-0.11: `source=server.go msg=offload library=rocm layers.model=63 layers.offload=63 ...`.
- The runner's command line: `msg="starting llama server" cmd="... --n-gpu-layers 37 ..."`.
- llama.cpp's own lines (the confirmation): `llm_load_tensors: offloaded 37/37 layers to GPU` (older),
  `load_tensors: offloaded 27/81 layers to GPU` (newer), with `CUDA0 model buffer size = ... MiB`
  and `llama_kv_cache_init: CUDA0 KV buffer size = ... MiB`.
- The Ollama engine (0.7 on): `source=ggml.go msg="offloaded 63/63 layers to GPU"`,
  `msg="model weights" buffer=ROCm0 size="16.2 GiB"` (later `device=CPU`), `msg="kv cache"`,
  `msg="total memory"`, and `source=runner.go msg=load request="{Operation:commit ... GPULayers:27[...]}"`.
- llama.cpp's model description: `print_info: n_layer = 18` (older `llm_load_print_meta:`), the
  repeating layers; a load counts them plus the output layer.
- The backend, from whichever line names it: a buffer's device (`CUDA0`, `ROCm0`, `Metal`), a device
  init line (`ggml_cuda_init: found 1 ROCm devices`, `ggml_metal_init: GPU name:`, `ggml_vulkan:
  Found 1 Vulkan devices`), `llama_model_load_from_file_impl: using device CUDA0 (...)`, a loaded
  backend library (`load_backend: loaded CUDA backend from ...`), the runner's folder
  (`runners/cuda_v12`) or Ollama's plan; such lines printed before a load begins count for the next
  load. llama.cpp's confirmation wins over Ollama's plan: a load whose model buffers are all in
  host memory (`CPU`, `CPU_Mapped`, `CPU_REPACK`, `CUDA_Host`) put no layer on a GPU, though a build
  without GPU support prints no `offloaded` line at all.
- Requests, from llama-server (Ollama 0.30 on runs it for every GGUF model): `slot print_timing: id  0
  | task 79 | prompt processing, n_tokens =   2560, progress = 0.35, t =   3.30 s / 776.33 tokens per
  second` while a long prompt is read, `n_decoded =    100, tg =   3.44 t/s` (newer: `n_gen = ...,
  tg = ..., tg_3s = ...`) every 3 s while it generates, then `prompt eval time =   10950.33 ms /  7303
  tokens (...)` and `eval time =   20840.36 ms /    64 tokens (...)`; `srv  stop: cancel task,
  id_task = 79` for a request given up. Each task is kept with the newest load.
- `msg="llama runner started in 3.28 seconds"` (`msg="llama-server started in 15.37 seconds"` from
  0.30) ends a load; `level=ERROR msg="llama runner terminated" error="exit status 0xc0000409"` or
  an out-of-memory line ends it badly.

Lines reach users with prefixes (journald, `docker compose`, kubectl, `>>> ` or `> ` in bug
reports), colour codes and CRLF endings: every pattern is searched anywhere in the line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from llmtop.units import one_line

MAX_LINE = 64 * 1024  # longer lines are cut before matching: no pattern needs more
EVIDENCE_LINES = 40
MAX_REQUESTS = 200  # the newest requests a load keeps: a server that runs for days serves thousands

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_STRUCTURED = re.compile(r"(?:\btime=\S+\s+)?\blevel=([A-Z]+)\s+source=\S+\s+msg=")
_PAIR = re.compile(r'([A-Za-z_][\w.\-]*)=("(?:[^"\\]|\\.)*"|\S*)')
_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
_CPP_BUFFER = re.compile(r"load_tensors:\s+(\S+)(?: model)? buffer size =\s+([\d.]+) ([KMGT]i?B|B)\b")
_CPP_KV = re.compile(r"llama_kv_cache\w*:\s+(\S+) KV buffer size =\s+([\d.]+) ([KMGT]i?B|B)\b")
_CPP_COMPUTE = re.compile(r"(?:^|\s)\w+:\s+(\S+) compute buffer size =\s+([\d.]+) ([KMGT]i?B|B)\b")
_KV_TYPES = re.compile(
    r"\bK \((\w+)\):\s+[\d.]+ \w+, V \((\w+)\)"
)  # `llama_kv_cache: size = ... K (q8_0): ..., V (q8_0): ...`
_FLASH_RESOLVED = re.compile(r"\bllama\w*:\s+flash_attn\s+=\s+(\w+)\s*$")  # 0/1 (older llama.cpp), enabled/disabled
_FLASH_CHOSEN = re.compile(r"\bFlash Attention (?:was auto, set to )?(enabled|disabled)\b")  # what `auto` became
_SERVER_CONFIG = re.compile(r"\b(OLLAMA_KV_CACHE_TYPE|OLLAMA_FLASH_ATTENTION|OLLAMA_NUM_PARALLEL|LLAMA_ARG_\w+):(\S*)")
_KV_FLAG = re.compile(r"(?:^|\s)(?:--kv-cache-type|--cache-type-k|-ctk)[ =](\S+)")
_FLASH_FLAG = re.compile(r"(?:^|\s)(?:--flash-attn|-fa)(?:[ =](on|off|auto)\b)?(?=\s|$)")
# llama.cpp's debug line for a tensor that --cpu-moe / --n-cpu-moe / -ot placed (older builds spell it "overriden"):
# `tensor blk.0.ffn_gate_exps.weight (162 MiB mxfp4) buffer type overridden to CPU`
_OVERRIDDEN = re.compile(r"\btensor blk\.(\d+)\.(\w+)\.weight \((\d+) MiB \w+\) buffer type overridd?en to (\S+)")
_MOE_FLAG = re.compile(r"(?:^|\s)(?:(--cpu-moe|-cmoe)|(?:--n-cpu-moe|-ncmoe)[ =](\d+))(?=\s|$)")
_LOAD_REQUEST = re.compile(r"\b(Parallel|FlashAttention|KvCacheType):(\S*)")
_VERSION = re.compile(r"\(version (\d+\.\d+[\w.\-+]*)\)")
_STARTED = re.compile(r"(?:llama runner|llama-server) started in ([\d.]+) seconds")
_N_LAYER = re.compile(r"(?:print_info|llm_load_print_meta):\s+n_layer\s+=\s+(\d+)\s*$")
# A task's timings, and (0.30 on: llama-server's own line as a slot takes a request) its start.
_TASK = re.compile(r"(?:print_timing|launch_slot_|operator\(\)): id\s+\d+ \| task (\d+) \|(?!.*sampler)")
# As a slot takes a prompt: its length, and the tokens it found in its cache (llama-server's prompt cache).
_NEW_PROMPT = re.compile(r"\| new prompt, .*?\btask\.n_tokens = (\d+)")
_CACHED = re.compile(r"\| cached n_tokens = (\d+)")
_PORT_FLAG = re.compile(r"(?:^|\s)--port[ =](\d+)\b")
_MODEL_FLAG = re.compile(r"(?:^|\s)--model[ =](\S+)")
# The scheduler gave a load up (its runner is closed): 0.5 `NewLlamaServer failed` (the runner did not
# start) and, at level ERROR, `error loading llama server`; 0.6 on `Load failed`, each with the model's path.
_LOAD_FAILED = ("Load failed", "NewLlamaServer failed", "error loading llama server")
_PROMPT_PROGRESS = re.compile(
    r"prompt processing, n_tokens =\s*(\d+), progress =\s*([\d.]+), t =\s*([\d.]+) s /\s*([\d.]+) tokens per second"
)
_DECODED = re.compile(r"\bn_(?:decoded|gen) =\s*(\d+), tg =\s*([\d.]+) t/s(?:, tg_3s =\s*([\d.]+) t/s)?")
_TIMING = re.compile(r"\b(prompt eval|eval) time =\s*([\d.]+) ms /\s*(\d+) tokens \(.*?([\d.]+) tokens per second\)")
_CANCEL = re.compile(r"\bstop: cancel task, id_task = (\d+)")
_RELEASE = re.compile(r"release: id\s+\d+ \| task (\d+) \| stop processing")
# llama.cpp's fit step (common/fit.cpp; logged at Ollama's --log-verbosity 4), before the real load:
_FIT_PROJECTED = re.compile(
    r"projected to use (\d+) MiB of (device|host) memory vs\. (\d+) MiB of (?:free device|total host) memory"
)
_FIT_LEAVES = re.compile(r"will leave (-?\d+) >= (\d+) MiB of (?:free device|system) memory, no changes needed")
_FIT_SHORT = re.compile(r"cannot meet free memory target of (\d+) MiB, need to reduce device memory by (\d+) MiB")
_FIT_PLAN = re.compile(
    r"\s-\s(.+?)\s*: +(\d+) layers(?: \(\s*(\d+) overflowing\))?, +(-?\d+) MiB used, +(-?\d+) MiB free"
)
_BREAKDOWN = re.compile(  # | - CUDA0 (RTX 2060) | total = free + (self = model + context + compute) + unaccounted |
    r"\|\s+-\s+(.+?)\s+\|\s+(\d+) = (\d+) \+ \((\d+) =\s+(\d+) \+\s+(\d+) \+\s+(\d+)\) \+\s+(-?\d+) \|"
)
_HOST_BREAKDOWN = re.compile(r"\|\s+-\s+Host\s+\|\s+(\d+) =\s+(\d+) \+\s+(\d+) \+\s+(\d+)\s+\|")  # self = parts
# llama-server's devices: `common_param:   - Vulkan0 : llvmpipe (LLVM 15.0.6, 256 bits) (2048 MiB, 2048 MiB free)`
_DEVICE_INFO = re.compile(r"common_param:\s+-\s+(\S+)\s*:\s+(.*?)\s*\((\d+) MiB, (\d+) MiB free\)")
_USER_CTX = re.compile(r"context size set by user to (\d+)")
_CTX_SEQ = re.compile(r"llama_context: n_ctx_(?:seq|per_seq)\s+=\s+(\d+)\s*$")
_CTX_FLAGS = re.compile(r"(?:^|\s)(?:-c|--ctx-size)[ =](\d+)")
_PARALLEL_FLAGS = re.compile(r"(?:^|\s)(?:-np|--parallel)[ =](\d+)")
_USING_DEVICE = re.compile(r"using device (\w+?)\d* \(")
_VULKAN_DEVICES = re.compile(r"ggml_vulkan: Found \d+ Vulkan devices")
_GPU_LAYERS = re.compile(r"GPULayers:(\d*)\[")
_N_GPU_LAYERS = re.compile(r"(?:--n-gpu-layers|-ngl)[ =](\d+)")
_CUDA_DEVICE = re.compile(r"(?:^|\s)Device \d+: ([^,]+), (?:compute capability|gfx)")
_FOUND_DEVICES = re.compile(r"ggml_cuda_init: found \d+ (CUDA|ROCm) devices")
_METAL_GPU = re.compile(r"ggml_metal_init: GPU name:\s+(.+?)\s*$")
_BACKEND = re.compile(r"load_backend: loaded (\w+) backend")
_CLI_ERROR = re.compile(r"(?:^|\s)Error: (.+?)\s*$")
_OOM = re.compile(r"out of memory|failed to allocate|unable to allocate", re.IGNORECASE)
_PREFIXES = re.compile(r"^(?:>+ ?)+")
_UNITS = {
    "B": 1,
    "KB": 1000,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
}
_RUNNER_LIBRARIES = ("cuda", "rocm", "metal", "vulkan", "cpu", "oneapi", "musa")


def size_bytes(text: str | None) -> int | None:
    """`"16.2 GiB"` -> bytes; None when it is not a size."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]i?B|B)\s*", text or "")
    if not match:
        return None
    try:
        return int(float(match.group(1)) * _UNITS[match.group(2)])
    except (ValueError, KeyError):
        return None


def logfmt(text: str) -> dict[str, str]:
    """`key=value key2="quoted value"` pairs (Go's slog text format), quotes removed."""
    pairs = {}
    for key, value in _PAIR.findall(text):
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        pairs[key] = value
    return pairs


def clean_line(raw: str) -> str:
    """Drop colour codes, CR, and quoting (`>>> `, `> `) from one log line."""
    line = _ANSI.sub("", raw[:MAX_LINE]).replace("\r", "").rstrip("\n")
    return _PREFIXES.sub("", line)


def _library_from_device(device: str) -> str | None:
    name = device.lower()
    for prefix, library in (
        ("cuda", "cuda"),
        ("rocm", "rocm"),
        ("metal", "metal"),
        ("vulkan", "vulkan"),
        ("sycl", "oneapi"),
        ("cpu", "cpu"),
    ):
        if name.startswith(prefix):
            return library
    return None


def _is_host_memory(device: str) -> bool:
    """CPU, CPU_Mapped, CPU_REPACK and CUDA_Host are system RAM, not GPU memory."""
    return device.upper().startswith("CPU") or device.endswith("_Host")


@dataclass(frozen=True)
class DeviceBuffer:
    """A buffer llama.cpp or the Ollama engine allocated on one device."""

    device: str
    size: str
    bytes: int | None
    planned: bool = False  # Ollama's plan (device.go, before the runner), until the runner's own line comes

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "size": self.size, "bytes": self.bytes}


@dataclass
class RequestTiming:
    """One request (a llama-server task) as its `print_timing` lines tell it; None: not logged yet.
    `*_printed_tps` are llama-server's own figures: newer builds count the eval rate over tokens - 1
    (the first token comes with the prompt's last batch), so they are kept apart from the rates
    made the way Ollama's API makes them (tokens over the time)."""

    task: int
    first_seen: float
    prompt_done: int | None = None  # while the prompt is read: tokens so far,
    prompt_progress: float | None = None  # the share of the prompt (0 to 1),
    prompt_live_tps: float | None = None  # the rate so far,
    prompt_elapsed_s: float | None = None  # and the time it has taken,
    progress_seen: float | None = None  # when the newest progress line was read (the caller's clock)
    prompt_points: list[tuple[int, float]] = field(default_factory=list)  # every progress line's (tokens, seconds)
    decoded: int | None = None  # while it generates: tokens so far,
    tg_tps: float | None = None  # the rate so far,
    tg_3s_tps: float | None = None  # and over the last 3 s (newer builds)
    prompt_tokens: int | None = None
    prompt_ms: float | None = None
    prompt_printed_tps: float | None = None
    eval_tokens: int | None = None
    eval_ms: float | None = None
    eval_printed_tps: float | None = None
    cancelled: bool = False
    released: bool = False  # its slot let it go (`stop processing`): over, with or without timings
    prompt_total: int | None = None  # the prompt's tokens (`new prompt, ... task.n_tokens = N`)
    prompt_cached: int | None = None  # of them, those its slot had in its cache (the first `cached n_tokens = N`)

    @property
    def timed(self) -> bool:
        """Its lines said more than that it began: progress, timings, or that it was cancelled."""
        return self.cancelled or any(
            v is not None for v in (self.prompt_done, self.decoded, self.prompt_ms, self.eval_ms)
        )

    @property
    def eval_tps(self) -> float | None:
        """eval tokens / eval time: Ollama's eval_count / eval_duration for this request."""
        if not self.eval_tokens or not self.eval_ms:
            return None
        return self.eval_tokens / (self.eval_ms / 1000)

    @property
    def prompt_left_s(self) -> float | None:
        """The prompt's time left (an estimate), while it is being read: each token of a prompt costs a
        little more than the one before (attention reads every token before it), so the time so far
        is fitted as a*n + b*n^2 through the last two progress lines and carried to the prompt's
        end; from one line, at the rate so far. Tokens the slot had in its cache (a warm prompt) are
        not read: only those after them count."""
        p, t = self.prompt_progress, self.prompt_elapsed_s
        if p is None or t is None or p <= 0 or p >= 1 or self.decoded is not None or self.eval_ms is not None:
            return None
        done = self.prompt_done
        if not done:
            return t * (1 - p) / p
        cached = min(self.prompt_cached or 0, done - 1)
        total = self.prompt_total or done / p
        linear = t * (total - done) / (done - cached)
        if len(self.prompt_points) < 2:
            return linear
        (n1, t1), (n2, t2) = ((n - cached, s) for n, s in self.prompt_points[-2:])
        if not 0 < n1 < n2:
            return linear
        b = (t2 / n2 - t1 / n1) / (n2 - n1)
        if b <= 0:  # not slowing down: the rate so far
            return linear
        a = t1 / n1 - b * n1
        read = total - cached
        return max(a * read + b * read * read - t, 0.0)

    @property
    def prompt_tps(self) -> float | None:
        if not self.prompt_tokens or not self.prompt_ms:
            return None
        return self.prompt_tokens / (self.prompt_ms / 1000)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "prompt_tokens": self.prompt_tokens,
            "prompt_ms": self.prompt_ms,
            "prompt_tps": self.prompt_printed_tps,
            "eval_tokens": self.eval_tokens,
            "eval_ms": self.eval_ms,
            "eval_tps": self.eval_printed_tps,
            "cancelled": self.cancelled,
            "prompt_total": self.prompt_total,
            "prompt_cached": self.prompt_cached,
        }


@dataclass
class FitProjection:
    """llama.cpp's fit step for a load: the memory a full offload needs, against what is free."""

    needed_mib: int | None = None
    free_mib: int | None = None
    on_device: bool = True  # False: no GPU, the projection is of host memory
    reserve_mib: int | None = None  # the free memory it keeps (Ollama's target)
    short_mib: int | None = None  # how much too much a full offload is
    model_mib: int | None = None  # the full offload's parts, from its breakdown table
    context_mib: int | None = None
    compute_mib: int | None = None
    user_context: int | None = None  # `context size set by user to N`

    def to_dict(self) -> dict[str, Any]:
        return {
            "needed_mib": self.needed_mib,
            "free_mib": self.free_mib,
            "reserve_mib": self.reserve_mib,
            "model_mib": self.model_mib,
            "context_mib": self.context_mib,
            "compute_mib": self.compute_mib,
        }


@dataclass
class LoadRecord:
    """What the log says about one model load. Unknown figures are None."""

    first_seen: float = 0.0  # caller's clock when the first line of this load arrived
    started_at: str | None = None  # the log's own `time=` of that line
    ollama_version: str | None = None
    engine: str | None = None  # "llama.cpp" or "ollama"
    plan_library: str | None = None  # Ollama's plan (`offload to cuda`, `library=rocm`)
    runner_library: str | None = None  # the runner's folder (`runners/cuda_v12`)
    init_library: str | None = None  # a backend the runner loaded or a device it initialised
    buffer_library: str | None = None  # the device of a model buffer in GPU memory: the confirmation
    hint_library: str | None = None  # a GPU backend named before this load began
    n_layer: int | None = None  # llama.cpp's repeating layers (`print_info: n_layer = 18`)
    estimate: dict[str, str] = field(default_factory=dict)
    requested_gpu_layers: int | None = None
    planned_gpu_layers: int | None = None
    confirmed: tuple[int, int] | None = None
    gpus: list[str] = field(default_factory=list)
    model_buffers: list[DeviceBuffer] = field(default_factory=list)
    kv_buffers: list[DeviceBuffer] = field(default_factory=list)
    total_memory: str | None = None
    system_total: str | None = None
    runner_started_s: float | None = None
    errors: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    closed: bool = False
    requests: list[RequestTiming] = field(default_factory=list)  # the requests this load served
    llama_server: bool = False  # the runner is llama-server, which logs each request's timing
    fit: FitProjection | None = None  # llama.cpp's fit step (llama-server, Ollama 0.30 on)
    plan_devices: list[tuple[str, int, int]] = field(
        default_factory=list
    )  # the fit's plan: (device, layers, overflowing)
    context_flag: int | None = None  # the runner's context per request: `-c`/`--ctx-size` over `-np`/`--parallel`
    context_seq: int | None = None  # llama.cpp's own `n_ctx_seq`
    default_context: int | None = None  # Ollama's VRAM-based default num_ctx, when it logged one
    gpu_problem: str | None = None  # why Ollama found no GPU to use (a driver too old, none found)
    runner_devices: list[str] = field(default_factory=list)  # the devices llama-server listed (`device_info:`)
    device_totals: dict[str, int] = field(default_factory=dict)  # a GPU's memory in bytes, as llama-server listed it
    server_port: int | None = None  # the port llama-server listens on, on 127.0.0.1 (its start line's --port)
    model_path: str | None = None  # the model file the runner was started with (its start line's --model)
    compute_buffers: list[DeviceBuffer] = field(default_factory=list)  # llama.cpp's compute buffers, Ollama's graph
    launch: dict[str, str] = field(default_factory=dict)  # what the runner was started with: see `settings`
    server_env: dict[str, str] = field(default_factory=dict)  # the `server config` line's settings of this kind
    experts_kept: dict[int, int] = field(default_factory=dict)  # block -> bytes of its experts held in system memory

    @property
    def settings(self) -> dict[str, str]:
        """The settings this load ran with, as the log tells them: `kv_cache` (the K cache's type, or
        `K q8_0, V f16`), `flash_attention` (on, off, or auto where only the request was logged),
        `parallel` (slots), `cpu_moe` (all, or the layers whose experts stay in system memory). A
        setting the log does not tell is left out, never assumed. Where the command line does not set
        the MoE placement, llama.cpp's lines for the expert tensors it kept in host memory tell it."""
        settings = dict(self.launch)
        if "cpu_moe" not in settings and self.experts_kept:
            every = self.n_layer is not None and len(self.experts_kept) >= self.n_layer
            settings["cpu_moe"] = "all" if every else str(len(self.experts_kept))
        return settings

    @property
    def layers_overflowing(self) -> int | None:
        """Layers counted as offloaded whose expert weights stay in system memory (MoE models); 0
        when the fit's plan names none, None when no plan was logged."""
        if not self.plan_devices:
            return None
        return sum(overflowing for _, _, overflowing in self.plan_devices)

    @property
    def context(self) -> int | None:
        """The context of one request: llama.cpp's `n_ctx_seq`, else the runner's flags."""
        return self.context_seq or self.context_flag

    def split_reason(self) -> str | None:
        """One sentence that says why the layers landed where they did, from the log's own numbers."""
        offloaded, total = self.layers_offloaded, self.layers_total
        if offloaded is None or total is None:
            return None
        where = f"{offloaded}/{total} layers on the GPU"
        if offloaded == 0:
            why = self.no_gpu_reason()
            return f"{where}: {why}" if why else None
        asked = self.asked_gpu_layers
        if asked is not None and offloaded == min(asked, total):
            return f"{where}: num_gpu {asked} asked for them"  # the fit then changes nothing
        fit = self.fit
        if fit is not None and fit.on_device and fit.needed_mib is not None and fit.free_mib is not None:
            parts = ", ".join(
                f"{label} {value}"
                for label, value in (
                    ("weights", fit.model_mib),
                    (f"KV cache for {self.context} tokens" if self.context else "KV cache", fit.context_mib),
                    ("compute", fit.compute_mib),
                )
                if value is not None
            )
            reserve = f", {fit.reserve_mib} kept in reserve" if fit.reserve_mib is not None else ""
            sentence = (
                f"{where}: all {total} need {fit.needed_mib} MiB"
                + (f" ({parts})" if parts else "")
                + f" and {fit.free_mib} MiB were free{reserve}"
            )
            if self.layers_overflowing:
                sentence += f"; {self.layers_overflowing} of them overflowing (their experts stay in system memory)"
            if fit.context_mib and self.context and self.context >= 4096 and offloaded < total:
                smaller = self.context // 4
                sentence += f". Estimate: at num_ctx {smaller} the KV cache takes about {fit.context_mib // 4} MiB"
            return sentence
        full, available = self.estimate.get("memory.required.full"), self.estimate.get("memory.available")
        if full and available:
            kv = self.estimate.get("memory.required.kv")
            return (
                f"{where}: Ollama's estimate for all of them is {full}"
                + (f" (KV cache {kv})" if kv else "")
                + f" and {available.strip('[]')} was available"
            )
        return None

    @property
    def asked_gpu_layers(self) -> int | None:
        """The layers the request asked for (num_gpu), where the log tells the request's from Ollama's own
        choice: llama-server gets `-ngl` only when the request set num_gpu (0.30 on), and Ollama's plan
        says `layers.requested` (-1: its own choice) before 0.30, whose runner gets Ollama's count either way."""
        if self.llama_server:
            return self.requested_gpu_layers
        requested = self.estimate.get("layers.requested", "")
        return int(requested) if requested.isdigit() else None

    def no_gpu_reason(self) -> str | None:
        """Why no layer is on a GPU, where the log says."""
        if self.requested_gpu_layers == 0:
            return "num_gpu 0 asked for the CPU alone"
        if self.gpu_problem:
            return self.gpu_problem
        if self.runner_devices and all(device.upper().startswith("CPU") for device in self.runner_devices):
            return "llama-server found no GPU (the only device it listed is the CPU)"
        return None

    def request(self, task: int) -> RequestTiming | None:
        return next((r for r in reversed(self.requests) if r.task == task), None)

    # -- what a reader takes from it --------------------------------------------------------
    @property
    def host_only(self) -> bool:
        """llama.cpp or the engine allocated the weights, all of them in host memory: no layer is
        on a GPU, whatever the plan said (a build without GPU support prints no `offloaded` line)."""
        return (
            bool(self.model_buffers)
            and self.buffer_library is None
            and all(_is_host_memory(b.device) for b in self.model_buffers)
        )

    @property
    def weights_bytes(self) -> int | None:
        """The model's weights as llama.cpp allocated their buffers (`model buffer size` lines, logged
        as the tensors begin to load), else as Ollama's plan put them; None before either."""
        for planned in (False, True):
            sizes = [b.bytes for b in self.model_buffers if b.planned == planned and b.bytes]
            if sizes:
                return sum(sizes)
        return None

    @property
    def layers_total(self) -> int | None:
        if self.confirmed:
            return self.confirmed[1]
        if self.n_layer is not None:
            return self.n_layer + 1
        value = self.estimate.get("layers.model")
        return int(value) if value and value.isdigit() else None

    @property
    def layers_offloaded(self) -> int | None:
        if self.confirmed:
            return self.confirmed[0]
        if self.host_only:
            return 0
        if self.planned_gpu_layers is not None:
            return self.planned_gpu_layers
        value = self.estimate.get("layers.offload")
        return int(value) if value and value.isdigit() else None

    @property
    def estimate_only(self) -> bool:
        """True when only Ollama's plan was logged, not llama.cpp's or the engine's confirmation."""
        return self.confirmed is None and not self.host_only

    @property
    def library(self) -> str | None:
        """The backend that ran the model: the device of a GPU buffer, else `cpu` when the weights
        are confirmed to be all in host memory, else the runner's own backend lines, its folder,
        Ollama's plan, or a backend named before the load began, in that order."""
        if self.buffer_library:
            return self.buffer_library
        offloaded = self.layers_offloaded
        if offloaded == 0 and not self.estimate_only:
            return "cpu"
        library = self.init_library or self.runner_library or self.plan_library or self.hint_library
        if library is None and offloaded == 0:
            return "cpu"
        return library

    @property
    def error(self) -> str | None:
        return self.errors[-1] if self.errors else None

    def _experts_text(self) -> str | None:
        """`3890 MiB of 24 layers`: the MoE experts held in system memory, where the log named them."""
        if not self.experts_kept:
            return None
        return f"{sum(self.experts_kept.values()) / 2**20:.0f} MiB of {len(self.experts_kept)} layers"

    @staticmethod
    def _on_devices(buffers: list[DeviceBuffer], gpu: bool | None) -> str | None:
        chosen = [b for b in buffers if gpu is None or _is_host_memory(b.device) != gpu]
        return ", ".join(f"{b.size} on {b.device}" for b in chosen) or None

    def to_dict(self) -> dict[str, Any]:
        """The record as `llmtop parse-log --json` prints it."""
        estimate = self.estimate

        def plain(key: str) -> str | None:
            value = estimate.get(key)
            return value[1:-1] if value and value.startswith("[") and value.endswith("]") else value

        return {
            "layers_offloaded": self.layers_offloaded,
            "layers_total": self.layers_total,
            "library": self.library,
            "estimate_only": self.estimate_only,
            "ollama_version": self.ollama_version,
            "engine": self.engine,
            "gpus": list(self.gpus),
            "started_at": self.started_at,
            "requested_gpu_layers": self.requested_gpu_layers,
            "memory_required_full": plain("memory.required.full"),
            "memory_required_partial": plain("memory.required.partial"),
            "memory_required_kv": plain("memory.required.kv"),
            "memory_available": plain("memory.available"),
            "layers_model": plain("layers.model"),
            "layers_offload": plain("layers.offload"),
            "layers_split": plain("layers.split"),
            "model_buffers": [b.to_dict() for b in self.model_buffers],
            "gpu_weights": self._on_devices(self.model_buffers, gpu=True),
            "kv_cache": self._on_devices(self.kv_buffers, gpu=None),
            "compute": self._on_devices(self.compute_buffers, gpu=None),
            "settings": self.settings,
            "experts_in_system_memory": self._experts_text(),
            "server_env": dict(self.server_env),
            "total_memory": self.total_memory,
            "system_total": self.system_total,
            "runner_started_s": self.runner_started_s,
            "error": self.error,
            "errors": list(self.errors),
            "requests": [r.to_dict() for r in self.requests if r.timed],
            "context": self.context,
            "default_context": self.default_context,
            "layers_overflowing": self.layers_overflowing,
            "fit": self.fit.to_dict() if self.fit else None,
            "split_reason": self.split_reason(),
            "evidence": list(self.evidence),
        }


class OllamaLogParser:
    """Feed lines in order; `records` grows by one LoadRecord per model load.

    Server-wide facts (version, GPUs, system RAM) are remembered and given to each later load.
    Several loads may be in flight at once (their lines interleave): a confirmation goes to the
    oldest open load whose layer count matches.
    """

    def __init__(self) -> None:
        self.records: list[LoadRecord] = []
        self.lines_read = 0
        self._version: str | None = None
        self._server_env: dict[str, str] = {}  # the `server config` line's settings llmtop reads (server_env)
        self._flash_next: str | None = None  # Ollama said it enables flash attention for the load to come
        self._gpus: list[str] = []
        self._system_total: str | None = None
        self._pending_errors: list[str] = []
        self._backend: str | None = None  # a GPU backend named while no load was open
        self._default_context: int | None = None  # `vram-based default context`
        self._gpu_problem: str | None = None  # why Ollama found no GPU (from its discovery lines)

    # -- record bookkeeping -----------------------------------------------------------------
    def _open(self) -> list[LoadRecord]:
        return [r for r in self.records if not r.closed]

    def _new(self, now: float, time_text: str | None) -> LoadRecord:
        record = LoadRecord(
            first_seen=now,
            started_at=time_text,
            ollama_version=self._version,
            gpus=list(self._gpus),
            system_total=self._system_total,
            hint_library=self._backend,
            default_context=self._default_context,
            gpu_problem=self._gpu_problem,
            server_env={k: v for k, v in self._server_env.items() if v},
        )
        if self._flash_next:
            record.launch["flash_attention"] = self._flash_next
            self._flash_next = None
        if not self.records and self._pending_errors:  # a report that quotes the error first
            record.errors.extend(self._pending_errors)
            self._pending_errors.clear()
        self.records.append(record)
        return record

    def _newest_open(self, now: float, time_text: str | None) -> LoadRecord:
        open_records = self._open()
        return open_records[-1] if open_records else self._new(now, time_text)

    def _for_confirmation(self, total: int, now: float, time_text: str | None) -> LoadRecord:
        for record in self._open():
            if record.confirmed is None and record.layers_total in (None, total):
                return record
        return self._new(now, time_text)

    def _error(self, message: str) -> None:
        message = one_line(message)
        open_records = self._open()
        target = open_records[-1] if open_records else (self.records[-1] if self.records else None)
        if target is None:
            self._pending_errors.append(message)
        elif not target.errors or target.errors[-1] != message:
            target.errors.append(message)

    @staticmethod
    def _note(record: LoadRecord, line: str) -> None:
        if len(record.evidence) < EVIDENCE_LINES:
            record.evidence.append(line)

    # -- lines ------------------------------------------------------------------------------
    def feed_all(self, lines: Iterable[str], now: float = 0.0) -> list[LoadRecord]:
        """Feed every line; return the records (all of them, not only new ones)."""
        for line in lines:
            self.feed(line, now)
        return self.records

    def feed(self, raw: str, now: float = 0.0) -> LoadRecord | None:
        """Read one line; return the record it added to, if any."""
        self.lines_read += 1
        line = clean_line(raw)
        if not line.strip():
            return None
        structured = _STRUCTURED.search(line)
        if structured:
            return self._structured(line, structured, now)
        return self._plain(line, now)

    def _structured(self, line: str, match: re.Match[str], now: float) -> LoadRecord | None:
        fields = logfmt(line[match.start() :])
        msg = fields.get("msg", "")
        level = match.group(1)
        time_text = fields.get("time")
        version = _VERSION.search(msg)
        if version:
            self._version = version.group(1)
            return None
        if msg == "server config":
            self._server_env = dict(_SERVER_CONFIG.findall(fields.get("env", "")))
            return None
        if msg == "inference compute":
            library = fields.get("library", "")
            name = fields.get("description") or fields.get("name") or ""
            if library.lower() == "cpu":
                self._system_total = fields.get("total") or self._system_total
                if not self._gpus and self._gpu_problem is None:
                    self._gpu_problem = "Ollama found no GPU it can use"
            elif name and name not in self._gpus:
                self._gpus.append(name)
                self._gpu_problem = None
            return None
        if msg == "failure during GPU discovery":  # a GPU library that failed to load or to answer
            paths = fields.get("OLLAMA_LIBRARY_PATH", "").strip("[]").split()
            where = f" with {paths[-1]}" if paths else ""
            self._gpu_problem = f"GPU discovery failed{where} ({fields.get('error') or 'no reason given'})"
            return None
        if msg == "NVIDIA driver too old":
            driver, needed = fields.get("driver"), fields.get("required_driver")
            self._gpu_problem = (
                f"the NVIDIA driver is too old for {fields.get('device') or 'the GPU'} (driver {driver}; Ollama needs "
                f"{needed})"
            )
            return None
        if msg == "vram-based default context":
            value = fields.get("default_num_ctx", "")
            self._default_context = int(value) if value.isdigit() else None
            return None
        record = None
        if msg.startswith("offload to ") or (msg == "offload" and "library" in fields):
            open_records = self._open()
            last = open_records[-1] if open_records else None
            if last is None or last.estimate or last.confirmed is not None:
                last = self._new(now, time_text)
            last.estimate = {k: v for k, v in fields.items() if k.startswith(("layers.", "memory."))}
            last.plan_library = fields.get("library") or msg.removeprefix("offload to ").strip() or None
            record = last
        elif msg in ("starting llama server", "starting llama-server") or (
            msg == "starting runner" and "--model" in fields.get("cmd", "")  # 0.2x; without a model: GPU discovery
        ):
            cmd = fields.get("cmd", "")
            open_records = self._open()
            record = open_records[-1] if open_records and open_records[-1].engine is None else self._new(now, time_text)
            record.engine = "ollama" if "--ollama-engine" in cmd else "llama.cpp"
            record.llama_server = msg == "starting llama-server" or "llama-server" in cmd
            port, model = _PORT_FLAG.search(cmd), _MODEL_FLAG.search(cmd)
            record.model_path = model.group(1) if model else None
            record.server_port = int(port.group(1)) if port and record.llama_server else None
            context, parallel = _CTX_FLAGS.search(cmd), _PARALLEL_FLAGS.search(cmd)
            if context:
                record.context_flag = int(context.group(1)) // max(int(parallel.group(1)) if parallel else 1, 1)
            layers = _N_GPU_LAYERS.search(cmd)
            record.requested_gpu_layers = int(layers.group(1)) if layers else None
            self._launch_flags(record, cmd, parallel)
            path = cmd.replace("\\", "/").lower()
            record.runner_library = next((lib for lib in _RUNNER_LIBRARIES if f"runners/{lib}" in path), None)
        elif msg == "load" and "request" in fields:
            record = self._newest_open(now, time_text)
            record.engine = record.engine or "ollama"
            for key, value in _LOAD_REQUEST.findall(fields["request"]):
                if key == "Parallel" and value.isdigit():
                    record.launch["parallel"] = value
                elif key == "FlashAttention" and value.lower() in ("enabled", "disabled", "auto", "true", "false"):
                    record.launch["flash_attention"] = _on_off(value)
                elif key == "KvCacheType" and value:
                    record.launch["kv_cache"] = value.lower()
            layers = _GPU_LAYERS.search(fields["request"])
            if layers:
                record.planned_gpu_layers = int(layers.group(1) or 0)
        elif _OFFLOADED.fullmatch(msg):
            done, total = (int(x) for x in _OFFLOADED.fullmatch(msg).groups())  # type: ignore[union-attr]
            record = self._for_confirmation(total, now, time_text)
            record.confirmed = (done, total)
            record.engine = record.engine or "ollama"
        elif msg == "model weights":
            record = self._newest_open(now, time_text)
            device = fields.get("buffer") or fields.get("device") or "?"
            self._model_buffer(record, device, fields.get("size", ""), planned="device" in fields)
        elif msg == "compute graph":  # the engine reserves the graph again as it settles: its last size counts
            record = self._newest_open(now, time_text)
            size = fields.get("size", "")
            device = fields.get("device") or fields.get("backend") or fields.get("buffer_type") or "?"
            record.compute_buffers[:] = [b for b in record.compute_buffers if b.device != device]
            record.compute_buffers.append(DeviceBuffer(device, size, size_bytes(size), planned=True))
        elif msg == "enabling flash attention":  # Ollama's own word (0.2x), before it starts the runner
            self._flash_next = "on"
            return None
        elif msg == "kv cache":
            record = self._newest_open(now, time_text)
            size = fields.get("size", "")
            record.kv_buffers.append(DeviceBuffer(fields.get("device", "?"), size, size_bytes(size), planned=True))
        elif msg == "total memory":
            record = self._newest_open(now, time_text)
            record.total_memory = fields.get("size")
        elif _STARTED.search(msg):
            open_records = self._open()
            if open_records:
                record = open_records[0]
                record.runner_started_s = float(_STARTED.search(msg).group(1))  # type: ignore[union-attr]
                record.closed = True
        elif msg in _LOAD_FAILED:
            self._load_failed(fields.get("model"), fields.get("error"), msg, line)
            return None
        elif level == "ERROR" or msg == "llama runner terminated":
            error = fields.get("error")
            self._error(f"{msg}: {error}" if error else msg)
            if msg == "llama runner terminated":
                for open_record in self._open()[:1]:
                    open_record.closed = True
            return None
        if record is not None:
            self._note(record, line)
        return record

    def _load_failed(self, model: str | None, error: str | None, msg: str, line: str) -> None:
        """The scheduler gave a load up: the error goes to the open load of that model (the newest open
        load where the line names none), which is closed, so a load started at once after it (Ollama
        retries on a new runner) gets its own lines, not this one's."""
        open_records = self._open()
        target = next((r for r in reversed(open_records) if model and r.model_path == model), None)
        if target is None and open_records and (model is None or all(r.model_path is None for r in open_records)):
            target = open_records[-1]
        if target is None:  # no open load of that model: an error of the server's, as before
            self._error(f"{msg}: {error}" if error else msg)
            return
        message = one_line(f"{msg}: {error}" if error else msg)
        if not target.errors or target.errors[-1] != message:
            target.errors.append(message)
        target.closed = True
        self._note(target, line)

    @staticmethod
    def _launch_flags(record: LoadRecord, cmd: str, parallel: re.Match[str] | None) -> None:
        """The settings on the runner's command line (llama-server's, or the 0.5 runner's)."""
        if parallel:
            record.launch["parallel"] = parallel.group(1)
        if kv := _KV_FLAG.search(cmd):
            record.launch["kv_cache"] = kv.group(1).lower()
        if flash := _FLASH_FLAG.search(cmd):
            record.launch["flash_attention"] = flash.group(1) or "on"  # bare --flash-attn (0.5): on
        if moe := _MOE_FLAG.search(cmd):
            record.launch["cpu_moe"] = "all" if moe.group(1) else moe.group(2)

    def _expert_placed(self, overridden: re.Match[str], now: float, line: str) -> LoadRecord | None:
        """An expert tensor kept in host memory: its bytes, by block."""
        block, tensor, mib, device = overridden.groups()
        if "_exps" not in tensor or not _is_host_memory(device):
            return None  # another tensor, or one moved to a GPU: not the experts kept in system memory
        record = self._newest_open(now, None)
        record.experts_kept[int(block)] = record.experts_kept.get(int(block), 0) + int(mib) * 2**20
        self._note(record, line)
        return record

    @staticmethod
    def _model_buffer(record: LoadRecord, device: str, size: str, planned: bool = False) -> None:
        if not planned:  # the runner's own allocation replaces Ollama's plan of it
            record.model_buffers[:] = [b for b in record.model_buffers if not b.planned]
        record.model_buffers.append(DeviceBuffer(device, size, size_bytes(size), planned))
        if not _is_host_memory(device):
            record.buffer_library = record.buffer_library or _library_from_device(device)

    def _backend_named(self, library: str | None) -> LoadRecord | None:
        """A line named a GPU backend: the open load's, or (none open) the next load's hint."""
        if library is None or library == "cpu":
            return None
        open_records = self._open()
        if not open_records:
            self._backend = library
            return None
        record = open_records[-1]
        record.init_library = record.init_library or library
        return record

    def _timing(self, line: str, task: int, now: float) -> LoadRecord:
        """A `print_timing` line of llama-server: the task's progress or its final timings, kept
        with the load whose server has that task under way (two servers' lines interleave when a
        second model loads while the first one answers), else with the newest load."""
        record = next(
            (r for r in reversed(self.records) if (q := r.request(task)) and q.eval_ms is None and not q.cancelled),
            None,
        ) or (self.records[-1] if self.records else self._new(now, None))
        record.llama_server = True
        progress, decoded, timing = _PROMPT_PROGRESS.search(line), _DECODED.search(line), _TIMING.search(line)
        new_prompt, cached = _NEW_PROMPT.search(line), _CACHED.search(line)
        if not (progress or decoded or timing) and ("total time" in line or "graphs reused" in line):
            return next((r for r in reversed(self.records) if r.request(task)), record)  # after a request's timing
        request = record.request(task)
        # Task ids start again when a server restarts: progress on a finished task is a new one.
        if request is None or (request.eval_ms is not None and (progress or decoded or new_prompt)):
            request = RequestTiming(task, now)
            record.requests.append(request)
            del record.requests[:-MAX_REQUESTS]
        if new_prompt:
            request.prompt_total = int(new_prompt.group(1))
        elif cached:  # llama-server says it again after each batch: the first, after the new prompt, is the reuse
            if request.prompt_cached is None:
                request.prompt_cached = int(cached.group(1))
        elif progress:
            request.prompt_done = int(progress.group(1))
            request.prompt_progress = float(progress.group(2))
            request.prompt_elapsed_s = float(progress.group(3))
            request.prompt_live_tps = float(progress.group(4))
            request.progress_seen = now
            request.prompt_points.append((request.prompt_done, request.prompt_elapsed_s))
        elif decoded:
            request.decoded = int(decoded.group(1))
            request.tg_tps = float(decoded.group(2))
            request.tg_3s_tps = float(decoded.group(3)) if decoded.group(3) else None
        elif timing:
            ms, tokens, printed = float(timing.group(2)), int(timing.group(3)), float(timing.group(4))
            if timing.group(1) == "prompt eval":
                request.prompt_ms, request.prompt_tokens, request.prompt_printed_tps = ms, tokens, printed
            else:
                request.eval_ms, request.eval_tokens, request.eval_printed_tps = ms, tokens, printed
        return record

    def _fit(self, line: str, now: float) -> LoadRecord | None:
        """A line of llama.cpp's fit step, kept with the load it plans."""
        projected, leaves, short, plan, table, host, user = (
            pattern.search(line)
            for pattern in (_FIT_PROJECTED, _FIT_LEAVES, _FIT_SHORT, _FIT_PLAN, _BREAKDOWN, _HOST_BREAKDOWN, _USER_CTX)
        )
        if not (projected or leaves or short or (plan and "layers" in line) or table or host or user):
            return None
        open_records = self._open()
        last = self.records[-1] if self.records else None
        if open_records:
            record = open_records[-1]
        elif last is not None and last.fit is not None and last.fit.needed_mib is not None:
            record = last  # llama-server prints the breakdown again as it exits: not a new load
        else:
            record = self._new(now, None)
        fit = record.fit = record.fit or FitProjection()
        if projected and fit.needed_mib is None:  # the first projection is the full offload's
            fit.needed_mib, fit.free_mib = int(projected.group(1)), int(projected.group(3))
            fit.on_device = projected.group(2) == "device"
        elif leaves:
            fit.reserve_mib = int(leaves.group(2))
        elif short:
            fit.reserve_mib, fit.short_mib = int(short.group(1)), int(short.group(2))
        elif plan:
            record.plan_devices.append((plan.group(1).strip(), int(plan.group(2)), int(plan.group(3) or 0)))
        elif table and fit.model_mib is None:  # the first table is the full offload's; the rest are trials
            fit.model_mib, fit.context_mib, fit.compute_mib = (int(table.group(i)) for i in (5, 6, 7))
        elif host and fit.model_mib is None:  # no device row before it: a load on the CPU alone
            fit.model_mib, fit.context_mib, fit.compute_mib = (int(host.group(i)) for i in (2, 3, 4))
        elif user:
            fit.user_context = int(user.group(1))
        return record

    def _plain(self, line: str, now: float) -> LoadRecord | None:
        record = None
        if "fit" in line or "memory_breakdown" in line or "MiB" in line:
            fitted = self._fit(line, now)
            if fitted is not None:
                self._note(fitted, line)
                return fitted
        if listed := _DEVICE_INFO.search(line):
            record = self._newest_open(now, None)
            device, description = listed.group(1), listed.group(2)
            record.runner_devices.append(device)
            if not device.upper().startswith("CPU"):
                record.device_totals[device] = int(listed.group(3)) * 2**20
                if description and description not in record.gpus:  # discovery's name, where it was read
                    record.gpus.append(description)
            return record
        if ctx_seq := _CTX_SEQ.search(line):
            record = self._newest_open(now, None)
            record.context_seq = int(ctx_seq.group(1))
            return record
        if task := _TASK.search(line):
            if "operator():" in line and not (_NEW_PROMPT.search(line) or _CACHED.search(line)):
                return None  # another of the slot's lines: nothing of the request's figures
            return self._timing(line, int(task.group(1)), now)
        if release := _RELEASE.search(line):
            for load in reversed(self.records):
                over = load.request(int(release.group(1)))
                if over is not None and not over.released:
                    over.released = True
                    return load
        if cancel := _CANCEL.search(line):
            for load in reversed(self.records):
                given_up = load.request(int(cancel.group(1)))
                if given_up is not None:
                    given_up.cancelled = True
                    return load
            return None
        if overridden := _OVERRIDDEN.search(line):
            return self._expert_placed(overridden, now, line)
        offloaded = _OFFLOADED.search(line)
        if offloaded and "load_tensors" in line:
            done, total = int(offloaded.group(1)), int(offloaded.group(2))
            record = self._for_confirmation(total, now, None)
            record.confirmed = (done, total)
            record.engine = record.engine or "llama.cpp"
        elif buffer := _CPP_BUFFER.search(line):
            device, value, unit = buffer.groups()
            record = self._newest_open(now, None)
            self._model_buffer(record, device, f"{value} {unit}")
            record.engine = record.engine or "llama.cpp"
        elif layers := _N_LAYER.search(line):
            record = self._newest_open(now, None)
            record.n_layer = int(layers.group(1))
        elif compute := _CPP_COMPUTE.search(line):
            device, value, unit = compute.groups()
            record = self._newest_open(now, None)
            size = f"{value} {unit}"
            record.compute_buffers[:] = [b for b in record.compute_buffers if not b.planned]
            record.compute_buffers.append(DeviceBuffer(device, size, size_bytes(size)))
        elif kv_types := _KV_TYPES.search(line):
            record = self._newest_open(now, None)
            k, v = kv_types.groups()
            record.launch["kv_cache"] = k if k == v else f"K {k}, V {v}"
        elif flash := (_FLASH_RESOLVED.search(line) or _FLASH_CHOSEN.search(line)):
            if flash.group(1).lower() != "auto":  # the request's auto: llama.cpp says what it chose later
                record = self._newest_open(now, None)
                record.launch["flash_attention"] = _on_off(flash.group(1))
        elif kv := _CPP_KV.search(line):
            device, value, unit = kv.groups()
            record = self._newest_open(now, None)
            size = f"{value} {unit}"
            record.kv_buffers[:] = [b for b in record.kv_buffers if not b.planned]  # the runner's own replaces the plan
            record.kv_buffers.append(DeviceBuffer(device, size, size_bytes(size)))
        elif device := (_CUDA_DEVICE.search(line) or _METAL_GPU.search(line)):
            name = device.group(1).strip()
            open_records = self._open()
            target = open_records[-1] if open_records else None
            if target is not None and name not in target.gpus:
                target.gpus.append(name)
            if name not in self._gpus:
                self._gpus.append(name)
            record = target
        elif found := _FOUND_DEVICES.search(line):
            record = self._backend_named(found.group(1).lower())
        elif _VULKAN_DEVICES.search(line):
            record = self._backend_named("vulkan")
        elif using := _USING_DEVICE.search(line):
            record = self._backend_named(_library_from_device(using.group(1)))
        elif backend := _BACKEND.search(line):
            name = backend.group(1).lower()
            record = self._backend_named(_library_from_device(name) or name)
        elif cli_error := _CLI_ERROR.search(line):
            self._error(cli_error.group(1))
        elif _OOM.search(line):
            self._error(line.strip())
        if record is not None:
            self._note(record, line)
        return record


# Gin's access line, which every Ollama prints as each request ends (0.1 to 0.34):
# `[GIN] 2026/12/06 - 13:43:16 | 200 |    2.193542ms |       127.0.0.1 | POST     "/api/create"`
_GIN = re.compile(r"\[GIN\] [^|]+\|\s*(\d{3})\s*\|\s*(\S+)\s*\|\s*(\S+)\s*\|\s*([A-Z]+)\s+\"([^\"]+)\"")
_GO_DURATION = re.compile(r"([\d.]+)(h|ms|m|µs|us|ns|s)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}
# The endpoints that make a model work (its tokens/s is shared while one of them runs).
GENERATING = ("/api/generate", "/api/chat", "/api/embed", "/api/embeddings", "/v1/chat/completions",
              "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/messages")  # fmt: skip


def go_duration(text: str) -> float | None:
    """Go's time.Duration as printed (`1m2.5s`, `2.193542ms`, `102.752µs`) in seconds; None if not one."""
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(value + unit for value, unit in parts) != text:
        return None
    return sum(float(value) * _GO_UNITS[unit] for value, unit in parts)


@dataclass(frozen=True)
class ServedRequest:
    """A request the server finished, from its access line, on the caller's clock: it `ended` when
    its line arrived and began its latency earlier."""

    ended: float
    latency_s: float
    status: int
    client: str
    method: str
    path: str

    @property
    def began(self) -> float:
        return self.ended - self.latency_s

    @property
    def generating(self) -> bool:
        """A request that makes a model work (generate, chat, embed, the OpenAI-style ones)."""
        return self.method == "POST" and self.path.split("?")[0] in GENERATING

    def overlaps(self, start: float, end: float) -> bool:
        return self.began < end and self.ended > start

    def describe(self) -> str:
        return f"{self.method} {self.path} from {self.client}, {self.latency_s:.1f} s"


def served_request(line: str, now: float) -> ServedRequest | None:
    """The request an access line tells of (arrived at `now`), or None for any other line."""
    found = _GIN.search(line)
    if found is None:
        return None
    status, latency, client, method, path = found.groups()
    seconds = go_duration(latency)
    if seconds is None:
        return None
    return ServedRequest(now, seconds, int(status), client, method, path)


def _on_off(value: str) -> str:
    """`on`, `off` or `auto` for the ways the log writes flash attention (1, enabled, true, ...)."""
    text = value.strip().lower()
    if text in ("1", "true", "enabled", "on"):
        return "on"
    if text in ("0", "false", "disabled", "off"):
        return "off"
    return text


def parse_lines(lines: Iterable[str]) -> list[LoadRecord]:
    """Every load found in `lines`."""
    return OllamaLogParser().feed_all(lines)


def split_lines(chunks: Iterable[bytes], max_line: int = MAX_LINE) -> Iterator[str]:
    """Bytes (any chunking) to text lines: invalid UTF-8 replaced, over-long lines cut into pieces
    of `max_line` bytes, a last line without newline still given."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        while True:
            cut = pending.find(b"\n")
            if cut < 0:
                break
            line, pending = pending[:cut], pending[cut + 1 :]
            for start in range(0, max(len(line), 1), max_line):
                yield line[start : start + max_line].decode("utf-8", errors="replace")
        while len(pending) > max_line:
            yield pending[:max_line].decode("utf-8", errors="replace")
            pending = pending[max_line:]
    if pending:
        yield pending.decode("utf-8", errors="replace")
