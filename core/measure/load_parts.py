"""What one model load ran with, and where its memory went, by part, from the server's own words.

The settings come from the runner's command line, Ollama's load request and llama.cpp's own lines
(collectors/ollama_log/ keeps them in `LoadRecord.launch`), and for llama-server's LLAMA_ARG_*
settings from the runner's environment. The memory parts are the buffers the log names: the
model's weights, the KV cache and the compute buffers, per device. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmtop import units
from llmtop.collectors.ollama_log import DeviceBuffer, LoadRecord
from llmtop.measure.mode import Mode
from llmtop.measure.server_settings import moe_text
from llmtop.units import switch

SYSTEM_MEMORY = "system memory"
PART_LABELS = {"weights": "weights", "experts": "experts", "kv_cache": "KV cache", "compute": "compute"}


@dataclass(frozen=True)
class MemoryPart:
    """The bytes of one part of a load (`weights`, `kv_cache`, `compute`) on one device: a GPU's
    name as llama.cpp calls it (CUDA0, ROCm0, Metal), or `system memory`."""

    part: str
    device: str
    bytes: int

    @property
    def on_gpu(self) -> bool:
        return self.device != SYSTEM_MEMORY

    @property
    def label(self) -> str:
        return PART_LABELS.get(self.part, self.part)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MemoryPart:
        return cls(str(data.get("part")), str(data.get("device")), int(data.get("bytes") or 0))


def _device(buffer: DeviceBuffer) -> str:
    name = buffer.device
    if name.upper().startswith("CPU") or name.endswith("_Host"):
        return SYSTEM_MEMORY
    return name


def memory_parts(load: LoadRecord | None) -> tuple[MemoryPart, ...]:
    """The load's weights, KV cache and compute buffers, summed per device (CPU, CPU_Mapped and
    CPU_REPACK are all system memory), in that order; () where the log named none. An MoE load's
    experts kept in system memory (llama.cpp's lines for the tensors it placed there) are a part of
    their own, `experts`, taken out of the weights in system memory that include them."""
    if load is None:
        return ()
    parts = _buffer_parts(load)
    kept = sum(load.experts_kept.values())
    if not kept:
        return tuple(parts)
    split: list[MemoryPart] = []
    for part in parts:
        if part.part == "weights" and part.device == SYSTEM_MEMORY:
            experts = min(kept, part.bytes)
            if part.bytes - experts:
                split.append(MemoryPart("weights", SYSTEM_MEMORY, part.bytes - experts))
            split.append(MemoryPart("experts", SYSTEM_MEMORY, experts))
        else:
            split.append(part)
    return tuple(split)


def buffers_text(load: LoadRecord) -> str | None:
    """Where the load's memory went, device by device, GPUs first: `on Vulkan0 (llvmpipe (LLVM 15.0.6,
    256 bits)): weights 156 MiB, KV cache 816 MiB, compute 51 MiB; in system memory: weights 90 MiB, ...`;
    None where the log named no buffer."""
    parts = memory_parts(load)
    if not parts:
        return None
    devices = sorted({p.device for p in parts}, key=lambda d: (d == SYSTEM_MEMORY, d))
    named = ", ".join(load.gpus)
    said = []
    for device in devices:
        where = "in system memory" if device == SYSTEM_MEMORY else f"on {device}" + (f" ({named})" if named else "")
        sizes = ", ".join(f"{p.label} {p.bytes / 2**20:.0f} MiB" for p in parts if p.device == device)
        said.append(f"{where}: {sizes}")
    return "; ".join(said)


def _buffer_parts(load: LoadRecord) -> list[MemoryPart]:
    parts: list[MemoryPart] = []
    sources: Sequence[tuple[str, Iterable[DeviceBuffer]]] = (
        ("weights", load.model_buffers),
        ("kv_cache", load.kv_buffers),
        ("compute", load.compute_buffers),
    )
    for part, buffers in sources:
        totals: dict[str, int] = {}
        for buffer in buffers:
            if buffer.bytes is not None:
                device = _device(buffer)
                totals[device] = totals.get(device, 0) + buffer.bytes
        parts.extend(MemoryPart(part, device, size) for device, size in totals.items() if size > 0)
    return parts


def settings_in_effect(load: LoadRecord | None, runner_env: Mapping[str, str]) -> dict[str, str]:
    """The settings the load ran with (LoadRecord.settings), and, where the runner is llama-server,
    the MoE placement it read from its environment (LLAMA_ARG_CPU_MOE, LLAMA_ARG_N_CPU_MOE) where
    its command line does not set it. Nothing is assumed: a setting neither tells is left out."""
    settings = dict(load.settings) if load is not None else {}
    if load is not None and load.llama_server and "cpu_moe" not in settings:  # Ollama's own runner reads no LLAMA_ARG_*
        if switch(runner_env.get("LLAMA_ARG_CPU_MOE")):
            settings["cpu_moe"] = "all"
        elif (layers := runner_env.get("LLAMA_ARG_N_CPU_MOE", "").strip()).isdigit() and int(layers) > 0:
            settings["cpu_moe"] = str(int(layers))
    return settings


def settings_text(settings: Mapping[str, str]) -> str:
    """`KV q8_0, FA on, 1 slot, all experts on CPU` ('' for none), in that order."""
    texts = []
    if "kv_cache" in settings:
        texts.append(f"KV {settings['kv_cache']}")
    if "flash_attention" in settings:
        texts.append(f"FA {settings['flash_attention']}")
    if "parallel" in settings:
        slots = settings["parallel"]
        texts.append(f"{slots} slot{'' if slots == '1' else 's'}")
    if "cpu_moe" in settings:
        texts.append(moe_text(settings["cpu_moe"]))
    return ", ".join(texts)


def parts_text(parts: Sequence[MemoryPart]) -> str:
    """`weights 63 MB, KV cache 36 MB, compute 9 MB in system memory; ...`, a device at a time."""
    devices: dict[str, list[MemoryPart]] = {}
    for part in parts:
        devices.setdefault(part.device, []).append(part)
    texts = []
    for device, listed in devices.items():
        where = device if device == SYSTEM_MEMORY else f"GPU {device}"
        texts.append(", ".join(f"{p.label} {units.human_bytes(p.bytes)}" for p in listed) + f" in {where}")
    return "; ".join(texts)


PART_MARKS = {"weights": "█", "experts": "▒", "kv_cache": "▓", "compute": "░"}
BAR_WIDTH = 40


@dataclass(frozen=True)
class PartsLine:
    """One run's memory on one device, for a table line and a stacked bar."""

    run: str  # `model mode`
    settings: str  # settings_text() of what the load ran with
    device: str
    sizes: tuple[tuple[str, int], ...]  # (part, bytes) in PART_LABELS' order

    @property
    def total(self) -> int:
        return sum(size for _, size in self.sizes)

    def size_of(self, part: str) -> int | None:
        return next((size for name, size in self.sizes if name == part), None)


def worth_showing(runs: Sequence[tuple[str, Mapping[str, str], Sequence[MemoryPart]]]) -> bool:
    """Whether the parts say more than the table: (mode, settings, parts) per run, some run told its
    parts or settings, and some mode set the server or some part lay on a GPU."""
    told = any(settings or parts for _, settings, parts in runs)
    asked = any(not Mode.of(mode).plain for mode, _, _ in runs)
    return told and (asked or any(p.on_gpu for _, _, parts in runs for p in parts))


def parts_lines(runs: Sequence[tuple[str, Mapping[str, str], Sequence[MemoryPart]]]) -> list[PartsLine]:
    """(run name, settings, parts) per run -> a line per run and device, GPUs first."""
    lines = []
    for name, settings, parts in runs:
        devices = sorted({p.device for p in parts}, key=lambda d: (d == SYSTEM_MEMORY, d))
        for device in devices:
            sizes = tuple(
                (p.part, p.bytes) for part in PART_LABELS for p in parts if p.device == device and p.part == part
            )
            lines.append(PartsLine(name, settings_text(settings), device, sizes))
    return lines


def stacked_bar(line: PartsLine, scale: int, width: int = BAR_WIDTH) -> str:
    """The line's parts as one bar of PART_MARKS, `width` characters standing for `scale` bytes; a part
    that is there gets one character at least."""
    if scale <= 0:
        return ""
    cells = []
    for part, size in line.sizes:
        count = max(1, round(size / scale * width)) if size > 0 else 0
        cells.append(PART_MARKS.get(part, "·") * count)
    return "".join(cells)


def bars_text(lines: Sequence[PartsLine], width: int = BAR_WIDTH) -> list[str]:
    """A stacked bar per line, on one scale (the largest total), with its label and total, then the
    key: what a table cannot show at a glance (q8_0's KV cache half of f16's, the part that spilled)."""
    if not lines:
        return []
    scale = max(line.total for line in lines)
    labels = [f"{line.run} ({line.device})" for line in lines]
    pad = max(len(label) for label in labels)
    drawn = [
        f"{label.ljust(pad)}  {stacked_bar(line, scale, width).ljust(width)}  {units.human_bytes(line.total)}"
        for label, line in zip(labels, lines, strict=True)
    ]
    shown = {part for line in lines for part, size in line.sizes if size}
    key = "  ".join(
        f"{PART_MARKS[part]} {label}" for part, label in PART_LABELS.items() if part != "experts" or part in shown
    )
    return [*drawn, key]
