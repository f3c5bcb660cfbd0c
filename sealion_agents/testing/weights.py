"""Weights of the lookup-table model: each scripted token is followed by its successor.

Data flow: script chains (token ids) -> successor table -> Hugging Face Llama weights (one-hot
embeddings, ``lm_head`` from each token to its successor, zero attention and MLP outputs) and
their shape parameters -> ``_for_architecture`` (the same model as Qwen3 or Gemma 3 weights).
``files`` writes them; ``_permute_qk`` turns Llama q/k rows into GGUF layout.

Why one model fits all three: Qwen3 adds RMSNorms on each head's q and k, Gemma 3 those plus
norms on the attention and MLP outputs, embeddings scaled by sqrt(hidden) and ``1 + weight``
norm factors. With zero attention and MLP outputs the extra output norms give exactly 0 (0 over
sqrt(eps)), q/k norms change only the (unused) attention pattern, and the final RMSNorm of a
one-hot residual does not see the embedding scale: the next token is still a lookup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sealion_agents.testing.vocab import (
    END_OF_TURN_ID,
    EOT_ID,
    IM_END_ID,
    N_VOCAB,
    llama3_vocab,
)

HEAD_DIM = 32
SCRIPT_LOGIT = 64.0
#: The architectures the scripted models are written in, with the token that ends a reply.
END_TOKENS = {"llama": EOT_ID, "qwen3": IM_END_ID, "gemma3": END_OF_TURN_ID}
ARCHITECTURES = tuple(END_TOKENS)
#: Rotary base of Gemma 3's sliding-window layers (fixed in llama.cpp, ``rope_local_base_freq``).
GEMMA3_LOCAL_ROPE_BASE = 10000.0
#: RMSNorm epsilon of each architecture (as their released configs have it).
RMS_EPS = {"llama": 1e-5, "qwen3": 1e-6, "gemma3": 1e-6}


def _end_token(architecture: str, eos_token_id: int | None) -> int:
    """Check ``architecture`` and return the token that ends a reply (its default or the given)."""
    if architecture not in END_TOKENS:
        raise ValueError(
            f"unknown architecture {architecture!r}: choose one of {', '.join(ARCHITECTURES)}"
        )
    if eos_token_id is None:
        return END_TOKENS[architecture]
    if isinstance(eos_token_id, bool) or not isinstance(eos_token_id, (int, np.integer)):
        raise ValueError(f"eos_token_id must be a token id (int), not {eos_token_id!r}")
    if not 0 <= int(eos_token_id) < N_VOCAB:
        raise ValueError(
            f"eos_token_id {eos_token_id} is outside the vocabulary (0..{N_VOCAB - 1})"
        )
    return int(eos_token_id)


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


def _hf_weights(
    chains: Sequence[Sequence[int]], *, end_token: int = EOT_ID
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Hugging Face Llama weights (float32, exact in float16) and their shape parameters.

    Unscripted tokens (the shared default dimension) are followed by ``end_token``.
    """
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
    lm_head[end_token, default_dim] = scale
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


def _for_architecture(
    weights: dict[str, np.ndarray],
    architecture: str,
    *,
    k_norm: np.ndarray | None = None,
    post_attention: np.ndarray | None = None,
    post_feedforward: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Llama weights (as ``_hf_weights`` gives them) -> the same model in ``architecture``.

    The norm arguments are the factors the architecture's extra norms multiply by (ones if not
    given): ``k_norm`` (per head dimension) for qwen3 and gemma3, ``post_attention`` and
    ``post_feedforward`` (per hidden dimension) for gemma3. Gemma stores a norm factor ``f`` as
    the weight ``f - 1`` (its RMSNorm multiplies by ``1 + weight``); its
    ``post_attention_layernorm`` is the norm on the attention output, and Llama's (before the
    MLP) becomes ``pre_feedforward_layernorm``. "llama" returns ``weights`` itself.
    """
    if architecture == "llama":
        return weights
    layer = "model.layers.0."
    hidden = weights["model.norm.weight"].shape[0]
    ones = np.ones(HEAD_DIM, dtype=np.float32)
    q_factor = ones
    k_factor = ones if k_norm is None else np.asarray(k_norm, dtype=np.float32)
    out = dict(weights)
    if architecture == "qwen3":
        out[layer + "self_attn.q_norm.weight"] = q_factor.copy()
        out[layer + "self_attn.k_norm.weight"] = k_factor.copy()
        return out
    if architecture != "gemma3":
        raise ValueError(f"unknown architecture {architecture!r}")

    def gemma(factor: np.ndarray | None, size: int) -> np.ndarray:
        factor = np.ones(size, np.float32) if factor is None else factor
        return (np.asarray(factor, dtype=np.float32) - 1.0).astype(np.float32)

    pre_feedforward = out.pop(layer + "post_attention_layernorm.weight")
    out[layer + "input_layernorm.weight"] = gemma(out[layer + "input_layernorm.weight"], hidden)
    out[layer + "post_attention_layernorm.weight"] = gemma(post_attention, hidden)
    out[layer + "pre_feedforward_layernorm.weight"] = gemma(pre_feedforward, hidden)
    out[layer + "post_feedforward_layernorm.weight"] = gemma(post_feedforward, hidden)
    out[layer + "self_attn.q_norm.weight"] = gemma(q_factor, HEAD_DIM)
    out[layer + "self_attn.k_norm.weight"] = gemma(k_factor, HEAD_DIM)
    out["model.norm.weight"] = gemma(out["model.norm.weight"], hidden)
    return out


def _permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF -> GGUF rotary layout of q/k rows (as llama.cpp's convert_hf_to_gguf does)."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )
