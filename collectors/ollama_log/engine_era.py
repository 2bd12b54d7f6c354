"""Ollama 0.6 to 0.24, the Go engine (`--ollama-engine`): its plan, its load request, its buffers and
its confirmation, all in Ollama's own lines.

- The plan, 0.6-0.11: `source=server.go msg=offload library=rocm layers.model=63 layers.offload=63 ...`.
- The load request: `source=runner.go msg=load request="{Operation:commit ... GPULayers:27[...]
  FlashAttention:Enabled KvCacheType:q8_0 Parallel:1}"`: the layers asked of it, the settings.
- The buffers (0.7 on): `msg="model weights" buffer=ROCm0 size="16.2 GiB"` (later `device=CPU`, the
  plan before the runner's own), `msg="kv cache"`, `msg="compute graph"`, `msg="total memory"`.
- The confirmation: `source=ggml.go msg="offloaded 63/63 layers to GPU"`.
"""

from __future__ import annotations

import re

from llmtop.collectors.ollama_log.lines import on_off, size_bytes
from llmtop.collectors.ollama_log.records import DeviceBuffer, LoadRecord
from llmtop.collectors.ollama_log.rules import Line, Log, Rule, message
from llmtop.collectors.ollama_log.runner_era import plan
from llmtop.units import switch

_OFFLOADED = re.compile(r"^offloaded (\d+)/(\d+) layers to GPU$")
_LOAD_REQUEST = re.compile(r"\b(Parallel|FlashAttention|KvCacheType):(\S*)")
_GPU_LAYERS = re.compile(r"GPULayers:(\d*)\[")


def _load_request(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    """The runner's load request: the settings and the layers Ollama asks it to put on GPUs."""
    record = log.newest_open(line.now, line.time_text)
    record.engine = record.engine or "ollama"
    request = line.fields["request"]
    for key, value in _LOAD_REQUEST.findall(request):
        if key == "Parallel" and value.isdigit():
            record.launch["parallel"] = value
        elif key == "FlashAttention" and (switch(value) is not None or value.lower() == "auto"):
            record.launch["flash_attention"] = on_off(value)
        elif key == "KvCacheType" and value:
            record.launch["kv_cache"] = value.lower()
    layers = _GPU_LAYERS.search(request)
    if layers:
        record.planned_gpu_layers = int(layers.group(1) or 0)
    return record


def _offloaded(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    return log.confirmed(int(found.group(1)), int(found.group(2)), line.now, line.time_text, engine="ollama")


def _model_weights(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    record = log.newest_open(line.now, line.time_text)
    device = line.fields.get("buffer") or line.fields.get("device") or "?"
    log.model_buffer(record, device, line.fields.get("size", ""), planned="device" in line.fields)
    return record


def _compute_graph(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    """The engine reserves the graph again as it settles: its last size on a device counts."""
    record = log.newest_open(line.now, line.time_text)
    fields = line.fields
    size = fields.get("size", "")
    device = fields.get("device") or fields.get("backend") or fields.get("buffer_type") or "?"
    record.compute_buffers[:] = [b for b in record.compute_buffers if b.device != device]
    record.compute_buffers.append(DeviceBuffer(device, size, size_bytes(size), planned=True))
    return record


def _kv_cache(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    record = log.newest_open(line.now, line.time_text)
    size = line.fields.get("size", "")
    record.kv_buffers.append(DeviceBuffer(line.fields.get("device", "?"), size, size_bytes(size), planned=True))
    return record


def _total_memory(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    record = log.newest_open(line.now, line.time_text)
    record.total_memory = line.fields.get("size")
    return record


OLLAMA = (
    Rule(message("offload"), plan, when=lambda line: "library" in line.fields),
    Rule(message("load"), _load_request, when=lambda line: "request" in line.fields),
    Rule(_OFFLOADED, _offloaded),
    Rule(message("model weights"), _model_weights),
    Rule(message("compute graph"), _compute_graph),
    Rule(message("kv cache"), _kv_cache),
    Rule(message("total memory"), _total_memory),
)
