"""The scripted tiny models in the Qwen3 and Gemma 3 architectures (Llama 3 as the control).

Each architecture gets the same chain model (a lookup table) and the same rule model (markers
found by attention); greedy output must be the script token for token on llama.cpp (GGUF),
ending with the architecture's end token. The Hugging Face folders' configs are checked here;
the Qwen3 and Gemma 3 folders run on in-process vLLM in tests/test_profiles.py (the family
models, exact replies), beside the suite's other engines.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("GGML_NO_BACKTRACE", "1")  # no gdb on a ggml crash

import llama_cpp  # noqa: E402
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from sealion_agents import testing as tm
from sealion_agents.testing.files import build_gguf, save_hf_folder
from sealion_agents.testing.vocab import END_OF_TURN_ID, EOT_ID, IM_END_ID

ARCHITECTURES = ["llama", "qwen3", "gemma3"]
END = {"llama": EOT_ID, "qwen3": IM_END_ID, "gemma3": END_OF_TURN_ID}
GGUF_NAMES = {"llama": "llama", "qwen3": "qwen3", "gemma3": "gemma3"}
HF_NAMES = {"llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM", "gemma3": "Gemma3ForCausalLM"}

TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
NL = tm.encode("assistant\n")[-1]  # the last token of the generation prompt
CHAIN = [NL, *tm.encode("Hello from the tiny model.")]
RULES = [
    tm.Rule([NL, *tm.encode(" Bangkok is the capital.")], when=frozenset({" Thailand"})),
    tm.Rule([NL, *tm.encode(" Bangkok has temples.")], when=frozenset({" Thailand", " temples"})),
    tm.Rule([NL, *tm.encode(" I do not know.")]),
]
QUESTIONS = ["Tell me about Thailand temples", "Tell me about Thailand", "Hi"]
#: A marker about 3,500 tokens before the end (Gemma 3's layer is a sliding-window one).
FAR_QUESTION = "About Thailand:" + " lorem ipsum dolor sit amet" * 700 + " The capital?"


def _prompt_ids(question: str) -> list[int]:
    env = ImmutableSandboxedEnvironment()
    text = env.from_string(TEMPLATE).render(
        messages=[{"role": "user", "content": question}],
        bos_token="<|begin_of_text|>",
        add_generation_prompt=True,
    )
    return tm.encode(text)


def _expected(kind: str, architecture: str, prompt: list[int]) -> list[int]:
    end = END[architecture]
    if kind == "chain":
        return [*CHAIN[1:], end]
    return tm.rule_continuation(RULES, prompt, end_token=end)


def test_the_rule_answers_differ() -> None:
    """The prompts reach three different rules (so a model that ignored markers would fail)."""
    answers = {tuple(_expected("rule", "llama", _prompt_ids(q))) for q in QUESTIONS}
    assert len(answers) == 3
    far = _prompt_ids(FAR_QUESTION)
    assert 3000 < len(far) < 4096 - 40
    assert _expected("rule", "llama", far) == _expected("rule", "llama", _prompt_ids(QUESTIONS[1]))


@pytest.fixture(scope="module")
def gguf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("architectures")


@pytest.mark.parametrize("kind", ["chain", "rule"])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_gguf_follows_the_script(gguf_dir: Path, architecture: str, kind: str) -> None:
    script: dict[str, Any] = {"chains": [CHAIN]} if kind == "chain" else {"rules": RULES}
    path = build_gguf(
        gguf_dir / f"{architecture}-{kind}.gguf",
        chat_template=TEMPLATE,
        architecture=architecture,
        **script,
    )
    llm = llama_cpp.Llama(
        model_path=str(path), n_ctx=4096, n_threads=1, n_threads_batch=1, verbose=False
    )
    end = END[architecture]
    assert llm.metadata["general.architecture"] == GGUF_NAMES[architecture]
    assert llm.metadata["tokenizer.ggml.eos_token_id"] == str(end)
    assert llm.metadata["tokenizer.chat_template"] == TEMPLATE
    assert llm.token_eos() == end
    questions = [QUESTIONS[-1]] if kind == "chain" else [*QUESTIONS, FAR_QUESTION]
    for question in questions:
        prompt = _prompt_ids(question)
        assert llm.tokenize(llm.detokenize(prompt, special=True), add_bos=False, special=True) == (
            prompt
        )
        out: list[int] = []
        for token in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
            out.append(token)
            if token == end or len(out) >= 40:
                break
        assert out == _expected(kind, architecture, prompt), question


def test_hf_folders_describe_the_architecture(tmp_path: Path) -> None:
    for architecture in ARCHITECTURES:
        folder = save_hf_folder(
            tmp_path / architecture,
            chains=[CHAIN],
            chat_template=TEMPLATE,
            architecture=architecture,
        )
        config = json.loads((folder / "config.json").read_text())
        assert config["architectures"] == [HF_NAMES[architecture]]
        assert config["tie_word_embeddings"] is False and config["head_dim"] == 32
        end = END[architecture]
        assert end in config["eos_token_id"]
        generation = json.loads((folder / "generation_config.json").read_text())
        assert generation["eos_token_id"] == config["eos_token_id"]
        tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
        assert tokenizer_config["eos_token"] == tm.hf_tokenizer().id_to_token(end)
        assert tokenizer_config["chat_template"] == TEMPLATE
    gemma = json.loads((tmp_path / "gemma3" / "config.json").read_text())
    assert gemma["layer_types"] == ["sliding_attention"] and gemma["sliding_window"] == 4096


def test_bad_architecture_or_end_token_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown architecture 'mistral': choose one of llama"):
        build_gguf(tmp_path / "m.gguf", chains=[CHAIN], chat_template="", architecture="mistral")
    with pytest.raises(ValueError, match="eos_token_id 999999 is outside the vocabulary"):
        save_hf_folder(tmp_path / "m", chains=[CHAIN], chat_template="", eos_token_id=999999)
    assert not (tmp_path / "m.gguf").exists() and not (tmp_path / "m").exists()
