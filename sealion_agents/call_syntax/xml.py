"""Calls written as XML-like tags (Nemotron 3 Nano: SEA-LION v4.8; vLLM's qwen3_xml).

A body, as the model writes it::

    <function=get_weather>
    <parameter=city>
    Bangkok
    </parameter>
    <parameter=days>
    3
    </parameter>
    </function>

A parameter whose schema allows only strings is written raw (any text without
``</parameter>``, newlines included); every other value as compact JSON. The grammar puts
required parameters first, in the schema's order, then any of the optional ones; it honours
a string parameter's ``enum`` or ``const`` (alternatives of the raw strings), while other
string constraints (``pattern``, ``format``, lengths) fall back to raw text and are left to
the call's JSON schema, which checks the value read back.

Data flow: tools' parameter schemas -> ``parameter_rules`` (JSON value rules) and raw-text
rules -> GBNF; a body -> tags -> values typed by the tool's schema -> ``{"name": ...,
<arguments key>: {...}}``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sealion_agents.call_syntax import EndScanner, RescanEnd, ToolSpec
from sealion_agents.call_syntax.parameters import parameter_rules, sequence_rule
from sealion_agents.errors import UnsupportedSchemaError
from sealion_agents.grammars import gbnf_literal, text_without

__all__ = ["XML_SYNTAX", "XmlSyntax", "xml_call"]

_FUNCTION = "<function="
_FUNCTION_END = "</function>"
_PARAMETER = "<parameter="
_PARAMETER_END = "</parameter>"
_TEXT_RULE = "xml-text"


def xml_call(name: str, arguments: dict[str, Any]) -> str:
    """A call as tags: strings raw, other values as compact JSON."""
    blocks = "".join(
        f"{_PARAMETER}{key}>\n{_value_text(value)}\n{_PARAMETER_END}\n"
        for key, value in arguments.items()
    )
    return f"{_FUNCTION}{name}>\n{blocks}{_FUNCTION_END}"


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    # "<\/" is JSON for "</": a string inside the value cannot close the parameter
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace(_PARAMETER_END, "<\\/parameter>")


class XmlSyntax:
    """``<function=name>`` with one ``<parameter=key>`` block per argument, one call per body."""

    name = "xml"

    def grammar(self, tools: Sequence[ToolSpec], *, parallel: bool) -> str:
        """The GBNF grammar of one call of one of ``tools`` (one call per body)."""
        rules, values = parameter_rules(
            tools, feature="Tool calls written as XML tags (Nemotron's <function=...>)"
        )
        closes = gbnf_literal(f"\n{_PARAMETER_END}\n")
        lines: list[str] = []
        uses_text = False
        for i, (tool, (_, schema)) in enumerate(zip(rules, tools, strict=True)):
            _check_tag(tool.name, f"The tool name {tool.name!r}", "rename the tool")
            properties = _properties(schema)
            blocks = []
            for parameter in tool.parameters:
                _check_tag(
                    parameter.key,
                    f"The tool {tool.name!r} has a parameter {parameter.key!r}, which",
                    "rename it",
                )
                value = _value_rule(parameter.rule, properties.get(parameter.key), schema)
                uses_text = uses_text or value == _TEXT_RULE
                opens = gbnf_literal(f"{_PARAMETER}{parameter.key}>\n")
                blocks.append(f"{opens} {value} {closes}")
            arguments = sequence_rule(blocks, [p.required for p in tool.parameters], "")
            opener = gbnf_literal(f"{_FUNCTION}{tool.name}>\n")
            lines.append(f"call{i} ::= {opener} {arguments} {gbnf_literal(_FUNCTION_END)}")
        root = "root ::= " + " | ".join(f"call{i}" for i in range(len(rules)))
        text_rule = [text_without(_TEXT_RULE, _PARAMETER_END)] if uses_text else []
        return "\n".join([root, *lines, *text_rule, values])

    def end(self, text: str) -> int | None:
        """Just after the first ``</function>`` outside a parameter's value, else None."""
        position = 0
        while True:
            close = text.find(_FUNCTION_END, position)
            block = text.find(_PARAMETER, position)
            if close >= 0 and (block < 0 or close < block):
                return close + len(_FUNCTION_END)
            if block < 0:
                return None
            value_end = text.find(_PARAMETER_END, block)
            if value_end < 0:
                return None
            position = value_end + len(_PARAMETER_END)

    def end_scanner(self, start: int = 0) -> EndScanner:
        """``end`` again only where new text may close the call."""
        return RescanEnd(self.end, start)

    def parse(
        self, text: str, arguments_key: str, tools: Sequence[ToolSpec] = ()
    ) -> tuple[Any, str | None]:
        """A body as ``{"name": ..., arguments_key: {...}}``, or why not.

        Values are typed by the named tool's schema: a string-only parameter keeps its text
        (less the one newline the format writes on each side); others are read as JSON, or
        kept as text when they are not JSON, for the schema check to report.
        """
        body = text.strip()
        if not body.startswith(_FUNCTION):
            return None, f"does not open with {_FUNCTION}<tool name>>"
        name_end = body.find(">")
        if name_end < 0:
            return None, f"does not close its {_FUNCTION}...> tag"
        name = body[len(_FUNCTION) : name_end].strip()
        schema = dict(tools).get(name) or {}
        properties = _properties(schema)
        arguments: dict[str, Any] = {}
        position = name_end + 1
        while True:
            rest = body[position:].lstrip()
            position = len(body) - len(rest)
            if rest.startswith(_FUNCTION_END):
                break
            if not rest:
                return None, f"does not end with {_FUNCTION_END}"
            if not rest.startswith(_PARAMETER):
                return None, f"has text outside a {_PARAMETER}...> block: {rest[:40]!r}"
            key_end = body.find(">", position)
            if key_end < 0:
                return None, f"does not close a {_PARAMETER}...> tag"
            key = body[position + len(_PARAMETER) : key_end].strip()
            value_end = body.find(_PARAMETER_END, key_end)
            if value_end < 0:
                return None, f"leaves the parameter {key!r} unclosed (no {_PARAMETER_END})"
            if key in arguments:
                return None, f"gives the parameter {key!r} twice"
            raw = _strip_one_newline(body[key_end + 1 : value_end])
            arguments[key] = _typed(raw, properties.get(key), schema)
            position = value_end + len(_PARAMETER_END)
        trailing = body[position + len(_FUNCTION_END) :].strip()
        if trailing:
            return None, f"has text after {_FUNCTION_END}: {trailing[:40]!r}"
        return {"name": name, arguments_key: arguments}, None

    def write(self, calls: Sequence[tuple[str, dict[str, Any]]], arguments_key: str) -> list[str]:
        """One ``<function=...>`` body per call."""
        return [xml_call(name, args) for name, args in calls]

    def example(self, arguments_key: str) -> str:
        """The call as tags, in words."""
        return (
            "<function=<tool name>>\n<parameter=<parameter name>>\n<value: text as it is, "
            "other values as JSON>\n</parameter>\n... one block per parameter ...\n</function>"
        )


def _check_tag(text: str, what: str, fix: str) -> None:
    """Refuse a name that a tag cannot hold (``>`` ends it, a newline breaks it)."""
    if not text or ">" in text or "\n" in text or "\r" in text:
        raise UnsupportedSchemaError(
            f"{what} cannot go in an XML-style call tag (it is empty or holds '>' or a line "
            f"break): {fix}, or use a profile whose calls are JSON."
        )


def _value_rule(json_rule: str, schema: Any, root: dict[str, Any]) -> str:
    """A parameter's value: raw text (its choices, if any) for a string-only schema, else JSON."""
    if not _is_text(schema, root):
        return json_rule
    choices = _text_choices(schema, root)
    if choices is None:
        return _TEXT_RULE
    for choice in choices:
        if _PARAMETER_END in choice:
            raise UnsupportedSchemaError(
                f"The choice {choice!r} holds {_PARAMETER_END}, which ends a parameter of an "
                "XML-style call: change the choice, or use a profile whose calls are JSON."
            )
    return "( " + " | ".join(gbnf_literal(c) for c in choices) + " )"


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    resolved = _resolve(schema, schema)
    properties = resolved.get("properties") if isinstance(resolved, dict) else None
    return properties if isinstance(properties, dict) else {}


def _resolve(node: Any, root: dict[str, Any]) -> Any:
    """``node`` with a local ``$ref`` followed (a few steps, for chains)."""
    for _ in range(8):
        if not isinstance(node, dict) or not isinstance(node.get("$ref"), str):
            return node
        ref: str = node["$ref"]
        target: Any = root
        for part in ref.lstrip("#").strip("/").split("/") if ref.strip("#/") else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                return None
            target = target[part]
        node = target
    return node


def _is_text(schema: Any, root: dict[str, Any]) -> bool:
    """Whether every value ``schema`` allows is a string."""
    schema = _resolve(schema, root)
    if not isinstance(schema, dict):
        return False
    if "const" in schema:
        return isinstance(schema["const"], str)
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return all(isinstance(v, str) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "string" or (isinstance(kind, list) and kind and set(kind) == {"string"}):
        return True
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options and kind is None:
            return all(_is_text(o, root) for o in options)
    return False


def _text_choices(schema: Any, root: dict[str, Any]) -> list[str] | None:
    """The strings a string-only schema allows, when it lists them (else None: any text)."""
    schema = _resolve(schema, root)
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return [schema["const"]]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return list(schema["enum"])
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            found: list[str] = []
            for option in options:
                choices = _text_choices(option, root)
                if choices is None:
                    return None
                found += [c for c in choices if c not in found]
            return found
    return None


def _strip_one_newline(text: str) -> str:
    """A value less the one newline the format writes on each side of it."""
    return text.removeprefix("\n").removesuffix("\n")


def _typed(text: str, schema: Any, root: dict[str, Any]) -> Any:
    """A value's text as its schema reads it: text for a string-only schema, else JSON."""
    if _is_text(schema, root):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


XML_SYNTAX = XmlSyntax()
