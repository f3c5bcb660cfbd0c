"""Prompt-keyed scripts (``tiny_models.Rule``) on the real llama.cpp runtime, and checked
against a numpy reference forward pass of the Hugging Face weights (what vLLM runs)."""

from __future__ import annotations

import os

os.environ.setdefault("GGML_NO_BACKTRACE", "1")  # no gdb on a ggml crash

import llama_cpp  # noqa: E402
import numpy as np
import pytest

from sealion_agents import testing as tm

Rule = tm.Rule

# Marker words (single tokens with their leading space, as inside a sentence).
REWRITE = tm.encode_one(" rewrite")
VERIFY = tm.encode_one(" verify")
SINGAPORE = tm.encode_one(" Singapore")  # scenario: answer with a citation
MANGO = tm.encode_one(" mango")  # scenario: decline
BALI = tm.encode_one(" Bali")  # scenario: an unsupported claim that verification catches

NL, OPEN, CLOSE, EOT = tm.NEWLINES_ID, tm.THINK_OPEN_ID, tm.THINK_CLOSE_ID, tm.EOT_ID

REWRITTEN = "Standalone question about the documents."
CITED = "The Merlion stands in Marina Bay [1]."
DECLINED = "I cannot answer that from the documents."
CLAIMED = "Bali has the tallest tower [2]."
SUPPORTED = "All citations check out."
UNSUPPORTED = "Claim two is not supported."
THOUGHT = "Let me check each source"


def chain(*parts: int | str) -> list[int]:
    ids: list[int] = []
    for part in parts:
        ids += tm.encode(part) if isinstance(part, str) else [part]
    return ids


RULES = [
    # thinking off: the prompt ends with <think></think>
    Rule(chain(CLOSE, REWRITTEN, EOT), when=frozenset({REWRITE})),
    Rule(chain(CLOSE, SUPPORTED, EOT), when=frozenset({VERIFY})),
    Rule(chain(CLOSE, UNSUPPORTED, EOT), when=frozenset({VERIFY, BALI})),
    # thinking on ("writes" template): the prompt ends with "\n\n"
    *[Rule(c) for c in tm.default_chains()],  # the fallback: the default script
    Rule(chain(NL, OPEN, THOUGHT, CLOSE, CITED, EOT), when=frozenset({SINGAPORE})),
    Rule(chain(NL, OPEN, THOUGHT, CLOSE, DECLINED, EOT), when=frozenset({MANGO})),
    Rule(chain(NL, OPEN, THOUGHT, CLOSE, CLAIMED, EOT), when=frozenset({" Bali"})),
]

FULL_DEFAULT = f"<think>{tm.REASONING}</think>{tm.ANSWER}"


def _think(answer: str) -> str:
    return f"<think>{THOUGHT}</think>{answer}"


def _load(path: os.PathLike[str]) -> llama_cpp.Llama:
    return llama_cpp.Llama(
        model_path=str(path), n_ctx=4096, n_threads=1, n_threads_batch=1, verbose=False
    )


@pytest.fixture(scope="module")
def keyed_path() -> os.PathLike[str]:
    return tm.tiny_rules_gguf("keyed-test", RULES)


@pytest.fixture(scope="module")
def llm(keyed_path: os.PathLike[str]) -> llama_cpp.Llama:
    return _load(keyed_path)


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    return tm.rule_weights(rules=RULES)[0]


def _render(messages: list[dict[str, str]], thinking_mode: str | None = None) -> str:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    extra = {} if thinking_mode is None else {"thinking_mode": thinking_mode}
    return env.from_string(tm.TEMPLATES["writes"]).render(
        messages=messages, bos_token="<|begin_of_text|>", add_generation_prompt=True, **extra
    )


def _complete(llm: llama_cpp.Llama, ids: list[int], temperature: float = 0.0) -> str:
    out = llm.create_completion(prompt=ids, temperature=temperature, max_tokens=48, seed=11)
    assert out["choices"][0]["finish_reason"] == "stop"
    return out["choices"][0]["text"]


FILLER = tm.encode(" The quick brown fox jumps over the lazy dog by the river.")


def _long_prompt(n: int, markers: list[int], where: str) -> list[int]:
    """BOS, ``n`` filler tokens with ``markers`` at the start/middle/end, a generation prompt."""
    body = (FILLER * (n // len(FILLER) + 1))[:n]
    at = {"start": 0, "middle": n // 2, "end": n - len(markers)}[where]
    body[at : at + len(markers)] = markers
    tail = tm.encode("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    return [tm.BOS_ID, *tm.encode("<|start_header_id|>user<|end_header_id|>\n\n"), *body, *tail]


# -- the API --------------------------------------------------------------------------------


def test_encode_one() -> None:
    assert tm.encode_one(" Singapore") == 21181
    assert tm.encode_one("</think>") == tm.THINK_CLOSE_ID
    with pytest.raises(ValueError, match="not a single token"):
        tm.encode_one(" Merlion")


def test_rule_normalises_and_validates() -> None:
    rule = Rule([1, 2, 3], when={" Singapore", 70368})
    assert rule.chain == (1, 2, 3) and rule.when == frozenset({21181, 70368})
    assert Rule([1, 2]).when == frozenset()
    assert Rule([1, 2], when=" Bali").when == frozenset({BALI})
    with pytest.raises(ValueError, match="not a single token"):
        Rule([1, 2], when={" Merlion"})
    with pytest.raises(ValueError, match="outside the vocabulary"):
        Rule([1, 2], when={tm.N_VOCAB})
    with pytest.raises(ValueError, match="at least two tokens"):
        Rule([1])


def test_rule_conflicts_raise(tmp_path) -> None:
    bad = [Rule([NL, 9906, EOT], when={SINGAPORE}), Rule([NL, 0, EOT], when={SINGAPORE})]
    with pytest.raises(ValueError, match="conflict.*when"):
        tm.build_gguf(tmp_path / "bad.gguf", rules=bad, chat_template=tm.TEMPLATES["writes"])
    assert not (tmp_path / "bad.gguf").exists()
    with pytest.raises(ValueError, match="conflict"):  # plain chains given next to rules
        tm.rule_weights(chains=[[NL, 9906, EOT]], rules=[Rule([NL, 0, EOT])])
    # The same successor twice, or different marker sets, are no conflict.
    tm.rule_weights(rules=[*bad[:1], *bad[:1], Rule([NL, 0, EOT], when={MANGO})])


def test_default_models_are_the_lookup_table() -> None:
    weights, dims = tm.rule_weights(chains=tm.default_chains())
    assert dims == {"hidden": 64, "n_head": 2, "ffn": 128}
    assert not weights["model.layers.0.self_attn.o_proj.weight"].any()
    assert not weights["model.layers.0.mlp.down_proj.weight"].any()
    assert tm.GENERATOR_VERSION == 1 and tm.tiny_gguf("writes").name.startswith("sealion-tiny-w")


def test_rules_cache(monkeypatch: pytest.MonkeyPatch, keyed_path: os.PathLike[str]) -> None:
    def no_rebuild(*args: object, **kwargs: object) -> None:
        raise AssertionError("rebuilt a cached model")

    monkeypatch.setattr(tm, "build_gguf", no_rebuild)
    assert tm.tiny_rules_gguf("keyed-test", RULES) == keyed_path
    with pytest.raises(AssertionError, match="rebuilt"):  # other rules, other file
        tm.tiny_rules_gguf("keyed-test", RULES[::-1])
    with pytest.raises(ValueError, match="name"):
        tm.tiny_rules_gguf("a/b", RULES)


def test_rules_hf_folder(keyed_path: os.PathLike[str]) -> None:
    import json

    folder = tm.tiny_rules_hf_folder("keyed-test", RULES)
    assert tm.tiny_rules_hf_folder("keyed-test", RULES) == folder
    assert folder.name.startswith("sealion-tiny-rules-keyed-test-writes-")
    config = json.loads((folder / "config.json").read_text())
    _, dims = tm.rule_weights(rules=RULES)
    assert (config["hidden_size"], config["num_attention_heads"]) == (
        dims["hidden"],
        dims["n_head"],
    )
    assert config["intermediate_size"] == dims["ffn"] and config["head_dim"] == 32
    assert config["rope_theta"] == 500000.0 and config["rope_scaling"] is None


# -- behaviour on llama.cpp -----------------------------------------------------------------

QUESTION = {"role": "user", "content": "What is the big statue in Singapore called?"}
SYSTEM_ANSWER = {"role": "system", "content": "Answer from the documents, with citations."}

# (messages, thinking_mode) -> expected text
SCENARIOS = {
    "answer-cited": ([SYSTEM_ANSWER, QUESTION], None, _think(CITED)),
    "decline": (
        [SYSTEM_ANSWER, {"role": "user", "content": "Which mango is the sweetest?"}],
        None,
        _think(DECLINED),
    ),
    "marker-in-system": (
        [
            {"role": "system", "content": "Documents: the mango season."},
            {"role": "user", "content": "Hi"},
        ],
        None,
        _think(DECLINED),
    ),
    "claim": (
        [SYSTEM_ANSWER, {"role": "user", "content": "What is in Bali?"}],
        None,
        _think(CLAIMED),
    ),
    "no-marker-fallback": (
        [SYSTEM_ANSWER, {"role": "user", "content": "Hello there"}],
        None,
        FULL_DEFAULT,
    ),
    "rewrite": (
        [{"role": "system", "content": "Please rewrite the question."}, QUESTION],
        "off",
        REWRITTEN,
    ),
    "verify-supported": (
        [{"role": "system", "content": "Now verify the citations."}, QUESTION],
        "off",
        SUPPORTED,
    ),
    "verify-two-markers": (
        [
            {"role": "system", "content": "Now verify the citations."},
            {"role": "user", "content": "Answer: the tallest tower is in Bali [2]."},
        ],
        "off",
        UNSUPPORTED,
    ),
    "thinking-off-answer": ([SYSTEM_ANSWER, QUESTION], "off", CITED),
    "thinking-off-fallback": (  # the default script has </think> -> ANSWER
        [SYSTEM_ANSWER, {"role": "user", "content": "Hello there"}],
        "off",
        tm.ANSWER,
    ),
}


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenarios(llm: llama_cpp.Llama, name: str, temperature: float) -> None:
    messages, thinking_mode, expected = SCENARIOS[name]
    ids = tm.encode(_render(messages, thinking_mode))
    assert _complete(llm, ids, temperature) == expected
    assert tm.rule_continuation(RULES, ids) == tm.encode(expected + "<|eot_id|>")


def test_unscripted_context_stops_at_once(llm: llama_cpp.Llama) -> None:
    for text in ["<|begin_of_text|>Tell me a story", "<|begin_of_text|>Singapore mango Bali"]:
        assert _complete(llm, tm.encode(text)) == ""
    # A marker token that no rule continues, as the last token.
    assert _complete(llm, tm.encode("<|begin_of_text|>I like Bali")) == ""


@pytest.mark.parametrize(
    ("markers", "where", "expected"),
    [
        ([], "middle", FULL_DEFAULT),
        ([SINGAPORE], "start", _think(CITED)),
        ([MANGO], "middle", _think(DECLINED)),
        ([BALI], "end", _think(CLAIMED)),
    ],
    ids=["absent", "start", "middle", "end"],
)
def test_long_prompt(llm: llama_cpp.Llama, markers: list[int], where: str, expected: str) -> None:
    ids = _long_prompt(3000, markers, where)
    assert len(ids) > 3000
    assert _complete(llm, ids) == expected
    assert tm.rule_continuation(RULES, ids) == tm.encode(expected + "<|eot_id|>")


def test_equally_specific_rules_go_to_the_earlier(llm: llama_cpp.Llama) -> None:
    # " Singapore" and " mango": both one-marker rules apply, RULES lists the Singapore one first.
    ids = _long_prompt(40, [MANGO, SINGAPORE], "middle")
    assert _complete(llm, ids) == _think(CITED)
    # " verify" with " Singapore" in the prompt: only the verify rules know </think>.
    ids = tm.encode(_render([{"role": "system", "content": "Now verify it."}, QUESTION], "off"))
    assert _complete(llm, ids) == SUPPORTED


# -- the HF weights (vLLM) against llama.cpp ------------------------------------------------


def _llama_logits(llm: llama_cpp.Llama, ids: list[int]) -> np.ndarray:
    llm.reset()
    llm.eval(ids)
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), shape=(tm.N_VOCAB,))
    return logits.copy()


def test_hf_reference_matches_llama_cpp(llm: llama_cpp.Llama, tmp_path) -> None:
    from safetensors.numpy import load_file

    folder = tm.save_hf_folder(tmp_path / "hf", rules=RULES, chat_template=tm.TEMPLATES["writes"])
    weights = load_file(str(folder / "model.safetensors"))
    expected, dims = tm.rule_weights(rules=RULES)
    for name, array in expected.items():
        np.testing.assert_array_equal(weights[name], array)
    prompts = [
        tm.encode(_render([SYSTEM_ANSWER, QUESTION])),
        tm.encode(_render(SCENARIOS["verify-two-markers"][0], "off")),
        _long_prompt(3000, [SINGAPORE, MANGO], "end"),
        _long_prompt(2000, [BALI], "start"),
        _long_prompt(2500, [], "middle") + [OPEN],
    ]
    for ids in prompts:
        ref = tm.reference_logits(weights, ids)
        ours = _llama_logits(llm, ids)
        assert int(np.argmax(ours)) == int(np.argmax(ref))
        np.testing.assert_allclose(ours, ref, atol=0.1)
    llm.reset()


@pytest.mark.parametrize("n", [10, 3000])
def test_reference_margins(weights: dict[str, np.ndarray], n: int) -> None:
    """Greedy continuation in the numpy model: the winner leads by > 20 logits at every step."""
    lm_head = weights["lm_head.weight"]
    rows = np.flatnonzero(np.abs(lm_head).sum(axis=1))  # every other token's logit is 0
    cases = [
        ([], "start", FULL_DEFAULT),
        ([SINGAPORE], "start", _think(CITED)),
        ([MANGO], "middle", _think(DECLINED)),
        ([BALI], "end", _think(CLAIMED)),
    ]
    for markers, where, expected in cases:
        ids = _long_prompt(n, markers, where)
        states = tm.reference_hidden(weights, ids + tm.encode(expected + "<|eot_id|>"))
        logits = states[len(ids) - 1 : -1] @ lm_head[rows].T
        ranked = np.sort(np.concatenate([logits, np.zeros((len(logits), 1))], axis=1), axis=1)
        assert (ranked[:, -1] - ranked[:, -2]).min() > 20
        assert list(rows[np.argmax(logits, axis=1)]) == tm.encode(expected + "<|eot_id|>")


def test_many_rules_on_one_token_match_the_plain_python_meaning() -> None:
    """Random marker subsets: the numpy model follows ``rule_successor`` with a wide margin."""
    words = [" Singapore", " mango", " Bali", " Jakarta", " tiger", " Bangkok", " rewrite"]
    marks = [tm.encode_one(w) for w in words]
    rng = np.random.default_rng(5)
    rules = [Rule([NL, 1000, EOT])]
    for i in range(14):  # single, pairs and triples of markers; 8 different successors
        k = 1 + i % 3
        when = frozenset(int(m) for m in rng.choice(marks, size=k, replace=False))
        if all(r.when != when for r in rules):
            rules.append(Rule([NL, 2000 + i % 8, EOT], when=when))
    weights, _ = tm.rule_weights(rules=rules)
    lm_head = weights["lm_head.weight"]
    rows = np.flatnonzero(np.abs(lm_head).sum(axis=1))
    filler = tm.encode(" The quick brown fox jumps over the lazy dog.")
    worst = np.inf
    for _ in range(60):
        present = [int(m) for m in marks if rng.random() < 0.4]
        body = list(filler * 3)
        for m in present:
            body.insert(int(rng.integers(0, len(body) + 1)), m)
        ids = [tm.BOS_ID, *body, NL]
        logits = lm_head[rows] @ tm.reference_hidden(weights, ids)[-1]
        top2 = np.sort(np.append(logits, 0.0))[-2:]
        worst = min(worst, top2[1] - top2[0])
        assert rows[np.argmax(logits)] == tm.rule_successor(rules, ids), present
    assert worst > 30, worst
    # 21 overlapping rules on one token, many of which may apply together: refused.
    rng = np.random.default_rng(5)
    many = [Rule([NL, 1000, EOT])]
    for i in range(24):
        when = frozenset(int(m) for m in rng.choice(marks, size=1 + i % 3, replace=False))
        if all(r.when != when for r in many):
            many.append(Rule([NL, 2000 + i % 12, EOT], when=when))
    with pytest.raises(ValueError, match="too many rules"):
        tm.rule_weights(rules=many)
