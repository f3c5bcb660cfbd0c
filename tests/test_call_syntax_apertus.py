"""Apertus's calls, ``[{"<tool name>": {<arguments>}}]``: written, read back, constrained.

The grammar is checked where it runs: parsed by llama.cpp, compiled and matched by xgrammar
(vLLM's engine), and decoded by llama.cpp with a model that has no preference among the
tokens it allows, so only the grammar decides what is written.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from sealion_agents import testing as tiny_models
from sealion_agents.call_syntax.apertus import APERTUS_SYNTAX
from sealion_agents.tool_calls import AnswerPlan
from sealion_agents.tool_formats import APERTUS_CALLS as APERTUS
from tests.conftest import LLAMA_TEST_KWARGS

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer", "minimum": 1, "maximum": 5},
    },
    "required": ["city"],
}
TRIP = {  # a Pydantic-style schema: a nested model under $defs
    "type": "object",
    "properties": {
        "city": {"enum": ["Bangkok", "Hanoi"]},
        "urgent": {"type": "boolean"},
        "traveller": {"$ref": "#/$defs/Traveller"},
    },
    "required": ["city", "urgent"],
    "$defs": {
        "Traveller": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "adult": {"type": "boolean"}},
            "required": ["name"],
        }
    },
}
TOOLS = [("get_weather", WEATHER), ("book_trip", TRIP)]
SPECS = [{"name": name, "description": "A tool.", "parameters": p} for name, p in TOOLS]


def _accepts(grammar: Any, text: str) -> bool:
    """Whether xgrammar's matcher accepts ``text`` as a whole string of the grammar."""
    import xgrammar

    return bool(xgrammar.testing._is_grammar_accept_string(grammar, text))


@pytest.mark.parametrize(
    "calls",
    [
        [("get_weather", {"city": "กรุงเทพมหานคร", "days": 3})],
        [("book_trip", {"city": "Hanoi", "urgent": True, "traveller": {"name": "Ánh"}})],
        [("get_weather", {"city": "Bangkok"}), ("book_trip", {"city": "Hanoi", "urgent": False})],
    ],
    ids=["thai", "nested", "two-calls"],
)
def test_calls_round_trip(calls: list[tuple[str, dict[str, Any]]]) -> None:
    """All calls become one body, which reads back as the canonical calls."""
    bodies = APERTUS_SYNTAX.write(calls, "arguments")
    assert len(bodies) == 1
    body = bodies[0]
    assert json.loads(body) == [{name: args} for name, args in calls]
    assert APERTUS_SYNTAX.end(body + "<|tools_suffix|>\nThe answer") == len(body)
    value, error = APERTUS_SYNTAX.parse(body, "arguments", TOOLS)
    canonical = [{"name": name, "arguments": args} for name, args in calls]
    assert error is None
    assert value == (canonical[0] if len(calls) == 1 else canonical)


def test_a_call_is_written_as_apertus_writes_it() -> None:
    """The format's own example: default JSON separators, text kept as it is."""
    assert APERTUS_SYNTAX.write([("get_weather", {"city": "Bangkok"})], "arguments") == [
        '[{"get_weather": {"city": "Bangkok"}}]'
    ]
    assert APERTUS_SYNTAX.write([("get_weather", {"city": "ฮานอย"})], "arguments") == [
        '[{"get_weather": {"city": "ฮานอย"}}]'
    ]
    assert APERTUS.format_calls([{"name": "get_weather", "args": {"city": "Bangkok"}}]) == (
        '<|tools_prefix|>[{"get_weather": {"city": "Bangkok"}}]<|tools_suffix|>'
    )
    assert APERTUS_SYNTAX.end('[{"a": {"b": "]"}}') is None  # not complete yet


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ('[{"get_weather": {"city": "Bangkok"}', "is not valid JSON"),
        ('{"get_weather": {"city": "Bangkok"}}', "is a JSON object, not a JSON list of calls"),
        ('{"name": "get_weather", "arguments": {}}', "is a JSON object, not a JSON list"),
        ("[]", "is an empty list"),
        ("[{}]", "item 0 with 0 keys"),
        ('[{"get_weather": {}}, {"a": {}, "b": {}}]', "item 1 with 2 keys"),
        ('["get_weather"]', "item 0 with string"),
        ('[{"get_weather": "Bangkok"}]', "'get_weather' arguments that are a JSON string"),
        ('[{"get_weather": null}]', "arguments that are a JSON null"),
        ('[{"get_weather": [1]}]', "arguments that are a JSON list"),
        ("[" * 100_000, "is not valid JSON"),  # too deep for json: no RecursionError
    ],
)
def test_a_malformed_body_is_refused_with_the_reason(body: str, why: str) -> None:
    value, error = APERTUS_SYNTAX.parse(body, "arguments", TOOLS)
    assert value is None
    assert error is not None and why in error, error


def test_the_grammar_allows_right_bodies_and_refuses_wrong_ones() -> None:
    """Parsed by llama.cpp and compiled by xgrammar; one call unless parallel."""
    import xgrammar
    from llama_cpp import llama_grammar

    single = APERTUS_SYNTAX.grammar(TOOLS, parallel=False)
    several = APERTUS_SYNTAX.grammar(TOOLS, parallel=True)
    for text in (single, several):
        assert llama_grammar.LlamaGrammar.from_string(text, verbose=False) is not None
    one, many = xgrammar.Grammar.from_ebnf(single), xgrammar.Grammar.from_ebnf(several)

    right = [
        '[{"get_weather": {"city": "Bangkok"}}]',
        '[{"get_weather":{"city":"กรุงเทพฯ","days":5}}]',
        '[{"book_trip": {"city": "Hanoi", "urgent": true, "traveller": {"name": "Ánh"}}}]',
    ]
    two = (
        '[{"get_weather": {"city": "Bangkok"}}, {"book_trip": {"city": "Hanoi", "urgent": false}}]'
    )
    for text in right:
        assert _accepts(one, text), text
        assert _accepts(many, text), text
    assert _accepts(many, two)
    assert not _accepts(one, two)  # two calls where only one is allowed

    wrong = [
        '[{"get_weather": {"city": 42}}]',  # a wrong value type
        '[{"get_weather": {"city": "Bangkok", "days": 9}}]',  # out of the integer range
        '[{"book_trip": {"city": "Paris", "urgent": true}}]',  # not in the enum
        '[{"book_trip": {"city": "Hanoi"}}]',  # a required argument missing
        '[{"get_weather": {"city": "Bangkok", "when": "now"}}]',  # an undeclared argument
        '[{"book_trip": {"city": "Hanoi", "urgent": true, "traveller": {"age": 3}}}]',
        '[{"get_time": {}}]',  # an unknown tool
        '[{"get_weather": {"city": "Bangkok"}, "book_trip": {}}]',  # two keys in one item
        '{"get_weather": {"city": "Bangkok"}}',  # not a list
        '[{"name": "get_weather", "arguments": {"city": "Bangkok"}}]',  # another format
        "[]",  # an empty list
        '[{"get_weather": {"city": "Bang\nkok"}}]',  # a raw control character in a string
    ]
    for text in wrong:
        assert not _accepts(one, text), text
        assert not _accepts(many, text), text


def test_the_plan_reads_apertus_calls() -> None:
    """Through ``AnswerPlan``: the body's grammar, two calls read, wrong values invalid."""
    plan = AnswerPlan.for_tools(SPECS, "any", parallel=True, tool_format=APERTUS)
    assert plan is not None and plan.parallel
    assert plan.grammar == APERTUS_SYNTAX.grammar(TOOLS, parallel=True)

    answer = (
        '<|tools_prefix|>[{"get_weather": {"city": "เชียงใหม่"}}, '
        '{"book_trip": {"city": "Hanoi", "urgent": true}}]<|tools_suffix|>'
    )
    calls, invalid = plan.read(answer)
    assert not invalid, invalid
    assert [(c["name"], c["args"]) for c in calls] == [
        ("get_weather", {"city": "เชียงใหม่"}),
        ("book_trip", {"city": "Hanoi", "urgent": True}),
    ]
    assert len({c["id"] for c in calls}) == 2

    calls, invalid = plan.read('<|tools_prefix|>[{"get_weather": {"city": 42}}]<|tools_suffix|>')
    assert not calls
    assert invalid[0]["name"] == "get_weather"
    assert "breaks the schema" in str(invalid[0]["error"]), invalid

    calls, invalid = plan.read('<|tools_prefix|>[{"get_time": {}}]')
    assert not calls and invalid[0]["name"] == "get_time", invalid

    calls, invalid = plan.read('<|tools_prefix|>{"get_weather": {"city": "Bangkok"}}')
    assert not calls and "is a JSON object, not a JSON list" in str(invalid[0]["error"])

    single = AnswerPlan.for_tools(SPECS, "book_trip", parallel=False, tool_format=APERTUS)
    assert single is not None and single.grammar == APERTUS_SYNTAX.grammar(
        [("book_trip", TRIP)], parallel=False
    )
    calls, invalid = single.read(answer)  # two calls where one is allowed
    assert not calls and invalid, invalid

    earlier = [{"name": "get_weather", "args": {"city": "ดานัง"}}]
    calls, invalid = plan.read(APERTUS.format_calls(earlier))  # what it wrote, read back
    assert not invalid and [(c["name"], c["args"]) for c in calls] == [
        ("get_weather", {"city": "ดานัง"})
    ]


BOUNDED = {  # every value bounded, strings too: one call is a finite language
    "type": "object",
    "properties": {
        "city": {"enum": ["Bangkok", "Hanoi"]},
        "urgent": {"type": "boolean"},
        "note": {"type": "string", "maxLength": 4},
        "days": {"type": "integer", "minimum": 1, "maximum": 3},
    },
    "required": ["city", "urgent", "note"],
}
VISA = {
    "type": "object",
    "properties": {"country": {"enum": ["TH", "VN"]}},
    "required": ["country"],
}
NO_PREFERENCE_SPECS = [
    {"name": "book_trip", "description": "Book a trip.", "parameters": BOUNDED},
    {"name": "check_visa", "description": "Visa rules.", "parameters": VISA},
]


def test_llamacpp_with_no_preference_writes_what_the_plan_reads() -> None:
    """Decoded by llama.cpp under the plan's grammar from a model whose every token is
    equally likely (greedy: the lowest allowed token id; sampled: uniform over the allowed
    tokens), every complete body reads back as calls the schema accepts.

    One call with bounded values is a finite language, so each reply ends within
    ``max_tokens``; a list of several calls may run to the limit, but what completes must
    be valid (with these seeds some replies hold two calls or more).
    """
    from llama_cpp import Llama, LlamaGrammar

    settings: dict[str, Any] = dict(LLAMA_TEST_KWARGS)
    llama = Llama(
        model_path=str(tiny_models.tiny_no_preference_gguf()), n_ctx=512, verbose=False, **settings
    )
    single = AnswerPlan.for_tools(NO_PREFERENCE_SPECS, "any", parallel=False, tool_format=APERTUS)
    several = AnswerPlan.for_tools(NO_PREFERENCE_SPECS, "any", parallel=True, tool_format=APERTUS)
    assert single is not None and several is not None

    def decode(plan: AnswerPlan, temperature: float, seed: int) -> str:
        assert plan.grammar is not None
        out = llama.create_completion(
            [tiny_models.BOS_ID],
            max_tokens=120,  # one call is 115 bytes at most, and a token is a byte or more
            temperature=temperature,
            top_k=0,
            top_p=1.0,
            min_p=0.0,
            seed=seed,
            grammar=LlamaGrammar.from_string(plan.grammar, verbose=False),
        )
        return str(out["choices"][0]["text"])  # type: ignore[index]

    def read(plan: AnswerPlan, text: str) -> list[Any]:
        end = APERTUS_SYNTAX.end(text)
        assert end is not None, text
        assert text[end:].strip() == "", text  # at most the grammar's space after it
        assert APERTUS_SYNTAX.parse(text[:end], "arguments")[1] is None, text
        calls, invalid = plan.read(APERTUS.opener + text + APERTUS.closer)
        assert not invalid and calls, (text, invalid)
        for call in calls:
            schema = BOUNDED if call["name"] == "book_trip" else VISA
            jsonschema.validate(call["args"], schema)
        return calls

    try:
        for temperature, seed in [(0.0, 0), (1.0, 1), (1.0, 2)]:
            assert len(read(single, decode(single, temperature, seed))) == 1
        counts = []
        for seed in (3, 4):
            text = decode(several, 1.0, seed)
            if APERTUS_SYNTAX.end(text) is not None:  # else it ran to max_tokens
                counts.append(len(read(several, text)))
        assert counts and max(counts) >= 2, counts
    finally:
        llama.close()
