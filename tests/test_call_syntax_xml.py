"""The XML-style call syntax (Nemotron 3 Nano: SEA-LION v4.8): writing, finding, reading
and the grammar, parsed by llama.cpp and compiled and matched by xgrammar (vLLM's engine)."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from sealion_agents.call_syntax import ToolSpec
from sealion_agents.call_syntax.xml import XML_SYNTAX
from sealion_agents.errors import UnsupportedSchemaError

WEATHER: ToolSpec = (
    "get_weather",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "unit": {"$ref": "#/$defs/Unit"},
        },
        "required": ["city", "days"],
        "$defs": {"Unit": {"enum": ["celsius", "fahrenheit"], "type": "string"}},
    },
)
NOTE: ToolSpec = (
    "save_note",
    {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "pinned": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "place": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "at": {"type": "array", "items": {"type": "number"}},
                },
            },
            "expires": {"type": ["integer", "null"]},
        },
        "required": ["text"],
    },
)
TOOLS = [WEATHER, NOTE]

WEATHER_BODY = """<function=get_weather>
<parameter=city>
Bangkok
</parameter>
<parameter=days>
3
</parameter>
</function>"""


def _accepts(grammar: Any, text: str) -> bool:
    """Whether xgrammar's matcher accepts ``text`` as a whole string of the grammar."""
    import xgrammar

    return bool(xgrammar.testing._is_grammar_accept_string(grammar, text))


def _compiled(tools: list[ToolSpec]) -> Any:
    """The syntax's grammar, parsed by llama.cpp and compiled by xgrammar."""
    import xgrammar
    from llama_cpp import llama_grammar

    grammar = XML_SYNTAX.grammar(tools, parallel=False)
    assert llama_grammar.LlamaGrammar.from_string(grammar, verbose=False) is not None
    return xgrammar.Grammar.from_ebnf(grammar)


# -- writing and reading (pure logic) ----------------------------------------------------------


def test_writes_the_format_the_model_was_trained_on() -> None:
    bodies = XML_SYNTAX.write([("get_weather", {"city": "Bangkok", "days": 3})], "arguments")
    assert bodies == [WEATHER_BODY]
    assert XML_SYNTAX.parse(WEATHER_BODY, "arguments", TOOLS) == (
        {"name": "get_weather", "arguments": {"city": "Bangkok", "days": 3}},
        None,
    )
    several = XML_SYNTAX.write([("a", {}), ("b", {"x": [1, {"y": None}]})], "parameters")
    assert several == [
        "<function=a>\n</function>",
        '<function=b>\n<parameter=x>\n[1,{"y":null}]\n</parameter>\n</function>',
    ]


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("get_weather", {"city": "Bangkok", "days": 3}),
        ("get_weather", {"city": "กรุงเทพมหานคร", "days": -2, "unit": "celsius"}),
        ("get_weather", {"city": "Hà Nội\nViệt Nam\n", "days": 0}),
        ("get_weather", {"city": "\nleading and trailing newlines\n\n", "days": 1}),
        ("get_weather", {"city": "", "days": 7}),
        ("get_weather", {"city": "not <parameter=x>, </function> nor </function", "days": 1}),
        ("get_weather", {"city": "3", "days": 3}),
        ("save_note", {"text": "true"}),
        ("save_note", {"text": "null", "pinned": False, "expires": None}),
        ("save_note", {"text": "ok", "tags": ["a", "ข", "</parameter>"], "expires": 5}),
        ("save_note", {"text": "x", "place": {"name": "Merlion", "at": [1.2868, 103.8545]}}),
        ("save_note", {"text": '{"looks": "like JSON"}', "pinned": True}),
    ],
)
def test_a_written_call_reads_back_the_same(name: str, arguments: dict[str, Any]) -> None:
    """write -> end -> parse gives the call back; strings stay text by their schema."""
    [body] = XML_SYNTAX.write([(name, arguments)], "arguments")
    assert XML_SYNTAX.end(body + "\n</tool_call> and more text") == len(body)
    assert all(XML_SYNTAX.end(body[:cut]) is None for cut in range(len(body)))
    value, error = XML_SYNTAX.parse(body, "arguments", TOOLS)
    assert error is None
    assert value == {"name": name, "arguments": arguments}


def test_a_value_that_is_not_json_reaches_the_schema_check_as_text() -> None:
    body = WEATHER_BODY.replace("\n3\n", "\nforty-two\n")
    value, error = XML_SYNTAX.parse(body, "arguments", TOOLS)
    assert error is None and value["arguments"] == {"city": "Bangkok", "days": "forty-two"}
    unknown = "<function=get_time>\n<parameter=zone>\n7\n</parameter>\n</function>"
    assert XML_SYNTAX.parse(unknown, "k", TOOLS) == ({"name": "get_time", "k": {"zone": 7}}, None)
    # a string-only parameter keeps JSON-looking text as it is
    body = WEATHER_BODY.replace("\nBangkok\n", "\n42\n")
    assert XML_SYNTAX.parse(body, "arguments", TOOLS)[0]["arguments"]["city"] == "42"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"name": "get_weather"}', "does not open with <function="),
        ("<function=get_weather", "does not close its <function="),
        ("<function=get_weather>\n<parameter=city>\nBangkok\n</function>", "'city' unclosed"),
        (
            "<function=get_weather>\n<parameter=city>\nA\n</parameter>\n"
            "<parameter=city>\nB\n</parameter>\n</function>",
            "gives the parameter 'city' twice",
        ),
        ("<function=get_weather>\ncity: Bangkok\n</function>", "has text outside"),
        ("<function=get_weather>\n<parameter=city>\nA\n</parameter>\n", "does not end with"),
        (WEATHER_BODY + "\nmore", "has text after </function>"),
    ],
)
def test_a_malformed_body_says_why(text: str, why: str) -> None:
    value, error = XML_SYNTAX.parse(text, "arguments", TOOLS)
    assert value is None and error is not None and why in error, error


def test_end_skips_a_closing_tag_inside_a_value() -> None:
    body = "<function=f>\n<parameter=s>\na </function> b\n</parameter>\n</function>"
    assert XML_SYNTAX.end(body + " tail") == len(body)
    assert XML_SYNTAX.end("<function=f>\n<parameter=s>\na </function> b") is None
    assert XML_SYNTAX.end("no call </function> here") == len("no call </function>")


# -- the grammar on the real engines -----------------------------------------------------------


def test_the_grammar_accepts_right_calls() -> None:
    compiled = _compiled(TOOLS)
    right = [
        WEATHER_BODY,
        WEATHER_BODY.replace(
            "</function>", "<parameter=unit>\nfahrenheit\n</parameter>\n</function>"
        ),
        "<function=get_weather>\n<parameter=city>\nกรุงเทพฯ\nline two <parameter=x> </function\n"
        "</parameter>\n<parameter=days>\n-1\n</parameter>\n</function>",
        "<function=save_note>\n<parameter=text>\n\n</parameter>\n</function>",
        "<function=save_note>\n<parameter=text>\nhi\n</parameter>\n<parameter=pinned>\ntrue\n"
        '</parameter>\n<parameter=tags>\n["a","b"]\n</parameter>\n<parameter=place>\n'
        '{"name":"x","at":[1.5,2]}\n</parameter>\n<parameter=expires>\nnull\n</parameter>\n'
        "</function>",
    ]
    for text in right:
        assert _accepts(compiled, text), text
    for name, arguments in [
        ("get_weather", {"city": "Huế\n<b>", "days": 12, "unit": "celsius"}),
        ("save_note", {"text": "t", "tags": [], "place": {"at": [0.5]}, "expires": 3}),
    ]:
        [body] = XML_SYNTAX.write([(name, arguments)], "arguments")
        assert _accepts(compiled, body), body


@pytest.mark.parametrize(
    "wrong",
    [
        WEATHER_BODY.replace("\n3\n", "\nthree\n"),  # wrong value type
        WEATHER_BODY.replace("\n3\n", '\n"3"\n'),
        WEATHER_BODY.replace("<parameter=days>\n3\n</parameter>\n", ""),  # missing required
        "<function=get_weather>\n<parameter=days>\n3\n</parameter>\n<parameter=city>\n"
        "Bangkok\n</parameter>\n</function>",  # wrong order
        WEATHER_BODY.replace("</function>", "<parameter=wind>\n1\n</parameter>\n</function>"),
        WEATHER_BODY.replace("Bangkok", "Bang</parameter>kok"),  # the closing tag in a string
        WEATHER_BODY.replace("</function>", "<parameter=unit>\nkelvin\n</parameter>\n</function>"),
        WEATHER_BODY.replace("<function=get_weather>", "<function=get_time>"),  # unknown tool
        WEATHER_BODY.removesuffix("</function>"),
        WEATHER_BODY.replace("Bangkok\n</parameter>", "Bangkok</parameter>"),
        "<function=save_note>\n<parameter=text>\nx\n</parameter>\n<parameter=tags>\n"
        '["a\nb"]\n</parameter>\n</function>',  # a raw newline inside a JSON string
    ],
)
def test_the_grammar_refuses_wrong_calls(wrong: str) -> None:
    assert not _accepts(_compiled(TOOLS), wrong)


def test_the_raw_text_rule_excludes_exactly_the_closing_tag() -> None:
    """Every value built from pieces of ``</parameter>`` (up to four pieces) is accepted
    exactly when it does not hold the closing tag: partial tags, ``<<``, a partial tag at the
    end of the value."""
    compiled = _compiled([("f", {"type": "object", "properties": {"s": {"type": "string"}}})])
    pieces = ["<", "/", "</paramete", "r", ">", "x", "\n"]
    checked = 0
    for size in range(5):
        for combination in itertools.product(pieces, repeat=size):
            value = "".join(combination)
            body = f"<function=f>\n<parameter=s>\n{value}\n</parameter>\n</function>"
            assert _accepts(compiled, body) == ("</parameter>" not in value), repr(value)
            checked += 1
    assert checked == 2801
    assert _accepts(compiled, "<function=f>\n</function>")  # every parameter optional


def test_names_a_tag_cannot_hold_are_refused_clearly() -> None:
    for key in ("a>b", "two\nlines"):
        tool = ("f", {"type": "object", "properties": {key: {"type": "string"}}})
        expected = re.escape(f"parameter {key!r}") + ".*rename it"
        with pytest.raises(UnsupportedSchemaError, match=expected):
            XML_SYNTAX.grammar([tool], parallel=False)
    with pytest.raises(UnsupportedSchemaError, match="tool name 'f>g'.*rename the tool"):
        XML_SYNTAX.grammar([("f>g", {"type": "object", "properties": {}})], parallel=False)


# -- through AnswerPlan ------------------------------------------------------------------------


def test_answer_plan_reads_a_right_call_and_reports_a_wrong_value() -> None:
    from sealion_agents.tool_calls import AnswerPlan
    from sealion_agents.tool_formats import XML_CALLS

    xml_calls = XML_CALLS
    specs = [{"name": name, "description": "A tool.", "parameters": p} for name, p in TOOLS]
    plan = AnswerPlan.for_tools(specs, "any", tool_format=xml_calls)
    assert plan is not None and plan.grammar is not None
    assert '"<function=get_weather>\\n" "<parameter=city>\\n" xml-text' in plan.grammar
    args = {"city": "Bangkok", "days": 3, "unit": "celsius"}
    text = xml_calls.format_calls([{"name": "get_weather", "args": args}])
    assert text.startswith("<tool_call>\n<function=get_weather>\n<parameter=city>\nBangkok\n")
    calls, invalid = plan.read(text + "\nanything after the call")
    assert [(c["name"], c["args"]) for c in calls] == [("get_weather", args)] and not invalid
    wrong = text.replace("\n3\n", "\nforty-two\n")
    calls, invalid = plan.read(wrong)
    assert not calls and invalid[0]["name"] == "get_weather"
    assert "arguments/days" in invalid[0]["error"] and "forty-two" in invalid[0]["error"]
    calls, invalid = plan.read(wrong.replace("forty-two", "4").replace("celsius", "kelvin"))
    assert not calls and "arguments/unit" in invalid[0]["error"]
    calls, invalid = plan.read("<tool_call>\n<function=get_weather>\n<parameter=city>\nX")
    assert not calls and "'city' unclosed" in invalid[0]["error"]
