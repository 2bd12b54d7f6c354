"""The server's own settings as parts of a mode: KV cache type, flash attention, MoE expert placement
and parallel slots.

They are not options of a request but settings of `ollama serve` (its environment), so llmtop can
only try them on a server it started itself (`--serve`), restarting it between runs whose settings
differ. Pure: the environment a setting needs, its name in a mode, its label, and whether a given
Ollama honours it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from llmtop.units import switch

KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")
ALL_LAYERS = "all"
SETTING_KEYS = ("kv", "fa", "moe", "np")

LLAMA_SERVER_FROM = (0, 30)  # the first Ollama that runs llama-server, which reads LLAMA_ARG_* (MoE placement)


@dataclass(frozen=True)
class ServerSettings:
    """Settings of `ollama serve`; None leaves each as the server's own (the user's environment)."""

    kv_cache: str | None = None  # OLLAMA_KV_CACHE_TYPE: f16, q8_0, q4_0
    flash_attention: bool | None = None  # OLLAMA_FLASH_ATTENTION
    cpu_moe: str | None = None  # `all`, or the number of layers whose experts stay in system memory
    parallel: int | None = None  # OLLAMA_NUM_PARALLEL

    @property
    def empty(self) -> bool:
        return self == ServerSettings()

    def env(self) -> dict[str, str]:
        """The variables `ollama serve` is started with for these settings (Ollama 0.30+ hands its
        whole environment to llama-server, so LLAMA_ARG_* reach it)."""
        env: dict[str, str] = {}
        if self.kv_cache is not None:
            env["OLLAMA_KV_CACHE_TYPE"] = self.kv_cache
        if self.flash_attention is not None:
            env["OLLAMA_FLASH_ATTENTION"] = "1" if self.flash_attention else "0"
        if self.cpu_moe == ALL_LAYERS:
            env["LLAMA_ARG_CPU_MOE"] = "1"
        elif self.cpu_moe is not None:
            env["LLAMA_ARG_N_CPU_MOE"] = self.cpu_moe
        if self.parallel is not None:
            env["OLLAMA_NUM_PARALLEL"] = str(self.parallel)
        return env

    def mode_parts(self) -> list[str]:
        """`kv=q8_0`, `fa=on`, `moe=all`, `np=2`: the settings as a mode names them, in that order."""
        parts = []
        if self.kv_cache is not None:
            parts.append(f"kv={self.kv_cache}")
        if self.flash_attention is not None:
            parts.append(f"fa={'on' if self.flash_attention else 'off'}")
        if self.cpu_moe is not None:
            parts.append(f"moe={self.cpu_moe}")
        if self.parallel is not None:
            parts.append(f"np={self.parallel}")
        return parts

    def label_parts(self) -> list[str]:
        """`KV q8_0`, `FA on`, `all experts on CPU`, `2 slots`: for tables and charts."""
        parts = []
        if self.kv_cache is not None:
            parts.append(f"KV {self.kv_cache}")
        if self.flash_attention is not None:
            parts.append(f"FA {'on' if self.flash_attention else 'off'}")
        if self.cpu_moe is not None:
            parts.append(moe_text(self.cpu_moe))
        if self.parallel is not None:
            parts.append(f"{self.parallel} slot{'s' if self.parallel != 1 else ''}")
        return parts

    def with_setting(self, key: str, value: str) -> ServerSettings:
        """These settings with `key=value` from a mode; ValueError for a value that cannot be."""
        text = value.strip().lower()
        if key == "kv":
            if text not in KV_CACHE_TYPES:
                raise ValueError(f"unknown KV cache type {value.strip()!r}: use {', '.join(KV_CACHE_TYPES)}")
            return replace(self, kv_cache=text)
        if key == "fa":
            state = switch(text)
            if state is None:
                raise ValueError(f"fa= takes on or off, not {value.strip()!r}")
            return replace(self, flash_attention=state)
        if key == "moe":
            if text != ALL_LAYERS and not re.fullmatch(r"\d+", text):
                raise ValueError(f"moe= takes all or a number of layers, not {value.strip()!r}")
            return replace(self, cpu_moe=text if text == ALL_LAYERS else str(int(text)))
        if key == "np":
            if not re.fullmatch(r"\d+", text) or not 1 <= int(text) <= 64:
                raise ValueError(f"np= takes a number of parallel slots from 1 to 64, not {value.strip()!r}")
            return replace(self, parallel=int(text))
        raise ValueError(f"unknown server setting {key!r}: use {', '.join(k + '=' for k in SETTING_KEYS)}")


def moe_text(cpu_moe: str) -> str:
    """`all experts on CPU`, `experts of 16 layers on CPU`, `experts of 1 layer on CPU`, or (0) `no
    experts on CPU`."""
    if cpu_moe == ALL_LAYERS:
        return "all experts on CPU"
    if cpu_moe == "0":
        return "no experts on CPU"
    return f"experts of {cpu_moe} layer{'' if cpu_moe == '1' else 's'} on CPU"


def serve_env(base: Mapping[str, str], settings: ServerSettings) -> dict[str, str]:
    """The environment of `ollama serve` for `settings`: the user's own, with the settings' own
    variables over it (moe= replaces both of llama-server's MoE variables); a setting the mode
    leaves out keeps the user's value."""
    env = dict(base)
    if settings.cpu_moe is not None:
        env.pop("LLAMA_ARG_CPU_MOE", None)
        env.pop("LLAMA_ARG_N_CPU_MOE", None)
    env.update(settings.env())
    return env


def version_tuple(version: str | None) -> tuple[int, ...] | None:
    """`0.34.4` -> (0, 34, 4); None for a version that cannot be read."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version or "")
    if not match:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def unsupported(settings: ServerSettings, version: str | None, env: Mapping[str, str]) -> str | None:
    """Why this Ollama (its version, the environment `ollama serve` gets) would not honour
    `settings`, in one sentence; None when it would."""
    numbers = version_tuple(version)
    old = numbers is not None and numbers[:2] < LLAMA_SERVER_FROM
    if settings.cpu_moe is not None and old:
        return (
            f"moe={settings.cpu_moe} needs Ollama 0.30 or later, which runs llama-server (the MoE placement "
            f"is its --n-cpu-moe); this server is {version}"
        )
    quantized = settings.kv_cache not in (None, "f16")
    flash = switch(env.get("OLLAMA_FLASH_ATTENTION"))  # the user's, where the mode sets none
    off_by = f"OLLAMA_FLASH_ATTENTION={env.get('OLLAMA_FLASH_ATTENTION')} in this environment turns it off"
    if settings.flash_attention is not None:
        flash = settings.flash_attention
        off_by = "fa=off turns it off"
    if quantized and flash is False:
        return f"kv={settings.kv_cache} needs flash attention, and {off_by}: add fa=on, or use kv=f16"
    if quantized and old and flash is not True:
        return (
            f"kv={settings.kv_cache} needs flash attention on Ollama {version} (without it Ollama keeps an f16 "
            f"cache and only warns in its log): add fa=on, e.g. auto:kv={settings.kv_cache}:fa=on"
        )
    return None


def serve_line(settings: ServerSettings) -> str:
    """The `ollama serve` command line that gives `settings`, for the user to run themselves."""
    return " ".join([*(f"{k}={v}" for k, v in settings.env().items()), "ollama serve"])
