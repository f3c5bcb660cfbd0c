"""JSON schemas as decoding constraints: what engines can enforce, and the checks after.

Data flow: a JSON schema (a tool's parameters, a structured-output schema) -> ``prepare``
(``$defs`` gathered at the root, objects closed to undeclared keys, every keyword checked)
-> ``Constraint`` -> an engine's constrained decoding (llama.cpp grammar, vLLM structured
outputs, a server's ``response_format``) -> text -> ``Constraint.check`` (``jsonschema``).

Keywords fall in three groups:

* enforced while decoding (types, properties, required, enums, const, anyOf, arrays, string
  lengths and patterns, ``$ref`` inside the schema);
* checked after decoding only (numeric bounds, ``oneOf``'s "exactly one", ``allOf``): a reply
  that breaks them is retried a bounded number of times, then reported as invalid;
* refused (``not``, ``if``/``then``, ``patternProperties``, ``uniqueItems``...): no engine
  here can steer generation by them, so ``UnsupportedSchemaError`` names the keyword and
  where it sits before anything is generated. Never a silent fallback to plain JSON.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sealion_agents.errors import UnsupportedSchemaError

__all__ = [
    "Constraint",
    "UnsupportedSchemaError",
    "hoist_definitions",
    "json_value_end",
    "prepare",
    "rename_definitions",
]

REFUSED = {
    "not": "negation",
    "if": "conditional schemas",
    "then": "conditional schemas",
    "else": "conditional schemas",
    "patternProperties": "property-name patterns",
    "propertyNames": "property-name schemas",
    "dependentRequired": "dependencies between properties",
    "dependentSchemas": "dependencies between properties",
    "dependencies": "dependencies between properties",
    "contains": "array 'contains'",
    "minContains": "array 'contains'",
    "maxContains": "array 'contains'",
    "uniqueItems": "unique array items",
    "multipleOf": "'multipleOf'",
    "minProperties": "object size bounds",
    "maxProperties": "object size bounds",
    "unevaluatedProperties": "'unevaluatedProperties'",
    "unevaluatedItems": "'unevaluatedItems'",
    "$dynamicRef": "dynamic references",
}
"""Keywords no engine here enforces while decoding, and what they are."""

CHECKED_AFTER = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "oneOf", "allOf"}
"""Keywords checked by validation after decoding (then a bounded retry)."""

_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions")


@dataclass(frozen=True)
class Constraint:
    """A prepared JSON schema that a reply must match."""

    schema: dict[str, Any]
    checked_after: frozenset[str] = field(default_factory=frozenset)
    """Keywords of the schema that decoding cannot enforce (validated afterwards)."""

    def text(self) -> str:
        """The schema as compact JSON (cache keys, request bodies)."""
        return json.dumps(self.schema, sort_keys=True, ensure_ascii=False)

    def check(self, text: str) -> tuple[Any, str | None]:
        """Parse and validate a reply: (value, None) or (None, what is wrong)."""
        import jsonschema

        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return None, f"not valid JSON ({exc.msg} at character {exc.pos})"
        validator = jsonschema.Draft202012Validator(self.schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "the top level"
            return None, f"breaks the schema at {where}: {error.message}"
        return value, None


def prepare(schema: Any, *, what: str = "the schema") -> Constraint:
    """Check a JSON schema and make it a ``Constraint`` (objects closed to undeclared keys).

    Raises ``UnsupportedSchemaError`` naming the first keyword that cannot be enforced.
    """
    if not isinstance(schema, dict):
        raise UnsupportedSchemaError(
            f"{what} must be a JSON schema object (a dict), not {type(schema).__name__}."
        )
    schema = copy.deepcopy(schema)
    found: set[str] = set()
    _walk(schema, "#", what, found, root=schema)
    return Constraint(schema=schema, checked_after=frozenset(found))


def _walk(node: Any, path: str, what: str, found: set[str], *, root: dict[str, Any]) -> None:
    if isinstance(node, bool):
        return  # true / false schemas
    if not isinstance(node, dict):
        raise UnsupportedSchemaError(f"{what}: {path} is not a schema ({node!r}).")
    for keyword, name in REFUSED.items():
        if keyword in node:
            raise UnsupportedSchemaError(
                f"{what} uses {keyword!r} at {path} ({name}), which constrained decoding cannot "
                "enforce. Remove it, or describe the rule in the field's description."
            )
    ref = node.get("$ref")
    if ref is not None and not (isinstance(ref, str) and ref.startswith("#")):
        raise UnsupportedSchemaError(
            f"{what} refers to {ref!r} at {path}: only references inside the schema "
            "('#/$defs/...') are supported. Inline the referenced schema."
        )
    if ref is not None and _resolve(root, ref) is None:
        raise UnsupportedSchemaError(f"{what}: {ref!r} at {path} points at nothing.")
    kind = node.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
    for k in kinds:
        if k not in _TYPES:
            raise UnsupportedSchemaError(f"{what}: unknown type {k!r} at {path}.")
    found |= CHECKED_AFTER & set(node)
    if "properties" in node:
        node.setdefault("additionalProperties", False)  # only the declared keys
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        raise UnsupportedSchemaError(
            f"{what}: 'additionalProperties' with a schema at {path} (a map of values) cannot be "
            "enforced; declare the properties, or use true/false."
        )
    for key in _SUBSCHEMA_LISTS:
        for i, sub in enumerate(node.get(key) or []):
            _walk(sub, f"{path}/{key}/{i}", what, found, root=root)
    for key in _SUBSCHEMA_MAPS:
        for name, sub in (node.get(key) or {}).items():
            _walk(sub, f"{path}/{key}/{name}", what, found, root=root)
    items = node.get("items")
    if isinstance(items, (dict, bool)):
        _walk(items, f"{path}/items", what, found, root=root)
    elif isinstance(items, list):
        for i, sub in enumerate(items):
            _walk(sub, f"{path}/items/{i}", what, found, root=root)


def _resolve(root: dict[str, Any], ref: str) -> Any:
    node: Any = root
    for part in ref.lstrip("#").strip("/").split("/") if ref not in ("#", "#/") else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def json_value_end(text: str) -> int | None:
    """Where the first complete JSON object or array in ``text`` ends, else None.

    Constrained engines may keep writing whitespace after the closing bracket until their
    token limit; a generation ends here instead.
    """
    return JsonValueEnd().scan(text)


class JsonValueEnd:
    """``json_value_end`` for a text that grows: each ``scan`` reads only what is new.

    Pass the whole text each time (the text so far, then more of it); the brackets and
    strings read so far are remembered, so a reply of n characters costs O(n) in all. The
    value is looked for from ``start`` on; the end is an index in the whole text.
    """

    def __init__(self, start: int = 0) -> None:
        self._at = start  # the next character to read (the value starts at ``start`` or after)
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._end: int | None = None

    def scan(self, text: str) -> int | None:
        """Where the value ends in ``text`` (a longer version of the last text), else None."""
        if self._end is not None:
            return self._end
        if self._depth == 0:  # nothing opened yet: blanks, then "{" or "["
            start = len(text) - len(text[self._at :].lstrip())
            if start >= len(text):
                self._at = len(text)
                return None
            if text[start] not in "{[":
                return None
            self._at = start
        depth, in_string, escaped = self._depth, self._in_string, self._escaped
        for i in range(self._at, len(text)):
            c = text[i]
            if in_string:
                if escaped:
                    escaped = False
                elif c == "\\":
                    escaped = True
                elif c == '"':
                    in_string = False
            elif c == '"':
                in_string = True
            elif c in "{[":
                depth += 1
            elif c in "}]":
                depth -= 1
                if depth == 0:
                    self._end = i + 1
                    return self._end
        self._at, self._depth, self._in_string, self._escaped = len(text), depth, in_string, escaped
        return None


def rename_definitions(
    schema: dict[str, Any], new_name: Callable[[int, str], str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A schema's ``$defs`` (and ``definitions``) renamed, and its references rewritten.

    ``new_name(i, name)`` names the i-th definition. Returns the schema without its
    definitions and the renamed definitions (each reference now ``#/$defs/<new name>``).
    """
    names = [(key, name) for key in ("$defs", "definitions") for name in (schema.get(key) or {})]
    renames = {
        f"#/{key}/{name}": f"#/$defs/{new_name(i, name)}" for i, (key, name) in enumerate(names)
    }

    def rewrite(node: Any) -> Any:  # a copy: the schema given is left as it is
        if isinstance(node, dict):
            out = {k: rewrite(v) for k, v in node.items()}
            if isinstance(out.get("$ref"), str) and out["$ref"] in renames:
                out["$ref"] = renames[out["$ref"]]
            return out
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    body = rewrite({k: v for k, v in schema.items() if k not in ("$defs", "definitions")})
    defs = {new_name(i, name): rewrite(schema[key][name]) for i, (key, name) in enumerate(names)}
    return body, defs


def hoist_definitions(schema: dict[str, Any], prefix: str) -> tuple[dict[str, Any], dict]:
    """Move a schema's ``$defs`` out (renamed with ``prefix``) so it can nest in another.

    Returns the schema without them, its references rewritten, and the renamed definitions.
    """
    return rename_definitions(schema, lambda _, name: f"{prefix}{name}")
