"""What a forecast needs of a model, read from its tensors and metadata (a GGUF header, or Ollama's
`/api/show` with its tensor table): the bytes of each repeating layer and of the output layer, the
embeddings that stay in system memory, the KV cache's bytes a token, and for a mixture of experts the
experts' bytes and the share of them a token reads. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from llmtop.ollama.gguf_header import TYPE_SIZES, GgufHeader, TensorInfo

_BLOCK = re.compile(r"^blk\.(\d+)\.")
_EXPERTS = re.compile(r"\.ffn_(?:gate|up|down|gate_up)_exps\.")
KV_BYTES = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}  # a value of the KV cache, by its type


@dataclass(frozen=True)
class ModelShape:
    """A model's bytes, layer by layer, as llama.cpp places them: `blocks[i]` the i-th repeating layer's
    weights (its experts included), `experts[i]` of them its experts; the output layer (output and its
    norm), offloaded first; the token embeddings, which stay in system memory; `kv_per_token[i]` the
    i-th layer's K and V bytes a token in f16."""

    blocks: tuple[int, ...]
    experts: tuple[int, ...]
    output_bytes: int
    embedding_bytes: int
    kv_per_token: tuple[int, ...]
    trained_context: int | None = None
    experts_used_share: float = 1.0  # n_expert_used / n_expert; 1.0 for a dense model
    vocab: int = 0
    embedding: int = 0
    tied: bool = False  # no output matrix of its own: the output layer reads the token embeddings'

    @property
    def layers(self) -> int:
        """Layers as Ollama counts them: the repeating ones and the output layer."""
        return len(self.blocks) + 1

    @property
    def weights_bytes(self) -> int:
        return sum(self.blocks) + self.output_bytes + self.embedding_bytes

    @property
    def moe(self) -> bool:
        return any(self.experts) and self.experts_used_share < 1.0

    def read_per_token(self, block: int) -> float:
        """The bytes of a repeating layer a token reads: all of a dense layer, the used share of its experts."""
        return self.blocks[block] - self.experts[block] * (1.0 - self.experts_used_share)


def _number(metadata: Mapping[str, Any], key: str) -> list[int]:
    value = metadata.get(key)
    if isinstance(value, list):
        return [int(v) for v in value if isinstance(v, (int, float))]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [int(value)]
    return []


def shape_of(metadata: Mapping[str, Any], tensors: Iterable[TensorInfo]) -> ModelShape:
    """The shape from a model's metadata (`general.architecture`, `<arch>.block_count`, the attention's
    heads and sizes, the experts) and its tensors; ValueError where it has no repeating layer."""
    arch = str(metadata.get("general.architecture") or "")
    count = (_number(metadata, f"{arch}.block_count") or [0])[0]
    blocks, experts = [0] * count, [0] * count
    output = embedding = 0
    tensors = list(tensors)
    for tensor in tensors:
        found = _BLOCK.match(tensor.name)
        if found and int(found.group(1)) < count:
            index = int(found.group(1))
            blocks[index] += tensor.bytes
            if _EXPERTS.search(tensor.name):
                experts[index] += tensor.bytes
        elif tensor.name.startswith(("output.", "output_norm.")):
            output += tensor.bytes
        else:
            embedding += tensor.bytes  # token embeddings and any other tensor outside the layers
    if not count or not any(blocks):
        raise ValueError("the model has no repeating layers llmtop can read (block_count, blk.N tensors)")
    tied = output == 0 or not any(t.name == "output.weight" for t in tensors)
    width = (_number(metadata, f"{arch}.embedding_length") or [0])[0]
    heads = _number(metadata, f"{arch}.attention.head_count") or [1]
    kv_heads = _number(metadata, f"{arch}.attention.head_count_kv") or heads
    key = (_number(metadata, f"{arch}.attention.key_length") or [width // max(heads[0], 1)])[0]
    value = (_number(metadata, f"{arch}.attention.value_length") or [key])[0]
    per_layer = [kv_heads[i] if i < len(kv_heads) else kv_heads[-1] for i in range(count)]
    kv = tuple(int(KV_BYTES["f16"] * h * (key + value)) for h in per_layer)
    expert_count = (_number(metadata, f"{arch}.expert_count") or [0])[0]
    used = (_number(metadata, f"{arch}.expert_used_count") or [0])[0]
    share = used / expert_count if expert_count and used else 1.0
    context = (_number(metadata, f"{arch}.context_length") or [0])[0] or None
    vocab = (_number(metadata, f"{arch}.vocab_size") or [0])[0] or _vocab(metadata)
    if tied:  # llama.cpp copies the embeddings' matrix to the GPU for the output layer
        output += sum(t.bytes for t in tensors if t.name == "token_embd.weight")
    return ModelShape(tuple(blocks), tuple(experts), output, embedding, kv, context, share, vocab, width, tied)


def _vocab(metadata: Mapping[str, Any]) -> int:
    tokens = metadata.get("tokenizer.ggml.tokens")
    if isinstance(tokens, list):
        return len(tokens)
    return tokens if isinstance(tokens, int) else 0


def shape_of_header(header: GgufHeader) -> ModelShape:
    return shape_of(header.metadata, header.tensors)


def shape_of_show(show: Mapping[str, Any]) -> ModelShape:
    """From `/api/show` (verbose): `model_info` and the `tensors` table (name, type, shape); ValueError
    where the answer has no tensor table (Ollama before 0.6)."""
    table = show.get("tensors")
    if not isinstance(table, list) or not table:
        raise ValueError("this Ollama's /api/show gives no tensor table (it came in 0.6)")
    tensors = []
    for item in table:
        if isinstance(item, Mapping):
            kind = str(item.get("type") or "")
            shape = tuple(int(d) for d in item.get("shape") or ())
            tensors.append(TensorInfo(str(item.get("name") or ""), kind if kind in TYPE_SIZES else kind, shape))
    return shape_of(show.get("model_info") or {}, tensors)
