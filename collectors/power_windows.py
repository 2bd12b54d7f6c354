"""The CPU package's energy on Windows through the Energy Meter Interface (EMI).

EMI is Windows' documented interface for energy meters (Windows 10 on; `emi.h`): a driver that
implements it exposes a device of interface class GUID_DEVICE_ENERGY_METER, whose IOCTLs give its
version, its channels (EMI_METADATA_V2: one name per channel) and, per channel, the absolute energy
in picowatt-hours and the time in 100 ns units (EMI_CHANNEL_MEASUREMENT_DATA). Intel platforms
name the package's RAPL channel `RAPL_Package0_PKG`; a channel whose name has `PKG` is read as
the CPU package. Where no driver implements EMI, Windows has no documented CPU energy counter
and the reason says so. NVIDIA GPUs are read through NVML (power_nvidia.py); AMD documents its
cards' board power on Windows only in its ADLX SDK, not read yet; Intel's GPUs have no documented
counter there.

The device access is a parameter (`EmiDevice`-like objects) so tests read recorded values; the
layouts are parsed by the pure functions below.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from llmtop.collectors.power_reading import CounterMeter, PowerReading, counted

JOULES_PER_PWH = 3.6e-9  # 1 pWh = 10^-12 W x 3600 s
NO_EMI = (
    "Windows has no documented CPU energy counter on this machine: no driver implements the Energy "
    "Meter Interface (EMI) here"
)
OTHER_GPUS = (
    "no NVIDIA GPU (read through NVML); AMD documents Windows board power only in its ADLX SDK "
    "(GPUTotalBoardPower), which llmtop does not read yet; Intel documents none"
)

_FILE_DEVICE_UNKNOWN = 0x22
_FILE_READ_ACCESS = 1


def _ctl_code(function: int) -> int:
    """CTL_CODE(FILE_DEVICE_UNKNOWN, function, METHOD_BUFFERED, FILE_READ_ACCESS)."""
    return (_FILE_DEVICE_UNKNOWN << 16) | (_FILE_READ_ACCESS << 14) | (function << 2)


IOCTL_EMI_GET_VERSION = _ctl_code(0)
IOCTL_EMI_GET_METADATA_SIZE = _ctl_code(1)
IOCTL_EMI_GET_METADATA = _ctl_code(2)
IOCTL_EMI_GET_MEASUREMENT = _ctl_code(3)


def _wide(data: bytes) -> str:
    return data.decode("utf-16-le", errors="replace").split("\0", 1)[0]


def channel_names_v2(metadata: bytes) -> list[str]:
    """The channels of an EMI_METADATA_V2: HardwareOEM and HardwareModel (16 WCHAR each),
    HardwareRevision and ChannelCount (USHORT), then each EMI_CHANNEL_V2: MeasurementUnit (a
    4-byte enum), ChannelNameSize (USHORT, bytes with the null), ChannelName."""
    (count,) = struct.unpack_from("<H", metadata, 66)
    names, offset = [], 68
    for _ in range(count):
        unit, size = struct.unpack_from("<IH", metadata, offset)
        if unit != 0:  # EmiMeasurementUnitPicowattHours is the only unit defined
            raise ValueError(f"EMI channel in unknown unit {unit}")
        names.append(_wide(metadata[offset + 6 : offset + 6 + size]))
        offset += 6 + size
    return names


def channel_name_v1(metadata: bytes) -> str:
    """The one channel of an EMI_METADATA_V1: MeasurementUnit, HardwareOEM, HardwareModel,
    HardwareRevision, MeteredHardwareNameSize, MeteredHardwareName."""
    unit, size = struct.unpack_from("<I", metadata, 0)[0], struct.unpack_from("<H", metadata, 70)[0]
    if unit != 0:
        raise ValueError(f"EMI channel in unknown unit {unit}")
    return _wide(metadata[72 : 72 + size])


def measurements(data: bytes, channels: int) -> list[tuple[int, int]]:
    """(AbsoluteEnergy in pWh, AbsoluteTime in 100 ns) per channel."""
    return [struct.unpack_from("<QQ", data, 16 * i) for i in range(channels)]


class EmiDevice(Protocol):
    """One energy-meter device: its channel names, and a measurement of them all."""

    path: str
    channels: list[str]

    def measure(self) -> list[tuple[int, int]]: ...


def is_package(channel: str) -> bool:
    return "PKG" in channel.upper()


@dataclass
class _Channel:
    device: EmiDevice
    index: int
    name: str
    meter: CounterMeter


class EmiPackages:
    """The CPU package channels of every EMI device. `devices` lists them (default: SetupAPI)."""

    name = "windows-emi"

    def __init__(self, devices: Callable[[], list[EmiDevice]] | None = None) -> None:
        try:
            found = (devices or win32_emi_devices)()
        except OSError as exc:
            raise LookupError(f"{NO_EMI} ({exc})") from None
        if not found:
            raise LookupError(NO_EMI)
        self.channels = [
            _Channel(d, i, name, CounterMeter(JOULES_PER_PWH))
            for d in found
            for i, name in enumerate(d.channels)
            if is_package(name)
        ]
        if not self.channels:
            listed = ", ".join(name for d in found for name in d.channels) or "none"
            raise LookupError(f"no EMI channel is the CPU package (channels: {listed})")

    def close(self) -> None:
        for channel in self.channels:
            close = getattr(channel.device, "close", None)
            if close is not None:
                close()

    def read(self, t: float) -> list[PowerReading]:
        readings = []
        measured: dict[int, list[tuple[int, int]] | str] = {}
        several = len(self.channels) > 1
        for number, channel in enumerate(self.channels):
            key = id(channel.device)
            if key not in measured:
                try:
                    measured[key] = channel.device.measure()
                except OSError as exc:
                    measured[key] = f"EMI measurement failed: {exc}"
            values = measured[key]
            base: dict[str, Any] = {
                "key": f"emi:{channel.name}",
                "name": f"CPU package {number}" if several else "CPU package",
                "kind": "cpu",
                "method": f"Windows EMI {channel.name}",
            }
            if isinstance(values, str):
                readings.append(PowerReading(**base, reason=values))
                continue
            energy_pwh, _ = values[channel.index]
            readings.append(counted(channel.meter, t, energy_pwh, None, **base))
        return readings


def win32_emi_devices() -> list[EmiDevice]:  # pragma: no cover - Windows only
    """Every present EMI device, opened for reading (SetupAPI and DeviceIoControl via ctypes)."""
    import ctypes
    from ctypes import wintypes

    setupapi = ctypes.WinDLL("setupapi", use_last_error=True)  # type: ignore[attr-defined]
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]

    def failed() -> OSError:
        return ctypes.WinError(ctypes.get_last_error())  # type: ignore[attr-defined]

    class GUID(ctypes.Structure):
        _fields_ = [("Data1", wintypes.DWORD), ("Data2", wintypes.WORD), ("Data3", wintypes.WORD),
                    ("Data4", ctypes.c_ubyte * 8)]  # fmt: skip

    class InterfaceData(ctypes.Structure):  # SP_DEVICE_INTERFACE_DATA
        _fields_ = [("cbSize", wintypes.DWORD), ("InterfaceClassGuid", GUID), ("Flags", wintypes.DWORD),
                    ("Reserved", ctypes.c_void_p)]  # fmt: skip

    guid = GUID(0x45BD8344, 0x7ED6, 0x49CF, (ctypes.c_ubyte * 8)(0xA4, 0x40, 0xC2, 0x76, 0xC9, 0x33, 0xB0, 0x53))
    setupapi.SetupDiGetClassDevsW.restype = ctypes.c_void_p
    setupapi.SetupDiGetClassDevsW.argtypes = [ctypes.c_void_p, ctypes.c_wchar_p, ctypes.c_void_p, wintypes.DWORD]
    setupapi.SetupDiEnumDeviceInterfaces.argtypes = [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, wintypes.DWORD, ctypes.c_void_p
    ]  # fmt: skip
    setupapi.SetupDiGetDeviceInterfaceDetailW.argtypes = [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, wintypes.DWORD, ctypes.c_void_p, ctypes.c_void_p
    ]  # fmt: skip
    setupapi.SetupDiDestroyDeviceInfoList.argtypes = [ctypes.c_void_p]
    kernel32.CreateFileW.restype = ctypes.c_void_p
    kernel32.CreateFileW.argtypes = [
        ctypes.c_wchar_p, wintypes.DWORD, wintypes.DWORD, ctypes.c_void_p, wintypes.DWORD, wintypes.DWORD,
        ctypes.c_void_p,
    ]  # fmt: skip
    kernel32.DeviceIoControl.argtypes = [
        ctypes.c_void_p, wintypes.DWORD, ctypes.c_void_p, wintypes.DWORD, ctypes.c_void_p, wintypes.DWORD,
        ctypes.POINTER(wintypes.DWORD), ctypes.c_void_p,
    ]  # fmt: skip
    kernel32.CloseHandle.argtypes = [ctypes.c_void_p]
    invalid = ctypes.c_void_p(-1).value

    def ioctl(handle: int, code: int, size: int) -> bytes:
        buffer = ctypes.create_string_buffer(size)
        returned = wintypes.DWORD()
        if not kernel32.DeviceIoControl(handle, code, None, 0, buffer, size, ctypes.byref(returned), None):
            raise failed()
        return buffer.raw[: returned.value]

    class Device:
        def __init__(self, path: str) -> None:
            self.path = path
            handle = kernel32.CreateFileW(path, 0x80000000, 0x3, None, 3, 0, None)  # GENERIC_READ, share, OPEN_EXISTING
            if handle in (None, invalid):
                raise failed()
            self.handle = handle
            (version,) = struct.unpack_from("<H", ioctl(handle, IOCTL_EMI_GET_VERSION, 2))
            (size,) = struct.unpack_from("<I", ioctl(handle, IOCTL_EMI_GET_METADATA_SIZE, 4))
            metadata = ioctl(handle, IOCTL_EMI_GET_METADATA, size)
            self.channels = channel_names_v2(metadata) if version >= 2 else [channel_name_v1(metadata)]

        def measure(self) -> list[tuple[int, int]]:
            return measurements(
                ioctl(self.handle, IOCTL_EMI_GET_MEASUREMENT, 16 * len(self.channels)), len(self.channels)
            )

        def close(self) -> None:
            kernel32.CloseHandle(self.handle)

    info = setupapi.SetupDiGetClassDevsW(ctypes.byref(guid), None, None, 0x2 | 0x10)  # PRESENT | DEVICEINTERFACE
    if info in (None, invalid):
        raise failed()
    devices: list[EmiDevice] = []
    try:
        index = 0
        while True:
            data = InterfaceData()
            data.cbSize = ctypes.sizeof(InterfaceData)
            if not setupapi.SetupDiEnumDeviceInterfaces(info, None, ctypes.byref(guid), index, ctypes.byref(data)):
                break
            index += 1
            needed = wintypes.DWORD()
            setupapi.SetupDiGetDeviceInterfaceDetailW(info, ctypes.byref(data), None, 0, ctypes.byref(needed), None)
            detail = ctypes.create_string_buffer(needed.value)
            # SP_DEVICE_INTERFACE_DETAIL_DATA_W's cbSize: 8 on 64-bit Windows, 6 on 32-bit.
            struct.pack_into("<I", detail, 0, 8 if ctypes.sizeof(ctypes.c_void_p) == 8 else 6)
            if not setupapi.SetupDiGetDeviceInterfaceDetailW(
                info, ctypes.byref(data), detail, needed.value, None, None
            ):
                continue
            path = ctypes.wstring_at(ctypes.addressof(detail) + 4)
            try:
                devices.append(Device(path))
            except OSError:
                continue  # a meter this user may not open is left out; the others are read
    finally:
        setupapi.SetupDiDestroyDeviceInfoList(info)
    return devices
