"""Calls written as Python: ``name(key=value, ...)`` (Gemma 3's ``tool_code``).

Values are the JSON values each parameter's schema allows, written as Python literals
(``True``, ``False``, ``None``); the grammar puts required parameters first, in the
schema's order, then any of the optional ones.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from typing import Any

from sealion_agents.call_syntax import EndScanner, RescanEnd, ToolSpec
from sealion_agents.call_syntax.parameters import parameter_rules, sequence_rule
from sealion_agents.errors import UnsupportedSchemaError

__all__ = ["PYTHON_SYNTAX", "PythonSyntax", "python_call", "python_literal"]


def python_literal(value: Any) -> str:
    """A JSON value as a Python literal (``True``, ``None``, strings in double quotes)."""
    if value is True or value is False or value is None:
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(python_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))}: {python_literal(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    return json.dumps(value, ensure_ascii=False)


def python_call(name: str, arguments: dict[str, Any]) -> str:
    """A call as Python: ``name(key=value, ...)``."""
    return f"{name}({', '.join(f'{k}={python_literal(v)}' for k, v in arguments.items())})"


class PythonSyntax:
    """``name(key=value, ...)``, one call per body."""

    name = "python"

    def grammar(self, tools: Sequence[ToolSpec], *, parallel: bool) -> str:
        """The GBNF grammar of one Python call of one of ``tools``."""
        rules, values = parameter_rules(
            tools, feature="Tool calls written as Python (Gemma's tool_code)"
        )
        lines: list[str] = []
        for i, tool in enumerate(rules):
            for parameter in tool.parameters:
                if not parameter.key.isidentifier():
                    raise UnsupportedSchemaError(
                        f"The tool {tool.name!r} has a parameter {parameter.key!r}, which a "
                        "Python call cannot name: rename it (letters, digits and _), or use a "
                        "profile whose calls are JSON."
                    )
            arguments = sequence_rule(
                [f"{json.dumps(p.key + '=')} {p.rule}" for p in tool.parameters],
                [p.required for p in tool.parameters],
                '", "',
            )
            lines.append(f'call{i} ::= {json.dumps(tool.name + "(")} {arguments} ")"')
        root = "root ::= " + " | ".join(f"call{i}" for i in range(len(rules)))
        grammar = "\n".join([root, *lines, values])
        # JSON's literals as Python's
        grammar = grammar.replace('("true" | "false")', '("True" | "False")')
        return grammar.replace('"null" space', '"None" space')

    def end(self, text: str) -> int | None:
        """Where the first complete ``name(...)`` ends (brackets balanced), else None."""
        depth = 0
        quote = ""
        escaped = False
        opened = False
        for i, c in enumerate(text):
            if quote:
                if escaped:
                    escaped = False
                elif c == "\\":
                    escaped = True
                elif c == quote:
                    quote = ""
            elif c in "\"'":
                quote = c
            elif c in "([{":
                depth += 1
                opened = True
            elif c in ")]}":
                depth -= 1
                if opened and depth == 0:
                    return i + 1
        return None

    def end_scanner(self, start: int = 0) -> EndScanner:
        """``end`` again only where new text may close the call."""
        return RescanEnd(self.end, start)

    def parse(
        self, text: str, arguments_key: str, tools: Sequence[ToolSpec] = ()
    ) -> tuple[Any, str | None]:
        """``name(key=value, ...)`` as ``{"name": ..., arguments_key: {...}}``, or why not."""
        try:
            node = ast.parse(text.strip(), mode="eval").body
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                return None, "is not a call name(key=value, ...)"
            if node.args or any(k.arg is None for k in node.keywords):
                return None, "passes arguments without their names"
            arguments = {str(k.arg): ast.literal_eval(k.value) for k in node.keywords}
        except (SyntaxError, ValueError) as exc:
            return None, f"is not a Python call with literal arguments ({exc})"
        return {"name": node.func.id, arguments_key: arguments}, None

    def write(self, calls: Sequence[tuple[str, dict[str, Any]]], arguments_key: str) -> list[str]:
        """One ``name(...)`` per call."""
        return [python_call(name, args) for name, args in calls]

    def example(self, arguments_key: str) -> str:
        """The call as Python."""
        return "<tool name>(<parameter>=<value as a Python literal>, ...)"


PYTHON_SYNTAX = PythonSyntax()
