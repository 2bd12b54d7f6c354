"""A GGUF file's header read from its first bytes: the key/value metadata and each tensor's name,
type and shape, with the bytes each tensor takes. Pure: bytes in, facts out; a buffer that ends inside
the header raises `HeaderIncomplete` with how many bytes to have at least, so a caller that reads the
file a range at a time (a registry's blob) asks for no more than the header.

Format (GGUF v2/v3, ggml's docs/gguf.md): magic `GGUF`, u32 version, u64 tensor count, u64 metadata
count, each key (u64 length + UTF-8) with a u32 type and its value, then each tensor's name, u32
dimension count, u64 dimensions, u32 type and u64 offset. Little-endian throughout.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_KEPT_ITEMS = 64  # a token list holds 262k strings: its length is kept, not its items

# ggml's tensor types: (name, values a block, bytes a block) (ggml.h, ggml.c's type_traits).
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36), 10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110), 22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
}  # fmt: skip
TYPE_SIZES = {name: (block, size) for name, block, size in GGML_TYPES.values()}


class HeaderIncomplete(ValueError):
    """The bytes end inside the header: read at least `needed` bytes of the file and try again."""

    def __init__(self, needed: int) -> None:
        super().__init__(f"the GGUF header goes on past {needed} bytes")
        self.needed = needed


class NotGguf(ValueError):
    """The bytes are not a GGUF file (or one of a version llmtop does not read)."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the header describes it."""

    name: str
    type: str
    shape: tuple[int, ...]

    @property
    def values(self) -> int:
        count = 1
        for dimension in self.shape:
            count *= dimension
        return count

    @property
    def bytes(self) -> int:
        """The bytes its data takes (its type's blocks), 0 for a type llmtop does not know."""
        block, size = TYPE_SIZES.get(self.type, (1, 0))
        return -(-self.values // block) * size


@dataclass(frozen=True)
class GgufHeader:
    """The metadata and the tensors of one GGUF file; `length`: the header's bytes."""

    version: int
    metadata: dict[str, Any]
    tensors: tuple[TensorInfo, ...]
    length: int

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture") or "")

    def number(self, key: str) -> int | None:
        """`<architecture>.key` as an integer (the first of a per-layer list), None where absent."""
        value = self.metadata.get(f"{self.architecture}.{key}")
        if isinstance(value, list):
            value = value[0] if value else None
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, size: int) -> bytes:
        end = self.at + size
        if end > len(self.data):
            raise HeaderIncomplete(max(end, 2 * len(self.data)))
        chunk, self.at = self.data[self.at : end], end
        return chunk

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return self.take(self.unpack("<Q")).decode("utf-8", errors="replace")

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind, count = self.unpack("<I"), self.unpack("<Q")
            items = [self.value(item_kind) for _ in range(count)]
            return items if count <= _KEPT_ITEMS else count
        raise NotGguf(f"unknown GGUF value type {kind}")


def read_header(data: bytes) -> GgufHeader:
    """The header at the start of `data`; HeaderIncomplete where `data` ends inside it, NotGguf where
    `data` is not a GGUF file."""
    reader = _Reader(data)
    if reader.take(4) != b"GGUF":
        raise NotGguf("not a GGUF file (its first bytes are not `GGUF`)")
    version = reader.unpack("<I")
    if version not in (2, 3):
        raise NotGguf(f"GGUF version {version}: llmtop reads versions 2 and 3")
    tensor_count, metadata_count = reader.unpack("<Q"), reader.unpack("<Q")
    metadata = {}
    for _ in range(metadata_count):
        key = reader.string()
        metadata[key] = reader.value(reader.unpack("<I"))
    tensors = []
    for _ in range(tensor_count):
        name = reader.string()
        shape = tuple(reader.unpack("<Q") for _ in range(reader.unpack("<I")))
        kind = reader.unpack("<I")
        reader.unpack("<Q")  # the offset of its data
        tensors.append(TensorInfo(name, GGML_TYPES.get(kind, (f"type {kind}", 1, 0))[0], shape))
    return GgufHeader(version, metadata, tuple(tensors), reader.at)
