"""The log reader's tables (collectors/ollama_log/): every rule of every era reads some real line, the
first rule that takes a line is the one meant for it, and every module stays free of I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from llmtop.collectors.ollama_log import reader
from llmtop.collectors.ollama_log.rules import Rule

EXCERPTS = Path(__file__).parent / "fixtures" / "ollama-logs"
PACKAGE = Path(reader.__file__).parent
# Lines in the formats tests elsewhere quote, for the rules no excerpt in fixtures/ollama-logs has.
WRITTEN = (
    'time=2026-03-11T12:00:16.598Z level=INFO source=runner.go:464 msg="failure during GPU discovery" '
    'OLLAMA_LIBRARY_PATH="[/usr/lib/ollama /usr/lib/ollama/rocm]" error="runner crashed"',
    "srv          stop: cancel task, id_task = 5",
    "tensor blk.3.ffn_up_exps.weight (1664 MiB q4_K) buffer type overridden to CPU",
    "ggml_vulkan: Found 1 Vulkan devices:",
    "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 6963.00 MiB on device 0: cudaMalloc failed: out of memory",
)


def rules_taking(lines: list[str]) -> dict[int, Rule]:
    """Each rule that took one of `lines` as the reader read them, by its place in the tables."""
    taken: dict[int, Rule] = {}
    parser = reader.OllamaLogParser()
    everything = (*reader.OLLAMA_RULES, *reader.OTHER_RULES)

    def read(rules, subject, line):
        rule = next(
            (r for r in rules if r.pattern.search(subject) and (r.when is None or r.when(line))),
            None,
        )
        if rule is not None:
            taken[everything.index(rule) if rule in everything else -1] = rule
        return original(rules, subject, line)

    original = parser._read
    parser._read = read  # type: ignore[method-assign]
    parser.feed_all(lines)
    return taken


def excerpt_lines() -> list[str]:
    return [line for path in sorted(EXCERPTS.glob("*.log")) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_rule_of_every_era_reads_a_real_line():
    """A rule no line reaches is dead, or shadowed by one before it in the tables."""
    everything = (*reader.OLLAMA_RULES, *reader.OTHER_RULES)
    taken = rules_taking([*excerpt_lines(), *WRITTEN])
    untaken = [f"{rule.sets.__module__}.{rule.sets.__name__} ({rule.pattern.pattern[:50]})"
               for i, rule in enumerate(everything) if i not in taken]  # fmt: skip
    assert not untaken, untaken


@pytest.mark.parametrize(
    ("line", "module", "sets"),
    [
        ('time=x level=INFO source=ggml.go:482 msg="offloaded 63/63 layers to GPU"', "engine_era", "_offloaded"),
        ("load_tensors: offloaded 27/81 layers to GPU", "runner_era", "_offloaded"),
        ("llama_model_load: vocab only - skipping tensors (offloaded 5/81 layers to GPU)", None, None),
        ('time=x level=ERROR source=sched.go:470 msg="Load failed" model=/m error="context canceled"',
         "server_lines", "_load_failed"),
        ('time=x level=ERROR source=server.go:1 msg="something else broke" error=boom', "server_lines", "_error"),
        ("load_tensors:   CPU_Mapped model buffer size =   281.81 MiB", "runner_era", "_model_buffer"),
        ("llama_context:  Vulkan0 compute buffer size =    98.26 MiB", "runner_era", "_compute_buffer"),
        ("srv  params_from_: Error: something", "server_lines", "_cli_error"),
    ],
)  # fmt: skip
def test_a_line_goes_to_the_rule_of_its_era(line, module, sets):
    """The first rule that takes a line is the one written for it (Ollama's own confirmation to the engine
    era's rule, llama.cpp's to the runner era's; a line that only mentions the words to none)."""
    taken = list(rules_taking([line]).values())
    if module is None:
        assert taken == []
    else:
        (rule,) = taken
        assert (rule.sets.__module__.rsplit(".", 1)[-1], rule.sets.__name__) == (module, sets)


def test_the_reader_is_pure_and_each_era_is_its_own_module():
    """No module of the log reader opens files, sockets or processes; each era's table is in its module."""
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}  # fmt: skip
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not imported & {"os", "io", "socket", "subprocess", "pathlib", "textual", "httpx"}, path.name
        calls = {
            node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        }
        assert not calls & {"open", "print", "input"}, path.name
    eras = {path.stem for path in PACKAGE.glob("*_era.py")}
    assert eras == {"runner_era", "engine_era", "llama_server_era"}
