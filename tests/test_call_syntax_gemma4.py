"""Gemma 4's call syntax: written as its chat template renders a call, read back, found in a
stream, and constrained by a grammar that llama.cpp parses and xgrammar (vLLM's engine)
compiles."""

from __future__ import annotations

from typing import Any

import pytest
import xgrammar
from llama_cpp import llama_grammar
from pydantic import BaseModel

from sealion_agents.call_syntax.gemma4 import GEMMA4_SYNTAX, QUOTE
from sealion_agents.errors import UnsupportedSchemaError
from sealion_agents.tool_calls import AnswerPlan, tool_specs
from sealion_agents.tool_formats import GEMMA4_CALLS

Q = QUOTE

WEATHER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "days": {"type": "integer"},
        "city": {"type": "string"},
        "units": {"enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city"],
}

BOOKING: dict[str, Any] = {
    "type": "object",
    "properties": {  # schema order differs from the sorted (case-insensitive) one
        "zone": {"type": "string"},
        "Guests": {"type": "array", "items": {"type": "string"}},
        "address": {
            "type": "object",
            "properties": {"street": {"type": "string"}, "Floor": {"type": "integer"}},
            "required": ["street"],
        },
        "late": {"type": "boolean"},
        "budget": {"type": "number"},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["zone", "late"],
}


def _grammar(tools: list[tuple[str, dict[str, Any]]]) -> Any:
    """The syntax's grammar: parsed by llama.cpp, compiled by xgrammar."""
    text = GEMMA4_SYNTAX.grammar(tools, parallel=False)
    assert llama_grammar.LlamaGrammar.from_string(text, verbose=False) is not None
    return xgrammar.Grammar.from_ebnf(text)


def _accepts(grammar: Any, text: str) -> bool:
    """Whether xgrammar's matcher accepts ``text`` as a whole string of the grammar."""
    return bool(xgrammar.testing._is_grammar_accept_string(grammar, text))


ROUND_TRIPS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("get_weather", WEATHER, {"city": "กรุงเทพมหานคร", "days": 3}),
    ("get_weather", WEATHER, {"city": "Thành phố Hồ Chí Minh", "units": "celsius"}),
    ("get_weather", WEATHER, {"city": 'a {b}, c:d\nline two [x] < | > <| <<|"|'}),
    ("get_weather", WEATHER, {"city": "", "days": -12}),
    (
        "book",
        BOOKING,
        {
            "zone": "Đà Nẵng",
            "late": False,
            "Guests": ["Ana", "สมชาย", "x,y"],
            "address": {"street": "ถนน {1}: สุขุมวิท", "Floor": 7},
            "budget": 1250.75,
            "note": None,
        },
    ),
    ("book", BOOKING, {"late": True, "zone": "z", "budget": 1e-07, "Guests": []}),
    ("book", BOOKING, {"zone": "z", "late": True, "address": {"street": "s"}, "note": "n"}),
]


@pytest.mark.parametrize(("name", "schema", "arguments"), ROUND_TRIPS)
def test_a_written_call_reads_back_and_the_grammar_accepts_it(
    name: str, schema: dict[str, Any], arguments: dict[str, Any]
) -> None:
    (body,) = GEMMA4_SYNTAX.write([(name, arguments)], "parameters")
    value, error = GEMMA4_SYNTAX.parse(body, "parameters")
    assert error is None, (body, error)
    assert value == {"name": name, "parameters": arguments}
    assert GEMMA4_SYNTAX.end(body + "<tool_call|>") == len(body)
    assert _accepts(_grammar([("get_weather", WEATHER), ("book", BOOKING)]), body), body


def test_write_renders_as_the_template() -> None:
    """Expected strings built by hand from gemma4.jinja: ``call:`` name ``{``, arguments by
    ``dictsort`` (case-insensitive), keys bare (escape_keys=False), strings between
    ``<|"|>`` unescaped, booleans lower case, lists and mappings without spaces, anything
    else printed by Jinja (3, 12.5, None)."""
    bodies = GEMMA4_SYNTAX.write(
        [
            ("get_weather", {"days": 3, "city": "Bangkok"}),
            (
                "book",
                {
                    "when": {"day": 5, "Month": "May"},
                    "guests": ["Ana", "Bo"],
                    "late": False,
                    "note": None,
                    "Budget": 12.5,
                },
            ),
            ("search", {"query": "ต้มยำ {กุ้ง}, a:b\nc"}),
        ],
        "parameters",
    )
    assert bodies == [
        'call:get_weather{city:<|"|>Bangkok<|"|>,days:3}',
        'call:book{Budget:12.5,guests:[<|"|>Ana<|"|>,<|"|>Bo<|"|>],late:false,note:None,'
        'when:{day:5,Month:<|"|>May<|"|>}}',
        'call:search{query:<|"|>ต้มยำ {กุ้ง}, a:b\nc<|"|>}',
    ]
    gemma = GEMMA4_CALLS
    assert (
        gemma.format_calls([{"name": "get_weather", "args": {"city": "Bangkok", "days": 3}}])
        == '<|tool_call>call:get_weather{city:<|"|>Bangkok<|"|>,days:3}<tool_call|>'
    )


def test_parse_reads_null_and_tolerates_spaces_between_tokens() -> None:
    value, error = GEMMA4_SYNTAX.parse(
        f" call:f{{ a : null , b:[ 1 , 2.5e3 ] ,{Q}c{Q}:{{}} }} ", "arguments"
    )
    assert error is None
    assert value == {"name": "f", "arguments": {"a": None, "b": [1, 2500.0], "c": {}}}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"name": "f", "parameters": {}}', "does not begin with 'call:'"),
        ("call:{a:1}", "no tool name"),
        ("call:f", "no tool name"),
        (f"call:f{{a:{Q}open}}", "not closed"),
        ("call:f{a:Bangkok}", "bare value 'Bangkok'"),
        ("call:f{a:1 b:2}", "not separated by ','"),
        ("call:f{a:1}}", "text after the call"),
        ("call:f{a:1,a:2}", "repeats the key 'a'"),
        ("call:f{a:}", "without a value"),
        ("call:f{a:1,}", "key without ':'"),
        ("call:f{a:[1 2]}", "not separated by ','"),
        ("call:f{a:1", "ends before its closing bracket"),
        ("call:f{a:[1,", "ends before its closing bracket"),
        ("call:f{a:" + "[" * 5000, "nested too deeply"),
    ],
)
def test_parse_names_what_is_wrong(text: str, why: str) -> None:
    value, error = GEMMA4_SYNTAX.parse(text, "parameters")
    assert value is None and error is not None and why in error, error


def test_end_waits_for_the_closing_brace_outside_strings() -> None:
    body = f"call:f{{a:{Q}}} {{ }}{Q},b:{{c:[1]}}}}"
    assert GEMMA4_SYNTAX.end(body + "<tool_call|>tail") == len(body)
    for cut in range(len(body)):
        assert GEMMA4_SYNTAX.end(body[:cut]) is None, body[:cut]


def test_the_grammar_accepts_right_calls_and_refuses_wrong_ones() -> None:
    grammar = _grammar([("get_weather", WEATHER), ("book", BOOKING)])
    right = [
        f"call:get_weather{{city:{Q}Bangkok{Q},days:3}}",
        f"call:get_weather{{city:{Q}Hà Nội{Q}}}",
        f"call:get_weather{{city:{Q}x{Q},units:{Q}fahrenheit{Q}}}",
        f"call:book{{late:true,zone:{Q}z{Q}}}",
        f"call:book{{address:{{Floor:2,street:{Q}s{Q}}},late:false,note:None,zone:{Q}z{Q}}}",
    ]
    for text in right:
        assert _accepts(grammar, text), text
    wrong = {
        "wrong value type": f"call:get_weather{{city:{Q}x{Q},days:{Q}3{Q}}}",
        "a number for an integer": f"call:get_weather{{city:{Q}x{Q},days:3.5}}",
        "a bare string": "call:get_weather{city:Bangkok}",
        "not in the enum": f"call:get_weather{{city:{Q}x{Q},units:{Q}kelvin{Q}}}",
        "missing required key": "call:get_weather{days:3}",
        "nested required key missing": f"call:book{{address:{{Floor:2}},late:true,zone:{Q}z{Q}}}",
        "unsorted keys": f"call:get_weather{{days:3,city:{Q}x{Q}}}",
        "unsorted nested keys": (
            f"call:book{{address:{{street:{Q}s{Q},Floor:2}},late:true,zone:{Q}z{Q}}}"
        ),
        "unknown key": f"call:get_weather{{city:{Q}x{Q},country:{Q}TH{Q}}}",
        "unknown tool": f"call:get_time{{city:{Q}x{Q}}}",
        "string holding the quote token": f"call:get_weather{{city:{Q}a{Q}b{Q}}}",
        "a space": f"call:get_weather{{city: {Q}x{Q}}}",
        "a trailing comma": f"call:get_weather{{city:{Q}x{Q},}}",
        "JSON null": f"call:book{{late:true,note:null,zone:{Q}z{Q}}}",
    }
    for why, text in wrong.items():
        assert not _accepts(grammar, text), why


def test_the_grammar_follows_references_and_free_mappings() -> None:
    """A Pydantic model's schema (``$defs``, a recursive model) and a free mapping."""

    class Street(BaseModel):
        name: str
        number: int | None = None

    class Folder(BaseModel):
        title: str
        children: list[Folder] = []

    class Order(BaseModel):
        street: Street
        tree: Folder
        extras: dict[str, int] = {}

    schema = Order.model_json_schema()
    assert "$defs" in schema
    grammar = _grammar([("Order", schema)])
    street = f"street:{{name:{Q}Jalan{Q},number:None}}"
    tree = f"tree:{{children:[{{children:[],title:{Q}b{Q}}}],title:{Q}a{Q}}}"
    assert _accepts(grammar, f"call:Order{{extras:{{a_b:1,c:2}},{street},{tree}}}")
    assert _accepts(grammar, f"call:Order{{{street},{tree}}}")
    assert not _accepts(grammar, f"call:Order{{extras:{{a:{Q}1{Q}}},{street},{tree}}}")
    assert not _accepts(grammar, f"call:Order{{{street},tree:{{children:[{{}}],title:{Q}a{Q}}}}}")


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"first name": {"type": "string"}}, "'first name'.*bare key.*rename it"),
        ({"a": {"type": "object", "properties": {"b:c": {}}}}, "'a.b:c'.*bare key"),
        ({"mode": {"enum": [f"a{Q}b"]}}, "'mode'.*quote mark"),
        ({"pair": {"type": "array", "prefixItems": [{}, {}]}}, "'pair'.*tuple"),
        ({"both": {"allOf": [{"type": "string"}, {"minLength": 1}]}}, "'both'.*allOf"),
        ({"x": {"type": "date"}}, "'x'.*'date'"),
    ],
)
def test_what_the_grammar_cannot_write_is_refused_with_the_way_out(
    properties: dict[str, Any], message: str
) -> None:
    schema = {"type": "object", "properties": properties}
    with pytest.raises(UnsupportedSchemaError, match=message) as caught:
        GEMMA4_SYNTAX.grammar([("tool", schema)], parallel=False)
    assert "a profile whose calls are JSON" in str(caught.value)
    with pytest.raises(UnsupportedSchemaError, match="'get weather'.*rename the tool"):
        GEMMA4_SYNTAX.grammar([("get weather", WEATHER)], parallel=False)


def test_an_answer_plan_reads_a_gemma4_call() -> None:
    """Through ``AnswerPlan``: the grammar is the syntax's, a right body is a ToolCall and a
    wrong value an invalid_tool_call that names the tool and the schema's complaint."""

    def get_weather(city: str, days: int = 1) -> str:
        """The weather forecast for a city."""
        return ""

    gemma = GEMMA4_CALLS
    specs = tool_specs([get_weather])
    plan = AnswerPlan.for_tools(specs, "any", tool_format=gemma)
    assert plan is not None and plan.grammar is not None
    assert plan.grammar.startswith('root ::= g4-call0\ng4-call0 ::= "call:get_weather" "{"')

    calls, invalid = plan.read(f"<|tool_call>call:get_weather{{city:{Q}Huế{Q},days:2}}<tool_call|>")
    assert not invalid
    assert [(c["name"], c["args"]) for c in calls] == [("get_weather", {"city": "Huế", "days": 2})]

    calls, invalid = plan.read(f"<|tool_call>call:get_weather{{city:{Q}Huế{Q},days:{Q}2{Q}}}")
    assert not calls and len(invalid) == 1
    assert invalid[0]["name"] == "get_weather"
    assert "breaks the schema at parameters/days" in str(invalid[0]["error"])

    calls, invalid = plan.read("<|tool_call>call:get_weather{city:Huế}<tool_call|>")
    assert not calls and "bare value 'Huế'" in str(invalid[0]["error"])
