"""Ollama's own lines of every era (0.1 to the newest): what it found (version, settings, GPUs), the
runner it starts for a load and how that start ends (ready, failed, terminated), and the errors.

- `msg="inference compute" library=cuda ... description="NVIDIA GeForce RTX 2060"` (discovery),
  `msg="failure during GPU discovery"`, `msg="NVIDIA driver too old"`: the GPUs, or why none is used.
- `msg="starting llama server" cmd="... --model ... --n-gpu-layers 37 --port 41235"` (0.1-0.24; `starting
  runner` in 0.2x, `starting llama-server` from 0.30): a load begins; its flags tell its settings.
- `msg="llama runner started in 3.28 seconds"` (`llama-server started in ...` from 0.30) ends a load;
  `msg="Load failed" model=... error=...` (0.15 on; `NewLlamaServer failed`, `error loading llama
  server` before) gives it up; `level=ERROR msg="llama runner terminated" error="exit status 0xc0000409"`
  or an out-of-memory line ends it badly.
"""

from __future__ import annotations

import re

from llmtop.collectors.ollama_log.records import LoadRecord
from llmtop.collectors.ollama_log.rules import Line, Log, Rule, message

_VERSION = re.compile(r"\(version (\d+\.\d+[\w.\-+]*)\)")
_SERVER_CONFIG = re.compile(r"\b(OLLAMA_KV_CACHE_TYPE|OLLAMA_FLASH_ATTENTION|OLLAMA_NUM_PARALLEL|LLAMA_ARG_\w+):(\S*)")
_STARTED = re.compile(r"(?:llama runner|llama-server) started in ([\d.]+) seconds")
_PORT_FLAG = re.compile(r"(?:^|\s)--port[ =](\d+)\b")
_MODEL_FLAG = re.compile(r"(?:^|\s)--model[ =](\S+)")
_CTX_FLAGS = re.compile(r"(?:^|\s)(?:-c|--ctx-size)[ =](\d+)")
_PARALLEL_FLAGS = re.compile(r"(?:^|\s)(?:-np|--parallel)[ =](\d+)")
_N_GPU_LAYERS = re.compile(r"(?:--n-gpu-layers|-ngl)[ =](\d+)")
_KV_FLAG = re.compile(r"(?:^|\s)(?:--kv-cache-type|--cache-type-k|-ctk)[ =](\S+)")
_FLASH_FLAG = re.compile(r"(?:^|\s)(?:--flash-attn|-fa)(?:[ =](on|off|auto)\b)?(?=\s|$)")
_MOE_FLAG = re.compile(r"(?:^|\s)(?:(--cpu-moe|-cmoe)|(?:--n-cpu-moe|-ncmoe)[ =](\d+))(?=\s|$)")
_RUNNER_LIBRARIES = ("cuda", "rocm", "metal", "vulkan", "cpu", "oneapi", "musa")
_CLI_ERROR = re.compile(r"(?:^|\s)Error: (.+?)\s*$")
_OOM = re.compile(r"out of memory|failed to allocate|unable to allocate", re.IGNORECASE)
_ANY = re.compile("")


def _version(log: Log, found: re.Match[str], line: Line) -> None:
    log.server.version = found.group(1)


def _server_config(log: Log, found: re.Match[str], line: Line) -> None:
    log.server.env = dict(_SERVER_CONFIG.findall(line.fields.get("env", "")))


def _inference_compute(log: Log, found: re.Match[str], line: Line) -> None:
    """A device discovery found: the CPU (the system's memory), or a GPU by its name."""
    facts, fields = log.server, line.fields
    library = fields.get("library", "")
    name = fields.get("description") or fields.get("name") or ""
    if library.lower() == "cpu":
        facts.system_total = fields.get("total") or facts.system_total
        if not facts.gpus and facts.gpu_problem is None:
            facts.gpu_problem = "Ollama found no GPU it can use"
    elif name and name not in facts.gpus:
        facts.gpus.append(name)
        facts.gpu_problem = None


def _discovery_failed(log: Log, found: re.Match[str], line: Line) -> None:
    """A GPU library that failed to load or to answer."""
    paths = line.fields.get("OLLAMA_LIBRARY_PATH", "").strip("[]").split()
    where = f" with {paths[-1]}" if paths else ""
    log.server.gpu_problem = f"GPU discovery failed{where} ({line.fields.get('error') or 'no reason given'})"


def _driver_too_old(log: Log, found: re.Match[str], line: Line) -> None:
    fields = line.fields
    log.server.gpu_problem = (
        f"the NVIDIA driver is too old for {fields.get('device') or 'the GPU'} (driver {fields.get('driver')}; "
        f"Ollama needs {fields.get('required_driver')})"
    )


def _default_context(log: Log, found: re.Match[str], line: Line) -> None:
    value = line.fields.get("default_num_ctx", "")
    log.server.default_context = int(value) if value.isdigit() else None


def _flash_next(log: Log, found: re.Match[str], line: Line) -> None:
    """Ollama's own word (0.2x), before it starts the runner: the next load runs with flash attention."""
    log.server.flash_next = "on"


def _runner_starts(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    """A runner (llama.cpp's, the Go engine's, llama-server) starts for a load: its flags."""
    cmd = line.fields.get("cmd", "")
    open_records = log.open_loads()
    record = (
        open_records[-1] if open_records and open_records[-1].engine is None else log.begin(line.now, line.time_text)
    )
    record.engine = "ollama" if "--ollama-engine" in cmd else "llama.cpp"
    record.llama_server = line.msg == "starting llama-server" or "llama-server" in cmd
    port, model = _PORT_FLAG.search(cmd), _MODEL_FLAG.search(cmd)
    record.model_path = model.group(1) if model else None
    record.server_port = int(port.group(1)) if port and record.llama_server else None
    context, parallel = _CTX_FLAGS.search(cmd), _PARALLEL_FLAGS.search(cmd)
    if context:
        record.context_flag = int(context.group(1)) // max(int(parallel.group(1)) if parallel else 1, 1)
    layers = _N_GPU_LAYERS.search(cmd)
    record.requested_gpu_layers = int(layers.group(1)) if layers else None
    _launch_flags(record, cmd, parallel)
    path = cmd.replace("\\", "/").lower()
    record.runner_library = next((lib for lib in _RUNNER_LIBRARIES if f"runners/{lib}" in path), None)
    return record


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


def _runner_started(log: Log, found: re.Match[str], line: Line) -> LoadRecord | None:
    """The runner is ready: the oldest open load is over."""
    open_records = log.open_loads()
    if not open_records:
        return None
    record = open_records[0]
    record.runner_started_s = float(found.group(1))
    record.closed = True
    return record


def _load_failed(log: Log, found: re.Match[str], line: Line) -> None:
    error = line.fields.get("error")
    log.failed(line.fields.get("model"), f"{line.msg}: {error}" if error else line.msg, line.text)


def _error(log: Log, found: re.Match[str], line: Line) -> None:
    error = line.fields.get("error")
    log.error(f"{line.msg}: {error}" if error else line.msg)
    if line.msg == "llama runner terminated":
        for open_record in log.open_loads()[:1]:
            open_record.closed = True


def _cli_error(log: Log, found: re.Match[str], line: Line) -> None:
    log.error(found.group(1))


def _out_of_memory(log: Log, found: re.Match[str], line: Line) -> None:
    log.error(line.text.strip())


FACTS = (
    Rule(_VERSION, _version),
    Rule(message("server config"), _server_config),
    Rule(message("inference compute"), _inference_compute),
    Rule(message("failure during GPU discovery"), _discovery_failed),
    Rule(message("NVIDIA driver too old"), _driver_too_old),
    Rule(message("vram-based default context"), _default_context),
    Rule(message("enabling flash attention"), _flash_next),
)
LOADS = (
    Rule(message("starting llama server", "starting llama-server"), _runner_starts),
    # 0.2x; without a model it is GPU discovery's runner
    Rule(message("starting runner"), _runner_starts, when=lambda line: "--model" in line.fields.get("cmd", "")),
    Rule(_STARTED, _runner_started),
    Rule(message("Load failed", "NewLlamaServer failed", "error loading llama server"), _load_failed),
)
ERRORS = (Rule(_ANY, _error, when=lambda line: line.level == "ERROR" or line.msg == "llama runner terminated"),)
PLAIN_ERRORS = (Rule(_CLI_ERROR, _cli_error), Rule(_OOM, _out_of_memory))
