"""JSON schemas people bind as tools or structured outputs, for the constrained-decoding tests.

``ENFORCED``: every keyword is enforced while decoding (a bounded integer range becomes an
enumeration in llama.cpp's grammar). ``REFUSED``: each holds one keyword that constrained
decoding cannot enforce, and the error must name it.
"""

from __future__ import annotations

from typing import Any

S = {"type": "string"}
I = {"type": "integer"}  # noqa: E741
N = {"type": "number"}
B = {"type": "boolean"}


def obj(required: bool = True, **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(properties)
    return schema


ENFORCED: dict[str, dict[str, Any]] = {
    "no_arguments": {"type": "object", "properties": {}},
    "one_string": obj(city=S),
    "one_integer": obj(count=I),
    "one_number": obj(price=N),
    "one_boolean": obj(urgent=B),
    "null_or_string": obj(note={"anyOf": [S, {"type": "null"}]}),
    "type_list": obj(value={"type": ["string", "integer"]}),
    "enum_strings": obj(unit={"enum": ["celsius", "fahrenheit"]}),
    "enum_mixed": obj(level={"enum": [1, "high", None]}),
    "const": obj(kind={"const": "weather"}),
    "optional_fields": obj(False, city=S, days=I, urgent=B),
    "nested_object": obj(place=obj(city=S, country=S)),
    "deep_nesting": obj(a=obj(b=obj(c=obj(d=S)))),
    "array_of_strings": obj(tags={"type": "array", "items": S}),
    "array_bounds": obj(ids={"type": "array", "items": I, "minItems": 2, "maxItems": 4}),
    "array_of_objects": obj(stops={"type": "array", "items": obj(city=S, nights=I)}),
    "tuple_items": obj(point={"type": "array", "prefixItems": [N, N]}),
    "string_lengths": obj(code={"type": "string", "minLength": 3, "maxLength": 5}),
    "string_pattern": obj(flight={"type": "string", "pattern": "^[A-Z]{2}[0-9]{3}$"}),
    "date_format": obj(day={"type": "string", "format": "date"}),
    "bounded_integer": obj(days={"type": "integer", "minimum": 1, "maximum": 30}),
    "exclusive_bounds": obj(
        rating={"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 6}
    ),
    "defs_and_refs": {
        "$defs": {"Place": obj(city=S, country=S)},
        **obj(origin={"$ref": "#/$defs/Place"}, destination={"$ref": "#/$defs/Place"}),
    },
    "recursive_tree": {
        "$defs": {
            "Node": obj(
                False, name=S, children={"type": "array", "items": {"$ref": "#/$defs/Node"}}
            )
        },
        **obj(root={"$ref": "#/$defs/Node"}),
    },
    "root_reference": {  # a recursive Pydantic model's schema starts from a reference
        "$defs": {
            "Node": obj(False, name=S, kids={"type": "array", "items": {"$ref": "#/$defs/Node"}})
        },
        "$ref": "#/$defs/Node",
    },
    "any_of_objects": obj(payment={"anyOf": [obj(card_number=S), obj(bank=S, account=S)]}),
    "thai_names": obj(**{"ชื่อ": S, "จังหวัด": {"enum": ["กรุงเทพมหานคร", "เชียงใหม่"]}}),
    "lao_khmer_burmese_values": obj(greeting={"enum": ["ສະບາຍດີ", "សួស្តី", "မင်္ဂလာပါ"]}),
    "vietnamese_and_chinese": obj(
        **{"thành_phố": {"const": "Hà Nội"}, "城市": {"const": "新加坡"}}
    ),
    "emoji_enum": obj(mood={"enum": ["🙂", "🌧️"]}),
    "many_fields": obj(**{f"field_{i}": [S, I, B, N][i % 4] for i in range(12)}),
    "described_fields": obj(
        city={"type": "string", "description": "City name, e.g. Jakarta"},
        days={
            "type": "integer",
            "description": "Length of stay in days",
            "minimum": 1,
            "maximum": 14,
        },
    ),
    "closed_object": {**obj(city=S), "additionalProperties": False},
    "free_object": obj(metadata={"type": "object"}),
}

REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "not": (obj(x={"not": S}), "'not'"),
    "if_then": (obj(x={"if": S, "then": S}), "'if'"),
    "pattern_properties": ({"type": "object", "patternProperties": {"^x": S}}, "patternProperties"),
    "unique_items": (obj(x={"type": "array", "uniqueItems": True}), "uniqueItems"),
    "multiple_of": (obj(x={"type": "integer", "multipleOf": 5}), "multipleOf"),
    "min_properties": ({"type": "object", "minProperties": 1}, "minProperties"),
    "remote_ref": (obj(x={"$ref": "https://example.com/schema.json"}), "https://example.com"),
    "dangling_ref": (obj(x={"$ref": "#/$defs/Missing"}), "points at nothing"),
    "unknown_type": (obj(x={"type": "decimal"}), "unknown type 'decimal'"),
    "value_schema_map": ({"type": "object", "additionalProperties": S}, "additionalProperties"),
}
