"""The machine's temperatures for a cool-down (collectors/temperatures.py; NVML's in gpu_nvidia.py),
from recorded psutil values."""

from __future__ import annotations

from collections import namedtuple
from types import SimpleNamespace

from helpers.fake_nvml import FakeNvml
from llmtop.collectors.gpu_nvidia import NvmlReader
from llmtop.collectors.temperatures import TemperatureReader
from llmtop.measure.cool_down import gpu_temperatures

# psutil.sensors_temperatures() on a Ryzen with a Radeon (Linux hwmon), as psutil shapes it.
Shwtemp = namedtuple("Shwtemp", "label current high critical")
SENSORS = {
    "k10temp": [Shwtemp("Tctl", 71.25, None, None), Shwtemp("Tccd1", 64.5, None, None)],
    "amdgpu": [Shwtemp("edge", 55.0, 100.0, 105.0), Shwtemp("junction", 61.0, 110.0, 115.0)],
    "nvme": [Shwtemp("Composite", 38.85, 84.85, 84.85)],
    "acpitz": [Shwtemp("", 0.0, None, None)],  # a zone not wired: left out
}


def test_each_chips_hottest_reading_and_none_where_the_platform_has_none():
    reader = TemperatureReader(SimpleNamespace(sensors_temperatures=lambda: SENSORS))
    assert reader.read() == {"k10temp": 71.25, "amdgpu": 61.0, "nvme": 38.85}
    assert TemperatureReader(SimpleNamespace()).read() == {}  # Windows, macOS: psutil has no such call

    def vanished():
        raise FileNotFoundError("/sys/class/hwmon/hwmon3/temp1_input")

    assert TemperatureReader(SimpleNamespace(sensors_temperatures=vanished)).read() == {}


def test_nvidia_gpus_give_their_core_temperature():
    nvml = FakeNvml()
    nvml.nvmlDeviceGetTemperature = lambda handle, sensor: 67 if sensor == 0 else None
    [gpu] = NvmlReader(nvml, platform="linux").read()
    assert gpu.temperature_c == 67.0
    sampler = SimpleNamespace(latest=lambda: SimpleNamespace(gpus=(gpu,)))
    assert gpu_temperatures(sampler) == {"nvml:0": 67.0} and gpu_temperatures(None) == {}
    [bare] = NvmlReader(FakeNvml(), platform="linux").read()  # a binding without the query
    assert bare.temperature_c is None and bare.reasons["temperature"].startswith("NVML: ")
