"""A real model for every Ollama, written here: a `llama`-architecture GGUF with random weights,
80 thin blocks like the article's Llama 3.3 70B (81 layers as Ollama counts them), about 290 MB,
and a SentencePiece-style vocabulary with byte fallback (any text tokenizes). Its answers are
noise; its load, its memory and its timing are real. Ollama 0.5.11 cannot load Gemma 3, and this loads on every version.

Written with `gguf`, llama.cpp's own GGUF writer (PyPI). The weights come from a fixed seed, so the
file is the same on every machine; `python tests/llama_gguf.py PATH` writes it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Shape:
    """The model's dimensions; the defaults make the tests' model, 81 layers as Ollama counts them."""

    layers: int = 80  # blocks: with the output layer, Ollama counts 81, as for the article's 70B
    embedding: int = 384
    feed_forward: int = 1024
    heads: int = 6
    kv_heads: int = 0  # the K and V heads (grouped-query attention: fewer than `heads`); 0: as many as `heads`
    vocab: int = 4096  # large enough that </s> comes by chance about once in 4,000 tokens
    context: int = 4096
    experts: int = 0  # a mixture of experts (Mixtral-style: llama with `ffn_*_exps`) when more than 0
    experts_used: int = 0

    @property
    def kv_width(self) -> int:
        """The K (and V) projection's width: the KV heads times the head's size."""
        return (self.kv_heads or self.heads) * (self.embedding // self.heads)

    @property
    def parameters(self) -> int:
        feed_forward = 3 * self.embedding * self.feed_forward * max(self.experts, 1) + self.embedding * self.experts
        attention = 2 * self.embedding**2 + 2 * self.embedding * self.kv_width
        per_layer = attention + feed_forward + 2 * self.embedding
        return self.layers * per_layer + 2 * self.vocab * self.embedding + self.embedding


SEED = 20261206
UNKNOWN, CONTROL, NORMAL, BYTE = 2, 3, 1, 6  # llama.cpp's token types


def vocabulary(size: int) -> tuple[list[str], list[float], list[int]]:
    """(tokens, scores, types): <unk>, <s>, </s>, the 256 byte tokens, then word pieces."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [UNKNOWN, CONTROL, CONTROL] + [BYTE] * 256
    pieces = ["▁"] + [f"▁{c}" for c in "abcdefghijklmnopqrstuvwxyz"] + list("abcdefghijklmnopqrstuvwxyz")
    words = "the of and to in is it that for on with as was at by an be this are or from not but have".split()
    pieces += [f"▁{w}" for w in words] + [f"{a}{b}" for a in "aeiou" for b in "nrstlmdc"]
    pieces += [f"▁{a}{b}" for a in "bcdfghlmnprstw" for b in "aeiou"]
    for piece in pieces:
        if len(tokens) >= size:
            break
        if piece not in tokens:
            tokens.append(piece)
            types.append(NORMAL)
    while len(tokens) < size:
        tokens.append(f"▁w{len(tokens)}")
        types.append(NORMAL)
    scores = [0.0] * 259 + [-float(i) for i in range(size - 259)]
    return tokens, scores, types


def write_random_llama(path: str | os.PathLike[str], shape: Shape = Shape(), seed: int = SEED) -> Path:
    """Write the model to `path` (F16 weights, F32 norms); return the path."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), "llama")
    e, f = shape.embedding, shape.feed_forward
    writer.add_name(f"llmtop random llama {shape.layers}L" + (f" {shape.experts}x experts" if shape.experts else ""))
    writer.add_context_length(shape.context)
    writer.add_embedding_length(e)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(f)
    writer.add_rope_dimension_count(e // shape.heads)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads or shape.heads)
    writer.add_layer_norm_rms_eps(1e-5)
    if shape.experts:
        writer.add_expert_count(shape.experts)
        writer.add_expert_used_count(shape.experts_used)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_vocab_size(shape.vocab)
    tokens, scores, types = vocabulary(shape.vocab)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)

    def weights(*dimensions: int) -> np.ndarray:
        return (rng.standard_normal(dimensions, dtype=np.float32) * 0.02).astype(np.float16)

    def norm() -> np.ndarray:
        return np.ones(e, dtype=np.float32)

    writer.add_tensor("token_embd.weight", weights(shape.vocab, e))
    for layer in range(shape.layers):
        block = f"blk.{layer}"
        writer.add_tensor(f"{block}.attn_norm.weight", norm())
        writer.add_tensor(f"{block}.attn_q.weight", weights(e, e))
        writer.add_tensor(f"{block}.attn_k.weight", weights(shape.kv_width, e))
        writer.add_tensor(f"{block}.attn_v.weight", weights(shape.kv_width, e))
        writer.add_tensor(f"{block}.attn_output.weight", weights(e, e))
        writer.add_tensor(f"{block}.ffn_norm.weight", norm())
        if shape.experts:  # llama.cpp's shapes, numpy's order: the router, then every expert's three
            writer.add_tensor(f"{block}.ffn_gate_inp.weight", weights(shape.experts, e).astype(np.float32))
            writer.add_tensor(f"{block}.ffn_gate_exps.weight", weights(shape.experts, f, e))
            writer.add_tensor(f"{block}.ffn_up_exps.weight", weights(shape.experts, f, e))
            writer.add_tensor(f"{block}.ffn_down_exps.weight", weights(shape.experts, e, f))
            continue
        writer.add_tensor(f"{block}.ffn_gate.weight", weights(f, e))
        writer.add_tensor(f"{block}.ffn_up.weight", weights(f, e))
        writer.add_tensor(f"{block}.ffn_down.weight", weights(e, f))
    writer.add_tensor("output_norm.weight", norm())
    writer.add_tensor("output.weight", weights(shape.vocab, e))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(target)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/llama_gguf.py PATH")
    print(write_random_llama(sys.argv[1]))
