"""A SummaryRow with plausible figures, for tests of what is built from rows."""

from __future__ import annotations

from dataclasses import replace

from llmtop.measure.summary_row import SummaryRow


def row(model: str, mode: str, tps: float = 1.0, error: str | None = None) -> SummaryRow:
    return SummaryRow(
        model=model,
        parameter_size="8.0B",
        quantization="Q4_K_M",
        size_bytes=4_900_000_000,
        env="CPU" if mode == "cpu" else "CPU+GPU",
        eval_rate_tps=tps,
        client_rate_tps=tps,
        prompt_rate_tps=None,
        ttft_s=None,
        load_s=None,
        ram_delta_bytes=None,
        ram_peak_bytes=None,
        vram_delta_bytes=None,
        shared_delta_bytes=None,
        layers_offloaded=None,
        layers_total=None,
        ollama_version=None,
        complete=error is None,
        mode=mode,
        error=error,
    )


# Figures llmtop keeps since the shipped recordings (screenshots/recordings/) were made: their
# recorded rows lack them, a replay computes them (why VRAM and shared are n/a; whether the server
# served another app meanwhile; what the load ran with and its memory by part; the swap in use; the
# arrival marks of the tokens; the CPU's use; VRAM's sources and the engine's buffers beside a counter).
NEWER_THAN_THE_RECORDINGS = {
    "vram_note": None,
    "shared_note": None,
    "concurrent_requests": None,
    "concurrent_note": None,
    "settings": {},
    "memory_parts": (),
    "swap_delta_bytes": None,
    "token_marks": (),
    "other_cpu_cores": None,
    "ollama_cpu_cores": None,
    "cpu_clock_mhz": None,
    "cpu_clock_max_mhz": None,
    "gpu_clock_limits": (),
    "vram_engine_bytes": None,
    "vram_source": None,
    "vram_cross_note": None,
    "limit_tps": None,
    "limit_share": None,
    "limit_note": None,
}


def as_recorded(rows: list[SummaryRow]) -> list[SummaryRow]:
    """The rows as the shipped recordings' llmtop wrote them: without the figures it did not keep yet."""
    return [replace(row, **NEWER_THAN_THE_RECORDINGS) for row in rows]  # type: ignore[arg-type]
