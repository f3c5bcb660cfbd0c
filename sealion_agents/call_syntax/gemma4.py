"""Calls written as Gemma 4 writes them: ``call:name{key:value,...}``.

Gemma 4's chat template (its ``format_argument`` macro and ``tool_calls`` loop) renders a
call between ``<|tool_call>`` and ``<tool_call|>`` as
``call:get_weather{city:<|"|>Bangkok<|"|>,days:3}``: keys bare and in ``dictsort`` order
(case-insensitive), strings between two ``<|"|>`` marks with nothing escaped,
``true``/``false``, lists ``[a,b]``, mappings ``{key:value}`` with bare sorted keys, numbers
as Python prints them, no spaces. The template prints anything else with
``{{ argument }}``, so Python's Jinja writes null as ``None``; this syntax writes and
constrains ``None`` and reads ``None`` or ``null``.

Data flow: (tool name, parameters JSON schema) pairs -> ``grammars``' preparation ($defs
renamed, small integer ranges enumerated) -> one GBNF value rule per schema node (strings,
numbers, enums, arrays, objects with sorted keys, anyOf, local ``$ref``) -> the call rule.
A body -> ``parse`` -> ``{"name": ..., <arguments key>: {...}}`` (plain JSON values), which
the call's JSON schema then checks, with what the grammar leaves out (string lengths and
patterns, numeric bounds beyond enumerated ranges, array lengths beyond a non-empty one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from sealion_agents.call_syntax import EndScanner, RescanEnd, ToolSpec
from sealion_agents.errors import UnsupportedSchemaError
from sealion_agents.grammars import text_without

__all__ = ["GEMMA4_SYNTAX", "QUOTE", "Gemma4Syntax", "gemma4_call", "gemma4_value"]

QUOTE = '<|"|>'
"""The mark on both sides of a string (one token in Gemma 4's vocabulary)."""

_WAY_OUT = "use a profile whose calls are JSON"
_BARE_KEY = re.compile(r'[^ \t\r\n\f\v:,{}\[\]<>"]+')
_TOOL_NAME = re.compile(r"[^\s{}<:]+")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")

_COMMON_RULES = (
    r"""g4-string ::= "<|\"|>" g4-text "<|\"|>"
"""
    + text_without("g4-text", QUOTE)
    + r"""
g4-integer ::= "-"? ( "0" | [1-9] [0-9]{0,15} )
g4-number ::= g4-integer ( "." [0-9]{1,17} )? ( [eE] [-+]? [0-9]{1,3} )?
g4-boolean ::= "true" | "false"
g4-null ::= "None"
g4-any ::= g4-string | g4-number | g4-boolean | g4-null | g4-any-list | g4-any-map
g4-any-list ::= "[" ( g4-any ( "," g4-any )* )? "]"
g4-any-map ::= "{" ( g4-key ":" g4-any ( "," g4-key ":" g4-any )* )? "}"
g4-key ::= [^ \t\r\n\x0C\x0B:,{}<>"\x5B\x5D]+
"""
)
_SIMPLE = {
    "string": "g4-string",
    "integer": "g4-integer",
    "number": "g4-number",
    "boolean": "g4-boolean",
    "null": "g4-null",
    "any": "g4-any",
}


def _sorted_items(mapping: dict[str, Any]) -> list[tuple[str, Any]]:
    """A mapping's items in Jinja's ``dictsort`` order (keys compared case-insensitively)."""
    return sorted(mapping.items(), key=lambda item: str(item[0]).lower())


def gemma4_value(value: Any) -> str:
    """A JSON value as Gemma 4's template writes an argument (bare keys, ``<|"|>`` strings)."""
    if isinstance(value, str):
        return f"{QUOTE}{value}{QUOTE}"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{gemma4_value(v)}" for k, v in _sorted_items(value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(gemma4_value(v) for v in value) + "]"
    return str(value)  # numbers as Python prints them; None as "None"


def gemma4_call(name: str, arguments: dict[str, Any]) -> str:
    """A call's body as Gemma 4's template writes it: ``call:name{key:value,...}``."""
    return f"call:{name}{gemma4_value(arguments)}"


class _Rules:
    """GBNF value rules for one tool's schema, written as the schema is walked."""

    def __init__(self, tool: str, root: dict[str, Any], prefix: str) -> None:
        self.tool = tool
        self.root = root
        self.prefix = prefix
        self.lines: list[str] = []
        self.refs: dict[str, str] = {}

    def unsupported(self, where: str, what: str) -> UnsupportedSchemaError:
        return UnsupportedSchemaError(
            f"Gemma 4's call syntax cannot constrain the parameter {where!r} of the tool "
            f"{self.tool!r}: {what}. Simplify that parameter's schema, or {_WAY_OUT}."
        )

    def rule(self, body: str) -> str:
        name = f"{self.prefix}-{len(self.lines)}"
        self.lines.append(f"{name} ::= {body}")
        return name

    def literal(self, value: Any, where: str) -> str:
        if isinstance(value, str) and QUOTE in value:
            raise self.unsupported(where, f"the value {value!r} holds the quote mark {QUOTE}")
        return json.dumps(gemma4_value(value), ensure_ascii=False)

    def value(self, schema: Any, where: str) -> str:
        """The GBNF expression of the values ``schema`` allows."""
        if schema is True or schema == {}:
            return "g4-any"
        if not isinstance(schema, dict):
            raise self.unsupported(where, f"the schema {schema!r} allows no value")
        if "$ref" in schema:
            return self.reference(str(schema["$ref"]), where)
        if "const" in schema:
            return self.literal(schema["const"], where)
        if "enum" in schema:
            options = list(schema["enum"] or [])
            if not options:
                raise self.unsupported(where, "its enum is empty")
            return "( " + " | ".join(self.literal(v, where) for v in options) + " )"
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [self.value(s, where) for s in schema[key] or []]
                if not options:
                    raise self.unsupported(where, f"its {key} is empty")
                return "( " + " | ".join(options) + " )"
        if "allOf" in schema:
            parts = schema["allOf"] or []
            if len(parts) != 1:
                raise self.unsupported(where, "it combines schemas with allOf")
            return self.value(parts[0], where)
        kind = schema.get("type")
        if isinstance(kind, list):
            options = [self.value({**schema, "type": t}, where) for t in kind]
            return "( " + " | ".join(options) + " )" if options else "g4-any"
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "any"
        if kind in _SIMPLE:
            return _SIMPLE[kind]
        if kind == "array":
            return self.array(schema, where)
        if kind == "object":
            return self.rule(self.mapping(schema, where))
        raise self.unsupported(where, f"its type {kind!r} is not a JSON schema type")

    def reference(self, ref: str, where: str) -> str:
        if ref in self.refs:
            return self.refs[ref]
        if not ref.startswith("#/"):
            raise self.unsupported(where, f"its reference {ref!r} is not local (#/...)")
        target: Any = self.root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise self.unsupported(where, f"its reference {ref!r} names nothing")
            target = target[part]
        name = self.rule("g4-any")  # a placeholder, so that a recursive schema ends
        index = len(self.lines) - 1
        self.refs[ref] = name
        self.lines[index] = f"{name} ::= {self.value(target, where)}"
        return name

    def array(self, schema: dict[str, Any], where: str) -> str:
        if "prefixItems" in schema or isinstance(schema.get("items"), list):
            raise self.unsupported(where, "it is a tuple (prefixItems)")
        item = self.value(schema.get("items", True), f"{where}[]")
        items = f'{item} ( "," {item} )*'
        inside = items if (schema.get("minItems") or 0) >= 1 else f"( {items} )?"
        return self.rule(f'"[" {inside} "]"')

    def mapping(self, schema: dict[str, Any], where: str) -> str:
        """``{...}``: the declared keys in sorted order, or any keys for a free mapping."""
        properties: dict[str, Any] = schema.get("properties") or {}
        if not properties:
            extra = schema.get("additionalProperties", True)
            if extra is False:
                return '"{}"'
            value = self.value(extra, f"{where}.*")
            pair = f'g4-key ":" {value}'
            return f'"{{" ( {pair} ( "," {pair} )* )? "}}"'
        required = set(schema.get("required") or [])
        items: list[str] = []
        flags: list[bool] = []
        for key, sub in _sorted_items(properties):
            path = f"{where}.{key}" if where else key
            if not _BARE_KEY.fullmatch(key):
                raise UnsupportedSchemaError(
                    f"The tool {self.tool!r} has a parameter {path!r}, which Gemma 4's call "
                    "syntax cannot write as a bare key (it holds a space or one of "
                    f':,{{}}[]<>"): rename it, or {_WAY_OUT}.'
                )
            items.append(f"{json.dumps(key + ':', ensure_ascii=False)} {self.value(sub, path)}")
            flags.append(key in required)
        return f'"{{" {_sorted_sequence(items, flags)} "}}"'


def _sorted_sequence(items: Sequence[str], required: Sequence[bool]) -> str:
    """GBNF for the items in their order, the optional ones skippable, commas between.

    The first item written is the first required one or any optional one before it; each
    item after it comes with its comma.
    """

    def rest(start: int) -> str:
        parts = [
            f'"," {items[j]}' if required[j] else f'( "," {items[j]} )?'
            for j in range(start, len(items))
        ]
        return " ".join(parts)

    starts: list[str] = []
    for k, item in enumerate(items):
        starts.append(f"{item} {rest(k + 1)}".strip())
        if required[k]:
            body = " | ".join(f"( {s} )" for s in starts)
            return f"( {body} )"
    if not starts:
        return ""
    return "( " + " | ".join(f"( {s} )" for s in starts) + " )?"


class _Reader:
    """A strict reader of one call body (whitespace between tokens tolerated)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def fail(self, why: str) -> ValueError:
        self.skip()
        if self.at >= len(self.text):
            return ValueError("ends before its closing bracket")
        return ValueError(f"{why} at character {self.at}")

    def skip(self) -> None:
        while self.at < len(self.text) and self.text[self.at].isspace():
            self.at += 1

    def take(self, token: str) -> bool:
        self.skip()
        if self.text.startswith(token, self.at):
            self.at += len(token)
            return True
        return False

    def string(self) -> str:
        end = self.text.find(QUOTE, self.at)
        if end < 0:
            raise self.fail(f"has a string that is not closed with {QUOTE}")
        value = self.text[self.at : end]
        self.at = end + len(QUOTE)
        return value

    def value(self) -> Any:
        self.skip()
        if self.take(QUOTE):
            return self.string()
        if self.take("{"):
            return self.mapping()
        if self.take("["):
            items: list[Any] = []
            if self.take("]"):
                return items
            while True:
                items.append(self.value())
                if self.take("]"):
                    return items
                if not self.take(","):
                    raise self.fail("has a list whose items are not separated by ','")
        start = self.at
        while self.at < len(self.text) and self.text[self.at] not in ",}]" + "\n\t\r ":
            self.at += 1
        word = self.text[start : self.at]
        if word in ("true", "false"):
            return word == "true"
        if word in ("None", "null"):
            return None
        if _NUMBER.fullmatch(word):
            return json.loads(word)
        if not word:
            raise self.fail("has a key without a value")
        raise self.fail(f"has the bare value {word!r} (strings are written {QUOTE}...{QUOTE})")

    def mapping(self) -> dict[str, Any]:
        """The rest of a ``{...}`` after its ``{``."""
        out: dict[str, Any] = {}
        if self.take("}"):
            return out
        while True:
            self.skip()
            if self.take(QUOTE):
                key = self.string()
                if not self.take(":"):
                    raise self.fail(f"has the key {key!r} without ':'")
            else:
                colon = self.text.find(":", self.at)
                if colon < 0:
                    raise self.fail("has a key without ':'")
                key = self.text[self.at : colon].strip()
                if not _BARE_KEY.fullmatch(key):
                    raise self.fail(f"has the key {key!r}, which is not a bare key")
                self.at = colon + 1
            if key in out:
                raise self.fail(f"repeats the key {key!r}")
            out[key] = self.value()
            if self.take("}"):
                return out
            if not self.take(","):
                raise self.fail("has arguments that are not separated by ','")


class Gemma4Syntax:
    """``call:name{key:value,...}``, one call per body."""

    name = "gemma4"

    def grammar(self, tools: Sequence[ToolSpec], *, parallel: bool) -> str:
        """The GBNF grammar of one call of one of ``tools`` (one call per body: no list)."""
        from sealion_agents.grammars import _enumerate_ranges, _safe_definitions

        calls: list[str] = []
        lines: list[str] = []
        for i, (name, parameters) in enumerate(tools):
            if not _TOOL_NAME.fullmatch(name):
                raise UnsupportedSchemaError(
                    f"The tool name {name!r} cannot follow 'call:' in Gemma 4's call syntax "
                    f"(it holds a space or one of {{}}<:): rename the tool, or {_WAY_OUT}."
                )
            schema = _enumerate_ranges(_safe_definitions(parameters or {}))
            rules = _Rules(name, schema, f"g4-call{i}")
            if not isinstance(schema.get("additionalProperties"), dict):
                schema = {**schema, "additionalProperties": False}  # the declared ones only
            arguments = rules.mapping(schema, "")
            calls.append(f"g4-call{i}")
            lines.append(f"g4-call{i} ::= {json.dumps('call:' + name)} {arguments}")
            lines += rules.lines
        root = "root ::= " + " | ".join(calls)
        return "\n".join([root, *lines, _COMMON_RULES])

    def end(self, text: str) -> int | None:
        """Where the ``}`` that closes the call's braces is (strings skipped), else None."""
        depth = 0
        at = 0
        while at < len(text):
            if text.startswith(QUOTE, at):
                close = text.find(QUOTE, at + len(QUOTE))
                if close < 0:
                    return None
                at = close + len(QUOTE)
                continue
            if text[at] == "{":
                depth += 1
            elif text[at] == "}":
                depth -= 1
                if depth <= 0:
                    return at + 1
            at += 1
        return None

    def end_scanner(self, start: int = 0) -> EndScanner:
        """``end`` again only where new text may close the call."""
        return RescanEnd(self.end, start)

    def parse(
        self, text: str, arguments_key: str, tools: Sequence[ToolSpec] = ()
    ) -> tuple[Any, str | None]:
        """``call:name{...}`` as ``{"name": ..., arguments_key: {...}}``, or why not."""
        body = text.strip()
        if not body.startswith("call:"):
            return None, "does not begin with 'call:' (Gemma 4 writes call:name{...})"
        brace = body.find("{")
        name = body[len("call:") : brace].strip() if brace >= 0 else ""
        if brace < 0 or not name or not _TOOL_NAME.fullmatch(name):
            return None, "has no tool name followed by '{' after 'call:'"
        reader = _Reader(body)
        reader.at = brace + 1
        try:
            arguments = reader.mapping()
            reader.skip()
            if reader.at != len(body):
                raise reader.fail("has text after the call's closing '}'")
        except ValueError as exc:
            return None, f"is not a Gemma 4 call ({exc})"
        except RecursionError:
            return None, "is not a Gemma 4 call (its values are nested too deeply)"
        return {"name": name, arguments_key: arguments}, None

    def write(self, calls: Sequence[tuple[str, dict[str, Any]]], arguments_key: str) -> list[str]:
        """One ``call:name{...}`` per call, as Gemma 4's template renders it."""
        return [gemma4_call(name, args) for name, args in calls]

    def example(self, arguments_key: str) -> str:
        """The call in Gemma 4's notation."""
        return (
            f"call:<tool name>{{<parameter>:<value>,...}} (parameters in alphabetical order, "
            f"strings as {QUOTE}text{QUOTE}, lists [a,b], objects {{key:value}})"
        )


GEMMA4_SYNTAX = Gemma4Syntax()
