"""`llmtop parse-log FILE|- [--json]`: every model load in a server log, as text or JSON lines."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

from llmtop.collectors.ollama_log import MAX_LINE, LoadRecord, OllamaLogParser, RequestTiming, split_lines
from llmtop.commands.output import print_out
from llmtop.exit_status import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from llmtop.measure.split_reason import split_reason
from llmtop.units import NA

READ_SIZE = 1024 * 1024


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmtop parse-log",
        description="Print each model load found in an Ollama server log: layers on the GPU and why they "
        "landed there, backend, GPUs, the context, Ollama's memory estimates, buffer sizes, errors, and each "
        "request's prompt and eval rate (Ollama 0.30 on). Reads any Ollama version's format, "
        "with journald, docker or kubectl prefixes, colour codes and CRLF line ends.",
    )
    parser.add_argument("file", metavar="FILE", help="the log file, or - for standard input")
    parser.add_argument("--json", action="store_true", help="one JSON object per load, one per line")
    return parser


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(READ_SIZE):
        yield chunk


def load_facts(load: LoadRecord) -> dict[str, Any]:
    """A load as `--json` prints it: the log's figures, and why the layers landed where they did."""
    facts = load.to_dict()
    evidence = facts.pop("evidence")
    return {**facts, "split_reason": split_reason(load), "evidence": evidence}


def describe(index: int, load: LoadRecord) -> str:
    """One paragraph a person reads: what the log says about one load."""
    layers = (
        f"{load.layers_offloaded}/{load.layers_total} layers on the GPU"
        if load.layers_offloaded is not None
        else "layers on the GPU not in the log"
    )
    if load.layers_overflowing:
        layers += f" ({load.layers_overflowing} overflowing: their experts in system memory)"
    parts = [f"load {index}: {layers}"]
    if load.estimate_only and load.layers_offloaded is not None:
        parts.append("(Ollama's plan; no confirmation from the runner in the log)")
    parts.append(f"backend {load.library or NA}")
    facts = load.to_dict()
    for key, label in (
        ("ollama_version", "Ollama"),
        ("gpus", "GPUs"),
        ("gpu_weights", "weights on GPU"),
        ("kv_cache", "KV cache"),
        ("memory_required_full", "estimate: full"),
        ("memory_required_partial", "partial"),
        ("memory_available", "available"),
        ("total_memory", "total memory"),
        ("context", "context per request"),
        ("default_context", "Ollama's VRAM-based default context"),
        ("runner_started_s", "runner started in (s)"),
        ("error", "error"),
    ):
        value = facts.get(key)
        if value:
            parts.append(f"{label} {', '.join(value) if isinstance(value, list) else value}")
    reason = split_reason(load)
    lines = [f"\n  why: {reason}"] if reason else []
    lines.extend(f"\n  {describe_request(r)}" for r in load.requests)
    return "; ".join(parts) + "".join(lines)


def describe_request(request: RequestTiming) -> str:
    """One line per request the load served (llama-server's timing, Ollama 0.30 on)."""
    if request.cancelled and request.eval_ms is None:
        return f"request {request.task}: cancelled"
    parts: list[str] = []
    if request.prompt_tokens is not None and request.prompt_ms is not None:
        parts.append(
            f"prompt {request.prompt_tokens} tokens in {request.prompt_ms / 1000:.2f} s "
            f"({request.prompt_printed_tps:.2f} tokens/s)"
        )
    if request.eval_tokens is not None and request.eval_ms is not None and request.eval_tps is not None:
        parts.append(
            f"eval {request.eval_tokens} tokens in {request.eval_ms / 1000:.2f} s ({request.eval_tps:.2f} tokens/s "
            f"as Ollama counts them; the log prints {request.eval_printed_tps:.2f})"
        )
    elif request.decoded is not None:
        parts.append(f"{request.decoded} tokens so far at {request.tg_tps:.2f} tokens/s (no final timing)")
    return f"request {request.task}: " + ("; ".join(parts) or "no timing in the log")


def main(argv: Sequence[str]) -> int:
    """Exit 0 when at least one load was found, 1 when none, 2 when the file cannot be read."""
    args = build_parser().parse_args(argv)
    parser = OllamaLogParser()
    try:
        if args.file == "-":
            source: BinaryIO = sys.stdin.buffer
            parser.feed_all(split_lines(_chunks(source), MAX_LINE))
        else:
            with open(args.file, "rb") as source:
                parser.feed_all(split_lines(_chunks(source), MAX_LINE))
    except IsADirectoryError:
        sys.stderr.write(f"llmtop: {args.file} is a folder, not a log file\n")
        return EXIT_USAGE
    except OSError as exc:
        sys.stderr.write(f"llmtop: cannot read {args.file}: {exc.strerror or exc}\n")
        return EXIT_USAGE
    for index, load in enumerate(parser.records, 1):
        if args.json:
            print_out(json.dumps(load_facts(load), ensure_ascii=False) + "\n")
        else:
            print_out(describe(index, load) + "\n")
    if not parser.records:
        sys.stderr.write(f"llmtop: no model load found in {args.file} ({parser.lines_read} lines read)\n")
        return EXIT_FAILED
    return EXIT_OK
