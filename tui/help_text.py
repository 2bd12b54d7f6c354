"""What the help screen says: every key, every figure on the live screen and in the tables (what it
measures and where it is read from), and the full reason of each figure that is n/a now.

Pure: no I/O, no Textual; the table figures' sentences come from llmtop.figures, as docs/figures.md's do.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmtop import words
from llmtop.figures import FIGURES
from llmtop.units import NA

# The live screen, top to bottom: (what is shown, what it measures and where it is read from).
LIVE_FIGURES: tuple[tuple[str, str], ...] = (
    (
        "phase line",
        "which run of the plan, its phase (unloading, baseline, loading, prompt, generating) and time in it",
    ),
    ("tokens", "streamed chunks counted on the client's clock since the request"),
    ("live", "tokens/s over the last 2 s, client clock (the tokens/s chart plots the same)"),
    ("TTFT", "client clock: request sent to first token, so it includes the model load"),
    (
        "server tok/s, prompt %",
        "llama-server's own lines in the server log (Ollama 0.30 on): prompt progress, eval rate",
    ),
    (
        words.RAM,
        "system memory in use (Linux: /proc/meminfo MemTotal - MemAvailable - per-CPU free pages, plus the "
        "Ollama processes' mapped files; Windows: GlobalMemoryStatusEx; macOS: psutil total - available); "
        "Δ over the baseline taken before the run",
    ),
    (
        "  mapped",
        "Linux: resident file-backed memory of the Ollama processes (RssFile in /proc/PID/status): mapped weights",
    ),
    ("Swap", "swap in use, from the same reading as RAM"),
    (
        words.OLLAMA_RSS,
        "resident memory of `ollama serve` and its runners (/proc/PID/status VmRSS on Linux, psutil elsewhere)",
    ),
    (
        words.VRAM,
        "dedicated GPU memory in use: NVML on NVIDIA, amdgpu sysfs mem_info_vram_used or amdsmi on AMD, "
        "Windows' GPU Adapter Memory counters, unified memory on Apple Silicon; where no counter reads the GPU "
        "(a Vulkan-only or software GPU), the engine's own buffers on it from the server log: `buffers (log)`",
    ),
    (
        words.SHARED_GPU,
        "system RAM the GPU driver uses as GPU memory: Windows' shared GPU memory counter, GTT on Linux AMD "
        "(mem_info_gtt_used); its growth during a run is the spill",
    ),
    (
        "CPU / GPU power",
        "watts now and their last 8 s: the CPU package from RAPL (Linux powercap energy_uj; Windows' Energy Meter "
        "Interface), NVIDIA GPUs from NVML (total energy, else power usage), AMD from hwmon power1_average, Intel "
        "from hwmon energy1_input; the bar against the source's power limit; Δ over the baseline's idle power",
    ),
    (
        "energy",
        "joules used since the request (counters differenced, power integrated), and while generating the "
        "joules per token after the first",
    ),
    ("GPU layers", "the server log's `offloaded N/M layers to GPU` for this run's load, and the backend it names"),
    ("Ollama's split", "`/api/ps` size_vram of size: Ollama's own estimate of the split"),
    ("why", "the server log's numbers: what a full offload needs against the free device memory"),
    (
        "memory timeline (m)",
        "RAM (as above), Ollama RSS, VRAM and shared GPU memory over the run from the collectors' samples; "
        "dots: each figure's baseline; marks: baseline, load, prompt, generation, end",
    ),
    ("tokens/s chart", "the live rate over a 2 s window against seconds since the request"),
    ("bars (b)", "tps (the server's eval rate) per model and mode, mean over the runs"),
)


_LIVE_BY_NAME = dict(LIVE_FIGURES)
# `llmtop watch`'s screen, top to bottom.
WATCH_FIGURES: tuple[tuple[str, str], ...] = (
    ("server line", "where the requests are read from: the server log (and how it is read), the proxy, the metrics"),
    *(
        (name, _LIVE_BY_NAME[name])
        for name in (words.RAM, "  mapped", "Swap", words.OLLAMA_RSS, words.VRAM, words.SHARED_GPU)
    ),
    ("memory chart", "RAM, Ollama RSS, VRAM and shared GPU memory over the last 10 minutes; marks: each model load"),
    (
        "loaded models",
        "`/api/ps`, polled every second: each model's size, its share in VRAM (size_vram of size), its context and "
        "when Ollama unloads it; the title says a load under way, its bytes so far and time left",
    ),
    (
        "requests",
        "every request the server finished or is working on, newest first: llama-server's timing lines in the "
        "server log (Ollama 0.30 on), the access lines, or the proxy (--proxy): prompt and answer tokens, the "
        "rates, the time, and a prompt's or an answer's time left while it runs",
    ),
    ("events", "loads with their layers on the GPU and why, unloads, evictions, spills, a server that stops answering"),
)
WATCH_KEY_HELP = {"quit": "quit (the requests seen so far are kept in the history)", "help": "this help; Esc closes it"}

KEY_COLUMN = 9


def help_lines(
    keys: Sequence[tuple[str, str]],
    unavailable: Sequence[tuple[str, str]],
    figures: Sequence[tuple[str, str]] = LIVE_FIGURES,
    tables: bool = True,
) -> list[tuple[str, int]]:
    """The help screen's lines as (text, indent of its wrapped rows): `keys` as (key, what it does),
    then the screen's `figures` (the run screen's by default), the tables' figures where `tables`, and
    `unavailable` as (figure, its full reason) for what is n/a now."""
    lines = [("Keys", 0)]
    lines += [(f"  {key:<{KEY_COLUMN}} {action}", KEY_COLUMN + 3) for key, action in keys]
    lines += [("", 0), ("The live screen: what each figure measures, and where it is read from", 0)]
    lines += [(f"  {name}: {how}", 4) for name, how in figures]
    if tables:
        lines += [("", 0), ("The tables (Δ: the change over the baseline taken before each run)", 0)]
        lines += [(f"  {f.name}: {f.how}", 4) for f in FIGURES if f.run is not None or f.compared is not None]
    if unavailable:
        lines += [("", 0), (f"{NA} now, and why (in full)", 0)]
        lines += [(f"  {name}: {reason}", 4) for name, reason in unavailable]
    lines += [("", 0), ("`llmtop doctor` says what each source read on this machine, and why any is missing.", 0)]
    return lines


# What each of the run screen's keys does, in full (the footer names them in a word), by action.
RUN_KEY_HELP = {
    "quit_keeping": "quit (a run in progress is kept, marked incomplete; the export and history keep it)",
    "run_again": "queue one more run of the model with the next run's settings",
    "toggle_cpu": "the next run (r) CPU only, or back to the plan's setting",
    "export": "write the runs so far (--export PATH, else llmtop-MODEL-DATE.md)",
    "toggle_log": "the server log's lines about the model load",
    "toggle_bars": "tps per model and mode as bars (the article's graph); a sweep's chart in a sweep",
    "toggle_memory": "the memory timeline in place of the tps chart (both side by side from 160 columns)",
    "help": "this help (also F1); Esc closes it",
}
# Keys the footer leaves out, and what they do.
HIDDEN_KEYS = (
    ("Ctrl+C", "quit (the run in progress is kept, marked incomplete)"),
    ("t", "the tables' other columns, where they do not all fit the width"),
)


def key_lines(keys: Sequence[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """(key, what it does) for the help screen: each (key, action, word) the footer shows, in full
    where RUN_KEY_HELP says more, then the keys the footer leaves out."""
    return [(key, RUN_KEY_HELP.get(action, word)) for key, action, word in keys] + list(HIDDEN_KEYS)
