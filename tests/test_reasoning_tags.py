r"""Reasoning tags are the model profile's: a tiny model that reasons in ``<reasoning>`` tags.

The scripted model (built here on the Llama 3 vocabulary, where each of its tags is four
tokens) writes ``<reasoning>TAG_REASONING</reasoning>\n\nTAG_ANSWER``. Its chat templates
pre-fill the opening tag ("prefilled") or leave it to the model ("writes"), and close an empty
block with thinking off. A profile that declares these tags splits reasoning from answer on
llama.cpp (in process and its server) and vLLM; the same model under the default profile
(``<think>``) cannot, which is the control.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.tools import tool

from sealion_agents import ChatSeaLion
from sealion_agents.backends.base import (
    GenerationRequest,
    PromptInfo,
    TextDelta,
)
from sealion_agents.backends.llamacpp import LlamaCppBackend
from sealion_agents.backends.openai.reader import ChunkReader
from sealion_agents.decoding import TurnDecoder
from sealion_agents.errors import UnsupportedSchemaError
from sealion_agents.grammars import answer_grammar
from sealion_agents.options import GenerationOptions
from sealion_agents.profiles import PROFILES, THINKING_MODE, ModelProfile
from sealion_agents.reasoning import (
    THINK_TAGS,
    ReasoningParser,
    ReasoningTags,
    reasoning_in,
    strip_reasoning,
)
from sealion_agents.testing import (
    EOT_ID,
    JSON_PREFERENCES,
    NEWLINES_ID,
    Rule,
    encode,
    hf_tokenizer,
)
from sealion_agents.testing.scripts import TEMPLATE_HEAD
from sealion_agents.tool_formats import JSON_CALLS
from tests.conftest import LLAMA_TEST_KWARGS, LLAMACPP_TEST_KEY

pytestmark = pytest.mark.timeout(300)

TAGS = ReasoningTags(open="<reasoning>", close="</reasoning>")
PROFILE = ModelProfile(
    name="reasoning-tags", thinking=THINKING_MODE, tool_format=JSON_CALLS, reasoning_tags=TAGS
)
TAG_REASONING = "Greet the user back in kind."
TAG_ANSWER = "Hi! What do you need?"
QUESTION = [HumanMessage("Hello there")]
QUESTION_DICTS = [{"role": "user", "content": "Hello there"}]

_HEAD = TEMPLATE_HEAD + (
    "{%- if thinking_mode is defined and thinking_mode == 'off' %}\n"
    "{{- '" + TAGS.open + TAGS.close + "\\n\\n' }}\n"
)
TEMPLATES = {
    "writes": _HEAD + "{%- endif %}\n{%- endif %}\n",
    "prefilled": _HEAD + "{%- else %}\n{{- '" + TAGS.open + "' }}\n{%- endif %}\n{%- endif %}\n",
}

OPEN_IDS = encode(TAGS.open)  # "<" "reason" "ing" ">"
CLOSE_IDS = encode(TAGS.close + "\n\n")  # "</" "reason" "ing" ">\n\n"
REASONING_IDS = encode(TAG_REASONING)
ANSWER_IDS = encode(TAG_ANSWER)


def tag_rules() -> list[Any]:
    """The script; "reason" "ing" end both tags, so what follows them is keyed on "</"."""
    slash = CLOSE_IDS[0]
    return [
        Rule([NEWLINES_ID, *OPEN_IDS, *REASONING_IDS, *CLOSE_IDS[:3]]),
        Rule(CLOSE_IDS[2:], when=frozenset({slash})),  # "ing" -> ">\n\n" in the closing tag
        Rule([CLOSE_IDS[3], *ANSWER_IDS, EOT_ID]),  # also the end of a thinking-off prompt
        Rule([OPEN_IDS[3], ANSWER_IDS[0]], when=frozenset({slash})),  # after a budget's "</...>"
        *JSON_PREFERENCES,
    ]


@pytest.fixture(scope="module")
def tags_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sealion_agents.testing.files import build_gguf

    path = tmp_path_factory.mktemp("reasoning-tags") / "reasoning-tags.gguf"
    return build_gguf(path, rules=tag_rules(), chat_template=TEMPLATES["writes"])


@pytest.fixture(scope="module")
def backends(tags_gguf: Path) -> Iterator[dict[str, LlamaCppBackend]]:
    made = {
        name: LlamaCppBackend(
            tags_gguf, chat_template=template, profile=PROFILE, **LLAMA_TEST_KWARGS
        )
        for name, template in TEMPLATES.items()
    }
    yield made
    for backend in made.values():
        backend.close()


@pytest.fixture(params=sorted(TEMPLATES))
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def llm(backends: dict[str, LlamaCppBackend], variant: str) -> ChatSeaLion:
    return ChatSeaLion(backend=backends[variant], temperature=0, max_tokens=120)


def split_of(message: AIMessage | AIMessageChunk) -> tuple[str, str]:
    assert isinstance(message.content, str)
    return message.additional_kwargs.get("reasoning_content", ""), message.content


def collect(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    return full


def assert_no_tag_text(chunks: list[AIMessageChunk]) -> None:
    for chunk in chunks:
        reasoning, content = split_of(chunk)
        for text in (reasoning, content):
            assert "<" not in text and ">" not in text and "reasoning" not in text, chunk


# -- the splitter, pure ---------------------------------------------------------------------

RAW = f"{TAGS.open}{TAG_REASONING}{TAGS.close}\n\n{TAG_ANSWER}"


def parse(pieces: list[str], *, in_reasoning: bool = False) -> tuple[str, str]:
    parser = ReasoningParser(in_reasoning=in_reasoning, tags=TAGS)
    splits = [parser.feed(piece) for piece in pieces] + [parser.finish()]
    return "".join(s.reasoning for s in splits), "".join(s.content for s in splits)


def test_custom_tags_split_across_every_chunk_boundary() -> None:
    expected = (TAG_REASONING, TAG_ANSWER)
    assert parse(list(RAW)) == expected  # one character at a time
    for cut in range(1, len(RAW)):
        assert parse([RAW[:cut], RAW[cut:]]) == expected, cut
    for a, b in itertools.combinations(range(1, len(RAW)), 2):
        if a <= len(TAGS.open) + 2 or b >= len(RAW) - len(TAG_ANSWER) - 2:  # cuts in the tags
            assert parse([RAW[:a], RAW[a:b], RAW[b:]]) == expected, (a, b)
    prefilled = RAW[len(TAGS.open) :]
    for cut in range(1, len(prefilled)):
        pieces = [prefilled[:cut], prefilled[cut:]]
        assert parse(pieces, in_reasoning=True) == expected, cut


def test_custom_tags_leave_other_tags_as_text() -> None:
    raw = f"<think>x</think>{TAGS.open}r{TAGS.close}a {TAGS.open}b"
    assert parse(list(raw)) == ("", raw)  # the answer began before the profile's tag
    raw = f"{TAGS.open}r <think>{TAGS.close}a </think>"
    assert parse(list(raw)) == ("r <think>", "a </think>")
    assert parse(list(f"{TAGS.open}cut short </reason")) == ("cut short </reason", "")
    assert parse(list("  <reason")) == ("", "<reason")  # a partial tag that never completes


def test_helpers_take_the_tags_and_default_to_think() -> None:
    text = f"{TAGS.open} r {TAGS.close}answer <think>t</think>"
    assert strip_reasoning(text, TAGS) == "answer <think>t</think>"
    assert reasoning_in(text, TAGS) == "r"
    assert strip_reasoning(text) == text.split("<think>")[0].strip()
    assert reasoning_in(text) == "t"


def test_tags_are_validated() -> None:
    assert ReasoningTags() == THINK_TAGS == ReasoningTags("<think>", "</think>")
    for tags, message in (
        (("", "</r>"), "opening reasoning tag '' must be non-empty"),
        (("<r>", "  "), "closing reasoning tag '  ' must be non-empty"),
        (("<r> ", "</r>"), "without surrounding whitespace"),
        (("<r>", "<r>"), "both '<r>'.*must differ"),
    ):
        with pytest.raises(ValueError, match=message):
            ReasoningTags(*tags)
    with pytest.raises(TypeError, match="reasoning_tags=.*ReasoningTags\\(open=..., close=...\\)"):
        ModelProfile(name="x", reasoning_tags=("<r>", "</r>"))  # type: ignore[arg-type]
    from sealion_agents.profiles import APERTUS_TAGS, GEMMA4_TAGS

    # the bases' templates name Gemma 4's channel and Apertus's inner section; the rest think
    assert {p.reasoning_tags for p in PROFILES.values()} == {THINK_TAGS, GEMMA4_TAGS, APERTUS_TAGS}


def test_the_whole_reply_grammar_reasons_up_to_the_profile_s_tag() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    default = answer_grammar(schema, after_reasoning=True, optional=True)
    assert default == answer_grammar(schema, after_reasoning=True, optional=True, tags=THINK_TAGS)
    assert '( "<think>"? reasoning "</think>"' in default
    custom = answer_grammar(schema, after_reasoning=True, optional=True, tags=TAGS)
    assert '( "<reasoning>"? reasoning "</reasoning>"' in custom and "think" not in custom
    assert '"/reasoning" [^><]' in custom  # the exit step: the tag's last character but one
    with pytest.raises(UnsupportedSchemaError, match="repeats its first character"):
        answer_grammar(
            schema, after_reasoning=True, optional=True, tags=ReasoningTags("<a>", "<a<")
        )


def test_a_server_stream_learns_the_prefill_from_the_profile_s_tags() -> None:
    def chunk(text: str) -> dict[str, Any]:
        return {"choices": [{"delta": {"content": text}}]}

    reader = ChunkReader(thinking=True, opens=None, continuing=False, tags=TAGS)
    assert reader.feed_chunk(chunk("Greet")) == []  # held: did the prompt open the reasoning?
    assert reader.feed_chunk(chunk(" </reason")) == []
    events = reader.feed_chunk(chunk("ing>\n\nHi"))
    assert reader.learned is True and events[0] == PromptInfo(0, opens_reasoning=True)
    reader = ChunkReader(thinking=True, opens=None, continuing=False, tags=TAGS)
    assert reader.feed_chunk(chunk("<reas")) == []
    assert reader.feed_chunk(chunk("oning>Greet"))[0] == PromptInfo(0, opens_reasoning=False)
    assert reader.learned is False


def test_a_budget_closes_with_the_profile_s_tag() -> None:
    decoder = TurnDecoder(model_name="m", max_thinking_tokens=6, reasoning_tags=TAGS)
    request = GenerationRequest(messages=[{"role": "user", "content": "hi"}])
    decoder.feed(PromptInfo(prompt_tokens=3))
    for piece in ["<", "reason", "ing", ">", "a", " b"]:  # the tag's four tokens count
        decoder.feed(TextDelta(piece))
    assert decoder.interrupted and decoder.reasoning_tokens == 6
    follow = decoder.next_request(request)
    assert follow is not None
    assert follow.assistant_prefix == "<reasoning>a b\n</reasoning>"


# -- llama.cpp in process --------------------------------------------------------------------


def test_invoke_and_stream_split_the_reasoning(llm: ChatSeaLion) -> None:
    assert split_of(llm.invoke(QUESTION)) == (TAG_REASONING, TAG_ANSWER)
    chunks = list(llm.stream(QUESTION))
    assert len(chunks) > 8  # token by token: the tags arrive in pieces
    assert_no_tag_text(chunks)
    assert split_of(collect(chunks)) == (TAG_REASONING, TAG_ANSWER)


async def test_astream_splits_the_reasoning(llm: ChatSeaLion) -> None:
    chunks = [chunk async for chunk in llm.astream(QUESTION)]
    assert_no_tag_text(chunks)
    assert split_of(collect(chunks)) == (TAG_REASONING, TAG_ANSWER)


def test_thinking_off_prefills_the_profile_s_empty_block(llm: ChatSeaLion) -> None:
    backend = llm.backend
    assert isinstance(backend, LlamaCppBackend)
    off = GenerationRequest(QUESTION_DICTS, GenerationOptions(thinking=False))
    assert backend.render(off).endswith(f"{TAGS.open}{TAGS.close}\n\n")
    reply = llm.invoke(QUESTION, thinking=False)
    assert split_of(reply) == ("", TAG_ANSWER)
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["output_token_details"] == {"reasoning": 0}


def test_usage_counts_every_token_of_the_tags(llm: ChatSeaLion, variant: str) -> None:
    reply = llm.invoke(QUESTION)
    opening = len(OPEN_IDS) if variant == "writes" else 0  # "prefilled": in the prompt
    reasoning = opening + len(REASONING_IDS) + len(CLOSE_IDS)
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["output_token_details"] == {"reasoning": reasoning}
    assert reply.usage_metadata["output_tokens"] == reasoning + len(ANSWER_IDS)


def test_a_thinking_budget_closes_with_the_profile_s_tag(llm: ChatSeaLion, variant: str) -> None:
    budget = 7
    opening = len(OPEN_IDS) if variant == "writes" else 0
    cut = str(hf_tokenizer().decode(REASONING_IDS[: budget - opening])).strip()
    reply = llm.invoke(QUESTION, max_thinking_tokens=budget)
    assert split_of(reply) == (cut, TAG_ANSWER)
    assert reply.response_metadata["thinking_budget_reached"] is True
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["output_token_details"] == {"reasoning": budget}
    chunks = list(llm.stream(QUESTION, max_thinking_tokens=budget))
    assert_no_tag_text(chunks)
    assert split_of(collect(chunks)) == (cut, TAG_ANSWER)


TRIP = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Bangkok", "Hanoi"]},
        "days": {"type": "integer", "minimum": 2, "maximum": 9},
    },
    "required": ["city", "days"],
}


@tool
def book_trip(city: str, days: int) -> str:
    """Book a trip to a city for some days."""
    return f"{city} for {days} days"


def test_structured_output_and_a_forced_call_after_the_profile_s_tag(llm: ChatSeaLion) -> None:
    raw = llm.with_structured_output(TRIP, include_raw=True).invoke(QUESTION)
    assert raw["parsing_error"] is None
    jsonschema.validate(raw["parsed"], TRIP)
    assert split_of(raw["raw"])[0] == TAG_REASONING
    assert "<" not in raw["raw"].content and "reasoning" not in raw["raw"].content
    reply = llm.bind_tools([book_trip], tool_choice="any").invoke(QUESTION)
    assert split_of(reply)[0] == TAG_REASONING
    assert [c["name"] for c in reply.tool_calls] == ["book_trip"]
    jsonschema.validate(reply.tool_calls[0]["args"], book_trip.tool_call_schema.model_json_schema())


def test_the_default_profile_cannot_read_these_tags(tags_gguf: Path) -> None:
    """The control: the same model under ``<think>`` leaks its tags into the answer."""
    think = dataclasses.replace(PROFILE, reasoning_tags=THINK_TAGS)
    backend = LlamaCppBackend(
        tags_gguf, chat_template=TEMPLATES["writes"], profile=think, **LLAMA_TEST_KWARGS
    )
    try:
        reply = ChatSeaLion(backend=backend, temperature=0).invoke(QUESTION)
        assert split_of(reply) == ("", RAW)
    finally:
        backend.close()


# -- llama-cpp-python's server: inline tags, the whole-reply grammar ----------------------------


@pytest.fixture(scope="module")
def tags_server(tags_gguf: Path) -> Iterator[Any]:
    from sealion_agents.testing.servers import llamacpp_server

    models = {"tags-on": (tags_gguf, "on"), "tags-off": (tags_gguf, "off")}
    server = llamacpp_server(models, name="reasoning-tags", api_key=LLAMACPP_TEST_KEY)
    try:
        server.start().wait(timeout=120)
        yield server
    finally:
        server.stop()


def test_a_server_s_inline_tags_are_read_with_the_profile(tags_server: Any) -> None:
    from sealion_agents.backends.openai import OpenAIBackend

    backend = OpenAIBackend(
        tags_server.base_url,
        model="tags-on",
        thinking_off_model="tags-off",
        api_key=LLAMACPP_TEST_KEY,
        profile=PROFILE,
    )
    llm = ChatSeaLion(backend=backend, temperature=0, max_tokens=120)
    try:
        chunks = list(llm.stream(QUESTION))
        assert_no_tag_text(chunks)
        assert split_of(collect(chunks)) == (TAG_REASONING, TAG_ANSWER)
        assert split_of(llm.invoke(QUESTION, thinking=False)) == ("", TAG_ANSWER)
        assert backend.constraint_support == "whole"  # one grammar: reasoning, then the call
        reply = llm.bind_tools([book_trip], tool_choice="any").invoke(QUESTION)
        assert split_of(reply)[0] == TAG_REASONING
        assert [c["name"] for c in reply.tool_calls] == ["book_trip"]
        schema = book_trip.tool_call_schema.model_json_schema()
        jsonschema.validate(reply.tool_calls[0]["args"], schema)
    finally:
        backend.close()


# -- vLLM in process ----------------------------------------------------------------------------


def test_vllm_reads_the_profile_s_tags(
    tmp_path_factory: pytest.TempPathFactory, more_vllm_engines: Any
) -> None:
    from sealion_agents.backends.vllm import VLLMBackend
    from sealion_agents.testing.files import save_hf_folder

    folder = tmp_path_factory.mktemp("reasoning-tags-hf") / "model"
    save_hf_folder(folder, rules=tag_rules(), chat_template=TEMPLATES["writes"])
    engine = more_vllm_engines(folder)
    for variant, template in TEMPLATES.items():
        backend = VLLMBackend(llm=engine, chat_template=template, profile=PROFILE)
        llm = ChatSeaLion(backend=backend, temperature=0, max_tokens=120)
        chunks = list(llm.stream(QUESTION))
        assert_no_tag_text(chunks)
        assert split_of(collect(chunks)) == (TAG_REASONING, TAG_ANSWER), variant
        batch = [llm.invoke(QUESTION, thinking=False), *llm.batch([QUESTION, QUESTION])]
        assert [split_of(m) for m in batch] == [
            ("", TAG_ANSWER),
            (TAG_REASONING, TAG_ANSWER),
            (TAG_REASONING, TAG_ANSWER),
        ], variant
        raw = llm.with_structured_output(TRIP, include_raw=True).invoke(QUESTION)
        jsonschema.validate(raw["parsed"], TRIP)
        assert split_of(raw["raw"])[0] == TAG_REASONING, variant


def test_earlier_turns_lose_or_keep_reasoning_by_the_profiles_tags() -> None:
    from langchain_core.messages import AIMessage

    from sealion_agents.messages import to_template_messages

    history = [*QUESTION, AIMessage(RAW), HumanMessage("And now?")]
    dropped = to_template_messages(history, PROFILE)
    assert dropped[1] == {"role": "assistant", "content": TAG_ANSWER}
    kept = to_template_messages(history, dataclasses.replace(PROFILE, keeps_reasoning=True))
    assert kept[1]["content"] == TAG_ANSWER and kept[1]["reasoning_content"] == TAG_REASONING
    think = to_template_messages(history, dataclasses.replace(PROFILE, reasoning_tags=THINK_TAGS))
    assert think[1]["content"] == RAW.strip()  # other tags are text to a <think> profile


@pytest.mark.parametrize("close", ["</think>", "<|inner_suffix|>", "<channel|>"])
def test_the_reasoning_grammar_excludes_exactly_the_closing_tag(close: str) -> None:
    """Reasoning built from pieces of the closing tag (up to four) is accepted before the tag
    exactly when it does not hold the tag: ``<<``, partial tags, a partial tag at its end."""
    import itertools

    import xgrammar

    from sealion_agents.grammars import answer_grammar
    from sealion_agents.reasoning import ReasoningTags

    tags = ReasoningTags(open="<r>", close=close)
    grammar = answer_grammar({"type": "object"}, after_reasoning=True, optional=False, tags=tags)
    compiled = xgrammar.Grammar.from_ebnf(grammar)
    pieces = [close[0], close[1], close[:-1], close[-1], "x", "\n"]
    checked = 0
    for size in range(5):
        for combination in itertools.product(pieces, repeat=size):
            reasoning = "".join(combination)
            text = f"<r>{reasoning}{close}{{}}"
            accepted = xgrammar.testing._is_grammar_accept_string(compiled, text)
            assert accepted == (close not in reasoning), repr(reasoning)
            checked += 1
    assert checked == 1555
