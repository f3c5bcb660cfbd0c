"""The verifier's claims in scripts without a full stop: Thai, Lao, Khmer and Burmese.

Unit tests of the pure splitting (ICU's sentence breaker and the punctuation fallback), then
``GroundedQA`` end to end on the real llama.cpp runtime with a scripted tiny model that answers
a Thai or Khmer question (English documents: cross-lingual) with one supported and one
unsupported sentence: the verifier must check each sentence on its own and drop the second,
as it does for English (tests/test_qa_chain.py).

Khmer has almost no tokens of its own in the Llama 3 vocabulary: each character is a shared
lead byte pair plus a final byte, so the lead repeats with different successors. The scripted
answer is cut into phases, each keyed on one more token the answer has just written (the
technique of ``testing.call_rules``), so every repeated token has one successor per phase.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sealion_agents import ChatSeaLion
from sealion_agents import testing as tm
from sealion_agents.qa.chain import GroundedQA
from sealion_agents.qa.citations import MIN_CLAIM_CHARS, split_claims
from sealion_agents.qa.prompts import verify_messages
from tests.conftest import LLAMA_TEST_KWARGS
from tests.test_qa_chain import build_store

# -- the splitting itself (pure) ---------------------------------------------------------

THAI_TWO = "วัดอรุณตั้งอยู่ริมแม่น้ำเจ้าพระยา [1] ยอดปรางค์ทำจากทองคำแท้ [2]"
SPLITS = [
    pytest.param(
        THAI_TWO,
        [("วัดอรุณตั้งอยู่ริมแม่น้ำเจ้าพระยา [1]", (1,)), ("ยอดปรางค์ทำจากทองคำแท้ [2]", (2,))],
        id="thai-space-after-citation",
    ),
    pytest.param(
        "ວຽງຈັນແມ່ນນະຄອນຫຼວງຂອງລາວ [1] ມີປະຊາກອນຫຼາຍລ້ານຄົນ [2]",
        [("ວຽງຈັນແມ່ນນະຄອນຫຼວງຂອງລາວ [1]", (1,)), ("ມີປະຊາກອນຫຼາຍລ້ານຄົນ [2]", (2,))],
        id="lao-space-after-citation",
    ),
    pytest.param(
        "អង្គរវត្តស្ថិតនៅខេត្តសៀមរាប [1]។ ប្រាសាទនេះធ្វើពីមាស [2]។",
        [("អង្គរវត្តស្ថិតនៅខេត្តសៀមរាប [1]។", (1,)), ("ប្រាសាទនេះធ្វើពីមាស [2]។", (2,))],
        id="khmer-khan",
    ),
    pytest.param(
        "អង្គរវត្តស្ថិតនៅខេត្តសៀមរាប ។ [1] ប្រាសាទនេះធ្វើពីមាស ។ [2]",
        [("អង្គរវត្តស្ថិតនៅខេត្តសៀមរាប ។ [1]", (1,)), ("ប្រាសាទនេះធ្វើពីមាស ។ [2]", (2,))],
        id="khmer-citation-after-the-khan",
    ),
    pytest.param(
        "អង្គរវត្តស្ថិតនៅខេត្តសៀមរាប [1] ប្រាសាទនេះធ្វើពីមាស [2]",
        [("អង្គរវត្តស្ថិតនៅខេត្តសៀមរាប [1]", (1,)), ("ប្រាសាទនេះធ្វើពីមាស [2]", (2,))],
        id="khmer-without-khan",
    ),
    pytest.param(
        "ရန်ကုန်သည် မြို့ကြီးဖြစ်သည် [1]။ လူဦးရေများသည် [2]။",
        [("ရန်ကုန်သည် မြို့ကြီးဖြစ်သည် [1]။", (1,)), ("လူဦးရေများသည် [2]။", (2,))],
        id="burmese-section-mark",
    ),
    pytest.param(  # a space without a citation is often a clause boundary: no cut
        "กรุงเทพเป็นเมืองหลวง ซึ่งมีประชากรมากกว่าสิบล้านคน [1]",
        [("กรุงเทพเป็นเมืองหลวง ซึ่งมีประชากรมากกว่าสิบล้านคน [1]", (1,))],
        id="thai-clause-stays-whole",
    ),
    pytest.param(  # "yes [1]" and a closing particle are too short to be claims
        "ใช่ [1] กรุงเทพเป็นเมืองหลวงของประเทศไทย [1] ค่ะ",
        [("ใช่ [1] กรุงเทพเป็นเมืองหลวงของประเทศไทย [1] ค่ะ", (1,))],
        id="thai-short-pieces-join",
    ),
    pytest.param(  # an uncited sentence after a cited one stands alone (and is removed)
        "วัดอรุณตั้งอยู่ริมแม่น้ำเจ้าพระยา [1] ยอดปรางค์ทำจากทองคำแท้",
        [("วัดอรุณตั้งอยู่ริมแม่น้ำเจ้าพระยา [1]", (1,)), ("ยอดปรางค์ทำจากทองคำแท้", ())],
        id="thai-uncited-tail",
    ),
    pytest.param(  # English: a citation inside a sentence does not cut it
        "It is hot [1] and humid [2]. It rains daily [3]!",
        [("It is hot [1] and humid [2].", (1, 2)), ("It rains daily [3]!", (3,))],
        id="english-unchanged",
    ),
]


@pytest.mark.parametrize(("answer", "claims"), SPLITS)
def test_claims_with_icu(answer: str, claims: list[tuple[str, tuple[int, ...]]]) -> None:
    assert [(c.text, c.cited) for c in split_claims(answer)] == claims


@pytest.mark.parametrize(("answer", "claims"), SPLITS)
def test_claims_without_icu(
    monkeypatch: pytest.MonkeyPatch, answer: str, claims: list[tuple[str, tuple[int, ...]]]
) -> None:
    """Without icu4py (the retrieval extra) the punctuation fallback gives the same claims."""
    monkeypatch.setitem(sys.modules, "icu4py.breakers", None)  # import raises ImportError
    assert [(c.text, c.cited) for c in split_claims(answer)] == claims


def test_the_minimum_counts_letters_not_marks_or_citations() -> None:
    short = "ก" * (MIN_CLAIM_CHARS - 1)
    assert [c.text for c in split_claims(f"{short} [1] {'ข' * MIN_CLAIM_CHARS} [2]")] == [
        f"{short} [1] {'ข' * MIN_CLAIM_CHARS} [2]"
    ]
    enough = "ก" * MIN_CLAIM_CHARS
    assert [c.text for c in split_claims(f"{enough} [1] {'ข' * MIN_CLAIM_CHARS} [2]")] == [
        f"{enough} [1]",
        f"{'ข' * MIN_CLAIM_CHARS} [2]",
    ]


# -- GroundedQA on llama.cpp with a scripted model ----------------------------------------

THINK_PROMPT_END = tm.NEWLINES_ID  # thinking on: the prompt ends with "\n\n"


def phased_rules(chain: Sequence[int], when: set[int], prompt: set[int]) -> list[tm.Rule]:
    """``chain`` as rules where a token may repeat with another successor.

    Where a token's successor would change, a new phase starts, keyed on one more marker: a
    token written since the token's last occurrence that is in neither ``prompt`` nor the chain
    before it, and not ASCII (ASCII tokens may be anywhere in a prompt).
    """
    rules: list[tm.Rule] = []
    markers, start = frozenset(when), 0
    last: dict[int, int] = {}  # token -> its last position in the current phase
    for i in range(len(chain) - 1):
        a, b = chain[i], chain[i + 1]
        if a in last and chain[last[a] + 1] != b:
            fresh = [k for k in range(i, last[a], -1) if _fresh(chain, k, prompt)]
            if not fresh:
                raise ValueError(f"no fresh token to key a phase on at position {i}")
            k = fresh[0]
            rules.append(tm.Rule(chain[start : k + 1], when=markers))
            markers, start = markers | {chain[k]}, k
            last = {chain[j]: j for j in range(k, i)}
        last[a] = i
    rules.append(tm.Rule(chain[start:], when=markers))
    return rules


def _fresh(chain: Sequence[int], k: int, prompt: set[int]) -> bool:
    token = chain[k]
    return (
        token < tm.N_BASE_TOKENS
        and token not in prompt
        and token not in chain[:k]
        and not tm.hf_tokenizer().decode([token]).isascii()
    )


def reply_rule(markers: set[int], reply: str) -> tm.Rule:
    """A thinking-off step (the prompt ends with </think>) that replies ``reply``."""
    return tm.Rule([tm.THINK_CLOSE_ID, *tm.encode(reply), tm.EOT_ID], when=markers)


def only_in(text: str, *others: str) -> int:
    """A non-ASCII token of ``text``, also after a space, that none of ``others`` holds."""
    elsewhere = {t for other in others for t in tm.encode(other)}
    in_context = set(tm.encode(f"Claim: {text}"))
    return next(
        t
        for t in tm.encode(text)
        if t in in_context and t not in elsewhere and not tm.hf_tokenizer().decode([t]).isascii()
    )


REASONING = "Passage one names the place."
ANSWER_STEP, VERIFY_STEP, TRANSLATE_STEP = (
    tm.encode_one(" numbered"),
    tm.encode_one(" claim"),
    tm.encode_one("Translate"),
)


@dataclass(frozen=True)
class Scenario:
    """A question whose scripted answer holds a supported and an unsupported sentence."""

    question: str
    translation: str
    supported: str
    unsupported: str
    docs: dict[str, str]

    @property
    def answer(self) -> str:
        return f"{self.supported} {self.unsupported}"


SCENARIOS = {
    # "Wat Arun stands by the Chao Phraya River [1] Its prang is made of pure gold [2]":
    # Thai ends a sentence with a space, not a mark.
    "th": Scenario(
        question="วัดอรุณอยู่ที่ไหน",
        translation="Where is Wat Arun?",
        supported="วัดอรุณตั้งอยู่ริมแม่น้ำเจ้าพระยา [1]",
        unsupported="ยอดปรางค์ทำจากทองคำแท้ [2]",
        docs={
            "wat-arun.md": "Wat Arun stands on the west bank of the Chao Phraya River in Bangkok.",
            "prang.md": "The central prang of Wat Arun is decorated with coloured porcelain.",
        },
    ),
    # "Where is Angkor Wat?" -> "In Cambodia [1]។ It is an iron temple [2]។" (the Latin name
    # and these words leave the answer's byte tokens fresh enough to key its phases on)
    "km": Scenario(
        question="តើ Angkor Wat ឯណា?",
        translation="Where is Angkor Wat?",
        supported="នៅកម្ពុជា [1]។",
        unsupported="ជាប្រាសាទដែក [2]។",
        docs={
            "angkor.md": "Angkor Wat is a temple complex in Siem Reap province in Cambodia.",
            "sandstone.md": "Angkor Wat was built from blocks of sandstone.",
        },
    ),
}


def scenario_rules() -> list[tm.Rule]:
    """Both scenarios in one model, each keyed on a token of its own question."""
    questions = [s.question for s in SCENARIOS.values()]
    supported: list[tm.Rule] = []
    unsupported: list[tm.Rule] = []
    steps: list[tm.Rule] = []
    for s in SCENARIOS.values():
        asked = only_in(s.question, *(q for q in questions if q != s.question))
        chain = [THINK_PROMPT_END, tm.THINK_OPEN_ID, *tm.encode(REASONING), tm.THINK_CLOSE_ID]
        chain += [*tm.encode(s.answer), tm.EOT_ID]
        steps += phased_rules(chain, {asked, ANSWER_STEP}, set(tm.encode(s.question)))
        steps.append(reply_rule({asked, TRANSLATE_STEP}, s.translation))
        # the verifier's reply depends on the claim it is shown; SUPPORTED wins a tie, so an
        # answer checked as one claim would pass whole
        supported.append(
            reply_rule({VERIFY_STEP, only_in(s.supported, s.unsupported)}, "SUPPORTED")
        )
        unsupported.append(
            reply_rule({VERIFY_STEP, only_in(s.unsupported, s.supported)}, "UNSUPPORTED")
        )
    return [*steps, *supported, *unsupported]


@pytest.fixture(scope="module")
def llm() -> Any:
    model = ChatSeaLion.from_gguf(
        tm.tiny_rules_gguf("verifier-scripts", scenario_rules()), llama_kwargs=LLAMA_TEST_KWARGS
    )
    yield model
    model.close()


@pytest.mark.parametrize("language", sorted(SCENARIOS))
def test_the_unsupported_sentence_is_removed(llm: Any, tmp_path: Path, language: str) -> None:
    from sealion_agents.retrievers import SEARetriever

    s = SCENARIOS[language]
    store = build_store(tmp_path, s.docs, collection="scripts")
    qa = GroundedQA(llm=llm, retriever=SEARetriever(store=store, k=2))
    result = qa.invoke(s.question)
    assert result.language == language
    assert result.queries == [s.question, s.translation]
    first, second = (Path(c.source).name for c in result.sources)
    assert [first, second] == list(s.docs)  # [1] states the place, [2] does not say gold/iron
    assert result.status == "revised"
    assert result.answer == s.supported
    assert result.removed_claims == [s.unsupported]
    assert [(c.number, Path(c.source).name) for c in result.citations] == [(1, first)]
    # checked as one claim, the answer would have passed whole: its supported sentence
    # carries the unsupported one
    passages = "\n".join(f"[{c.number}] {c.text}" for c in result.sources)
    whole = llm.invoke(verify_messages(s.answer, passages), thinking=False, max_tokens=16)
    assert whole.text == "SUPPORTED"
