"""Weights of the lookup-table model: each scripted token is followed by its successor.

Data flow: script chains (token ids) -> successor table -> Hugging Face Llama weights (one-hot
embeddings, ``lm_head`` from each token to its successor, zero attention and MLP outputs) and
their shape parameters. ``files`` writes them; ``_permute_qk`` turns q/k rows into GGUF layout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sealion_agents.testing.vocab import EOT_ID, N_VOCAB, llama3_vocab

HEAD_DIM = 32
SCRIPT_LOGIT = 64.0


def _successors(chains: Sequence[Sequence[int]]) -> dict[int, int]:
    succ: dict[int, int] = {}
    for chain in chains:
        if len(chain) < 2:
            raise ValueError(f"a chain needs at least two tokens: {list(chain)!r}")
        for token in chain:
            if not 0 <= int(token) < N_VOCAB:
                raise ValueError(f"token id {token} is outside the vocabulary (0..{N_VOCAB - 1})")
        for a, b in zip(chain[:-1], chain[1:], strict=True):
            a, b = int(a), int(b)
            if succ.setdefault(a, b) != b:
                raise ValueError(
                    f"chain conflict: token {a} ({llama3_vocab().tokens[a]!r}) is followed by "
                    f"token {succ[a]} in one place and by token {b} in another"
                )
    return succ


def _hf_weights(chains: Sequence[Sequence[int]]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Hugging Face Llama weights (float32, exact in float16) and their shape parameters."""
    succ = _successors(chains)
    n_dims = len(succ) + 1  # one per scripted token, plus the shared default dimension
    hidden = max(64, HEAD_DIM * math.ceil(n_dims / HEAD_DIM))
    n_head = hidden // HEAD_DIM
    ffn = 2 * hidden
    default_dim = len(succ)
    # After the final RMSNorm a one-hot residual becomes sqrt(hidden) in its dimension.
    scale = SCRIPT_LOGIT / math.sqrt(hidden)

    embed = np.zeros((N_VOCAB, hidden), dtype=np.float32)
    embed[:, default_dim] = 1.0
    lm_head = np.zeros((N_VOCAB, hidden), dtype=np.float32)
    lm_head[EOT_ID, default_dim] = scale
    for dim, (token, nxt) in enumerate(succ.items()):
        embed[token, default_dim] = 0.0
        embed[token, dim] = 1.0
        lm_head[nxt, dim] = scale

    rng = np.random.default_rng(1234)

    def small(*shape: int) -> np.ndarray:
        # Random but exact in float16, so the GGUF (f16) and the safetensors (f32) agree.
        return (rng.standard_normal(shape) * 0.02).astype(np.float16).astype(np.float32)

    ones = np.ones(hidden, dtype=np.float32)
    weights = {
        "model.embed_tokens.weight": embed,
        "model.layers.0.input_layernorm.weight": ones.copy(),
        "model.layers.0.self_attn.q_proj.weight": small(hidden, hidden),
        "model.layers.0.self_attn.k_proj.weight": small(hidden, hidden),
        "model.layers.0.self_attn.v_proj.weight": small(hidden, hidden),
        "model.layers.0.self_attn.o_proj.weight": np.zeros((hidden, hidden), np.float32),
        "model.layers.0.post_attention_layernorm.weight": ones.copy(),
        "model.layers.0.mlp.gate_proj.weight": small(ffn, hidden),
        "model.layers.0.mlp.up_proj.weight": small(ffn, hidden),
        "model.layers.0.mlp.down_proj.weight": np.zeros((hidden, ffn), np.float32),
        "model.norm.weight": ones.copy(),
        "lm_head.weight": lm_head,
    }
    return weights, {"hidden": hidden, "n_head": n_head, "ffn": ffn}


def _permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF -> GGUF rotary layout of q/k rows (as llama.cpp's convert_hf_to_gguf does)."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )
