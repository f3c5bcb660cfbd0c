"""Writers: a scripted model as a GGUF file (llama.cpp) or a Hugging Face folder (vLLM).

Data flow: chains and/or rules, an architecture ("llama", "qwen3", "gemma3", "apertus" or
"nemotron_h") and an end token -> HF weights (``weights`` for chains only, the compiled ``rules``
otherwise) -> GGUF (f16 tensors, q/k rows permuted for llama, Gemma's norm factors
``1 + weight`` stored as such, Apertus's xIELU parameters and llama3 rope factors, Nemotron-H's
per-layer head counts and Mamba2 sizes, the Llama 3 vocabulary and a chat template as metadata)
or a folder (``model.safetensors``, ``config.json``, ``tokenizer.json``,
``tokenizer_config.json`` with the chat template). The tokenizer is the Llama 3 one in every
architecture.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import gguf

from sealion_agents.testing.rules import Preference, Rule, _as_rules, _keyed_weights
from sealion_agents.testing.vocab import (
    BOS_ID,
    END_OF_TEXT_ID,
    EOM_ID,
    EOT_ID,
    N_VOCAB,
    _tokenizer_json_text,
    llama3_vocab,
)
from sealion_agents.testing.weights import (
    APERTUS_XIELU,
    GEMMA3_LOCAL_ROPE_BASE,
    HEAD_DIM,
    MAMBA,
    NEMOTRON_H_PATTERN,
    RMS_EPS,
    _end_token,
    _for_architecture,
    _hf_weights,
    _permute_qk,
)

#: Rotary bases: Llama 3's; for gemma3 that of Gemma 3's global layers (its one layer here is
#: a sliding-window layer, with ``GEMMA3_LOCAL_ROPE_BASE``); Apertus's. Nemotron-H has no rotary
#: embedding.
ROPE_BASE = {"llama": 500000.0, "qwen3": 500000.0, "gemma3": 1000000.0, "apertus": 12000000.0}
#: Apertus's llama3 rope scaling (HF ``rope_parameters``), as Apertus-8B has it.
APERTUS_ROPE = {
    "rope_type": "llama3",
    "rope_theta": ROPE_BASE["apertus"],
    "factor": 8.0,
    "original_max_position_embeddings": 8192,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
}
#: Hugging Face class of each architecture (text only).
HF_ARCHITECTURES = {
    "llama": "LlamaForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "gemma3": "Gemma3ForCausalLM",
    "apertus": "ApertusForCausalLM",
    "nemotron_h": "NemotronHForCausalLM",
}


def _weights(
    chains: Sequence[Sequence[int]] | None,
    rules: Iterable[Rule | Preference] | None,
    architecture: str = "llama",
    end_token: int = EOT_ID,
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    if rules is None:
        if chains is None:
            raise ValueError("give chains or rules")
        weights, dims = _hf_weights(chains, end_token=end_token)  # the lookup-table model
        return _for_architecture(weights, architecture), dims
    return _keyed_weights(_as_rules(chains, rules), architecture=architecture, end_token=end_token)


def rule_weights(
    *,
    chains: Sequence[Sequence[int]] | None = None,
    rules: Iterable[Rule | Preference] | None = None,
    architecture: str = "llama",
    eos_token_id: int | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The HF weights (float32, exact in float16) that ``build_gguf``/``save_hf_folder`` write."""
    return _weights(chains, rules, architecture, _end_token(architecture, eos_token_id))


def build_gguf(
    path: str | os.PathLike[str],
    *,
    chains: Sequence[Sequence[int]] | None = None,
    rules: Iterable[Rule | Preference] | None = None,
    chat_template: str,
    context_length: int = 4096,
    architecture: str = "llama",
    eos_token_id: int | None = None,
) -> Path:
    """Write a scripted tiny GGUF to ``path``: in each chain, token i is followed by i+1.

    With ``rules`` (:class:`Rule`, plus ``chains`` as rules without markers) the model is the
    prompt-keyed one; with ``chains`` only it is the original lookup table (next token depends on
    the last token only). ``architecture``: "llama" (Llama 3), "qwen3", "gemma3", "apertus" or
    "nemotron_h", the same script in each. ``eos_token_id``: the token that ends a reply (and
    unscripted text); by default ``<|eot_id|>`` for llama, ``<|im_end|>`` for qwen3 and
    nemotron_h, ``<end_of_turn>`` for gemma3, ``<|assistant_end|>`` for apertus.
    """
    import gguf

    end = _end_token(architecture, eos_token_id)
    weights, dims = _weights(chains, rules, architecture, end)
    if architecture != "llama":
        return _write_family_gguf(
            Path(path), weights, dims, architecture, end, chat_template, context_length
        )
    vocab = llama3_vocab()
    hidden, n_head = dims["hidden"], dims["n_head"]
    path = Path(path)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("sealion-tiny-scripted")
    writer.add_context_length(context_length)
    writer.add_embedding_length(hidden)
    writer.add_block_count(1)
    writer.add_feed_forward_length(dims["ffn"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_rope_freq_base(500000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(N_VOCAB)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("llama-bpe")
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.token_types)
    writer.add_token_merges([f"{a} {b}" for a, b in vocab.merges])
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(end)
    writer.add_eot_token_id(end)
    writer.add_eom_token_id(EOM_ID)
    writer.add_add_bos_token(True)
    writer.add_chat_template(chat_template)

    def f16(name: str) -> np.ndarray:
        return weights[name].astype(np.float16)

    layer = "model.layers.0."
    tensors = {
        "token_embd.weight": f16("model.embed_tokens.weight"),
        "blk.0.attn_norm.weight": weights[layer + "input_layernorm.weight"],
        "blk.0.attn_q.weight": _permute_qk(f16(layer + "self_attn.q_proj.weight"), n_head),
        "blk.0.attn_k.weight": _permute_qk(f16(layer + "self_attn.k_proj.weight"), n_head),
        "blk.0.attn_v.weight": f16(layer + "self_attn.v_proj.weight"),
        "blk.0.attn_output.weight": f16(layer + "self_attn.o_proj.weight"),
        "blk.0.ffn_norm.weight": weights[layer + "post_attention_layernorm.weight"],
        "blk.0.ffn_gate.weight": f16(layer + "mlp.gate_proj.weight"),
        "blk.0.ffn_up.weight": f16(layer + "mlp.up_proj.weight"),
        "blk.0.ffn_down.weight": f16(layer + "mlp.down_proj.weight"),
        "output_norm.weight": weights["model.norm.weight"],
        "output.weight": f16("lm_head.weight"),
    }
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _write_family_gguf(
    path: Path,
    weights: dict[str, np.ndarray],
    dims: dict[str, int],
    architecture: str,
    end: int,
    chat_template: str,
    context_length: int,
) -> Path:
    """The family GGUFs, as llama.cpp's convert_hf_to_gguf.py writes those models.

    nemotron_h: see ``_write_nemotron_h_gguf``. No q/k permutation (qwen3, gemma3 and apertus
    use NEOX rotary on the HF layout); Gemma's norm weights are stored with the 1 added (the
    factor itself); its one layer is a sliding-window layer whose window covers the whole
    context. Apertus stores its xIELU parameters per layer and its llama3 rope factors as
    ``rope_freqs``.
    """
    if architecture == "nemotron_h":
        return _write_nemotron_h_gguf(path, weights, dims, end, chat_template, context_length)
    n_head = dims["n_head"]
    writer = _family_writer(path, architecture, dims, context_length, ffn=dims["ffn"], kv=n_head)
    writer.add_rope_freq_base(ROPE_BASE[architecture])
    writer.add_layer_norm_rms_eps(RMS_EPS[architecture])
    if architecture == "gemma3":
        writer.add_sliding_window(context_length)
    if architecture == "apertus":
        writer.add_xielu_alpha_p([APERTUS_XIELU["alpha_p"]])
        writer.add_xielu_alpha_n([APERTUS_XIELU["alpha_n"]])
        writer.add_xielu_beta([APERTUS_XIELU["beta"]])
        writer.add_xielu_eps([APERTUS_XIELU["eps"]])
    _add_vocabulary(writer, end, chat_template)

    layer = "model.layers.0."

    def f16(name: str) -> np.ndarray:
        return weights[layer + name].astype(np.float16)

    def norm(name: str) -> np.ndarray:
        weight = weights[name]
        return weight + np.float32(1.0) if architecture == "gemma3" else weight

    apertus = architecture == "apertus"
    tensors = {
        "token_embd.weight": weights["model.embed_tokens.weight"].astype(np.float16),
        "blk.0.attn_norm.weight": norm(
            layer + ("attention_layernorm" if apertus else "input_layernorm") + ".weight"
        ),
        "blk.0.attn_q.weight": f16("self_attn.q_proj.weight"),
        "blk.0.attn_k.weight": f16("self_attn.k_proj.weight"),
        "blk.0.attn_v.weight": f16("self_attn.v_proj.weight"),
        "blk.0.attn_output.weight": f16("self_attn.o_proj.weight"),
        "blk.0.attn_q_norm.weight": norm(layer + "self_attn.q_norm.weight"),
        "blk.0.attn_k_norm.weight": norm(layer + "self_attn.k_norm.weight"),
        **({} if apertus else {"blk.0.ffn_gate.weight": f16("mlp.gate_proj.weight")}),
        "blk.0.ffn_up.weight": f16("mlp.up_proj.weight"),
        "blk.0.ffn_down.weight": f16("mlp.down_proj.weight"),
        "output_norm.weight": norm("model.norm.weight"),
        "output.weight": weights["lm_head.weight"].astype(np.float16),
    }
    if architecture == "gemma3":
        tensors["blk.0.post_attention_norm.weight"] = norm(
            layer + "post_attention_layernorm.weight"
        )
        tensors["blk.0.ffn_norm.weight"] = norm(layer + "pre_feedforward_layernorm.weight")
        tensors["blk.0.post_ffw_norm.weight"] = norm(layer + "post_feedforward_layernorm.weight")
    elif apertus:
        tensors["blk.0.ffn_norm.weight"] = weights[layer + "feedforward_layernorm.weight"]
        tensors["rope_freqs.weight"] = _llama3_rope_factors(APERTUS_ROPE)
    else:
        tensors["blk.0.ffn_norm.weight"] = norm(layer + "post_attention_layernorm.weight")
    _write_tensors(writer, tensors)
    return path


def _family_writer(
    path: Path,
    architecture: str,
    dims: dict[str, int],
    context_length: int,
    *,
    ffn: int | list[int],
    kv: int | list[int],
) -> gguf.GGUFWriter:
    """A GGUF writer holding what every family file starts with.

    The name, the sizes and the heads (per layer where ``ffn`` and ``kv`` are lists).
    """
    import gguf

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name("sealion-tiny-scripted")
    writer.add_context_length(context_length)
    writer.add_embedding_length(dims["hidden"])
    writer.add_block_count(len(kv) if isinstance(kv, list) else 1)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(dims["n_head"])
    writer.add_head_count_kv(kv)
    writer.add_key_length(HEAD_DIM)
    writer.add_value_length(HEAD_DIM)
    return writer


def _write_nemotron_h_gguf(
    path: Path,
    weights: dict[str, np.ndarray],
    dims: dict[str, int],
    end: int,
    chat_template: str,
    context_length: int,
) -> Path:
    """The Nemotron-H GGUF (its layers in ``NEMOTRON_H_PATTERN`` order).

    Per-layer kv head counts and MLP widths (0 where a layer has none), the Mamba2 sizes, ``A``
    stored as ``-exp(A_log)``, the conv and SSM tensors in float32 (as convert_hf_to_gguf.py
    writes them).
    """
    n_head, kinds = dims["n_head"], NEMOTRON_H_PATTERN
    writer = _family_writer(
        path,
        "nemotron_h",
        dims,
        context_length,
        ffn=[dims["ffn"] if k == "-" else 0 for k in kinds],
        kv=[n_head if k == "*" else 0 for k in kinds],  # the kv counts mark the attention layers
    )
    writer.add_layer_norm_rms_eps(RMS_EPS["nemotron_h"])
    writer.add_layer_norm_eps(RMS_EPS["nemotron_h"])  # the key llama-cpp-python 0.3.36 reads
    writer.add_ssm_conv_kernel(MAMBA["conv"])
    writer.add_ssm_inner_size(MAMBA["heads"] * MAMBA["head_dim"])
    writer.add_ssm_state_size(MAMBA["state"])
    writer.add_ssm_time_step_rank(MAMBA["heads"])
    writer.add_ssm_group_count(MAMBA["groups"])
    _add_vocabulary(writer, end, chat_template)

    def f16(name: str) -> np.ndarray:
        return weights[name].astype(np.float16)

    mamba = "backbone.layers.0.mixer."
    tensors: dict[str, np.ndarray] = {
        "token_embd.weight": f16("backbone.embeddings.weight"),
        "output_norm.weight": weights["backbone.norm_f.weight"],
        "output.weight": f16("lm_head.weight"),
        "blk.0.ssm_in.weight": f16(mamba + "in_proj.weight"),
        "blk.0.ssm_conv1d.weight": weights[mamba + "conv1d.weight"][:, 0, :],
        "blk.0.ssm_conv1d.bias": weights[mamba + "conv1d.bias"],
        "blk.0.ssm_dt.bias": weights[mamba + "dt_bias"],
        "blk.0.ssm_a": -np.exp(weights[mamba + "A_log"])[:, None],
        "blk.0.ssm_d": weights[mamba + "D"][:, None],
        "blk.0.ssm_norm.weight": weights[mamba + "norm.weight"].reshape(MAMBA["groups"], -1),
        "blk.0.ssm_out.weight": f16(mamba + "out_proj.weight"),
        "blk.1.attn_q.weight": f16("backbone.layers.1.mixer.q_proj.weight"),
        "blk.1.attn_k.weight": f16("backbone.layers.1.mixer.k_proj.weight"),
        "blk.1.attn_v.weight": f16("backbone.layers.1.mixer.v_proj.weight"),
        "blk.1.attn_output.weight": f16("backbone.layers.1.mixer.o_proj.weight"),
        "blk.2.ffn_up.weight": f16("backbone.layers.2.mixer.up_proj.weight"),
        "blk.2.ffn_down.weight": f16("backbone.layers.2.mixer.down_proj.weight"),
    }
    for i in range(len(kinds)):
        tensors[f"blk.{i}.attn_norm.weight"] = weights[f"backbone.layers.{i}.norm.weight"]
    _write_tensors(writer, tensors)
    return path


def _llama3_rope_factors(rope: dict[str, object]) -> np.ndarray:
    """The ``rope_freqs`` tensor of llama3 rope scaling (as convert_hf_to_gguf.py computes it)."""
    base, factor = float(rope["rope_theta"]), float(rope["factor"])  # type: ignore[arg-type]
    low, high = float(rope["low_freq_factor"]), float(rope["high_freq_factor"])  # type: ignore[arg-type]
    old_context = float(rope["original_max_position_embeddings"])  # type: ignore[arg-type]
    factors = []
    for i in range(0, HEAD_DIM, 2):
        wavelen = 2 * math.pi * base ** (i / HEAD_DIM)
        if wavelen < old_context / high:
            factors.append(1.0)
        elif wavelen > old_context / low:
            factors.append(factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


def _add_vocabulary(writer: gguf.GGUFWriter, end: int, chat_template: str) -> None:
    """The Llama 3 tokenizer, the end token and the chat template (every family GGUF)."""
    import gguf

    vocab = llama3_vocab()
    writer.add_vocab_size(N_VOCAB)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("llama-bpe")
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.token_types)
    writer.add_token_merges([f"{a} {b}" for a, b in vocab.merges])
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(end)
    writer.add_eot_token_id(end)
    writer.add_add_bos_token(True)
    writer.add_chat_template(chat_template)


def _write_tensors(writer: gguf.GGUFWriter, tensors: dict[str, np.ndarray]) -> None:
    for name, array in tensors.items():
        writer.add_tensor(name, np.ascontiguousarray(array))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def save_hf_folder(
    path: str | os.PathLike[str],
    *,
    chains: Sequence[Sequence[int]] | None = None,
    rules: Iterable[Rule | Preference] | None = None,
    chat_template: str,
    context_length: int = 4096,
    architecture: str = "llama",
    eos_token_id: int | None = None,
) -> Path:
    """Write the same scripted model as a Hugging Face folder (for vLLM) into ``path``.

    ``architecture`` and ``eos_token_id`` as for :func:`build_gguf`: ``LlamaForCausalLM``,
    ``Qwen3ForCausalLM``, ``Gemma3ForCausalLM`` (text only), ``ApertusForCausalLM`` or
    ``NemotronHForCausalLM`` (see ``HF_ARCHITECTURES``).
    """
    from safetensors.numpy import save_file

    end = _end_token(architecture, eos_token_id)
    weights, dims = _weights(chains, rules, architecture, end)
    vocab = llama3_vocab()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(path / "model.safetensors"), metadata={"format": "pt"})
    family = [END_OF_TEXT_ID, EOM_ID] if architecture == "llama" else []
    eos_ids = list(dict.fromkeys([*family, end]))
    config: dict[str, object] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": BOS_ID,
        "eos_token_id": [END_OF_TEXT_ID, EOM_ID, EOT_ID],
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "hidden_size": dims["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": dims["ffn"],
        "max_position_embeddings": context_length,
        "mlp_bias": False,
        "num_attention_heads": dims["n_head"],
        "num_hidden_layers": 1,
        "num_key_value_heads": dims["n_head"],
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": N_VOCAB,
    }
    if architecture != "llama":
        config = _family_config(architecture, dims, context_length)
    config["eos_token_id"] = eos_ids
    generation = {
        "bos_token_id": BOS_ID,
        "eos_token_id": eos_ids,
        "do_sample": False,
    }
    tokenizer_config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {
            str(token_id): {
                "content": name,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": vocab.token_types[token_id] == 3,
            }
            for name, token_id in vocab.special.items()
        },
        "bos_token": "<|begin_of_text|>",
        "eos_token": vocab.tokens[end],
        "chat_template": chat_template,
        "clean_up_tokenization_spaces": True,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": context_length,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    special_map = {"bos_token": "<|begin_of_text|>", "eos_token": vocab.tokens[end]}
    documents = {
        "config.json": config,
        "generation_config.json": generation,
        "tokenizer_config.json": tokenizer_config,
        "special_tokens_map.json": special_map,
    }
    for name, document in documents.items():
        (path / name).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    (path / "tokenizer.json").write_text(_tokenizer_json_text(), encoding="utf-8")
    return path


def _family_config(
    architecture: str, dims: dict[str, int], context_length: int
) -> dict[str, object]:
    """``config.json`` (less ``eos_token_id``): Qwen3, Gemma 3 (text), Apertus, Nemotron-H."""
    common: dict[str, object] = {
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": BOS_ID,
        "head_dim": HEAD_DIM,
        "hidden_size": dims["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": dims["ffn"],
        "max_position_embeddings": context_length,
        "num_attention_heads": dims["n_head"],
        "num_hidden_layers": 1,
        "num_key_value_heads": dims["n_head"],
        "rms_norm_eps": RMS_EPS[architecture],
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": N_VOCAB,
    }
    if architecture == "apertus":
        return {
            "architectures": [HF_ARCHITECTURES["apertus"]],
            "model_type": "apertus",
            **common,
            "hidden_act": "xielu",
            "mlp_bias": False,
            "rope_parameters": APERTUS_ROPE,
        }
    if architecture == "nemotron_h":
        return {
            "architectures": [HF_ARCHITECTURES["nemotron_h"]],
            "model_type": "nemotron_h",
            **common,
            "num_hidden_layers": len(NEMOTRON_H_PATTERN),
            "hybrid_override_pattern": NEMOTRON_H_PATTERN,
            "layer_norm_epsilon": RMS_EPS["nemotron_h"],
            "mlp_hidden_act": "relu2",
            "mlp_bias": False,
            "use_bias": False,
            "mamba_num_heads": MAMBA["heads"],
            "mamba_head_dim": MAMBA["head_dim"],
            "n_groups": MAMBA["groups"],
            "ssm_state_size": MAMBA["state"],
            "conv_kernel": MAMBA["conv"],
            "use_conv_bias": True,
            "mamba_hidden_act": "silu",
            "mamba_proj_bias": False,
            "chunk_size": 128,
            "residual_in_fp32": False,
            "rescale_prenorm_residual": True,
        }
    if architecture == "qwen3":
        return {
            "architectures": ["Qwen3ForCausalLM"],
            "model_type": "qwen3",
            **common,
            "hidden_act": "silu",
            "max_window_layers": 1,
            "rope_scaling": None,
            "rope_theta": ROPE_BASE["qwen3"],
            "sliding_window": None,
            "use_sliding_window": False,
        }
    return {
        "architectures": ["Gemma3ForCausalLM"],
        "model_type": "gemma3_text",
        **common,
        "attn_logit_softcapping": None,
        "final_logit_softcapping": None,
        "hidden_activation": "gelu_pytorch_tanh",
        "layer_types": ["sliding_attention"],
        "query_pre_attn_scalar": HEAD_DIM,
        "rope_parameters": {
            "full_attention": {"rope_type": "default", "rope_theta": ROPE_BASE["gemma3"]},
            "sliding_attention": {"rope_type": "default", "rope_theta": GEMMA3_LOCAL_ROPE_BASE},
        },
        "sliding_window": context_length,
        "sliding_window_pattern": 6,
    }
