"""The server's own settings as modes (kv=, fa=, moe=, np=): their names, the environment of the
`ollama serve` llmtop starts, what each Ollama honours, and what a run says it ran with."""

from __future__ import annotations

import pytest

from llmtop.collectors.ollama_log import LoadRecord, parse_lines
from llmtop.measure.load_parts import (
    MemoryPart,
    bars_text,
    memory_parts,
    parts_lines,
    settings_in_effect,
    settings_text,
)
from llmtop.measure.mode import Mode, parse_modes
from llmtop.measure.server_settings import ServerSettings, serve_env, serve_line, unsupported
from llmtop.measure.settings import RunSettings
from llmtop.store.exports import parts_markdown, session_markdown, to_csv
from summary_rows import row

MIB = 1024 * 1024


def test_modes_name_the_server_settings_in_one_order_and_a_setting_alone_means_auto():
    assert [m.name for m in parse_modes("auto,fa=on:kv=q8_0,moe=all,gpu=20:np=2:moe=16,cpu:ctx=8k:kv=q4_0")] == [
        "auto",
        "auto:kv=q8_0:fa=on",
        "auto:moe=all",
        "gpu=20:moe=16:np=2",
        "cpu:ctx=8192:kv=q4_0",
    ]
    assert [m.name for m in parse_modes("auto:kv=q8_0,kv=q8_0")] == ["auto:kv=q8_0"]  # the same mode twice is one
    settings = RunSettings().with_mode(Mode.parse("gpu=20:moe=16:np=2"))
    assert (settings.num_gpu, settings.server) == (20, ServerSettings(cpu_moe="16", parallel=2))
    assert settings.mode == "gpu=20:moe=16:np=2" and settings.options() == {"num_gpu": 20, "seed": 42}


def test_a_modes_label_spells_its_server_settings_out():
    assert Mode.of("auto:kv=q8_0:fa=on").label == "auto, KV q8_0, FA on"
    assert Mode.of("gpu=20:moe=16:np=2").label == "gpu=20, experts of 16 layers on CPU, 2 slots"
    assert Mode.of("auto:moe=all").label == "auto, all experts on CPU"
    assert Mode.of("auto:ctx=8192").label == "auto:ctx=8192" and Mode.of("cpu").label == "cpu"
    assert Mode.of("auto:ctx=8192").plain and not Mode.of("auto:np=1").plain


def test_the_environment_of_ollama_serve_keeps_the_users_own_where_a_mode_sets_nothing():
    user = {"PATH": "/bin", "OLLAMA_KV_CACHE_TYPE": "q4_0", "LLAMA_ARG_N_CPU_MOE": "4", "OLLAMA_MODELS": "/m"}
    assert serve_env(user, ServerSettings()) == user
    assert serve_env(user, ServerSettings(kv_cache="q8_0", flash_attention=True)) == {
        **user,
        "OLLAMA_KV_CACHE_TYPE": "q8_0",
        "OLLAMA_FLASH_ATTENTION": "1",
    }
    everything = serve_env(user, ServerSettings(cpu_moe="all", parallel=2))
    assert "LLAMA_ARG_N_CPU_MOE" not in everything  # moe=all replaces the user's moe=4
    assert everything["LLAMA_ARG_CPU_MOE"] == "1" and everything["OLLAMA_NUM_PARALLEL"] == "2"
    assert serve_env(user, ServerSettings(cpu_moe="8"))["LLAMA_ARG_N_CPU_MOE"] == "8"
    assert serve_line(ServerSettings(kv_cache="q8_0", flash_attention=False)) == (
        "OLLAMA_KV_CACHE_TYPE=q8_0 OLLAMA_FLASH_ATTENTION=0 ollama serve"
    )


@pytest.mark.parametrize(
    ("settings", "version", "env", "why"),
    [
        (ServerSettings(cpu_moe="all"), "0.24.0", {}, "moe=all needs Ollama 0.30 or later"),
        (ServerSettings(cpu_moe="all"), "0.34.4", {}, None),
        (ServerSettings(kv_cache="q8_0"), "0.5.11", {}, "kv=q8_0 needs flash attention on Ollama 0.5.11"),
        (ServerSettings(kv_cache="q8_0"), "0.5.11", {"OLLAMA_FLASH_ATTENTION": "1"}, None),
        (ServerSettings(kv_cache="q8_0", flash_attention=True), "0.24.0", {}, None),
        (ServerSettings(kv_cache="q8_0"), "0.34.4", {}, None),  # llama-server turns flash attention on itself
        (ServerSettings(kv_cache="q4_0", flash_attention=False), "0.34.4", {}, "fa=off turns it off"),
        (ServerSettings(kv_cache="f16", flash_attention=False), "0.5.11", {}, None),
        (
            ServerSettings(kv_cache="q8_0"),
            "0.34.4",
            {"OLLAMA_FLASH_ATTENTION": "false"},
            "OLLAMA_FLASH_ATTENTION=false in this environment turns it off: add fa=on",
        ),
        (ServerSettings(kv_cache="q8_0", flash_attention=True), "0.34.4", {"OLLAMA_FLASH_ATTENTION": "0"}, None),
    ],
)
def test_a_setting_this_ollama_would_ignore_is_refused_with_the_reason(settings, version, env, why):
    said = unsupported(settings, version, env)
    assert (said is None) if why is None else (why in said)


def test_a_runner_env_says_the_moe_placement_only_of_llama_server_and_the_command_line_wins():
    llama_server = LoadRecord(llama_server=True, launch={"kv_cache": "f16"})
    assert settings_in_effect(llama_server, {"LLAMA_ARG_CPU_MOE": "1"}) == {"kv_cache": "f16", "cpu_moe": "all"}
    assert settings_in_effect(llama_server, {"LLAMA_ARG_N_CPU_MOE": "12"})["cpu_moe"] == "12"
    assert "cpu_moe" not in settings_in_effect(llama_server, {"LLAMA_ARG_N_CPU_MOE": "0"})
    old_runner = LoadRecord(llama_server=False)  # 0.5's runner reads no LLAMA_ARG_*
    assert settings_in_effect(old_runner, {"LLAMA_ARG_CPU_MOE": "1"}) == {}
    flagged = LoadRecord(llama_server=True, launch={"cpu_moe": "4"})
    assert settings_in_effect(flagged, {"LLAMA_ARG_CPU_MOE": "1"})["cpu_moe"] == "4"
    assert settings_in_effect(None, {"LLAMA_ARG_CPU_MOE": "1"}) == {}
    assert settings_text({"kv_cache": "q8_0", "flash_attention": "on", "parallel": "1", "cpu_moe": "all"}) == (
        "KV q8_0, FA on, 1 slot, all experts on CPU"
    )


GPU_LOAD = [
    'time=2026-06-02T10:00:00.000Z level=INFO source=llama_server.go:431 msg="starting llama-server" '
    'cmd="/usr/lib/ollama/llama-server --model /m --port 40123 --host 127.0.0.1 -c 8192 -np 1 --cache-type-k q8_0 '
    '--cache-type-v q8_0 --flash-attn on"',
    "load_tensors: offloaded 20/33 layers to GPU",
    "load_tensors:        CUDA0 model buffer size =  1850.00 MiB",
    "load_tensors:   CPU_Mapped model buffer size =  1200.00 MiB",
    "load_tensors:   CPU_REPACK model buffer size =   300.00 MiB",
    "llama_kv_cache:      CUDA0 KV buffer size =   340.00 MiB",
    "llama_kv_cache:        CPU KV buffer size =   204.00 MiB",
    "sched_reserve:      CUDA0 compute buffer size =   560.00 MiB",
    "sched_reserve:  CUDA_Host compute buffer size =    24.00 MiB",
]


def test_memory_parts_are_summed_per_device_with_every_host_buffer_as_system_memory():
    (load,) = parse_lines(GPU_LOAD)
    assert memory_parts(load) == (
        MemoryPart("weights", "CUDA0", 1850 * MIB),
        MemoryPart("weights", "system memory", 1500 * MIB),
        MemoryPart("kv_cache", "CUDA0", 340 * MIB),
        MemoryPart("kv_cache", "system memory", 204 * MIB),
        MemoryPart("compute", "CUDA0", 560 * MIB),
        MemoryPart("compute", "system memory", 24 * MIB),
    )
    assert memory_parts(None) == () and memory_parts(LoadRecord()) == ()


def _with_parts(mode: str, kv_mib: int, settings: dict[str, str]):
    from dataclasses import replace

    parts = (
        MemoryPart("weights", "CUDA0", 1850 * MIB),
        MemoryPart("kv_cache", "CUDA0", kv_mib * MIB),
        MemoryPart("weights", "system memory", 1500 * MIB),
    )
    return replace(row("llama3.3", mode, 5.0), settings=settings, memory_parts=parts)


def test_the_parts_section_shows_each_run_per_device_on_one_scale_and_the_half_kv_cache_shows():
    f16 = _with_parts("auto", 680, {"kv_cache": "f16"})
    q8 = _with_parts("auto:kv=q8_0", 340, {"kv_cache": "q8_0", "flash_attention": "on"})
    lines = parts_lines([("a", f16.settings, f16.memory_parts), ("b", q8.settings, q8.memory_parts)])
    assert [(line.run, line.device, line.total) for line in lines] == [
        ("a", "CUDA0", 2530 * MIB),
        ("a", "system memory", 1500 * MIB),
        ("b", "CUDA0", 2190 * MIB),
        ("b", "system memory", 1500 * MIB),
    ]
    bars = bars_text(lines, width=40)
    assert bars[0].count("▓") == 11 and bars[2].count("▓") == 5  # the KV cache: 680 and 340 of 2530 MiB
    assert bars[0].count("█") == 29 and bars[2].count("█") == 29  # the weights, the same on one scale
    assert bars[-1] == "█ weights  ▓ KV cache  ░ compute"
    section = parts_markdown([f16, q8])
    assert "| llama3.3 auto, KV q8_0 | KV q8_0, FA on | CUDA0 | 1.9 GB | 357 MB |  | 2.3 GB |" in section
    assert section.startswith("### Settings and memory by part")
    assert parts_markdown([row("llama3.3", "auto")]) == ""


def test_the_parts_section_comes_where_a_mode_set_the_server_or_a_gpu_held_part_of_the_load():
    gpu = _with_parts("auto", 680, {})
    assert "Settings and memory by part" in session_markdown([gpu])
    from dataclasses import replace

    cpu_only = replace(gpu, memory_parts=(MemoryPart("weights", "system memory", 100),))
    assert "Settings and memory by part" not in session_markdown([cpu_only])
    assert "Settings and memory by part" in session_markdown([replace(cpu_only, mode="auto:kv=q8_0")])
    csv_text = to_csv([gpu])
    assert '"[{""part"":""weights"",""device"":""CUDA0"",""bytes"":1939865600}' in csv_text


def test_the_report_draws_each_runs_parts_on_one_scale_with_its_settings_in_the_caption():
    import re

    from llmtop.store.report import SessionReport, report_html

    f16 = _with_parts("auto", 680, {"kv_cache": "f16"})
    q8 = _with_parts("auto:kv=q8_0", 340, {"kv_cache": "q8_0", "flash_attention": "on"})
    page = report_html(SessionReport([f16, q8], [None, None], {}))
    start = page.index('data-name="memory-by-part"')
    figure = page[start : page.index("</figure>", start)]
    kv = [float(w) for w in re.findall(r'<rect class="k2" x="[\d.]+" y="\d+" width="([\d.]+)" height="16"', figure)]
    assert len(kv) == 2 and kv[1] == pytest.approx(kv[0] / 2, abs=0.1)  # CUDA0 of each run: q8_0 halves the KV
    assert "llama3.3 auto, KV q8_0: KV q8_0, FA on" in figure
    assert "llama3.3 auto, KV q8_0 (system memory)" in figure
    assert 'data-name="memory-by-part"' not in report_html(SessionReport([row("llama3.3", "auto")], [None], {}))


def test_the_history_keeps_what_each_run_ran_with_and_its_memory_by_part(tmp_path):
    from llmtop.store.history import History

    history = History(tmp_path / "history.sqlite3")
    kept = _with_parts("auto:kv=q8_0", 340, {"kv_cache": "q8_0", "flash_attention": "on"})
    history.add(kept, {})
    (back,) = History(tmp_path / "history.sqlite3").runs()
    assert back.settings == kept.settings and back.memory_parts == kept.memory_parts
    assert back.mode == "auto:kv=q8_0"


# An MoE load with a GPU, as llama.cpp prints it at the debug verbosity Ollama 0.30+ gives llama-server:
# the experts of blocks 0 and 1 kept in system memory (`--n-cpu-moe 2`, here from LLAMA_ARG_N_CPU_MOE, so
# not on the command line), a tensor moved to the GPU by `-ot`, and a shared expert that is no expert.
MOE_LOAD = [
    'time=2026-12-06T10:00:00.000Z level=INFO source=llama_server.go:436 msg="starting llama-server" '
    'cmd="/usr/lib/ollama/llama-server --model /m -c 4096 -np 1 --flash-attn auto -ngl 5"',
    "print_info: n_layer               = 4",
    "tensor blk.0.ffn_gate_exps.weight (162 MiB mxfp4) buffer type overridden to CPU",
    "tensor blk.0.ffn_down_exps.weight (162 MiB mxfp4) buffer type overridden to CPU",
    "tensor blk.0.ffn_up_exps.weight (162 MiB mxfp4) buffer type overridden to CPU",
    "tensor blk.1.ffn_gate_exps.weight (162 MiB mxfp4) buffer type overriden to CPU_REPACK",  # older spelling
    "tensor blk.1.ffn_gate_shexp.weight (12 MiB q8_0) buffer type overridden to CPU",
    "tensor blk.3.attn_q.weight (40 MiB q8_0) buffer type overridden to CUDA0",
    "load_tensors: offloaded 5/5 layers to GPU",
    "load_tensors:        CUDA0 model buffer size =  1200.00 MiB",
    "load_tensors:   CPU_Mapped model buffer size =   700.00 MiB",
]


def test_experts_kept_in_system_memory_are_a_part_of_their_own_and_tell_the_placement():
    (load,) = parse_lines(MOE_LOAD)
    assert load.experts_kept == {0: 3 * 162 * MIB, 1: 162 * MIB}  # experts only, and only in host memory
    assert load.settings["cpu_moe"] == "2"  # two blocks' experts: read from llama.cpp's lines
    assert memory_parts(load) == (
        MemoryPart("weights", "CUDA0", 1200 * MIB),
        MemoryPart("weights", "system memory", (700 - 4 * 162) * MIB),  # the rest of the host buffer
        MemoryPart("experts", "system memory", 4 * 162 * MIB),
    )
    every = parse_lines([*MOE_LOAD[:2], *(f"tensor blk.{b}.ffn_up_exps.weight (1 MiB q4_K) buffer type overridden "
                                         "to CPU" for b in range(4))])  # fmt: skip
    assert every[0].settings["cpu_moe"] == "all"
    flagged = parse_lines([MOE_LOAD[0].replace("-ngl 5", "-ngl 5 --n-cpu-moe 3"), *MOE_LOAD[1:]])
    assert flagged[0].settings["cpu_moe"] == "3"  # the command line, where it says it, wins


def test_the_experts_column_and_key_come_only_where_a_run_kept_experts_apart():
    from dataclasses import replace

    from llmtop.store.exports import parts_columns

    (load,) = parse_lines(MOE_LOAD)
    moe = replace(row("tanuki", "gpu=5:moe=2", 5.0), settings=load.settings, memory_parts=memory_parts(load))
    dense = _with_parts("auto:kv=q8_0", 340, {"kv_cache": "q8_0"})
    section = parts_markdown([moe])
    assert "| run | settings | where | weights | experts | KV cache | compute | total |" in section
    assert (
        "| tanuki gpu=5, experts of 2 layers on CPU | FA auto, 1 slot, experts of 2 layers on CPU | system memory"
        in (section)
    )
    assert "▒" in section and section.rstrip("`\n").endswith("█ weights  ▒ experts  ▓ KV cache  ░ compute")
    assert "experts" not in parts_markdown([dense])
    lines = parts_lines([("d", dense.settings, dense.memory_parts)])
    assert [c.header for c in parts_columns(lines)] == ["run", "settings", "where", "weights", "KV cache", "compute",
                                                         "total"]  # fmt: skip


@pytest.mark.parametrize(
    ("word", "state"),
    [("on", True), ("1", True), ("TRUE", True), ("Enabled", True), (" yes ", True), ("off", False), ("0", False),
     ("false", False), ("disabled", False), ("auto", None), ("", None), (None, None), ("maybe", None)],
)  # fmt: skip
def test_one_reading_of_on_and_off_for_every_switch(word, state):
    """A mode's fa=, OLLAMA_FLASH_ATTENTION, the engine's FlashAttention:Enabled, llama.cpp's flash_attn = 1
    and LLAMA_ARG_CPU_MOE are all read by units.switch; the log's words come out on, off or as written."""
    from llmtop.collectors.ollama_log.lines import on_off
    from llmtop.units import switch

    assert switch(word) is state
    if word is not None:
        assert on_off(word) == {True: "on", False: "off", None: word.strip().lower()}[state]
    if state is not None:
        assert ServerSettings().with_setting("fa", word).flash_attention is state
    elif word:
        with pytest.raises(ValueError, match="fa= takes on or off"):
            ServerSettings().with_setting("fa", word)


def test_a_mode_is_parsed_once_into_its_parts_and_read_back_by_its_fields():
    """The command line's text becomes a Mode; a row keeps its canonical name, and whatever reads the
    row (the verdicts, the comparison, the report) gets the same parts back through Mode.of."""
    mode = Mode.parse(" GPU=20:ctx=8k:fa=on:kv=q8_0 ")
    assert (mode.layers, mode.context, mode.server.kv_cache, mode.server.flash_attention) == (20, 8192, "q8_0", True)
    assert mode.name == "gpu=20:ctx=8192:kv=q8_0:fa=on" and Mode.of(mode.name) == mode
    assert (mode.placement, mode.context_part, mode.variant) == ("gpu=20", "ctx=8192", "ctx=8192:kv=q8_0:fa=on")
    assert mode.label == "gpu=20:ctx=8192, KV q8_0, FA on" and not mode.plain
    assert (Mode.parse("cpu").placement, Mode.parse("auto").placement, Mode.parse("moe=all").placement) == (
        "cpu",
        "auto",
        "auto",
    )
    assert RunSettings().with_mode(mode).mode == mode.name  # the run's mode is the mode's name
    unread = Mode.of("watched:from-log")  # a name llmtop did not write: kept, never raised
    assert (unread.name, unread.placement, unread.variant, unread.label) == (
        "watched:from-log",
        "watched",
        "from-log",
        "watched:from-log",
    )
    for bad in ("gpu=x", "auto:ctx", "auto::kv=q8_0", "auto:kv=q8_0:kv=f16", "auto:warp=9"):
        with pytest.raises(ValueError):
            Mode.parse(bad)


def test_a_mode_may_set_think_which_its_name_keeps_last_and_its_label_spells_out():
    """think= is a mode's part like ctx=: parsed once (on/off as every switch is read, or a level), named
    last in the canonical name, and it wins over --think for that mode's runs; a think from --think is
    every run's and stays out of the name."""
    modes = parse_modes("auto:think=off,think=no:ctx=8k,gpu=20:think=high:kv=q8_0,cpu")
    assert [m.name for m in modes] == ["auto:think=off", "auto:ctx=8192:think=off", "gpu=20:kv=q8_0:think=high", "cpu"]
    assert [m.think for m in modes] == [False, False, "high", None]
    assert Mode.of("auto:think=on").label == "auto, think on" and Mode.of("auto:think=on").plain
    assert Mode.of("gpu=20:kv=q8_0:think=high").label == "gpu=20, KV q8_0, think high"
    everyone = RunSettings(think=True)  # --think on
    assert everyone.mode == "auto" and everyone.with_mode(Mode.parse("cpu")).mode == "cpu"
    assert everyone.with_mode(Mode.parse("cpu")).think is True
    off = everyone.with_mode(Mode.parse("auto:think=off"))
    assert (off.think, off.mode) == (False, "auto:think=off")
    with pytest.raises(ValueError, match=r"think= takes on, off or a level \(low, medium, high\), not 'max'"):
        Mode.parse("auto:think=max")
    with pytest.raises(ValueError, match="think= twice"):
        Mode.parse("auto:think=on:think=off")
