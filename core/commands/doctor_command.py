"""`llmtop doctor [--json]`: every GPU backend tried, what it found and why any is unavailable; the
Ollama processes; the server log. So a user can tell at once why a number shows n/a."""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
from collections.abc import Sequence
from typing import Any

from llmtop import __version__, units
from llmtop.commands.output import print_out
from llmtop.exit_status import EXIT_OK
from llmtop.units import NA


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmtop doctor",
        description="Say what llmtop can measure on this machine: each GPU backend it tries (NVML, amdsmi, "
        "AMD sysfs, Intel fdinfo, Windows performance counters, Apple ioreg) with what it reads or why it "
        "cannot, each power source (RAPL powercap, NVML, AMD and Intel hwmon, Windows' Energy Meter Interface) "
        "with what it reads or why not, the Ollama processes, and the server log. LLMTOP_SYSFS_ROOT and "
        "LLMTOP_PROC_ROOT point the Linux readers at another /sys and /proc.",
    )
    parser.add_argument("--json", action="store_true", help="the same as one JSON object")
    return parser


def gather() -> dict[str, Any]:
    """Probe everything once; no thread is left running."""
    from llmtop.collectors.gpu_collector import probe_gpu_backends
    from llmtop.collectors.log_sources import default_log_source
    from llmtop.collectors.ollama_processes import OllamaProcessReader
    from llmtop.collectors.power_collector import probe_power_sources

    process = OllamaProcessReader()(0.0)
    pids = frozenset(p for p in (process.server_pid, *process.runner_pids) if p is not None)
    collector = probe_gpu_backends(pids=lambda: pids)
    try:
        backends = [
            {
                "backend": report.backend,
                "available": report.available,
                "detail": report.detail,
                "gpus": [dataclasses.asdict(g) for g in report.gpus],
            }
            for report in collector.reports
        ]
    finally:
        collector.close()
    power = probe_power_sources()
    try:
        power_sources = [
            {
                "backend": report.backend,
                "kind": report.kind,
                "available": report.available,
                "detail": report.detail,
                "sources": [dataclasses.asdict(r) for r in report.sources],
            }
            for report in power.reports
        ]
    finally:
        power.close()
    log = default_log_source(local=True)
    return {
        "llmtop_version": __version__,
        "platform": sys.platform,
        "os": platform.platform(),
        "python": platform.python_version(),
        "gpu_backends": backends,
        "gpu_readable": any(b["available"] for b in backends),
        "power_sources": power_sources,
        "energy_readable": {kind: any(p["available"] and p["kind"] == kind for p in power_sources) for kind in KINDS},
        "ollama_processes": {
            "server_pid": process.server_pid,
            "runner_pids": list(process.runner_pids),
            "rss_bytes": process.rss_bytes,
            "reason": process.reason,
        },
        "server_log": {
            "source": log.source.description if log.source else None,
            "reason": log.reason,
        },
    }


def _figure(used: int | None, total: int | None, why: str) -> str:
    if used is None:
        return f"{NA} ({why})"
    return f"{units.human_bytes(used)} / {units.human_bytes(total)}" if total else units.human_bytes(used)


KINDS = ("cpu", "gpu")


def power_lines(report: dict[str, Any]) -> list[str]:
    """Each power source tried: what it read (the first reading: the power comes with the second),
    or why it cannot be read; then whether energy per token is measured."""
    lines = ["Power sources (energy per token):"]
    for backend in report["power_sources"]:
        state = "OK" if backend["available"] else "not available"
        lines.append(f"  {backend['backend']:<13} {backend['kind'].upper()} {state}: {backend['detail']}")
        for source in backend["sources"]:
            limit = f", limit {source['limit_w']:.0f} W" if source["limit_w"] else ""
            lines.append(f"    {source['name']}: {source['method']}{limit}")
    readable = report["energy_readable"]
    said = [f"{kind.upper()} {'measured' if readable[kind] else NA}" for kind in KINDS]
    lines.append("Energy: " + ", ".join(said) + ("" if any(readable.values()) else " (no source above can be read)"))
    return lines


def describe(report: dict[str, Any]) -> str:
    """The report as lines a person reads."""
    lines = [
        f"llmtop {report['llmtop_version']} doctor on {report['os']} (Python {report['python']})",
        "",
        "GPU backends:",
    ]
    for backend in report["gpu_backends"]:
        state = "OK" if backend["available"] else "not available"
        lines.append(f"  {backend['backend']:<13} {state}: {backend['detail']}")
        for gpu in backend["gpus"]:
            reasons = gpu["reasons"]
            lines.append(f"    {gpu['name']}")
            kind = "unified" if gpu["unified"] else "dedicated (VRAM)"
            dedicated = _figure(gpu["dedicated_used"], gpu["dedicated_total"], reasons.get("dedicated", ""))
            lines.append(f"      {kind:<17} {dedicated}")
            lines.append(
                f"      {'shared':<17} {_figure(gpu['shared_used'], gpu['shared_total'], reasons.get('shared', ''))}"
            )
            if gpu["reserved"] is not None:
                lines.append(f"      {'reserved':<17} {units.human_bytes(gpu['reserved'])}")
            busy = gpu["utilization_pct"]
            lines.append(
                f"      {'busy':<17} "
                + (f"{busy:.0f}%" if busy is not None else f"{NA} ({reasons.get('utilization', '')})")
            )
            ollama = gpu["ollama_dedicated"]
            lines.append(
                f"      {'Ollama uses':<17} "
                + (units.human_bytes(ollama) if ollama is not None else f"{NA} ({reasons.get('ollama', '')})")
            )
    lines.append("")
    lines.append(
        "VRAM and shared memory: "
        + ("measured" if report["gpu_readable"] else f"{NA} on this machine (no backend above can read a GPU)")
    )
    lines.append("")
    lines.extend(power_lines(report))
    process = report["ollama_processes"]
    lines.append(
        "Ollama processes: "
        + (
            f"server pid {process['server_pid']}, runners {process['runner_pids'] or 'none'}, "
            f"RSS {units.human_bytes(process['rss_bytes'])}"
            if process["rss_bytes"] is not None
            else f"{NA} ({process['reason']})"
        )
    )
    log = report["server_log"]
    lines.append("Server log: " + (log["source"] or f"not found ({log['reason']})"))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    report = gather()
    print_out(json.dumps(report, indent=2, ensure_ascii=False) + "\n" if args.json else describe(report))
    return EXIT_OK
