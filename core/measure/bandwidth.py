"""How fast each side of this machine reads memory, and where each figure comes from: this machine's
own history (bytes read a token times tokens/s of earlier runs), a short probe, a vendor's peak, or
the command line. Pure: history rows and raw figures in, Bandwidth out (the probe and the vendors'
figures are read in collectors/memory_bandwidth.py)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from llmtop.measure.forecast import Bandwidth
from llmtop.measure.summary_row import SummaryRow

RECENT = 5  # the newest runs of a kind a figure is the median of


def _clean(row: SummaryRow) -> bool:
    """A run whose rate says the machine's speed: complete, the server to itself, a dense model whose
    bytes read a token are its size (a mixture of experts reads a share of its experts it does not log)."""
    return (
        row.complete
        and not row.concurrent_requests
        and row.eval_rate_tps is not None
        and row.eval_rate_tps > 0
        and bool(row.size_bytes)
        and row.experts is None
        and row.layers_offloaded is not None
        and bool(row.layers_total)
    )


def _said(count: int, kind: str) -> str:
    return f"this machine's history: {count} {kind} run{'s' if count != 1 else ''} (model size x tokens/s)"


def cpu_from_history(rows: Sequence[SummaryRow]) -> Bandwidth | None:
    """The CPU's effective bandwidth: each CPU-only run's model size times its tokens/s, the median of
    the newest RECENT; None without such a run."""
    rates = [r.size_bytes * r.eval_rate_tps for r in rows if _clean(r) and r.layers_offloaded == 0]  # type: ignore[operator]
    rates = rates[-RECENT:]
    if not rates:
        return None
    return Bandwidth(statistics.median(rates), _said(len(rates), "CPU-only"))


def gpu_from_history(rows: Sequence[SummaryRow], cpu: Bandwidth | None) -> Bandwidth | None:
    """The GPU's effective bandwidth: runs with every layer on the GPU (size times tokens/s), else runs
    split with the CPU, the CPU's part of a token's time taken out (`cpu` known); None without either."""
    full = [r.size_bytes * r.eval_rate_tps for r in rows if _clean(r) and r.layers_offloaded == r.layers_total]  # type: ignore[operator]
    if full:
        full = full[-RECENT:]
        return Bandwidth(statistics.median(full), _said(len(full), "all-GPU"))
    if cpu is None:
        return None
    rates = []
    for r in rows:
        if not _clean(r) or not 0 < (r.layers_offloaded or 0) < (r.layers_total or 0) or r.shared_delta_bytes:
            continue
        share = r.layers_offloaded / r.layers_total  # type: ignore[operator]
        gpu_bytes, cpu_bytes = r.size_bytes * share, r.size_bytes * (1 - share)  # type: ignore[operator]
        left = 1 / r.eval_rate_tps - cpu_bytes / cpu.bytes_per_s  # type: ignore[operator]
        if left > 0:
            rates.append(gpu_bytes / left)
    rates = rates[-RECENT:]
    if not rates:
        return None
    return Bandwidth(statistics.median(rates), _said(len(rates), "split") + ", the CPU's part taken out")


def pcie(generation: int | None, width: int | None, source: str) -> Bandwidth | None:
    """A PCIe link's bandwidth one way: 2.5, 5, 8, 16, 32, 64 GT/s a lane by generation, 8b/10b
    encoding to gen 2, 128b/130b from gen 3 (gen 6's FLIT taken as 242/256)."""
    rates = {1: 2.5e9, 2: 5e9, 3: 8e9, 4: 16e9, 5: 32e9, 6: 64e9}
    if generation not in rates or not width:
        return None
    encoding = 0.8 if generation <= 2 else (128 / 130 if generation <= 5 else 242 / 256)
    value = rates[generation] * encoding / 8 * width
    return Bandwidth(value, f"{source}: PCIe {generation}.0 x{width}, its link's peak")


def memory_peak(bus_bits: int | None, clock_mhz: float | None, source: str, transfers: int = 2) -> Bandwidth | None:
    """A GPU's memory peak: the bus's width times its clock times the transfers a clock (GDDR: 2 of the
    clock a vendor reports), marked as a peak."""
    if not bus_bits or not clock_mhz:
        return None
    value = bus_bits / 8 * clock_mhz * 1e6 * transfers
    return Bandwidth(value, f"{source}: a {bus_bits}-bit bus at {clock_mhz:.0f} MHz, the vendor's peak")


def probed(bytes_per_s: float, when: str) -> Bandwidth:
    """The probe's figure: every core reading a buffer of its own at once (llama.cpp's threads do the same)."""
    return Bandwidth(bytes_per_s, f"a probe of system memory here, every core at once ({when})")
