"""Why a load's layers landed where they did, in one sentence made of the log's own numbers: num_gpu
asked for them, llama.cpp's fit step (what all of them need against what was free), Ollama's own
estimate, or why no GPU was used at all. Pure: a LoadRecord in, words out."""

from __future__ import annotations

from llmtop.collectors.ollama_log import LoadRecord


def split_reason(load: LoadRecord) -> str | None:
    """One sentence that says why the layers landed where they did; None where the log does not say."""
    offloaded, total = load.layers_offloaded, load.layers_total
    if offloaded is None or total is None:
        return None
    where = f"{offloaded}/{total} layers on the GPU"
    if offloaded == 0:
        why = no_gpu_reason(load)
        return f"{where}: {why}" if why else None
    asked = asked_gpu_layers(load)
    if asked is not None and offloaded == min(asked, total):
        return f"{where}: num_gpu {asked} asked for them"  # the fit then changes nothing
    return _fit_sentence(load, where) or _estimate_sentence(load, where)


def _fit_sentence(load: LoadRecord, where: str) -> str | None:
    """llama.cpp's fit step (llama-server, 0.30 on): all layers' need against the free memory."""
    fit, offloaded, total = load.fit, load.layers_offloaded, load.layers_total
    if fit is None or not fit.on_device or fit.needed_mib is None or fit.free_mib is None:
        return None
    kv_label = f"KV cache for {load.context} tokens" if load.context else "KV cache"
    parts = ", ".join(
        f"{label} {value}"
        for label, value in (("weights", fit.model_mib), (kv_label, fit.context_mib), ("compute", fit.compute_mib))
        if value is not None
    )
    reserve = f", {fit.reserve_mib} kept in reserve" if fit.reserve_mib is not None else ""
    sentence = (
        f"{where}: all {total} need {fit.needed_mib} MiB"
        + (f" ({parts})" if parts else "")
        + f" and {fit.free_mib} MiB were free{reserve}"
    )
    if load.layers_overflowing:
        sentence += f"; {load.layers_overflowing} of them overflowing (their experts stay in system memory)"
    if fit.context_mib and load.context and load.context >= 4096 and offloaded is not None and total is not None:
        if offloaded < total:
            smaller = load.context // 4
            sentence += f". Estimate: at num_ctx {smaller} the KV cache takes about {fit.context_mib // 4} MiB"
    return sentence


def _estimate_sentence(load: LoadRecord, where: str) -> str | None:
    """Ollama's own estimate (its plan before 0.30): all layers' need against what was available."""
    full, available = load.estimate.get("memory.required.full"), load.estimate.get("memory.available")
    if not (full and available):
        return None
    kv = load.estimate.get("memory.required.kv")
    return (
        f"{where}: Ollama's estimate for all of them is {full}"
        + (f" (KV cache {kv})" if kv else "")
        + f" and {available.strip('[]')} was available"
    )


def asked_gpu_layers(load: LoadRecord) -> int | None:
    """The layers the request asked for (num_gpu), where the log tells the request's from Ollama's own
    choice: llama-server gets `-ngl` only when the request set num_gpu (0.30 on), and Ollama's plan
    says `layers.requested` (-1: its own choice) before 0.30, whose runner gets Ollama's count either way."""
    if load.llama_server:
        return load.requested_gpu_layers
    requested = load.estimate.get("layers.requested", "")
    return int(requested) if requested.isdigit() else None


def no_gpu_reason(load: LoadRecord) -> str | None:
    """Why no layer is on a GPU, where the log says."""
    if load.requested_gpu_layers == 0:
        return "num_gpu 0 asked for the CPU alone"
    if load.gpu_problem:
        return load.gpu_problem
    if load.runner_devices and all(device.upper().startswith("CPU") for device in load.runner_devices):
        return "llama-server found no GPU (the only device it listed is the CPU)"
    return None
