"""Per-process GPU memory on Linux from `/proc/PID/fdinfo/*` (the DRM client usage stats).

Each open DRM file shows keys such as (docs: kernel Documentation/gpu/drm-usage-stats.rst)
  drm-driver: amdgpu            drm-pdev: 0000:03:00.0        drm-client-id: 17
  drm-memory-vram: 8123456 KiB  drm-memory-gtt: 20480 KiB      (amdgpu)
  drm-total-local0: 1024 KiB    drm-total-system0: 2048 KiB    (i915)
  drm-total-vram0: 1 MiB        drm-total-gtt: 512             (xe; no unit means bytes)
Several fds can share one client: clients are counted once, by (pdev, client id).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_UNITS = {"": 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
DEDICATED_KEYS = ("drm-memory-vram", "drm-total-vram0", "drm-total-local0")
SHARED_KEYS = ("drm-memory-gtt", "drm-total-gtt", "drm-total-system0")


def parse_fdinfo(text: str) -> dict[str, str]:
    """`key:\\tvalue` lines to a dict."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def fdinfo_bytes(value: str | None) -> int | None:
    """`8123456 KiB` -> bytes."""
    match = re.fullmatch(r"(\d+)\s*(B|KiB|MiB|GiB)?", value or "")
    return int(match.group(1)) * _UNITS[match.group(2) or ""] if match else None


@dataclass(frozen=True)
class ProcessGpuMemory:
    """GPU memory of a set of processes on one device; `denied` when some fdinfo was unreadable."""

    dedicated: int | None
    shared: int | None
    denied: bool
    clients: int


def process_gpu_memory(
    proc_root: str | Path, pids: Iterable[int], drivers: tuple[str, ...], pdev: str | None
) -> ProcessGpuMemory:
    """Sum the DRM clients of `pids` on the device at PCI address `pdev` (any device when None)."""
    seen: set[tuple[str, str]] = set()
    dedicated = shared = 0
    found_dedicated = found_shared = denied = False
    for pid in pids:
        folder = Path(proc_root) / str(pid) / "fdinfo"
        try:
            entries = os.listdir(folder)
        except PermissionError:
            denied = True
            continue
        except OSError:
            continue  # the process is gone
        for entry in entries:
            try:
                fields = parse_fdinfo((folder / entry).read_text(errors="replace"))
            except PermissionError:
                denied = True
                continue
            except OSError:
                continue
            if fields.get("drm-driver") not in drivers or (pdev and fields.get("drm-pdev") != pdev):
                continue
            client = (fields.get("drm-pdev", ""), fields.get("drm-client-id", f"{pid}/{entry}"))
            if client in seen:
                continue
            seen.add(client)
            for key in DEDICATED_KEYS:
                if (value := fdinfo_bytes(fields.get(key))) is not None:
                    dedicated += value
                    found_dedicated = True
                    break
            for key in SHARED_KEYS:
                if (value := fdinfo_bytes(fields.get(key))) is not None:
                    shared += value
                    found_shared = True
                    break
    return ProcessGpuMemory(dedicated if found_dedicated else None, shared if found_shared else None, denied, len(seen))
