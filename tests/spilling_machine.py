"""A machine whose GPU is too small for the model, for the Ollama double (DoubleConfig.machine).

Every generated token reads the whole model once: the layers on the CPU from system RAM, those in
VRAM at the GPU's bandwidth, and the part that spilled into shared GPU memory (GTT, Windows' shared
memory) across the bus, slower than the CPU reads its own RAM. So tokens/s rises with the GPU layers
until VRAM is full, then falls as the spill grows; past the shared memory the driver will give, the
load fails for want of memory. The GPU's counters are written as the amdgpu driver publishes them
(an RX 7600 XT, tests/gpu_trees.py) under a sysfs root that llmtop reads through LLMTOP_SYSFS_ROOT.

The defaults are the article's machine: Llama 3.3 70B Q4_K_M (42.5 GB, 81 layers) on a 16 GB
Radeon, 0.94 tokens/s on the CPU alone, Ollama's choice of 27 layers spilling 1.3 GB.

The server's own settings change a load (`Shape`): a KV cache of another type or more slots changes
the KV cache's bytes on the GPU (the 3.7 GB overhead is the default's: f16, one slot); an MoE model
reads only the experts it uses of each layer (Tanuki 8x8B: 2 of 8), and `moe=N` keeps the experts of
N of the GPU's layers in system memory, where the CPU reads them. So q8_0 shrinks the spill of the
same layer count, and the experts sweep finds the fewest layers of experts on the CPU that stop the
spill: past them, each layer more moves reading from the GPU to the slower CPU.

With `install(root, power=True)` the machine also draws power, as a stand-in (no card was measured):
the CPU package from an idle 18 W up to 90 W and the card from 9 W up to 169 W (its board limit is
190 W), each in proportion to the share of a token's time its part of the model takes. The CPU's
energy is a powercap counter a thread advances (wrapping as RAPL's does), the card's power is
amdgpu's hwmon `power1_average`: llmtop reads both with its real Linux readers.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from power_trees import RAPL_RANGE_UJ, amd_hwmon_tree, rapl_tree, write_value

from gpu_trees import AMD_CARD, sysfs_tree

OOM_ERROR = "llama runner process has terminated: error loading model: unable to allocate ROCm0 buffer"


@dataclass(frozen=True)
class Shape:
    """What a load is, beside its layer count: the model's experts and the server's settings."""

    expert_share: float = 0.0  # of each layer's weights, the experts' (0: a dense model)
    experts_read: float = 1.0  # of the experts, the share a token reads (2 of 8: 0.25)
    cpu_moe: int = 0  # layers of the GPU's whose experts stay in system memory (LLAMA_ARG_N_CPU_MOE)
    kv_extra: int = 0  # the KV cache's bytes beyond the default's (f16, one slot): negative for q8_0

    @property
    def read_share(self) -> float:
        """Of a layer's weights, the share one token reads."""
        return 1.0 - self.expert_share + self.expert_share * self.experts_read


DENSE = Shape()


def experts_overlap(total_layers: int, gpu_layers: int, cpu_moe: int) -> int:
    """Of the blocks on the GPU (the last ones: llama.cpp offloads from the end), those whose experts
    `moe=N` keeps in system memory (the first N)."""
    blocks = total_layers - 1  # the output layer has no experts
    on_gpu = min(max(gpu_layers, 0), blocks)
    return max(0, min(cpu_moe, blocks) - (blocks - on_gpu))


@dataclass
class SpillingMachine:
    vram_total: int = int(AMD_CARD["mem_info_vram_total"])
    vram_idle: int = 600_000_000  # the desktop's share of VRAM before the model loads
    gtt_total: int = int(AMD_CARD["mem_info_gtt_total"])
    gtt_idle: int = 90_000_000
    gpu_overhead: int = 3_700_000_000  # KV cache and compute buffers on the GPU once a layer is there
    shared_limit: int = 16_000_000_000  # the most shared memory the driver gives before a load fails
    cpu_bandwidth: float = 40e9  # bytes/s the CPU reads its RAM at
    vram_bandwidth: float = 288e9
    shared_bandwidth: float = 12e9  # across PCIe: slower than the CPU's own RAM
    auto_layers: int = 27  # what Ollama chooses when the request sets no num_gpu
    speedup: float = 100.0  # the double generates this much faster than the machine (tests stay short)
    sysfs_root: Path | None = None  # where the GPU's counters are written (set up by `install`)
    cpu_idle_w: float = 18.0
    cpu_busy_w: float = 72.0  # added while the CPU reads all of every token's weights
    gpu_idle_w: float = 9.0
    gpu_busy_w: float = 160.0
    cpu_w: float = 18.0  # what it draws now (draw())
    gpu_w: float = 9.0
    # How long the driver takes to free an unloaded model's memory, after Ollama has answered the unload
    # and stopped listing the model: the counters fall in steps over this time (0: at once).
    release_s: float = 0.0
    # How long a load takes to read the model's weights into the GPU's memory: the counters rise in steps
    # over this time while the load's request waits (0: at once), as a disk-bound load fills VRAM.
    load_s: float = 0.0
    _used: tuple[int, int] = (0, 0)  # the model's (dedicated, shared) bytes in the counters now

    def install(self, root: Path, power: bool = False) -> Path:
        """Write the card's sysfs tree under `root`, idle; return the root for LLMTOP_SYSFS_ROOT.
        `power`: the CPU package's counter and the card's hwmon power too, the counter advanced by
        a thread until the tree is removed."""
        self.sysfs_root = sysfs_tree(root)
        self.cpu_w, self.gpu_w = self.cpu_idle_w, self.gpu_idle_w
        if power:
            rapl_tree(root)
            amd_hwmon_tree(root, power_uw=int(self.gpu_idle_w * 1e6))
            threading.Thread(target=self._count_cpu_energy, daemon=True).start()
        # Last: the trees above are the card as it was recorded, with a model loaded; it starts idle.
        self.write_counters(0, 0)
        return root

    def draw(self, size: int, total_layers: int, gpu_layers: int, shape: Shape = DENSE) -> None:
        """The power the machine draws while it generates with `gpu_layers` on the GPU (-1: idle)."""
        cpu_share = 0.0
        if gpu_layers >= 0 and size:
            layers = min(max(gpu_layers, 0), total_layers)
            cpu_read, _, _ = self._reads(size, total_layers, layers, shape)
            cpu_share = cpu_read / self.cpu_bandwidth * self.machine_tps(size, total_layers, layers, shape)
        busy = gpu_layers >= 0
        self.cpu_w = self.cpu_idle_w + (self.cpu_busy_w * cpu_share if busy else 0.0)
        self.gpu_w = self.gpu_idle_w + (self.gpu_busy_w * (1 - cpu_share) if busy and gpu_layers > 0 else 0.0)
        if self.sysfs_root is not None and (self.sysfs_root / "class/powercap").exists():
            hwmon = self.sysfs_root / "class/drm/card1/device/hwmon/hwmon3/power1_average"
            write_value(hwmon, int(self.gpu_w * 1e6))

    def _count_cpu_energy(self) -> None:
        assert self.sysfs_root is not None
        counter = self.sysfs_root / "class/powercap/intel-rapl:0/energy_uj"
        energy, last = 1_000_000.0, time.monotonic()
        while True:
            time.sleep(0.01)
            now = time.monotonic()
            energy += self.cpu_w * 1e6 * (now - last)
            last = now
            try:
                write_value(counter, int(energy) % RAPL_RANGE_UJ)
            except OSError:  # the tree was removed: the machine is gone
                return

    def overhead(self, shape: Shape = DENSE) -> int:
        """The KV cache and compute buffers on the GPU once a layer is there, for this load's settings."""
        return self.gpu_overhead + shape.kv_extra

    def experts_kept(self, size: int, total_layers: int, gpu_layers: int, shape: Shape = DENSE) -> int:
        """Bytes of the GPU's layers' experts that `moe=N` keeps in system memory: llama.cpp keeps the
        experts of blocks 0 to N-1 there, and offloads the last blocks, so only the overlap counts."""
        return int(size / total_layers * shape.expert_share * experts_overlap(total_layers, gpu_layers, shape.cpu_moe))

    def gpu_weights(self, size: int, total_layers: int, gpu_layers: int, shape: Shape = DENSE) -> int:
        """Bytes of the model's weights the GPU holds (VRAM and shared memory together)."""
        layers = min(max(gpu_layers, 0), total_layers)
        return size * layers // total_layers - self.experts_kept(size, total_layers, layers, shape)

    def placement(self, size: int, total_layers: int, gpu_layers: int, shape: Shape = DENSE) -> tuple[int, int]:
        """(dedicated, shared) bytes the model takes on the GPU with `gpu_layers` of its layers there."""
        if gpu_layers <= 0:
            return 0, 0
        wanted = self.gpu_weights(size, total_layers, gpu_layers, shape) + self.overhead(shape)
        room = self.vram_total - self.vram_idle
        return min(wanted, room), max(wanted - room, 0)

    def fits(self, size: int, total_layers: int, gpu_layers: int, shape: Shape = DENSE) -> bool:
        return self.placement(size, total_layers, gpu_layers, shape)[1] <= self.shared_limit

    def _reads(self, size: int, total_layers: int, layers: int, shape: Shape) -> tuple[float, float, float]:
        """Bytes one token reads (from system RAM, from VRAM, from shared memory)."""
        on_gpu = self.gpu_weights(size, total_layers, layers, shape)
        kept = self.experts_kept(size, total_layers, layers, shape)
        cpu_read = (size * (total_layers - layers) // total_layers) * shape.read_share + kept * shape.experts_read
        gpu_read = size * shape.read_share - cpu_read
        dedicated, _ = self.placement(size, total_layers, layers, shape)
        in_vram = min(on_gpu, max(dedicated - self.overhead(shape), 0))
        vram_part = in_vram / on_gpu if on_gpu else 1.0
        return cpu_read, gpu_read * vram_part, gpu_read * (1 - vram_part)

    def machine_tps(self, size: int, total_layers: int, gpu_layers: int, shape: Shape = DENSE) -> float:
        """Tokens/s on the machine itself (before `speedup`)."""
        layers = min(max(gpu_layers, 0), total_layers)
        cpu_read, vram_read, shared_read = self._reads(size, total_layers, layers, shape)
        seconds = cpu_read / self.cpu_bandwidth + vram_read / self.vram_bandwidth + shared_read / self.shared_bandwidth
        return 1.0 / seconds

    def token_rate(self, size: int, total_layers: int, gpu_layers: int, shape: Shape = DENSE) -> float:
        """Tokens/s the double generates at."""
        return self.machine_tps(size, total_layers, gpu_layers, shape) * self.speedup

    def best_layers(self, size: int, total_layers: int) -> int:
        """The fastest layer count that loads: the answer a sweep should find."""
        loadable = [n for n in range(total_layers + 1) if self.fits(size, total_layers, n)]
        return max(loadable, key=lambda n: (self.machine_tps(size, total_layers, n), -n))

    def best_moe(self, size: int, total_layers: int, shape: Shape, values: list[int]) -> int:
        """Of `values`, the layers of experts in system memory (every layer on the GPU) that load and
        generate fastest: the answer an experts sweep over them should find."""

        def at(n: int) -> Shape:
            return Shape(shape.expert_share, shape.experts_read, n, shape.kv_extra)

        loadable = [n for n in values if self.fits(size, total_layers, total_layers, at(n))]
        return max(loadable, key=lambda n: (self.machine_tps(size, total_layers, total_layers, at(n)), -n))

    def release(self) -> None:
        """The model was unloaded: its memory goes back to idle, at once or in steps over `release_s`
        (on a thread: the unload has been answered by then)."""
        if self.release_s <= 0:
            self.write_counters(0, 0)
            return
        dedicated, shared = self._used

        def fall() -> None:
            steps = 8
            for step in range(1, steps + 1):
                time.sleep(self.release_s / steps)
                left = (steps - step) / steps
                self.write_counters(int(dedicated * left), int(shared * left))

        threading.Thread(target=fall, daemon=True).start()

    def fill(self, dedicated: int, shared: int, reserved: int = 0) -> None:
        """A load puts (dedicated, shared) bytes in the GPU's memory: at once, or over `load_s` as
        llama.cpp does: the weights read from disk in steps (VRAM first), then the `reserved` KV cache
        and compute buffers allocated at once at the end."""
        steps = 20 if self.load_s > 0 else 0
        weights = max(dedicated + shared - reserved, 0)
        for step in range(1, steps + 1):
            time.sleep(self.load_s / steps)
            loaded = weights * step // steps
            self.write_counters(min(loaded, dedicated), max(loaded - dedicated, 0))
        self.write_counters(dedicated, shared)

    def write_counters(self, dedicated: int, shared: int) -> None:
        """The GPU's memory counters as amdgpu publishes them, with the model's part added."""
        self._used = (dedicated, shared)
        if self.sysfs_root is None:
            return
        device = self.sysfs_root / "class/drm/card1/device"
        for name, value in (
            ("mem_info_vram_used", self.vram_idle + dedicated),
            ("mem_info_vis_vram_used", self.vram_idle + dedicated),
            ("mem_info_gtt_used", self.gtt_idle + shared),
            ("mem_info_gtt_total", self.gtt_total),
        ):
            temporary = device / f".{name}"
            temporary.write_text(f"{value}\n")
            temporary.replace(device / name)  # a reader never sees a half-written number
