"""Power on Linux, from sysfs: the CPU package from powercap (RAPL), AMD GPUs from hwmon power,
Intel GPUs from hwmon energy.

- CPU: `/sys/class/powercap/intel-rapl:N/` whose `name` is `package-N` (AMD Zen packages appear
  under the same name), `energy_uj` counting microjoules and wrapping at `max_energy_range_uj`.
  Sub-zones (`intel-rapl:0:0`, cores) are parts of the package and are not added; `psys` and
  `dram` are other domains, and `intel-rapl-mmio` repeats the package. Since Linux 5.10 (the
  PLATYPUS side channel, CVE-2020-8694) `energy_uj` is readable by root only.
- AMD (amdgpu): `device/hwmon/hwmonN/power1_average`, or `power1_input` where the card has no
  average, in microwatts, integrated over time; `power1_cap` is its limit.
- Intel (i915, xe): `device/hwmon/hwmonN/energy1_input`, microjoules, a counter.

The root is a parameter (and `LLMTOP_SYSFS_ROOT`) so tests read recorded trees.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from llmtop.collectors.gpu_linux_drm import AMD_VENDOR, INTEL_VENDOR, drm_cards, sysfs_root
from llmtop.collectors.power_reading import CounterMeter, PowerMeter, PowerReading, counted

RAPL_DENIED = (
    "the CPU's energy counter is readable by root only (Linux 5.10 on, CVE-2020-8694); to let this user "
    "read it until the next boot: sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj"
)
MICRO = 1e-6


def _text(path: Path) -> str:
    with open(path, encoding="ascii") as file:
        return file.read().strip()


def _int(path: Path) -> int:
    return int(_text(path))


def _maybe_int(path: Path) -> int | None:
    try:
        return _int(path)
    except (OSError, ValueError):
        return None


def _why(path: Path, exc: Exception) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"{path.name} is gone (the device was reset or removed?)"
    if isinstance(exc, PermissionError):
        return f"{path.name} is not readable by this user"
    return f"{path.name} unreadable: {type(exc).__name__}: {exc}"


class RaplPackages:
    """Each CPU package's energy from powercap."""

    name = "powercap"

    def __init__(self, sysfs: Path | None = None) -> None:
        root = (sysfs or sysfs_root()) / "class" / "powercap"
        try:
            zones = sorted(n for n in os.listdir(root) if re.fullmatch(r"intel-rapl:\d+", n))
        except OSError:
            zones = []
        self.zones = [root / z for z in zones if (_read_name(root / z) or "").startswith("package")]
        if not self.zones:
            raise LookupError(f"no RAPL package zone under {root} (not an Intel or AMD Zen CPU, or a VM)")
        self.meters: list[CounterMeter] = []
        denied = 0
        for zone in self.zones:
            self.meters.append(CounterMeter(MICRO, _maybe_int(zone / "max_energy_range_uj")))
            try:
                _int(zone / "energy_uj")
            except PermissionError:
                denied += 1
            except (OSError, ValueError) as exc:
                raise LookupError(f"{zone.name}: {_why(zone / 'energy_uj', exc)}") from None
        if denied == len(self.zones):
            raise LookupError(RAPL_DENIED)

    def close(self) -> None:
        pass

    def read(self, t: float) -> list[PowerReading]:
        readings = []
        for number, (zone, meter) in enumerate(zip(self.zones, self.meters, strict=True)):
            name = f"CPU package {number}" if len(self.zones) > 1 else "CPU package"
            limit = _maybe_int(zone / "constraint_0_power_limit_uw")
            base: dict[str, Any] = {
                "key": f"rapl:{zone.name}",
                "name": name,
                "kind": "cpu",
                "method": "powercap energy_uj",
            }
            try:
                raw = _int(zone / "energy_uj")
            except PermissionError:
                readings.append(PowerReading(**base, reason=RAPL_DENIED))
                continue
            except (OSError, ValueError) as exc:
                readings.append(PowerReading(**base, reason=_why(zone / "energy_uj", exc)))
                continue
            readings.append(counted(meter, t, raw, limit * MICRO if limit else None, **base))
        return readings


def _read_name(zone: Path) -> str | None:
    try:
        return _text(zone / "name")
    except OSError:
        return None


def _hwmon(device: Path, wanted: tuple[str, ...]) -> Path | None:
    """The device's hwmon folder that has one of the `wanted` files (its number can change on a reset)."""
    try:
        names = sorted(os.listdir(device / "hwmon"))
    except OSError:
        return None
    for name in names:
        for file in wanted:
            if (device / "hwmon" / name / file).exists():
                return device / "hwmon" / name
    return None


def _card_name(device: Path, vendor: str, card: str) -> str:
    try:
        return _text(device / "product_name")
    except OSError:
        return f"{vendor} GPU {card}"


class _HwmonCards:
    """The cards of one vendor whose hwmon folder has one of FILES, each with its meter."""

    FILES: tuple[str, ...] = ()
    VENDOR = ""
    VENDOR_NAME = ""

    def __init__(self, sysfs: Path | None = None) -> None:
        root = sysfs or sysfs_root()
        found = drm_cards(root, self.VENDOR)
        self.cards = [c for c in found if _hwmon(c / "device", self.FILES)]
        if not self.cards:
            raise LookupError(
                f"no {self.VENDOR_NAME} GPU with hwmon {' or '.join(self.FILES)} under {root / 'class' / 'drm'}"
                + (f" (this {self.VENDOR_NAME} GPU's driver publishes none)" if found else "")
            )
        self.meters = [self.meter() for _ in self.cards]
        self.names = [_card_name(c / "device", self.VENDOR_NAME, c.name) for c in self.cards]

    def meter(self) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass


class AmdHwmonPower(_HwmonCards):
    """AMD GPUs' board power from hwmon, integrated into energy."""

    name = "amd-hwmon"
    FILES = ("power1_average", "power1_input")
    VENDOR = AMD_VENDOR
    VENDOR_NAME = "AMD"

    def meter(self) -> PowerMeter:
        return PowerMeter()

    def read(self, t: float) -> list[PowerReading]:
        readings = []
        for card, meter, name in zip(self.cards, self.meters, self.names, strict=True):
            hwmon = _hwmon(card / "device", self.FILES)
            base: dict[str, Any] = {"key": f"amd:{card.name}", "name": name, "kind": "gpu"}
            file = next((hwmon / f for f in self.FILES if (hwmon / f).exists()), None) if hwmon else None
            if file is None:
                meter.lost()
                why = "its hwmon power file is gone (the GPU was reset or removed?)"
                readings.append(PowerReading(**base, method="hwmon power", reason=why))
                continue
            method = f"hwmon {file.name} (integrated)"
            try:
                watts = _int(file) * MICRO
            except (OSError, ValueError) as exc:
                meter.lost()
                readings.append(PowerReading(**base, method=method, reason=_why(file, exc)))
                continue
            energy, segment = meter.update(t, watts)
            cap = _maybe_int(hwmon / "power1_cap") if hwmon else None
            limit = cap * MICRO if cap else None
            readings.append(
                PowerReading(**base, method=method, watts=watts, energy_j=energy, segment=segment, limit_w=limit)
            )
        return readings


class IntelHwmonEnergy(_HwmonCards):
    """Intel GPUs' energy counter from hwmon (discrete cards with i915 or xe)."""

    name = "intel-hwmon"
    FILES = ("energy1_input",)
    VENDOR = INTEL_VENDOR
    VENDOR_NAME = "Intel"

    def meter(self) -> CounterMeter:
        return CounterMeter(MICRO)

    def read(self, t: float) -> list[PowerReading]:
        readings = []
        for card, meter, name in zip(self.cards, self.meters, self.names, strict=True):
            hwmon = _hwmon(card / "device", self.FILES)
            base: dict[str, Any] = {
                "key": f"intel:{card.name}",
                "name": name,
                "kind": "gpu",
                "method": "hwmon energy1_input",
            }
            if hwmon is None:
                why = "its hwmon energy1_input is gone (the GPU was reset or removed?)"
                readings.append(PowerReading(**base, reason=why))
                continue
            try:
                raw = _int(hwmon / "energy1_input")
            except (OSError, ValueError) as exc:
                readings.append(PowerReading(**base, reason=_why(hwmon / "energy1_input", exc)))
                continue
            limit = _maybe_int(hwmon / "power1_max")
            readings.append(counted(meter, t, raw, limit * MICRO if limit else None, **base))
        return readings
