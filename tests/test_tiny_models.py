"""The scripted tiny models, checked on the real llama.cpp runtime (llama-cpp-python)."""

from __future__ import annotations

import json
import math
import os

os.environ.setdefault("GGML_NO_BACKTRACE", "1")  # no gdb on a ggml crash

import llama_cpp  # noqa: E402
import pytest

from sealion_agents import testing as tm

SAMPLES = [
    "Hello world! How are you?",
    "  leading spaces,\ttabs and\n\nnewlines\n",
    "สวัสดีครับ ผมชื่อสมชาย ยินดีที่ได้รู้จัก",
    "新加坡是一个多元文化的国家，人口约五百万。",
    "Xin chào, tôi là trợ lý ảo của AI Singapore.",
    "Selamat pagi! Apa khabar? 12345 ribu ringgit.",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<think>Let me think.</think>Done.<|eot_id|>",
]

MESSAGES = [
    {"role": "system", "content": "You are SEA-LION, a helpful assistant."},
    {"role": "user", "content": "  Hello!  "},
]

FULL = f"{tm.THINK_OPEN}{tm.REASONING}{tm.THINK_CLOSE}{tm.ANSWER}"
AFTER_OPEN = f"{tm.REASONING}{tm.THINK_CLOSE}{tm.ANSWER}"

# (variant, thinking_mode) -> (prompt ending, generated text)
CASES = {
    ("writes", None): ("<|start_header_id|>assistant<|end_header_id|>\n\n", FULL),
    ("writes", "on"): ("<|start_header_id|>assistant<|end_header_id|>\n\n", FULL),
    ("writes", "off"): ("<|end_header_id|>\n\n<think></think>", tm.ANSWER),
    ("prefilled", None): ("<|end_header_id|>\n\n<think>", AFTER_OPEN),
    ("prefilled", "on"): ("<|end_header_id|>\n\n<think>", AFTER_OPEN),
    ("prefilled", "off"): ("<|end_header_id|>\n\n<think></think>", tm.ANSWER),
}


def _load(path: os.PathLike[str]) -> llama_cpp.Llama:
    return llama_cpp.Llama(
        model_path=str(path), n_ctx=512, n_threads=1, n_threads_batch=1, verbose=False
    )


@pytest.fixture(scope="module")
def llms() -> dict[str, llama_cpp.Llama]:
    return {variant: _load(tm.tiny_gguf(variant)) for variant in tm.TEMPLATES}


def _render(variant: str, thinking_mode: str | None) -> str:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    extra = {} if thinking_mode is None else {"thinking_mode": thinking_mode}
    return env.from_string(tm.TEMPLATES[variant]).render(
        messages=MESSAGES, bos_token="<|begin_of_text|>", add_generation_prompt=True, **extra
    )


def test_the_variants_differ_only_with_thinking_on() -> None:
    """What lets the suite run the "prefilled" variant only with thinking on (conftest)."""
    assert _render("writes", "off") == _render("prefilled", "off")
    assert _render("prefilled", "off").endswith("<think></think>")
    for mode in ("on", None):
        assert _render("prefilled", mode) == _render("writes", mode) + "<think>"


def test_default_script_tokens_are_distinct() -> None:
    reasoning, answer = tm.encode(tm.REASONING), tm.encode(tm.ANSWER)
    assert 8 <= len(reasoning) <= 12 and 6 <= len(answer) <= 10
    assert tm.REASONING == tm.REASONING.lstrip() and tm.ANSWER == tm.ANSWER.lstrip()
    (chain,) = tm.default_chains()
    assert chain == [
        tm.NEWLINES_ID,
        tm.THINK_OPEN_ID,
        *reasoning,
        tm.THINK_CLOSE_ID,
        *answer,
        tm.EOT_ID,
    ]
    assert len(set(chain)) == len(chain)
    assert tm.encode("\n\n") == [271]
    assert tm.encode("<|start_header_id|>assistant<|end_header_id|>\n\n")[-1] == 271


def test_vocab_shape() -> None:
    vocab = tm.llama3_vocab()
    assert len(vocab.tokens) == len(vocab.token_types) == 128_256
    assert vocab.special["<|begin_of_text|>"] == 128000
    assert vocab.special["<|finetune_right_pad_id|>"] == 128004
    assert vocab.special["<|eot_id|>"] == 128009
    assert vocab.special["<|python_tag|>"] == 128010
    assert vocab.special["<think>"] == 128013 and vocab.special["</think>"] == 128014
    assert vocab.tokens[128255] == "<|reserved_special_token_247|>"
    assert vocab.token_types[128013] == vocab.token_types[128014] == 4
    assert vocab.token_types[128009] == 3 and vocab.token_types[271] == 1
    assert len(vocab.merges) == 280_147  # as in llama.cpp's reference Llama 3 vocabulary


@pytest.mark.parametrize("text", SAMPLES)
def test_tokenization_matches_llama_cpp(llms: dict[str, llama_cpp.Llama], text: str) -> None:
    llm = llms["writes"]
    assert llm.tokenize(text.encode(), add_bos=False, special=True) == tm.encode(text)
    assert llm.detokenize(tm.encode(text), special=True).decode() == text


def test_think_tags_are_single_printed_tokens(llms: dict[str, llama_cpp.Llama]) -> None:
    llm = llms["writes"]
    for tag, token_id in [(tm.THINK_OPEN, 128013), (tm.THINK_CLOSE, 128014)]:
        assert llm.tokenize(tag.encode(), add_bos=False, special=True) == [token_id]
        assert tm.encode(tag) == [token_id]
        assert llm.detokenize([token_id], special=False) == tag.encode()
    assert llm.detokenize([128009], special=False) == b""  # control tokens stay hidden
    assert llm.token_eos() == 128009 and llm.token_bos() == 128000


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize(("variant", "thinking_mode"), list(CASES))
def test_generation_follows_the_script(
    llms: dict[str, llama_cpp.Llama], variant: str, thinking_mode: str | None, temperature: float
) -> None:
    ending, expected = CASES[variant, thinking_mode]
    prompt = _render(variant, thinking_mode)
    assert prompt.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n")
    assert "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>" in prompt
    assert prompt.endswith(ending)
    out = llms[variant].create_completion(
        prompt=tm.encode(prompt), temperature=temperature, max_tokens=64, seed=7
    )
    assert out["choices"][0]["text"] == expected
    assert out["choices"][0]["finish_reason"] == "stop"


def test_unscripted_context_stops_at_once(llms: dict[str, llama_cpp.Llama]) -> None:
    out = llms["writes"].create_completion(
        prompt=tm.encode("<|begin_of_text|>Tell me a story"), temperature=0, max_tokens=16
    )
    assert out["choices"][0]["text"] == ""
    assert out["choices"][0]["finish_reason"] == "stop"


def test_chain_conflict_raises(tmp_path) -> None:
    with pytest.raises(ValueError, match="conflict"):
        tm.build_gguf(
            tmp_path / "bad.gguf",
            chains=[[271, 9906, 128009], [9906, 0, 128009]],
            chat_template=tm.TEMPLATES["writes"],
        )
    assert not (tmp_path / "bad.gguf").exists()


def test_cached_builder_reuses_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    first = tm.tiny_gguf("writes")
    other = tm.tiny_gguf("prefilled")  # built here: the test must not rely on another one
    stamp = first.stat().st_mtime_ns

    def no_rebuild(*args: object, **kwargs: object) -> None:
        raise AssertionError("rebuilt a cached model")

    monkeypatch.setattr(tm, "build_gguf", no_rebuild)
    assert tm.tiny_gguf("writes") == first
    assert first.stat().st_mtime_ns == stamp
    assert tm.tiny_gguf("prefilled") == other != first
    assert first.name.startswith("sealion-tiny-writes-") and first.suffix == ".gguf"


def test_hf_folder_matches_the_gguf(llms: dict[str, llama_cpp.Llama]) -> None:
    # (gguf.GGUFReader takes about 10 s on this vocabulary: the weights are compared through the
    # logits that llama.cpp computes from the GGUF instead.)
    import numpy as np
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    folder = tm.tiny_hf_folder("prefilled")
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    for text in SAMPLES:
        ids = llms["prefilled"].tokenize(text.encode(), add_bos=False, special=True)
        assert tokenizer.encode(text, add_special_tokens=False).ids == ids
    assert tokenizer.encode("Hi").ids == [128000, 13347]  # BOS added like Llama 3's
    (chain,) = tm.default_chains()
    assert tokenizer.decode(chain, skip_special_tokens=True) == "\n\n" + FULL

    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["head_dim"] == 32
    assert config["tie_word_embeddings"] is False and config["vocab_size"] == 128256
    tok_config = json.loads((folder / "tokenizer_config.json").read_text())
    assert tok_config["chat_template"] == tm.TEMPLATES["prefilled"]
    assert tok_config["added_tokens_decoder"]["128013"]["special"] is False
    assert tok_config["added_tokens_decoder"]["128009"]["special"] is True
    generation = json.loads((folder / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [128001, 128008, 128009]

    weights = load_file(str(folder / "model.safetensors"))
    hidden = config["hidden_size"]
    assert weights["model.embed_tokens.weight"].shape == (128256, hidden)
    assert not weights["model.layers.0.self_attn.o_proj.weight"].any()
    assert not weights["model.layers.0.mlp.down_proj.weight"].any()
    # With zero o_proj/down_proj the HF model's next token is argmax(lm_head @ rmsnorm(embed)).
    llm = llms["prefilled"]
    for token, successor in [*zip(chain[:-1], chain[1:], strict=True), (9999, 128009)]:
        x = weights["model.embed_tokens.weight"][token]
        x = x / math.sqrt(float(np.mean(x * x)) + config["rms_norm_eps"])
        logits = weights["lm_head.weight"] @ x
        assert int(np.argmax(logits)) == successor and logits.max() == pytest.approx(64, rel=1e-3)
        llm.reset()
        llm.eval([token])
        ours = np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), shape=logits.shape)
        np.testing.assert_allclose(ours, logits, atol=0.05)
    llm.reset()
