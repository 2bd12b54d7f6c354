"""What the log tells of one model load (LoadRecord), its buffers on each device, its requests as
llama-server times them, and llama.cpp's fit step: the figures as the log printed them, read back
(the layers on a GPU, the backend, the weights' bytes), never interpreted here. Why the layers
landed where they did is measure/split_reason.py's; a prompt's time left is measure/time_left.py's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmtop.collectors.ollama_log.lines import is_host_memory

EVIDENCE_LINES = 40  # the lines a load keeps as its evidence (parse-log prints them)
MAX_REQUESTS = 200  # the newest requests a load keeps: a server that runs for days serves thousands


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
            and all(is_host_memory(b.device) for b in self.model_buffers)
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
        chosen = [b for b in buffers if gpu is None or is_host_memory(b.device) != gpu]
        return ", ".join(f"{b.size} on {b.device}" for b in chosen) or None

    def to_dict(self) -> dict[str, Any]:
        """The figures `llmtop parse-log --json` prints for the load (it adds measure.split_reason's sentence)."""
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
            "evidence": list(self.evidence),
        }


@dataclass
class ServerFacts:
    """What the server said before a load, that every later load inherits."""

    version: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # the `server config` line's settings llmtop reads
    flash_next: str | None = None  # Ollama said it enables flash attention for the load to come
    gpus: list[str] = field(default_factory=list)
    system_total: str | None = None
    pending_errors: list[str] = field(default_factory=list)  # errors before the first load
    backend: str | None = None  # a GPU backend named while no load was open
    default_context: int | None = None  # `vram-based default context`
    gpu_problem: str | None = None  # why Ollama found no GPU (from its discovery lines)
