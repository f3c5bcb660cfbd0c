"""Calls as Apertus writes them: a JSON list of ``{"<tool name>": {<arguments>}}`` objects.

swiss-ai's Apertus (the base of SEA-LION v4 Apertus) writes
``<|tools_prefix|>[{"calculator": {"expr": "2+2"}}]<|tools_suffix|>``: its format keeps the
tags (the ``ToolFormat``'s opener and closer) and this syntax the list between them, one
item per call, so several calls are several items of one body.

Data flow: tools -> a JSON schema of the list (each item one tool's name as its only key,
its parameters as the value) -> llama.cpp's converter -> GBNF; a body -> ``json.loads`` ->
the canonical value ``{"name": ..., <arguments key>: {...}}`` (a list of them for several
calls), which the call's JSON schema then checks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sealion_agents.call_syntax import EndScanner, ToolSpec
from sealion_agents.grammars import schema_grammar
from sealion_agents.json_schema import JsonValueEnd, hoist_definitions, json_value_end, prepare

__all__ = ["APERTUS_SYNTAX", "ApertusSyntax", "apertus_schema"]

_SHAPE = 'a JSON list of calls [{"<tool name>": {<arguments>}}, ...]'


def apertus_schema(tools: Sequence[ToolSpec], *, parallel: bool) -> dict[str, Any]:
    """The JSON schema of an Apertus call body: a list of one call (several if ``parallel``).

    Objects are closed to undeclared keys (as the call's own schema is), so the grammar
    allows nothing its check refuses.
    """
    options: list[dict[str, Any]] = []
    definitions: dict[str, Any] = {}
    for i, (name, parameters) in enumerate(tools):
        hoisted, defs = hoist_definitions(parameters, f"tool{i}_")
        definitions.update(defs)
        options.append(
            {
                "type": "object",
                "properties": {name: hoisted},
                "required": [name],
                "additionalProperties": False,
            }
        )
    items: dict[str, Any] = options[0] if len(options) == 1 else {"anyOf": options}
    schema: dict[str, Any] = {"type": "array", "items": items, "minItems": 1}
    if not parallel:
        schema["maxItems"] = 1
    if definitions:
        schema["$defs"] = definitions
    names = ", ".join(name for name, _ in tools)
    return prepare(schema, what=f"the parameters of the tool(s) {names}").schema


class ApertusSyntax:
    """``[{"<tool name>": {<arguments>}}, ...]``: every call of an answer in one list."""

    name = "apertus"

    def grammar(self, tools: Sequence[ToolSpec], *, parallel: bool) -> str:
        """The GBNF grammar of the list (one call, or several with ``parallel``)."""
        return schema_grammar(apertus_schema(tools, parallel=parallel))

    def end(self, text: str) -> int | None:
        """Where the list ends."""
        return json_value_end(text)

    def end_scanner(self, start: int = 0) -> EndScanner:
        """Reads only the new text each time."""
        return JsonValueEnd(start)

    def parse(
        self, text: str, arguments_key: str, tools: Sequence[ToolSpec] = ()
    ) -> tuple[Any, str | None]:
        """The list as canonical calls: one object for one call, a list for several."""
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            return None, f"is not valid JSON ({exc}); write {_SHAPE}"
        if not isinstance(value, list):
            return None, f"is a JSON {_json_type(value)}, not {_SHAPE}"
        if not value:
            return None, f"is an empty list; write {_SHAPE}"
        calls: list[dict[str, Any]] = []
        for i, item in enumerate(value):
            if not isinstance(item, dict) or len(item) != 1:
                what = f"{len(item)} keys" if isinstance(item, dict) else _json_type(item)
                return None, (
                    f"has an item {i} with {what}; each item is one call: an object with "
                    'the tool\'s name as its only key, {"<tool name>": {<arguments>}}'
                )
            ((name, arguments),) = item.items()
            if not isinstance(arguments, dict):
                return None, (
                    f"gives the tool {name!r} arguments that are a JSON {_json_type(arguments)}"
                    ", not an object of the parameters"
                )
            calls.append({"name": name, arguments_key: arguments})
        return (calls[0] if len(calls) == 1 else calls), None

    def write(self, calls: Sequence[tuple[str, dict[str, Any]]], arguments_key: str) -> list[str]:
        """One body holding every call."""
        return [json.dumps([{name: args} for name, args in calls], ensure_ascii=False)]

    def example(self, arguments_key: str) -> str:
        """The list, one object per call."""
        return '[{"<tool name>": <the arguments as a JSON object>}]'


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


APERTUS_SYNTAX = ApertusSyntax()
