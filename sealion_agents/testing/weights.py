"""Weights of the lookup-table model: each scripted token is followed by its successor.

Data flow: script chains (token ids) -> successor table -> Hugging Face Llama weights (one-hot
embeddings, ``lm_head`` from each token to its successor, zero attention and MLP outputs) and
their shape parameters -> ``_for_architecture`` (the same model as Qwen3, Gemma 3, Apertus or
Nemotron-H weights). ``files`` writes them; ``_permute_qk`` turns Llama q/k rows into GGUF layout.

Why one model fits all five: Qwen3 adds RMSNorms on each head's q and k, Gemma 3 those plus
norms on the attention and MLP outputs, embeddings scaled by sqrt(hidden) and ``1 + weight``
norm factors. With zero attention and MLP outputs the extra output norms give exactly 0 (0 over
sqrt(eps)), q/k norms change only the (unused) attention pattern, and the final RMSNorm of a
one-hot residual does not see the embedding scale: the next token is still a lookup. Apertus
has Qwen3's q/k norms and a non-gated xIELU MLP (``down(xielu(up(x)))``, no ``gate_proj``);
Nemotron-H splits the layer in three (``NEMOTRON_H_PATTERN``): a Mamba2 layer whose output
projection is zero (it runs, and adds nothing), the attention (no rotary embedding), then a
non-gated relu^2 MLP, each with its own pre-norm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sealion_agents.testing.vocab import (
    ASSISTANT_END_ID,
    END_OF_TURN_ID,
    EOT_ID,
    IM_END_ID,
    N_VOCAB,
    llama3_vocab,
)

HEAD_DIM = 32
SCRIPT_LOGIT = 64.0
#: The architectures the scripted models are written in, with the token that ends a reply.
END_TOKENS = {
    "llama": EOT_ID,
    "qwen3": IM_END_ID,
    "gemma3": END_OF_TURN_ID,
    "apertus": ASSISTANT_END_ID,
    "nemotron_h": IM_END_ID,
}
ARCHITECTURES = tuple(END_TOKENS)
#: Rotary base of Gemma 3's sliding-window layers (fixed in llama.cpp, ``rope_local_base_freq``).
GEMMA3_LOCAL_ROPE_BASE = 10000.0
#: RMSNorm epsilon of each architecture (as their released configs have it).
RMS_EPS = {"llama": 1e-5, "qwen3": 1e-6, "gemma3": 1e-6, "apertus": 1e-5, "nemotron_h": 1e-5}
#: Apertus's xIELU parameters as stored (HF ``mlp.act_fn.*``, GGUF ``xielu.*``): the activation
#: uses ``softplus(alpha_p)`` (about 1e-13: no x^2 term) and ``beta + softplus(alpha_n)`` (0.5),
#: so xielu(x) is 0.5 x above 0 and 0.5 expm1(x), -0.5 within 6e-8, below -16.
APERTUS_XIELU = {"alpha_p": -30.0, "alpha_n": -30.0, "beta": 0.5, "eps": -1e-6}
#: Nemotron-H's layer kinds in order: a Mamba2 layer, attention, the MLP.
NEMOTRON_H_PATTERN = "M*-"
#: The Mamba2 layer's sizes: 2 heads of 32 (inner size 64), one group, state 16, conv width 4.
MAMBA = {"heads": 2, "head_dim": 32, "groups": 1, "state": 16, "conv": 4}


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
    given): ``k_norm`` (per head dimension) for qwen3, gemma3 and apertus, ``post_attention``
    and ``post_feedforward`` (per hidden dimension) for gemma3. Gemma stores a norm factor ``f``
    as the weight ``f - 1`` (its RMSNorm multiplies by ``1 + weight``); its
    ``post_attention_layernorm`` is the norm on the attention output, and Llama's (before the
    MLP) becomes ``pre_feedforward_layernorm``. apertus and nemotron_h have no gated MLP: they
    drop ``gate_proj`` and keep ``up_proj``/``down_proj`` as given (the caller puts the
    non-gated MLP there; the lookup table's ``down_proj`` is zero anyway). "llama" returns
    ``weights`` itself.
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
    if architecture == "apertus":
        return _apertus(out, q_factor, k_factor)
    if architecture == "nemotron_h":
        return _nemotron_h(out)
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


def _apertus(
    weights: dict[str, np.ndarray], q_factor: np.ndarray, k_factor: np.ndarray
) -> dict[str, np.ndarray]:
    """Apertus names: Llama's two layer norms renamed, q/k norms, xIELU parameters, no gate."""
    layer = "model.layers.0."
    out = dict(weights)
    del out[layer + "mlp.gate_proj.weight"]
    out[layer + "attention_layernorm.weight"] = out.pop(layer + "input_layernorm.weight")
    out[layer + "feedforward_layernorm.weight"] = out.pop(layer + "post_attention_layernorm.weight")
    out[layer + "self_attn.q_norm.weight"] = q_factor.copy()
    out[layer + "self_attn.k_norm.weight"] = k_factor.copy()
    for name, value in APERTUS_XIELU.items():  # alpha_p/alpha_n: shape (1,); beta/eps: scalars
        shape: tuple[int, ...] = (1,) if name.startswith("alpha") else ()
        out[layer + f"mlp.act_fn.{name}"] = np.full(shape, value, np.float32)
    return out


def _mamba2_mixer(hidden: int) -> dict[str, np.ndarray]:
    """A Mamba2 mixer (HF NemotronH names, no prefix) with small random weights, out_proj 0."""
    heads, head_dim, groups, state = (MAMBA[k] for k in ("heads", "head_dim", "groups", "state"))
    inner = heads * head_dim
    conv_dim = inner + 2 * groups * state
    rng = np.random.default_rng(4321)

    def small(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.1).astype(np.float16).astype(np.float32)

    return {
        "in_proj.weight": small(2 * inner + 2 * groups * state + heads, hidden),
        "conv1d.weight": small(conv_dim, 1, MAMBA["conv"]),
        "conv1d.bias": small(conv_dim),
        "dt_bias": small(heads),
        "A_log": np.log(np.arange(1, heads + 1, dtype=np.float32)),
        "D": np.ones(heads, np.float32),
        "norm.weight": np.ones(inner, np.float32),
        "out_proj.weight": np.zeros((hidden, inner), np.float32),
    }


def _nemotron_h(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Nemotron-H names (``backbone.*``, as released): layers "M", "*" and "-", no gate."""
    src = "model.layers.0."
    hidden = weights["model.norm.weight"].shape[0]
    out = {
        "backbone.embeddings.weight": weights["model.embed_tokens.weight"],
        "backbone.layers.0.norm.weight": np.ones(hidden, np.float32),
        **{f"backbone.layers.0.mixer.{k}": v for k, v in _mamba2_mixer(hidden).items()},
        "backbone.layers.1.norm.weight": weights[src + "input_layernorm.weight"],
        **{
            f"backbone.layers.1.mixer.{p}_proj.weight": weights[src + f"self_attn.{p}_proj.weight"]
            for p in "qkvo"
        },
        "backbone.layers.2.norm.weight": weights[src + "post_attention_layernorm.weight"],
        "backbone.layers.2.mixer.up_proj.weight": weights[src + "mlp.up_proj.weight"],
        "backbone.layers.2.mixer.down_proj.weight": weights[src + "mlp.down_proj.weight"],
        "backbone.norm_f.weight": weights["model.norm.weight"],
        "lm_head.weight": weights["lm_head.weight"],
    }
    return out


def _permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF -> GGUF rotary layout of q/k rows (as llama.cpp's convert_hf_to_gguf does)."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )
