"""Ollama 0.30 on, llama-server: its devices, llama.cpp's fit step before the load, and each request
(a task) as it is read and generated. llama.cpp's own lines inside it are runner_era's.

- Devices: `common_param:   - Vulkan0 : llvmpipe (LLVM 15.0.6, 256 bits) (2048 MiB, 2048 MiB free)`.
- The fit step (common/fit.cpp; logged at Ollama's --log-verbosity 4), before the real load: `projected
  to use 9862 MiB of device memory vs. 5733 MiB of free device memory`, `cannot meet free memory target
  of 1024 MiB, need to reduce device memory by 5153 MiB`, the plan per device (`- CUDA0 : 27 layers,
  4541 MiB used, 168 MiB free`) and the memory breakdown table (`| - CUDA0 (RTX 2060) | total = free +
  (self = model + context + compute) + unaccounted |`).
- Requests: `slot print_timing: id  0 | task 79 | prompt processing, n_tokens =   2560, progress = 0.35,
  t =   3.30 s / 776.33 tokens per second` while a long prompt is read, `n_decoded =    100, tg =   3.44
  t/s` (newer: `n_gen = ..., tg = ..., tg_3s = ...`) every 3 s while it generates, then `prompt eval time
  =   10950.33 ms /  7303 tokens (...)` and `eval time =   20840.36 ms /    64 tokens (...)`; `srv  stop:
  cancel task, id_task = 79` for a request given up, `release: id  0 | task 79 | stop processing` as
  its slot lets it go. Each task is kept with the load whose server has it under way.
"""

from __future__ import annotations

import re

from llmtop.collectors.ollama_log.records import MAX_REQUESTS, FitProjection, LoadRecord, RequestTiming
from llmtop.collectors.ollama_log.rules import Line, Log, Rule

_FIT_PROJECTED = re.compile(
    r"projected to use (\d+) MiB of (device|host) memory vs\. (\d+) MiB of (?:free device|total host) memory"
)
_FIT_LEAVES = re.compile(r"will leave (-?\d+) >= (\d+) MiB of (?:free device|system) memory, no changes needed")
_FIT_SHORT = re.compile(r"cannot meet free memory target of (\d+) MiB, need to reduce device memory by (\d+) MiB")
_FIT_PLAN = re.compile(
    r"\s-\s(.+?)\s*: +(\d+) layers(?: \(\s*(\d+) overflowing\))?, +(-?\d+) MiB used, +(-?\d+) MiB free"
)
_BREAKDOWN = re.compile(  # | - CUDA0 (RTX 2060) | total = free + (self = model + context + compute) + unaccounted |
    r"\|\s+-\s+(.+?)\s+\|\s+(\d+) = (\d+) \+ \((\d+) =\s+(\d+) \+\s+(\d+) \+\s+(\d+)\) \+\s+(-?\d+) \|"
)
_HOST_BREAKDOWN = re.compile(r"\|\s+-\s+Host\s+\|\s+(\d+) =\s+(\d+) \+\s+(\d+) \+\s+(\d+)\s+\|")  # self = parts
_USER_CTX = re.compile(r"context size set by user to (\d+)")
_DEVICE_INFO = re.compile(r"common_param:\s+-\s+(\S+)\s*:\s+(.*?)\s*\((\d+) MiB, (\d+) MiB free\)")
_CTX_SEQ = re.compile(r"llama_context: n_ctx_(?:seq|per_seq)\s+=\s+(\d+)\s*$")
# A task's timings, and (llama-server's own line as a slot takes a request) its start.
_TASK = re.compile(r"(?:print_timing|launch_slot_|operator\(\)): id\s+\d+ \| task (\d+) \|(?!.*sampler)")
# As a slot takes a prompt: its length, and the tokens it found in its cache (llama-server's prompt cache).
_NEW_PROMPT = re.compile(r"\| new prompt, .*?\btask\.n_tokens = (\d+)")
_CACHED = re.compile(r"\| cached n_tokens = (\d+)")
_PROMPT_PROGRESS = re.compile(
    r"prompt processing, n_tokens =\s*(\d+), progress =\s*([\d.]+), t =\s*([\d.]+) s /\s*([\d.]+) tokens per second"
)
_DECODED = re.compile(r"\bn_(?:decoded|gen) =\s*(\d+), tg =\s*([\d.]+) t/s(?:, tg_3s =\s*([\d.]+) t/s)?")
_TIMING = re.compile(r"\b(prompt eval|eval) time =\s*([\d.]+) ms /\s*(\d+) tokens \(.*?([\d.]+) tokens per second\)")
_CANCEL = re.compile(r"\bstop: cancel task, id_task = (\d+)")
_RELEASE = re.compile(r"release: id\s+\d+ \| task (\d+) \| stop processing")


def _fit_of(log: Log, line: Line) -> tuple[LoadRecord, FitProjection]:
    """The load a line of the fit step plans (its fit projection made where none is yet)."""
    open_records = log.open_loads()
    last = log.records[-1] if log.records else None
    if open_records:
        record = open_records[-1]
    elif last is not None and last.fit is not None and last.fit.needed_mib is not None:
        record = last  # llama-server prints the breakdown again as it exits: not a new load
    else:
        record = log.begin(line.now, None)
    record.fit = record.fit or FitProjection()
    return record, record.fit


def _projected(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    record, fit = _fit_of(log, line)
    if fit.needed_mib is None:  # the first projection is the full offload's
        fit.needed_mib, fit.free_mib = int(found.group(1)), int(found.group(3))
        fit.on_device = found.group(2) == "device"
    return record


def _leaves(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    record, fit = _fit_of(log, line)
    fit.reserve_mib = int(found.group(2))
    return record


def _short(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    record, fit = _fit_of(log, line)
    fit.reserve_mib, fit.short_mib = int(found.group(1)), int(found.group(2))
    return record


def _device_plan(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    record, _ = _fit_of(log, line)
    record.plan_devices.append((found.group(1).strip(), int(found.group(2)), int(found.group(3) or 0)))
    return record


def _breakdown(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    record, fit = _fit_of(log, line)
    if fit.model_mib is None:  # the first table is the full offload's; the rest are trials
        fit.model_mib, fit.context_mib, fit.compute_mib = (int(found.group(i)) for i in (5, 6, 7))
    return record


def _host_breakdown(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    record, fit = _fit_of(log, line)
    if fit.model_mib is None:  # no device row before it: a load on the CPU alone
        fit.model_mib, fit.context_mib, fit.compute_mib = (int(found.group(i)) for i in (2, 3, 4))
    return record


def _user_context(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    record, fit = _fit_of(log, line)
    fit.user_context = int(found.group(1))
    return record


def _device_listed(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    """A device llama-server lists: a GPU's memory, and its name where discovery did not give it."""
    record = log.newest_open(line.now)
    device, description = found.group(1), found.group(2)
    record.runner_devices.append(device)
    if not device.upper().startswith("CPU"):
        record.device_totals[device] = int(found.group(3)) * 2**20
        if description and description not in record.gpus:
            record.gpus.append(description)
    return record


def _context_seq(log: Log, found: re.Match[str], line: Line) -> LoadRecord:
    record = log.newest_open(line.now)
    record.context_seq = int(found.group(1))
    return record


def _task(log: Log, found: re.Match[str], line: Line) -> LoadRecord | None:
    """A task's line: its progress or its final timings, kept with the load whose server has that task
    under way (two servers' lines interleave when a second model loads while the first one answers),
    else with the newest load."""
    text, now, task = line.text, line.now, int(found.group(1))
    new_prompt, cached = _NEW_PROMPT.search(text), _CACHED.search(text)
    if "operator():" in text and not (new_prompt or cached):
        return None  # another of the slot's lines: nothing of the request's figures
    record = next(
        (r for r in reversed(log.records) if (q := r.request(task)) and q.eval_ms is None and not q.cancelled),
        None,
    ) or (log.records[-1] if log.records else log.begin(now, None))
    record.llama_server = True
    progress, decoded, timing = _PROMPT_PROGRESS.search(text), _DECODED.search(text), _TIMING.search(text)
    if not (progress or decoded or timing) and ("total time" in text or "graphs reused" in text):
        return next((r for r in reversed(log.records) if r.request(task)), record)  # after a request's timing
    request = record.request(task)
    # Task ids start again when a server restarts: progress on a finished task is a new one.
    if request is None or (request.eval_ms is not None and (progress or decoded or new_prompt)):
        request = RequestTiming(task, now)
        record.requests.append(request)
        del record.requests[:-MAX_REQUESTS]
    if new_prompt:
        request.prompt_total = int(new_prompt.group(1))
    elif cached:  # llama-server says it again after each batch: the first, after the new prompt, is the reuse
        if request.prompt_cached is None:
            request.prompt_cached = int(cached.group(1))
    elif progress:
        request.prompt_done = int(progress.group(1))
        request.prompt_progress = float(progress.group(2))
        request.prompt_elapsed_s = float(progress.group(3))
        request.prompt_live_tps = float(progress.group(4))
        request.progress_seen = now
        request.prompt_points.append((request.prompt_done, request.prompt_elapsed_s))
    elif decoded:
        request.decoded = int(decoded.group(1))
        request.tg_tps = float(decoded.group(2))
        request.tg_3s_tps = float(decoded.group(3)) if decoded.group(3) else None
    elif timing:
        ms, tokens, printed = float(timing.group(2)), int(timing.group(3)), float(timing.group(4))
        if timing.group(1) == "prompt eval":
            request.prompt_ms, request.prompt_tokens, request.prompt_printed_tps = ms, tokens, printed
        else:
            request.eval_ms, request.eval_tokens, request.eval_printed_tps = ms, tokens, printed
    return record


def _released(log: Log, found: re.Match[str], line: Line) -> LoadRecord | None:
    for load in reversed(log.records):
        over = load.request(int(found.group(1)))
        if over is not None and not over.released:
            over.released = True
            return load
    return None


def _cancelled(log: Log, found: re.Match[str], line: Line) -> LoadRecord | None:
    for load in reversed(log.records):
        given_up = load.request(int(found.group(1)))
        if given_up is not None:
            given_up.cancelled = True
            return load
    return None


LINES = (
    Rule(_FIT_PROJECTED, _projected),
    Rule(_FIT_LEAVES, _leaves),
    Rule(_FIT_SHORT, _short),
    Rule(_FIT_PLAN, _device_plan),
    Rule(_BREAKDOWN, _breakdown),
    Rule(_HOST_BREAKDOWN, _host_breakdown),
    Rule(_USER_CTX, _user_context, when=lambda line: "fit" in line.text),
    Rule(_DEVICE_INFO, _device_listed, noted=False),
    Rule(_CTX_SEQ, _context_seq, noted=False),
    Rule(_TASK, _task, noted=False),
    Rule(_RELEASE, _released, noted=False),
    Rule(_CANCEL, _cancelled, noted=False),
)
