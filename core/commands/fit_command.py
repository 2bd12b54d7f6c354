"""`llmtop fit MODEL [--num-ctx N] [--json]`: before any load, the split and the speed a model will get on
this machine: its weights per layer (from Ollama's tensor table, its file, or the registry's header of
a model not pulled), its KV cache at the context, the layers that fit the GPU, the RAM and VRAM it takes,
whether it spills, and tokens/s for each number of GPU layers, from bandwidths that each say their
source."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmtop import units
from llmtop.commands.options import add_host_argument, context_size, float_between
from llmtop.commands.output import print_out
from llmtop.exit_status import EXIT_OK, EXIT_USAGE
from llmtop.measure.forecast import Bandwidth, Forecast, Machine, Split, forecast, rows_to_show, words
from llmtop.measure.model_shape import KV_BYTES, ModelShape
from llmtop.units import NA
from llmtop.words import NO_GPU_READ

GB_S = float_between(0.1, 100_000, " GB/s")
DEFAULT_CONTEXT = 4096  # Ollama's default num_ctx where it chooses none by VRAM (0.30 on: GPUs under 24 GiB)
_SIZE = re.compile(r"\s*([\d.]+)\s*([KMGT]i?B|B)?\s*", re.IGNORECASE)
_SIZES = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


def _size(text: str) -> int:
    match = _SIZE.fullmatch(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 16GB, 2048MiB)")
    value = float(match.group(1)) * _SIZES[(match.group(2) or "GB").upper()]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a size must be more than 0, got {text}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmtop fit",
        description="Before any download or load: how many of a model's layers Ollama will put on this "
        "machine's GPU, the RAM and VRAM it will take, whether it spills into shared memory, and about how "
        "many tokens/s each number of GPU layers gives (a token reads every weight once: the bytes on each "
        "side over that side's bandwidth). The model's tensors come from the Ollama server that has it, or "
        "for a model not pulled from its registry's header (a few MB, never the whole file).",
    )
    parser.add_argument("model", metavar="MODEL", help="a model name as Ollama takes it (pulled or not)")
    add_host_argument(parser)
    parser.add_argument("--num-ctx", type=context_size, metavar="N", help=f"the context (default {DEFAULT_CONTEXT})")
    parser.add_argument("--kv-cache", choices=sorted(KV_BYTES), default="f16", help="the KV cache's type")
    parser.add_argument("--vram", type=_size, metavar="SIZE", help="forecast for a GPU with this much free memory")
    parser.add_argument("--shared", type=_size, metavar="SIZE", help="shared GPU memory the driver can spill into")
    parser.add_argument("--cpu-bandwidth", type=GB_S, metavar="GB/s", help="system memory's read rate")
    parser.add_argument("--gpu-bandwidth", type=GB_S, metavar="GB/s", help="the GPU memory's read rate")
    parser.add_argument("--bus-bandwidth", type=GB_S, metavar="GB/s", help="the GPU's link to system memory")
    parser.add_argument("--registry", metavar="URL", help="the registry of a model not pulled (default: Ollama's)")
    parser.add_argument("--no-probe", action="store_true", help="never probe system memory's read rate here")
    parser.add_argument("--json", action="store_true", help="the forecast as one JSON object")
    return parser


@dataclass(frozen=True)
class ModelRead:
    shape: ModelShape
    source: str


def read_model(name: str, host: str | None, registry: str | None) -> ModelRead:
    """The model's shape from the server that has it, its file here, or its registry; SourceFailed."""
    from llmtop.measure.model_shape import shape_of_header, shape_of_show
    from llmtop.ollama.api import ModelNotFound, OllamaError, OllamaServer
    from llmtop.ollama.hosts import ollama_base_url
    from llmtop.ollama.model_source import (
        REGISTRY,
        SourceFailed,
        blob_of,
        header_from_file,
        header_from_registry,
        parse_name,
        registry_fetch,
    )

    server = OllamaServer(ollama_base_url(host))
    why_not = None
    try:
        show = server.tensors(name)
        try:
            return ModelRead(shape_of_show(show), f"{server.base_url}'s /api/show (its tensor table)")
        except ValueError as exc:
            blob = blob_of(show)
            if blob is not None:
                return ModelRead(shape_of_header(header_from_file(blob)), f"the model's file here ({blob})")
            why_not = str(exc)
    except ModelNotFound:
        why_not = f"{server.base_url} does not have {name}"
    except OllamaError as exc:
        why_not = str(exc)
    finally:
        server.close()
    model = parse_name(name, registry or REGISTRY)
    try:
        read = header_from_registry(model, registry_fetch())
    except SourceFailed as exc:
        raise SourceFailed(f"{why_not}; and from its registry: {exc}") from None
    whole = f" of its {units.human_bytes(read.blob_bytes)} blob" if read.blob_bytes else ""
    return ModelRead(
        shape_of_header(read.header),
        f"{model.registry}: {model.path}:{model.tag}'s manifest and the first {units.human_bytes(read.read_bytes)}"
        f"{whole} ({why_not})",
    )


def read_machine(args: argparse.Namespace) -> tuple[Machine, dict[str, Any]]:
    """Free RAM and the first GPU's free memory (read now, or as given), the bandwidths with their
    sources: the command line, this machine's history, a probe, the vendors' peaks."""
    import psutil

    from llmtop.collectors.gpu_collector import probe_gpu_backends
    from llmtop.collectors.gpu_linux_drm import sysfs_root
    from llmtop.collectors.memory_bandwidth import ProbeCache, pci_device, probe_cpu, sysfs_link
    from llmtop.data_folder import data_folder
    from llmtop.measure.bandwidth import cpu_from_history, gpu_from_history, memory_peak, pcie, probed
    from llmtop.measure.machine import PROBE_FILE, describe_machine, machine_identity
    from llmtop.store.history import History, HistoryError

    collector = probe_gpu_backends()
    try:
        readings = [g for r in collector.reports for g in r.gpus if g.dedicated_total]
    finally:
        collector.close()
    gpu = readings[0] if readings else None
    facts = describe_machine(readings)
    vram = (
        args.vram if args.vram is not None else ((gpu.dedicated_total or 0) - (gpu.dedicated_used or 0) if gpu else 0)
    )
    shared = (
        args.shared
        if args.shared is not None
        else ((gpu.shared_total - (gpu.shared_used or 0)) if gpu and gpu.shared_total else 0)
    )
    try:
        past = History().runs_on(facts)
    except HistoryError:
        past = []
    given = "given on the command line"
    cpu = Bandwidth(args.cpu_bandwidth * 1e9, given) if args.cpu_bandwidth else cpu_from_history(past)
    if cpu is None and not args.no_probe:  # seconds, once a machine: kept with its identity
        identity = machine_identity(facts)
        cache = ProbeCache(data_folder() / PROBE_FILE)
        kept = cache.read(identity)
        if kept is None:
            kept = probe_cpu(), dt.date.today().isoformat()
            cache.write(identity, *kept)
        cpu = probed(*kept)
    gpu_bw = Bandwidth(args.gpu_bandwidth * 1e9, given) if args.gpu_bandwidth else gpu_from_history(past, cpu)
    bus = Bandwidth(args.bus_bandwidth * 1e9, given) if args.bus_bandwidth else None
    if gpu is not None and gpu.backend == "nvml" and (gpu_bw is None or bus is None):
        said = _nvidia()
        if said:
            gpu_bw = gpu_bw or memory_peak(said[0].bus_bits, said[0].memory_clock_mhz, "NVML")
            bus = bus or pcie(said[0].link_generation, said[0].link_width, "NVML")
    if gpu is not None and bus is None and gpu.bus_id and sys.platform.startswith("linux"):
        device = pci_device(sysfs_root(), gpu.bus_id)  # an AMD or Intel GPU's link, from sysfs
        link = sysfs_link(device) if device is not None else None
        bus = pcie(*link, "sysfs") if link else None
    name = gpu.name if gpu is not None else None
    return Machine(int(psutil.virtual_memory().available), vram, shared, name, cpu, gpu_bw, bus), facts


def _nvidia() -> list[Any]:
    from llmtop.collectors.gpu_nvidia import NvmlUnavailable, load_nvml, start_nvml
    from llmtop.collectors.memory_bandwidth import nvidia_figures

    try:
        nvml = load_nvml()
        start_nvml(nvml)
    except NvmlUnavailable:
        return []
    try:
        return nvidia_figures(nvml)
    except nvml.NVMLError:
        return []
    finally:
        nvml.nvmlShutdown()


def _split_dict(split: Split) -> dict[str, Any]:
    return {
        "gpu_layers": split.gpu_layers,
        "vram_bytes": split.vram_bytes,
        "ram_bytes": split.ram_bytes,
        "spilled_bytes": split.spilled_bytes,
        "fits": split.fits,
        "tps": round(split.tps, 4) if split.tps is not None else None,
        "limited_by": split.limit,
    }


def _bandwidth(value: Bandwidth | None) -> dict[str, Any] | None:
    return None if value is None else {"gb_s": round(value.gb_s, 2), "source": value.source}


def to_json(name: str, read: ModelRead, result: Forecast) -> dict[str, Any]:
    machine = result.machine
    return {
        "model": name,
        "source": read.source,
        "context": result.context,
        "layers": result.shape.layers,
        "weights_bytes": result.shape.weights_bytes,
        "kv_bytes_per_token": sum(result.shape.kv_per_token),
        "machine": {
            "ram_free_bytes": machine.ram_free,
            "vram_free_bytes": machine.vram_free,
            "shared_free_bytes": machine.shared_free,
            "gpu": machine.gpu_name,
        },  # fmt: skip
        "bandwidths": {"cpu": _bandwidth(machine.cpu), "gpu": _bandwidth(machine.gpu), "bus": _bandwidth(machine.bus)},
        "words": words(result, machine.gpu_name),
        "choice": _split_dict(result.choice),
        "splits": [_split_dict(s) for s in result.splits],
        "notes": list(result.notes),
    }


def describe(name: str, read: ModelRead, result: Forecast) -> str:
    """Plain words first, what they come from, then the table."""
    machine, shape = result.machine, result.shape
    kv = sum(shape.kv_per_token) * result.context
    lines = [
        f"{name} at num_ctx {result.context} on this machine: {words(result, machine.gpu_name)}",
        "",
        f"  the model: {shape.layers} layers, {units.human_bytes(shape.weights_bytes)} of weights, KV cache "
        f"{units.human_bytes(kv)} at {result.context} tokens (from {read.source})",
        f"  this machine: {units.human_bytes(machine.ram_free)} of RAM free; "
        + (
            f"{machine.gpu_name or 'the GPU (--vram)'}: {units.human_bytes(machine.vram_free)} free"
            + (
                f", {units.human_bytes(machine.shared_free)} of shared memory to spill into"
                if machine.shared_free
                else ""
            )
            if machine.vram_free
            else f"{NO_GPU_READ} (--vram SIZE forecasts for one)"
        ),
    ]
    for side, value in (("CPU", machine.cpu), ("GPU", machine.gpu), ("bus", machine.bus)):
        said = f"{value.gb_s:.1f} GB/s ({value.source})" if value else f"{NA} (no figure here: give --" + (
            "cpu" if side == "CPU" else side.lower()) + "-bandwidth)"  # fmt: skip
        lines.append(f"  {side} bandwidth: {said}")
    lines += [f"  {note}" for note in result.notes]
    lines += ["", "| GPU layers | VRAM | RAM | spills | tok/s | limited by |", "|---:|---:|---:|---:|---:|---|"]
    for split in rows_to_show(result):
        mark = " (Ollama's choice)" if split.gpu_layers == result.choice.gpu_layers else ""
        tps = f"{split.tps:.2f}" if split.tps is not None else NA
        spilled = units.gb(split.spilled_bytes) if split.spilled_bytes else ("no" if split.fits else "does not fit")
        lines.append(
            f"| {split.gpu_layers}/{split.layers}{mark} | {units.gb(split.vram_bytes)} | {units.gb(split.ram_bytes)} "
            f"| {spilled} | {tps} | {split.limit or ''} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from llmtop.ollama.model_source import SourceFailed

    try:
        read = read_model(args.model, args.host, args.registry)
    except (SourceFailed, ValueError) as exc:  # ValueError: not a GGUF, or no repeating layers llmtop can read
        sys.stderr.write(f"llmtop: cannot read {args.model}'s tensors: {exc}\n")
        return EXIT_USAGE
    machine, _ = read_machine(args)
    result = forecast(read.shape, args.num_ctx or DEFAULT_CONTEXT, machine, args.kv_cache)
    if args.json:
        print_out(json.dumps(to_json(args.model, read, result), ensure_ascii=False) + "\n")
    else:
        print_out(describe(args.model, read, result))
    return EXIT_OK
