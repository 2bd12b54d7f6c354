"""The split and the speed a model will get on this machine, before any load, and each run held to its
limit: the physics of generating a token. Pure.

Generating one token reads every weight of the layers it passes once (of a mixture of experts, the
experts it uses), so its time is about the bytes read on each side over that side's bandwidth: the
layers in system memory over the CPU's, those in VRAM over the GPU's, and any part of "GPU" memory the
driver spilled into system RAM over the bus between them. llama.cpp puts the output layer on the GPU
first, then the repeating layers from the last one down; each layer's KV cache goes where the layer is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from llmtop.measure.model_shape import KV_BYTES, ModelShape
from llmtop.units import NA

GIB = 2**30
FIT_RESERVE = GIB  # llama-server's fit (Ollama 0.30 on) leaves 1 GiB of the GPU free
BATCH = 512  # llama.cpp's default batch: its logits buffer is batch x vocab floats


@dataclass(frozen=True)
class Bandwidth:
    """Bytes a second one side reads, and where the figure comes from (history, a probe, a vendor's
    peak, the command line): every figure says its source."""

    bytes_per_s: float
    source: str

    @property
    def gb_s(self) -> float:
        return self.bytes_per_s / 1e9


@dataclass(frozen=True)
class Machine:
    """What the forecast places the model in: system memory free, the GPU's free dedicated memory and
    the shared memory its driver can spill into (0 where there is none), and the bandwidths known."""

    ram_free: int
    vram_free: int = 0
    shared_free: int = 0
    gpu_name: str | None = None
    cpu: Bandwidth | None = None
    gpu: Bandwidth | None = None
    bus: Bandwidth | None = None


@dataclass(frozen=True)
class Split:
    """The model with `gpu_layers` of its layers on the GPU: the memory each side takes, what spills,
    whether it fits, and a token's time on each side where the bandwidths are known."""

    gpu_layers: int
    layers: int
    vram_bytes: int
    ram_bytes: int
    spilled_bytes: int
    fits: bool
    cpu_read: float  # bytes a token reads on each side
    gpu_read: float
    bus_read: float
    cpu_s: float | None = None
    gpu_s: float | None = None
    bus_s: float | None = None

    @property
    def token_s(self) -> float | None:
        parts = [(self.cpu_read, self.cpu_s), (self.gpu_read, self.gpu_s), (self.bus_read, self.bus_s)]
        if any(read > 0 and seconds is None for read, seconds in parts):
            return None
        return sum(seconds or 0.0 for _, seconds in parts)

    @property
    def tps(self) -> float | None:
        seconds = self.token_s
        return 1.0 / seconds if seconds else None

    @property
    def limit(self) -> str | None:
        """The side whose reading takes most of a token's time: `CPU`, `GPU` or `bus`."""
        sides = [("CPU", self.cpu_s or 0.0), ("GPU", self.gpu_s or 0.0), ("bus", self.bus_s or 0.0)]
        side, seconds = max(sides, key=lambda s: s[1])
        return side if seconds > 0 else None


def gpu_layer_order(shape: ModelShape) -> list[int]:
    """The layers in the order llama.cpp puts them on the GPU: the output layer (-1), then the
    repeating layers from the last one down."""
    return [-1, *range(len(shape.blocks) - 1, -1, -1)]


def compute_bytes(shape: ModelShape, context: int) -> int:
    """llama.cpp's compute buffer on the GPU, estimated: the logits of a batch and attention's buffers,
    which grow with the context (fitted to llama-server's own lines on real loads: 13 MiB at 4,096 tokens,
    51 MiB at 32,768, a 384-wide model with a 4,096-token vocabulary)."""
    return 4 * BATCH * shape.vocab + int(3.5 * shape.embedding * context)


def split(shape: ModelShape, gpu_layers: int, context: int, machine: Machine, kv_type: str = "f16") -> Split:
    """The model at `context` tokens with `gpu_layers` layers (as Ollama counts them) on the GPU."""
    kv_factor = KV_BYTES.get(kv_type, 2.0) / KV_BYTES["f16"]
    on_gpu = set(gpu_layer_order(shape)[: max(0, min(gpu_layers, shape.layers))])
    vram = ram = 0.0
    gpu_read = cpu_read = 0.0
    for index, size in enumerate(shape.blocks):
        kv = shape.kv_per_token[index] * context * kv_factor
        read = shape.read_per_token(index)
        if index in on_gpu:
            vram, gpu_read = vram + size + kv, gpu_read + read
        else:
            ram, cpu_read = ram + size + kv, cpu_read + read
    ram += shape.embedding_bytes  # the token embeddings stay in system memory (a row of them read a token)
    if -1 in on_gpu:
        vram, gpu_read = vram + shape.output_bytes, gpu_read + shape.output_bytes
    else:  # tied: the output layer reads the embeddings' matrix where it is, no copy of it
        ram, cpu_read = ram + (0 if shape.tied else shape.output_bytes), cpu_read + shape.output_bytes
    if on_gpu:  # the compute buffer on the GPU, and its pinned staging part in system memory
        vram += compute_bytes(shape, context)
        ram += int(2.6 * shape.embedding * context)
    else:
        ram += compute_bytes(shape, context)
    spilled = max(0.0, vram - machine.vram_free) if on_gpu else 0.0
    fits = ram <= machine.ram_free and spilled <= machine.shared_free
    bus_read = gpu_read * (spilled / vram) if vram else 0.0
    gpu_read -= bus_read

    def seconds(read: float, side: Bandwidth | None) -> float | None:
        if read <= 0:
            return 0.0
        return read / side.bytes_per_s if side is not None and side.bytes_per_s > 0 else None

    return Split(
        gpu_layers=len(on_gpu),
        layers=shape.layers,
        vram_bytes=int(vram),
        ram_bytes=int(ram),
        spilled_bytes=int(spilled),
        fits=fits,
        cpu_read=cpu_read,
        gpu_read=gpu_read,
        bus_read=bus_read,
        cpu_s=seconds(cpu_read, machine.cpu),
        gpu_s=seconds(gpu_read, machine.gpu),
        bus_s=seconds(bus_read, machine.bus),
    )


@dataclass(frozen=True)
class Forecast:
    """Every number of GPU layers for one model at one context on one machine, and Ollama's choice."""

    shape: ModelShape
    context: int
    machine: Machine
    splits: tuple[Split, ...]
    choice: Split  # the most layers that fit the GPU's free memory less llama-server's reserve
    notes: tuple[str, ...] = field(default_factory=tuple)

    def at(self, gpu_layers: int) -> Split:
        return self.splits[max(0, min(gpu_layers, len(self.splits) - 1))]


def forecast(shape: ModelShape, context: int, machine: Machine, kv_type: str = "f16") -> Forecast:
    """The splits from 0 to every layer on the GPU, and the one Ollama would choose: the most layers
    whose VRAM fits the GPU's free memory less the reserve (none without a GPU)."""
    splits = tuple(split(shape, n, context, machine, kv_type) for n in range(shape.layers + 1))
    room = machine.vram_free - FIT_RESERVE
    chosen = max((s for s in splits if s.gpu_layers == 0 or s.vram_bytes <= room), key=lambda s: s.gpu_layers)
    notes = []
    if shape.trained_context and context > shape.trained_context:
        notes.append(f"the model was trained for {shape.trained_context} tokens: Ollama clamps num_ctx to that")
    return Forecast(shape, context, machine, splits, chosen, tuple(notes))


def held_to_limit(measured_tps: float, expected: Split) -> tuple[float, str] | None:
    """(the share of the limit a run reached, a sentence), for a run measured at `measured_tps` with the
    split `expected`; None where the split's speed cannot be forecast (a bandwidth not known)."""
    limit = expected.tps
    if limit is None or limit <= 0:
        return None
    share = measured_tps / limit
    said = f"{measured_tps:.2f} tok/s, {share * 100:.0f}% of this split's limit ({limit:.2f})"
    if share < 0.7 and expected.limit is not None:
        side = {"CPU": "the CPU side (system memory)", "GPU": "the GPU side (VRAM)", "bus": "the bus (spilled memory)"}
        said += f": well under it; {side[expected.limit]} takes most of a token's time"
    return share, said


def words(result: Forecast, gpu_name: str | None = None) -> str:
    """The forecast in plain words first: `fits 46 of 81 layers; about 2.4 tokens/s; spills 2.0 GB`."""
    chosen = result.choice
    parts = []
    if result.machine.vram_free <= 0:
        parts.append(f"no GPU: all {chosen.layers} layers on the CPU")
    elif chosen.gpu_layers >= chosen.layers:
        parts.append(f"fits all {chosen.layers} layers on the {gpu_name or 'GPU'}")
    else:
        parts.append(f"fits {chosen.gpu_layers} of {chosen.layers} layers on the {gpu_name or 'GPU'}")
    tps = chosen.tps
    parts.append(f"about {tps:.2g} tokens/s" if tps is not None else f"tokens/s {NA} (a bandwidth is not known)")
    if chosen.spilled_bytes:
        parts.append(f"spills {chosen.spilled_bytes / 1e9:.1f} GB")
    if not chosen.fits:
        parts.append("does not fit this machine's free memory")
    return "; ".join(parts)


def rows_to_show(result: Forecast, most: int = 12) -> list[Split]:
    """The splits the table shows: 0, every tenth of the layers, Ollama's choice, every layer."""
    layers = result.shape.layers
    picked = {0, layers, result.choice.gpu_layers, *(round(layers * i / 10) for i in range(1, 10))}
    return [result.at(n) for n in sorted(picked)][: most + 2]


def points(result: Forecast, layers: Sequence[int]) -> list[tuple[int, float | None]]:
    """(GPU layers, forecast tokens/s) for each of `layers`: the sweep's curve under its measurements."""
    return [(n, result.at(n).tps) for n in layers]


ROOMY = 1 << 62  # memory enough for any split: a run's own placement is what it was, not what fits


def run_limit(
    shape: ModelShape,
    gpu_layers: int,
    context: int,
    spilled_bytes: int,
    measured_tps: float,
    cpu: Bandwidth | None,
    gpu: Bandwidth | None,
    bus: Bandwidth | None,
) -> tuple[float, float, str] | None:
    """A finished run held to its limit: (the split's forecast tokens/s, the share of it the run reached,
    the sentence), for the layers it had on the GPU and the shared memory it spilled into; None where a
    side it read from has no known bandwidth."""
    machine = Machine(ROOMY, ROOMY, ROOMY, None, cpu, gpu, bus)
    expected = split(shape, gpu_layers, context, machine)
    if spilled_bytes > 0 and expected.vram_bytes:
        expected = split(shape, gpu_layers, context, Machine(ROOMY, max(expected.vram_bytes - spilled_bytes, 0),
                                                               ROOMY, None, cpu, gpu, bus))  # fmt: skip
    held = held_to_limit(measured_tps, expected)
    if held is None or expected.tps is None:
        return None
    share, said = held
    return expected.tps, share, said
