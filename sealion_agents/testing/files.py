"""Writers: a scripted model as a GGUF file (llama.cpp) or a Hugging Face folder (vLLM).

Data flow: chains and/or rules, an architecture ("llama", "qwen3" or "gemma3") and an end token
-> HF weights (``weights`` for chains only, the compiled ``rules`` otherwise) -> GGUF (f16
tensors, q/k rows permuted for llama, Gemma's norm factors ``1 + weight`` stored as such, the
Llama 3 vocabulary and a chat template as metadata) or a folder (``model.safetensors``,
``config.json``, ``tokenizer.json``, ``tokenizer_config.json`` with the chat template). The
tokenizer is the Llama 3 one in every architecture.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

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
    GEMMA3_LOCAL_ROPE_BASE,
    HEAD_DIM,
    RMS_EPS,
    _end_token,
    _for_architecture,
    _hf_weights,
    _permute_qk,
)

#: Rotary bases: Llama 3's; for gemma3 that of Gemma 3's global layers (its one layer here is
#: a sliding-window layer, with ``GEMMA3_LOCAL_ROPE_BASE``).
ROPE_BASE = {"llama": 500000.0, "qwen3": 500000.0, "gemma3": 1000000.0}


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
    the last token only). ``architecture``: "llama" (Llama 3), "qwen3" or "gemma3", the same
    script in each. ``eos_token_id``: the token that ends a reply (and unscripted text);
    by default ``<|eot_id|>`` for llama, ``<|im_end|>`` for qwen3, ``<end_of_turn>`` for gemma3.
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
    """The qwen3 / gemma3 GGUF, as llama.cpp's convert_hf_to_gguf.py writes those models.

    No q/k permutation (both use NEOX rotary on the HF layout); Gemma's norm weights are stored
    with the 1 added (the factor itself); its one layer is a sliding-window layer whose window
    covers the whole context.
    """
    import gguf

    vocab = llama3_vocab()
    hidden, n_head = dims["hidden"], dims["n_head"]
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name("sealion-tiny-scripted")
    writer.add_context_length(context_length)
    writer.add_embedding_length(hidden)
    writer.add_block_count(1)
    writer.add_feed_forward_length(dims["ffn"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_key_length(HEAD_DIM)
    writer.add_value_length(HEAD_DIM)
    writer.add_rope_freq_base(ROPE_BASE[architecture])
    writer.add_layer_norm_rms_eps(RMS_EPS[architecture])
    if architecture == "gemma3":
        writer.add_sliding_window(context_length)
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

    layer = "model.layers.0."

    def f16(name: str) -> np.ndarray:
        return weights[layer + name].astype(np.float16)

    def norm(name: str) -> np.ndarray:
        weight = weights[name]
        return weight + np.float32(1.0) if architecture == "gemma3" else weight

    tensors = {
        "token_embd.weight": weights["model.embed_tokens.weight"].astype(np.float16),
        "blk.0.attn_norm.weight": norm(layer + "input_layernorm.weight"),
        "blk.0.attn_q.weight": f16("self_attn.q_proj.weight"),
        "blk.0.attn_k.weight": f16("self_attn.k_proj.weight"),
        "blk.0.attn_v.weight": f16("self_attn.v_proj.weight"),
        "blk.0.attn_output.weight": f16("self_attn.o_proj.weight"),
        "blk.0.attn_q_norm.weight": norm(layer + "self_attn.q_norm.weight"),
        "blk.0.attn_k_norm.weight": norm(layer + "self_attn.k_norm.weight"),
        "blk.0.ffn_gate.weight": f16("mlp.gate_proj.weight"),
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
    else:
        tensors["blk.0.ffn_norm.weight"] = norm(layer + "post_attention_layernorm.weight")
    for name, array in tensors.items():
        writer.add_tensor(name, np.ascontiguousarray(array))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


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
    ``Qwen3ForCausalLM`` or ``Gemma3ForCausalLM`` (text only).
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
    """``config.json`` of the Qwen3 or Gemma 3 (text-only) model, less ``eos_token_id``."""
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
