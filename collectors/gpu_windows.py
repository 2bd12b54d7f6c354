"""Windows, any GPU vendor: the performance counters Task Manager reads, and DXGI for totals.

Counters (read with pywin32's win32pdh, English names through AddEnglishCounter so a localised
Windows works; the query stays open between ticks):
  \\GPU Adapter Memory(*)\\Dedicated Usage, \\GPU Adapter Memory(*)\\Shared Usage
      instances `luid_0x00000000_0x0000D1B8_phys_0`
  \\GPU Process Memory(*)\\Dedicated Usage, \\GPU Process Memory(*)\\Shared Usage
      instances `pid_1234_luid_0x00000000_0x0000D1B8_phys_0`
  \\GPU Engine(*)\\Utilization Percentage
      instances `pid_1234_luid_0x00000000_0x0000D1B8_phys_0_eng_0_engtype_3D`
Totals and names come from DXGI (`IDXGIAdapter1::GetDesc1`: Description, DedicatedVideoMemory,
SharedSystemMemory, AdapterLuid, which gives the instance key `luid_0x{high:08X}_0x{low:08X}`);
software adapters (Microsoft Basic Render Driver) are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from llmtop.collectors.gpu_reading import GpuReading, Pids, no_pids
from llmtop.data_folder import guarded

COUNTERS = {
    "adapter_dedicated": r"\GPU Adapter Memory(*)\Dedicated Usage",
    "adapter_shared": r"\GPU Adapter Memory(*)\Shared Usage",
    "process_dedicated": r"\GPU Process Memory(*)\Dedicated Usage",
    "process_shared": r"\GPU Process Memory(*)\Shared Usage",
    "engine": r"\GPU Engine(*)\Utilization Percentage",
}
_PROCESS = re.compile(r"^pid_(\d+)_(luid_0x[0-9a-f]{8}_0x[0-9a-f]{8})", re.IGNORECASE)
_ADAPTER = re.compile(r"^(luid_0x[0-9a-f]{8}_0x[0-9a-f]{8})", re.IGNORECASE)
_ENGINE_TYPE = re.compile(r"_engtype_(.*)$", re.IGNORECASE)

PdhRead = Callable[[], Mapping[str, Mapping[str, float]]]  # counter key -> {instance: value}


@dataclass(frozen=True)
class DxgiAdapter:
    """One hardware adapter as DXGI describes it."""

    name: str
    luid: str  # the counter instance key, e.g. luid_0x00000000_0x0000D1B8
    dedicated_total: int
    shared_total: int


def luid_key(high: int, low: int) -> str:
    """The counters' instance key for an adapter LUID (HighPart is signed in the struct)."""
    return f"luid_0x{high & 0xFFFFFFFF:08X}_0x{low & 0xFFFFFFFF:08X}"


def adapter_usage(values: Mapping[str, float], luid: str) -> int | None:
    """Sum over an adapter's `phys_N` instances; None when the adapter has none."""
    found = [
        v for instance, v in values.items() if (m := _ADAPTER.match(instance)) and m.group(1).lower() == luid.lower()
    ]
    return int(sum(found)) if found else None


def process_usage(values: Mapping[str, float], luid: str, pids: frozenset[int]) -> int:
    """What the given processes use on one adapter."""
    total = 0.0
    for instance, value in values.items():
        match = _PROCESS.match(instance)
        if match and int(match.group(1)) in pids and match.group(2).lower() == luid.lower():
            total += value
    return int(total)


def engine_utilization(values: Mapping[str, float], luid: str) -> float | None:
    """Task Manager's GPU %: sum each engine type over processes, then the busiest type."""
    by_type: dict[str, float] = {}
    for instance, value in values.items():
        match = _PROCESS.match(instance)
        if not match or match.group(2).lower() != luid.lower():
            continue
        kind = _ENGINE_TYPE.search(instance)
        key = kind.group(1).lower() if kind else "?"
        by_type[key] = by_type.get(key, 0.0) + value
    return min(max(by_type.values()), 100.0) if by_type else None


class WindowsCountersReader:
    """Every DXGI adapter, with its counters. `pdh_read` and `adapters` are parameters for tests."""

    name = "windows-pdh"

    def __init__(self, pdh_read: PdhRead, adapters: list[DxgiAdapter], pids: Pids = no_pids) -> None:
        if not adapters:
            raise LookupError("DXGI lists no hardware GPU adapter")
        self.pdh_read = pdh_read
        self.adapters = adapters
        self.pids = pids

    def close(self) -> None:
        closer = getattr(self.pdh_read, "close", None)
        if closer:
            closer()

    def read(self) -> list[GpuReading]:
        counters = self.pdh_read()
        pids = self.pids()
        readings = []
        for adapter in self.adapters:
            reasons = {}
            dedicated = adapter_usage(counters.get("adapter_dedicated", {}), adapter.luid)
            shared = adapter_usage(counters.get("adapter_shared", {}), adapter.luid)
            if dedicated is None:
                reasons["dedicated"] = "no GPU Adapter Memory counter for this adapter"
            if shared is None:
                reasons["shared"] = "no GPU Adapter Memory counter for this adapter"
            utilization = engine_utilization(counters.get("engine", {}), adapter.luid)
            if utilization is None:
                reasons["utilization"] = "no GPU Engine counter for this adapter"
            if not pids:
                reasons["ollama"] = "no Ollama process found on this machine"
            readings.append(
                GpuReading(
                    key=f"win:{adapter.luid}",
                    name=adapter.name,
                    backend=self.name,
                    dedicated_used=dedicated,
                    dedicated_total=adapter.dedicated_total,
                    shared_used=shared,
                    shared_total=adapter.shared_total,
                    utilization_pct=utilization,
                    ollama_dedicated=process_usage(counters.get("process_dedicated", {}), adapter.luid, pids)
                    if pids
                    else None,
                    ollama_shared=process_usage(counters.get("process_shared", {}), adapter.luid, pids)
                    if pids
                    else None,
                    reasons=reasons,
                )
            )
        return readings


class Win32PdhQuery:
    """The counters through pywin32's win32pdh; one query, opened once and kept open."""

    def __init__(self) -> None:
        try:
            import pywintypes
            import win32pdh
        except ImportError as exc:
            raise LookupError(f"pywin32 is not installed ({exc})") from None
        self.pdh = win32pdh
        self.pdh_error: type[BaseException] = pywintypes.error  # what every win32pdh call raises
        self.query = win32pdh.OpenQuery()
        self.counters = {}
        for key, path in COUNTERS.items():
            try:
                self.counters[key] = win32pdh.AddEnglishCounter(self.query, path)
            except self.pdh_error as exc:  # a counter set missing (GPU counters need Windows 10 1709+)
                raise LookupError(f"the performance counter {path} is not available: {exc}") from None
        win32pdh.CollectQueryData(self.query)  # utilisation is a rate: it needs a first sample

    def __call__(self) -> dict[str, dict[str, float]]:
        self.pdh.CollectQueryData(self.query)
        values: dict[str, dict[str, float]] = {}
        for key, counter in self.counters.items():
            try:
                values[key] = dict(self.pdh.GetFormattedCounterArray(counter, self.pdh.PDH_FMT_DOUBLE))
            except self.pdh_error:  # PDH_NO_DATA when no process uses the GPU: no instance, not an error
                values[key] = {}
        return values

    def close(self) -> None:
        guarded("Windows' GPU counters (PDH)", partial(self.pdh.CloseQuery, self.query), None)


def dxgi_adapters() -> list[DxgiAdapter]:
    """Hardware adapters from DXGI (IDXGIFactory1::EnumAdapters1, IDXGIAdapter1::GetDesc1)."""
    import ctypes
    from ctypes import wintypes

    class Luid(ctypes.Structure):
        _fields_ = [("LowPart", wintypes.DWORD), ("HighPart", wintypes.LONG)]

    class AdapterDesc1(ctypes.Structure):
        _fields_ = [
            ("Description", ctypes.c_wchar * 128),
            ("VendorId", wintypes.UINT),
            ("DeviceId", wintypes.UINT),
            ("SubSysId", wintypes.UINT),
            ("Revision", wintypes.UINT),
            ("DedicatedVideoMemory", ctypes.c_size_t),
            ("DedicatedSystemMemory", ctypes.c_size_t),
            ("SharedSystemMemory", ctypes.c_size_t),
            ("AdapterLuid", Luid),
            ("Flags", wintypes.UINT),
        ]

    class Guid(ctypes.Structure):
        _fields_ = [
            ("Data1", wintypes.DWORD),
            ("Data2", wintypes.WORD),
            ("Data3", wintypes.WORD),
            ("Data4", ctypes.c_ubyte * 8),
        ]

    iid_factory1 = Guid(
        0x770AAE78, 0xF26F, 0x4DBA, (ctypes.c_ubyte * 8)(0xA8, 0x29, 0x25, 0x3C, 0x83, 0xD1, 0xB3, 0x87)
    )
    dxgi = ctypes.WinDLL("dxgi.dll")  # type: ignore[attr-defined]
    factory = ctypes.c_void_p()
    if dxgi.CreateDXGIFactory1(ctypes.byref(iid_factory1), ctypes.byref(factory)) != 0:
        raise LookupError("CreateDXGIFactory1 failed")

    def method(obj: ctypes.c_void_p, index: int, *argtypes: object) -> Callable[..., int]:
        vtable = ctypes.cast(obj, ctypes.POINTER(ctypes.POINTER(ctypes.c_void_p))).contents
        # c_long, not HRESULT: ctypes would raise on DXGI_ERROR_NOT_FOUND, which ends the loop.
        prototype = ctypes.WINFUNCTYPE(ctypes.c_long, ctypes.c_void_p, *argtypes)  # type: ignore[attr-defined]
        return lambda *args: prototype(vtable[index])(obj, *args)

    adapters = []
    try:
        index = 0
        while True:
            adapter = ctypes.c_void_p()
            # IDXGIFactory1 vtable: 12 = EnumAdapters1; IDXGIAdapter1: 10 = GetDesc1, 2 = Release.
            if method(factory, 12, wintypes.UINT, ctypes.POINTER(ctypes.c_void_p))(index, ctypes.byref(adapter)) != 0:
                break  # DXGI_ERROR_NOT_FOUND: no more adapters
            desc = AdapterDesc1()
            method(adapter, 10, ctypes.POINTER(AdapterDesc1))(ctypes.byref(desc))
            method(adapter, 2)()
            index += 1
            if desc.Flags & 2:  # DXGI_ADAPTER_FLAG_SOFTWARE
                continue
            adapters.append(
                DxgiAdapter(
                    name=desc.Description,
                    luid=luid_key(desc.AdapterLuid.HighPart, desc.AdapterLuid.LowPart),
                    dedicated_total=int(desc.DedicatedVideoMemory),
                    shared_total=int(desc.SharedSystemMemory),
                )
            )
    finally:
        method(factory, 2)()
    return adapters
