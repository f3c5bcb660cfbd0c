"""Pure logic of constraints and tool-call plans (no model)."""

from __future__ import annotations

import pytest

from sealion_agents.errors import UnsupportedSchemaError
from sealion_agents.grammars import _enumerate_ranges, answer_grammar, schema_grammar
from sealion_agents.json_schema import hoist_definitions, json_value_end, prepare
from sealion_agents.tool_calls import AnswerPlan, normalise_choice, tool_specs


@pytest.mark.parametrize(
    ("text", "end"),
    [
        ('{"a": 1}   \n  ', 8),
        ('  [{"a": "}"}, 2] trailing', 17),
        ('{"a": "\\"}"}', 12),
        ('{"a": [1, {', None),
        ("plain text", None),
        ("", None),
    ],
)
def test_json_value_end(text: str, end: int | None) -> None:
    assert json_value_end(text) == end


def test_objects_are_closed_unless_they_say_otherwise() -> None:
    schema = prepare({"type": "object", "properties": {"a": {"type": "object", "properties": {}}}})
    assert schema.schema["additionalProperties"] is False
    assert schema.schema["properties"]["a"]["additionalProperties"] is False
    assert prepare({"type": "object"}).schema == {"type": "object"}  # a free object stays free
    kept = prepare({"type": "object", "properties": {}, "additionalProperties": True})
    assert kept.schema["additionalProperties"] is True


def test_checked_after_keywords_are_listed() -> None:
    constraint = prepare({"anyOf": [{"type": "integer", "maximum": 3}], "oneOf": [{}]})
    assert constraint.checked_after == {"maximum", "oneOf"}
    value, error = constraint.check("7")
    assert value is None
    assert error == "breaks the schema at the top level: 7 is greater than the maximum of 3"
    assert constraint.check("{bad")[1].startswith("not valid JSON")


def test_refusals_name_the_keyword_and_its_place() -> None:
    with pytest.raises(UnsupportedSchemaError, match=r"'uniqueItems' at #/properties/x"):
        prepare({"type": "object", "properties": {"x": {"type": "array", "uniqueItems": True}}})
    with pytest.raises(UnsupportedSchemaError, match="a JSON schema object"):
        prepare(["not", "a", "schema"])


def test_definitions_are_hoisted_and_renamed() -> None:
    schema = {"$defs": {"P": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/P"}}}
    body, defs = hoist_definitions(schema, "tool0_")
    assert body["properties"]["a"]["$ref"] == "#/$defs/tool0_P" and "$defs" not in body
    assert defs == {"tool0_P": {"type": "string"}}


def test_small_integer_ranges_become_enumerations() -> None:
    assert _enumerate_ranges({"type": "integer", "minimum": 2, "maximum": 4}) == {"enum": [2, 3, 4]}
    assert _enumerate_ranges({"type": "integer", "exclusiveMinimum": 0, "maximum": 2}) == {
        "enum": [1, 2]
    }
    wide = {"type": "integer", "minimum": 0, "maximum": 10_000}
    assert _enumerate_ranges(wide) == wide
    assert _enumerate_ranges({"type": "integer", "minimum": 5}) == {"type": "integer", "minimum": 5}


def test_grammars_write_astral_characters_and_safe_rule_names() -> None:
    grammar = schema_grammar({"enum": ["🌧️"]})
    assert "🌧" in grammar and "\\ud83c" not in grammar.lower()
    recursive = {
        "$defs": {
            "My_Node": {
                "type": "object",
                "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/My_Node"}}},
            }
        },
        "$ref": "#/$defs/My_Node",
    }
    assert "My_Node" not in schema_grammar(recursive)
    whole = answer_grammar({"type": "object"}, after_reasoning=True, optional=True)
    assert whole.startswith("root ::=") and "</think>" in whole and "free-text" in whole


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, "auto"),
        ("auto", "auto"),
        ("any", "any"),
        ("required", "any"),
        (True, "any"),
        ("none", "none"),
        (False, "none"),
        ("b", "b"),
        ({"type": "function", "function": {"name": "a"}}, "a"),
    ],
)
def test_tool_choice_spellings(choice: object, expected: str) -> None:
    assert normalise_choice(choice, ["a", "b"]) == expected


def test_tool_choice_true_with_one_tool_names_it_and_unknown_names_fail() -> None:
    assert normalise_choice(True, ["only"]) == "only"
    with pytest.raises(ValueError, match="not one of the bound tools"):
        normalise_choice("missing", ["a"])


def test_duplicate_tools() -> None:
    same = {"name": "f", "description": "", "parameters": {"type": "object", "properties": {}}}
    assert len(tool_specs([same, {**same, "description": "again"}])) == 1
    other = {**same, "parameters": {"type": "object", "properties": {"x": {"type": "string"}}}}
    with pytest.raises(ValueError, match="Two different tools are named 'f'"):
        tool_specs([same, other])


def test_plans_read_valid_and_invalid_calls() -> None:
    spec = {
        "name": "f",
        "description": "",
        "parameters": {
            "type": "object",
            "properties": {"n": {"type": "integer", "minimum": 1}},
            "required": ["n"],
        },
    }
    plan = AnswerPlan.for_tools([spec], "any")
    assert plan is not None and plan.forced
    calls, invalid = plan.read(
        '[{"name":"f","parameters":{"n":2}}, {"name":"f","parameters":{"n":3}}]'
    )
    assert [c["args"] for c in calls] == [{"n": 2}, {"n": 3}] and not invalid
    calls, invalid = plan.read('{"name":"f","parameters":{"n":0}}')
    assert not calls and invalid[0]["name"] == "f" and "minimum" in str(invalid[0]["error"])
    assert AnswerPlan.for_tools([spec], "none") is None
    assert plan.opens_call("  [") is True and plan.opens_call("Hi") is False
    assert plan.opens_call("   ") is None
