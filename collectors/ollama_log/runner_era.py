"""Ollama 0.1 to 0.5, llama.cpp's runner: Ollama's plan, then llama.cpp's own lines. llama.cpp prints
the same lines inside the runner of 0.6-0.24 (for a model the Go engine does not run) and inside
llama-server (0.30 on), so they are read in every era.

- Ollama's plan, 0.1.3x-0.5: `source=memory.go msg="offload to cuda" layers.requested=-1
  layers.model=41 layers.offload=29 ... memory.required.full="9.6 GiB"` (an estimate only).
- The confirmation: `llm_load_tensors: offloaded 37/37 layers to GPU` (older), `load_tensors:
  offloaded 27/81 layers to GPU` (newer), with `CUDA0 model buffer size = ... MiB`,
  `llama_kv_cache_init: CUDA0 KV buffer size = ... MiB` and `CUDA0 compute buffer size = ... MiB`.
- The model: `print_info: n_layer = 18` (older `llm_load_print_meta:`), the repeating layers; a load
  counts them plus the output layer. MoE experts kept in system memory: `tensor blk.3.ffn_up_exps.weight
  (1664 MiB q4_K) buffer type overridden to CUDA_Host`.
- The backend, from whichever line names it: a buffer's device (`CUDA0`, `ROCm0`, `Metal`), a device
  init line (`ggml_cuda_init: found 1 ROCm devices`, `ggml_metal_init: GPU name:`, `ggml_vulkan: Found
  1 Vulkan devices`), `llama_model_load_from_file_impl: using device CUDA0 (...)`, a loaded backend
  library (`load_backend: loaded CUDA backend from ...`); such lines printed before a load begins count
  for the next load. A load whose model buffers are all in host memory (`CPU`, `CPU_Mapped`,
  `CPU_REPACK`, `CUDA_Host`) put no layer on a GPU, though a build without GPU support prints no
  `offloaded` line at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from llmtop.collectors.ollama_log.lines import is_host_memory, library_from_device, on_off, size_bytes
from llmtop.collectors.ollama_log.records import DeviceBuffer, LoadRecord
from llmtop.collectors.ollama_log.rules import Line, Log, Rule

_PLAN = re.compile(r"^offload to ")
_OVERRIDDEN = re.compile(r"\btensor blk\.(\d+)\.(\w+)\.weight \((\d+) MiB \w+\) buffer type overridd?en to (\S+)")
_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
_BUFFER = re.compile(r"load_tensors:\s+(\S+)(?: model)? buffer size =\s+([\d.]+) ([KMGT]i?B|B)\b")
_N_LAYER = re.compile(r"(?:print_info|llm_load_print_meta):\s+n_layer\s+=\s+(\d+)\s*$")
_COMPUTE = re.compile(r"(?:^|\s)\w+:\s+(\S+) compute buffer size =\s+([\d.]+) ([KMGT]i?B|B)\b")
_KV_TYPES = re.compile(
    r"\bK \((\w+)\):\s+[\d.]+ \w+, V \((\w+)\)"
)  # `llama_kv_cache: size = ... K (q8_0): ..., V (q8_0): ...`
_FLASH_RESOLVED = re.compile(r"\bllama\w*:\s+flash_attn\s+=\s+(\w+)\s*$")  # 0/1 (older llama.cpp), enabled/disabled
_FLASH_CHOSEN = re.compile(r"\bFlash Attention (?:was auto, set to )?(enabled|disabled)\b")  # what `auto` became
_KV = re.compile(r"llama_kv_cache\w*:\s+(\S+) KV buffer size =\s+([\d.]+) ([KMGT]i?B|B)\b")
_CUDA_DEVICE = re.compile(r"(?:^|\s)Device \d+: ([^,]+), (?:compute capability|gfx)")
_METAL_GPU = re.compile(r"ggml_metal_init: GPU name:\s+(.+?)\s*$")
_FOUND_DEVICES = re.compile(r"ggml_cuda_init: found \d+ (CUDA|ROCm) devices")
_VULKAN_DEVICES = re.compile(r"ggml_vulkan: Found \d+ Vulkan devices")
_USING_DEVICE = re.compile(r"using device (\w+?)\d* \(")
_BACKEND = re.compile(r"load_backend: loaded (\w+) backend")


def plan(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    """Ollama's plan for a load (an estimate: layers.*, memory.*), before the runner's word on it."""
    open_records = log.open_loads()
    last = open_records[-1] if open_records else None
    if last is None or last.estimate or last.confirmed is not None:
        last = log.begin(line.now, line.time_text)
    last.estimate = {k: v for k, v in line.fields.items() if k.startswith(("layers.", "memory."))}
    last.plan_library = line.fields.get("library") or line.msg.removeprefix("offload to ").strip() or None
    return last


def _expert_placed(log: Log, found: re.Match[str], line: Line) -> LoadRecord | None:
    """An expert tensor kept in host memory: its bytes, by block."""
    block, tensor, mib, device = found.groups()
    if "_exps" not in tensor or not is_host_memory(device):
        return None  # another tensor, or one moved to a GPU: not the experts kept in system memory
    record = log.newest_open(line.now)
    record.experts_kept[int(block)] = record.experts_kept.get(int(block), 0) + int(mib) * 2**20
    return record


def _offloaded(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    return log.confirmed(int(found.group(1)), int(found.group(2)), line.now, None, engine="llama.cpp")


def _model_buffer(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    device, value, unit = found.groups()
    record = log.newest_open(line.now)
    log.model_buffer(record, device, f"{value} {unit}")
    record.engine = record.engine or "llama.cpp"
    return record


def _n_layer(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    record = log.newest_open(line.now)
    record.n_layer = int(found.group(1))
    return record


def _own_buffer(
    log: Log, found: re.Match[str], line: Line, buffers: Callable[[LoadRecord], list[DeviceBuffer]]
) -> LoadRecord:
    """The runner's own buffer on a device (`CUDA0 compute buffer size = 98.26 MiB`): it replaces Ollama's
    plan of that kind of buffer."""
    device, value, unit = found.groups()
    record = log.newest_open(line.now)
    size = f"{value} {unit}"
    kept = buffers(record)
    kept[:] = [b for b in kept if not b.planned]
    kept.append(DeviceBuffer(device, size, size_bytes(size)))
    return record


def _compute_buffer(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    return _own_buffer(log, found, line, lambda record: record.compute_buffers)


def _kv_types(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    record = log.newest_open(line.now)
    k, v = found.groups()
    record.launch["kv_cache"] = k if k == v else f"K {k}, V {v}"
    return record


def _flash(log: Log, found: re.Match[str], line: Line) -> LoadRecord | None:
    if found.group(1).lower() == "auto":  # the request's auto: llama.cpp says what it chose later
        return None
    record = log.newest_open(line.now)
    record.launch["flash_attention"] = on_off(found.group(1))
    return record


def _kv_buffer(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    return _own_buffer(log, found, line, lambda record: record.kv_buffers)


def _gpu_named(log: Log, found: re.Match[str], line: Line) -> LoadRecord | None:
    return log.gpu_named(found.group(1).strip())


def _found_devices(log: Log, found: re.Match[str], line: Line) -> LoadRecord | None:
    return log.backend_named(found.group(1).lower())


def _vulkan_devices(log: Log, found: re.Match[str], line: Line) -> LoadRecord | None:
    return log.backend_named("vulkan")


def _using_device(log: Log, found: re.Match[str], line: Line) -> LoadRecord | None:
    return log.backend_named(library_from_device(found.group(1)))


def _backend_loaded(log: Log, found: re.Match[str], line: Line) -> LoadRecord | None:
    name = found.group(1).lower()
    return log.backend_named(library_from_device(name) or name)


OLLAMA = (Rule(_PLAN, plan),)
LLAMA_CPP = (
    Rule(_OVERRIDDEN, _expert_placed),
    Rule(_OFFLOADED, _offloaded, when=lambda line: "load_tensors" in line.text),
    Rule(_BUFFER, _model_buffer),
    Rule(_N_LAYER, _n_layer),
    Rule(_COMPUTE, _compute_buffer),
    Rule(_KV_TYPES, _kv_types),
    Rule(_FLASH_RESOLVED, _flash),
    Rule(_FLASH_CHOSEN, _flash),
    Rule(_KV, _kv_buffer),
    Rule(_CUDA_DEVICE, _gpu_named),
    Rule(_METAL_GPU, _gpu_named),
    Rule(_FOUND_DEVICES, _found_devices),
    Rule(_VULKAN_DEVICES, _vulkan_devices),
    Rule(_USING_DEVICE, _using_device),
    Rule(_BACKEND, _backend_loaded),
)
