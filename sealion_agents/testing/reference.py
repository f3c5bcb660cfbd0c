"""A plain numpy forward pass of the one-layer Hugging Face Llama, to check generated weights.

Data flow: weights (as ``rule_weights`` returns them) and token ids -> embeddings -> RMSNorm,
RoPE attention, SwiGLU MLP -> final normed states -> next-token logits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sealion_agents.testing.weights import HEAD_DIM


def reference_hidden(
    weights: dict[str, np.ndarray], ids: Sequence[int], *, rope_theta: float = 500000.0
) -> np.ndarray:
    """A plain numpy forward pass of the one-layer HF Llama: the final normed states (N, hidden).

    RMSNorm, RoPE in ``rotate_half`` form, causal softmax attention, SwiGLU, as transformers'
    ``LlamaForCausalLM`` computes them (in float32).
    """
    eps = 1e-5
    layer = "model.layers.0."

    def norm(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight

    x = weights["model.embed_tokens.weight"][np.asarray(ids)].astype(np.float64)
    n, hidden = x.shape
    n_head = hidden // HEAD_DIM
    h = norm(x, weights[layer + "input_layernorm.weight"])
    q = h @ weights[layer + "self_attn.q_proj.weight"].T
    k = h @ weights[layer + "self_attn.k_proj.weight"].T
    v = h @ weights[layer + "self_attn.v_proj.weight"].T
    inv_freq = 1.0 / rope_theta ** (np.arange(0, HEAD_DIM, 2) / HEAD_DIM)
    angles = np.arange(n)[:, None] * inv_freq[None, :]
    cos = np.cos(np.concatenate([angles, angles], axis=1))
    sin = np.sin(np.concatenate([angles, angles], axis=1))
    half = HEAD_DIM // 2
    attn = np.zeros((n, hidden))
    mask = np.triu(np.ones((n, n), dtype=bool), 1)
    for head in range(n_head):
        cols = slice(head * HEAD_DIM, (head + 1) * HEAD_DIM)
        qh, kh, vh = q[:, cols], k[:, cols], v[:, cols]
        if not vh.any():
            continue
        qh = qh * cos + np.concatenate([-qh[:, half:], qh[:, :half]], axis=1) * sin
        kh = kh * cos + np.concatenate([-kh[:, half:], kh[:, :half]], axis=1) * sin
        scores = (qh @ kh.T) / math.sqrt(HEAD_DIM)
        scores[mask] = -np.inf
        scores -= scores.max(axis=1, keepdims=True)
        p = np.exp(scores)
        p /= p.sum(axis=1, keepdims=True)
        attn[:, cols] = p @ vh
    x = x + attn @ weights[layer + "self_attn.o_proj.weight"].T
    h = norm(x, weights[layer + "post_attention_layernorm.weight"])
    g = h @ weights[layer + "mlp.gate_proj.weight"].T
    u = h @ weights[layer + "mlp.up_proj.weight"].T
    x = x + (g / (1 + np.exp(-g)) * u) @ weights[layer + "mlp.down_proj.weight"].T
    return norm(x, weights["model.norm.weight"])


def reference_logits(weights: dict[str, np.ndarray], ids: Sequence[int]) -> np.ndarray:
    """The HF model's next-token logits after ``ids`` (numpy reference forward pass)."""
    return weights["lm_head.weight"] @ reference_hidden(weights, ids)[-1]
