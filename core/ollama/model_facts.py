"""What llmtop knows about a model before running it, read from `/api/show` and `/api/tags`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Ollama's names: [host/][namespace/]model[:tag], e.g. `llama3.3`, `llama3.3:70b-instruct-q2_K`,
# `namespace/model:tag`, `hf.co/unsloth/Llama-3.3-70B-Instruct-GGUF:Q2_K`.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*(?::\d+)?(?:/[A-Za-z0-9._\-]+)*(?::[A-Za-z0-9._\-]+)?$")


def valid_model_name(name: str) -> bool:
    """True for a name Ollama could accept (a syntax check; the server has the last word)."""
    return bool(_NAME.match(name)) and ".." not in name


def canonical_model_name(name: str) -> str:
    """`llama3.3` -> `llama3.3:latest`: the form /api/tags and /api/ps list names in."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def same_model(a: str, b: str) -> bool:
    """Whether two names denote the same model (tag `latest` implied, case ignored as Ollama does)."""
    return canonical_model_name(a).casefold() == canonical_model_name(b).casefold()


@dataclass(frozen=True)
class ModelFacts:
    """A model's identity and shape; None where the server did not say."""

    name: str
    parameter_size: str | None
    quantization: str | None
    family: str | None
    block_count: int | None
    size_bytes: int | None
    expert_count: int | None = None  # a mixture of experts: its experts per layer, and how many a token uses
    expert_used_count: int | None = None
    capabilities: tuple[str, ...] = ()  # /api/show's: `completion`, `tools`, `thinking`, ...
    think_values: tuple[bool | str, ...] = ()  # what its `think` takes, where /api/show says (`thinking.values`)

    @property
    def thinks(self) -> bool:
        """A thinking model: /api/show lists the `thinking` capability."""
        return "thinking" in self.capabilities

    @property
    def experts_text(self) -> str | None:
        """`MoE, 2 of 8 experts` for a mixture of experts (None for a dense model)."""
        if not self.expert_count:
            return None
        used = f"{self.expert_used_count} of " if self.expert_used_count else ""
        return f"MoE, {used}{self.expert_count} experts"

    @property
    def layers_total(self) -> int | None:
        """Layers as Ollama's log counts them: the repeating blocks plus the output layer."""
        return None if self.block_count is None else self.block_count + 1


def _architecture_int(model_info: Mapping[str, Any], key: str) -> int | None:
    """`ARCH.key` (e.g. `llama.block_count`), or any `*.key` for an architecture llmtop does not know."""
    arch = model_info.get("general.architecture")
    value = model_info.get(f"{arch}.{key}") if arch else None
    if value is None:
        value = next((v for k, v in model_info.items() if k.endswith(f".{key}")), None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _block_count(model_info: Mapping[str, Any]) -> int | None:
    return _architecture_int(model_info, "block_count")


def model_facts(name: str, show: Mapping[str, Any], tags: Mapping[str, Any]) -> ModelFacts:
    """Combine the bodies of `/api/show` and `/api/tags` (as JSON dicts) into ModelFacts."""
    details = show.get("details") or {}
    model_info = show.get("model_info") or show.get("modelinfo") or {}
    size = None
    for entry in tags.get("models") or []:
        if same_model(entry.get("name") or entry.get("model") or "", name):
            size = entry.get("size")
            break
    return ModelFacts(
        name=name,
        parameter_size=details.get("parameter_size") or None,
        quantization=details.get("quantization_level") or None,
        family=details.get("family") or None,
        block_count=_block_count(model_info),
        size_bytes=size if isinstance(size, int) else None,
        expert_count=_architecture_int(model_info, "expert_count"),
        expert_used_count=_architecture_int(model_info, "expert_used_count"),
        capabilities=tuple(str(c) for c in show.get("capabilities") or () if isinstance(c, str)),
        think_values=_think_values(show.get("thinking")),
    )


def _think_values(thinking: Any) -> tuple[bool | str, ...]:
    """`{"values": [true, false]}` or `{"values": ["low", "medium", "high"], "default": "medium"}`
    (Ollama 0.3x's /api/show for a model with thinking metadata); () where it says none."""
    values = thinking.get("values") if isinstance(thinking, Mapping) else None
    return tuple(v for v in values or () if isinstance(v, (bool, str))) if isinstance(values, list) else ()
