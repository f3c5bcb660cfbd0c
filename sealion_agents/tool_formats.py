r"""How a model family writes tool calls and reads tool results: one ``ToolFormat`` each.

A call's body is always JSON, decoded under the call's JSON schema; the format decides the
text around it and its key names, so the constraint decides what is valid and the format
is what the model was trained to write:

* ``JSON_CALLS`` (Llama 3.1, SEA-LION v3.5): the whole answer is
  ``{"name": ..., "parameters": {...}}`` (a JSON list for several calls); tools are
  described in the system message; results come back in the ``ipython`` role.
* ``HERMES_CALLS`` (Qwen3, Qwen3.6: SEA-LION v4 Qwen and v4.5 Qwen):
  ``<tool_call>\n{"name": ..., "arguments": {...}}\\n</tool_call>``, one call per block;
  the chat template describes the tools (its ``tools`` variable); results come back in the
  ``tool`` role.
* ``TOOL_CODE_CALLS`` (Gemma 3: SEA-LION v4 Gemma, per AI Singapore's tool-calling guide):
  the call as Python in a block, ```` ```tool_code\nname(key=value)\n``` ````, decoded under a
  grammar of the call (``grammars.python_call_grammar``); tools are described in the system
  message; results come back as ``user`` turns in a ```` ```tool_output ```` block, since
  Gemma's template allows only alternating turns.
* ``JSON_USER_RESULTS`` (Gemma 4: SEA-LION v4.5 Gemma, whose card does not state a format):
  calls as ``JSON_CALLS``, results as ``user`` turns.

Data flow: tool specs -> ``ToolFormat.template_tools`` (for templates that describe tools)
or the plan's instructions; earlier calls -> ``format_calls`` -> assistant text; a model's
answer -> ``json_part`` -> the JSON body read by ``AnswerPlan``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sealion_agents.json_schema import json_value_end

__all__ = [
    "HERMES_CALLS",
    "JSON_CALLS",
    "JSON_USER_RESULTS",
    "TOOL_CODE_CALLS",
    "TOOL_FORMATS",
    "ToolFormat",
]


@dataclass(frozen=True)
class ToolFormat:
    """The text of a tool call in one model family's answers."""

    name: str
    opener: str
    """Text before a call's JSON body ("" when the JSON is the whole answer)."""
    closer: str
    """Text after a call's JSON body."""
    arguments_key: str
    """The key of the call's arguments in its JSON body."""
    result_role: str
    """The chat role of a tool result message."""
    tools_in_template: bool
    """The chat template describes the tools itself (its ``tools`` variable)."""
    parallel_as_list: bool
    """Several calls in one answer are one JSON list (else: one call per answer)."""
    body: str = "json"
    """A call's body: "json" (an object with the name and arguments) or "python"
    (``name(key=value, ...)``, Gemma's ``tool_code``)."""

    def opens_call(self, answer: str) -> bool | None:
        """True when the answer begins a call, False for text, None: not yet known."""
        stripped = answer.lstrip()
        if not stripped:
            return None
        if not self.opener:
            return stripped[0] in "{["
        tag = self.opener.strip()
        if stripped.startswith(tag):
            return True
        return None if tag.startswith(stripped) else False

    def json_part(self, text: str) -> str:
        """The JSON body of a call's text (its opener removed)."""
        stripped = text.lstrip()
        tag = self.opener.strip()
        if tag and stripped.startswith(tag):
            stripped = stripped[len(tag) :].lstrip()
        return stripped

    def body_end(self, text: str) -> int | None:
        """Where the first complete call body in ``text`` (opener removed) ends, else None."""
        if self.body == "python":
            return python_call_end(text)
        return json_value_end(text)

    def parse_body(self, text: str) -> tuple[Any, str | None]:
        """A call body as the JSON value the call schema checks: (value, None) or (None, why)."""
        if self.body == "python":
            return parse_python_call(text, self.arguments_key)
        try:
            return json.loads(text), None
        except ValueError as exc:
            return None, f"is not valid JSON ({exc})"

    def call_json(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """One call as its JSON body."""
        return {"name": name, self.arguments_key: arguments}

    def format_calls(self, calls: Sequence[Any]) -> str:
        """Earlier tool calls as the model writes them."""
        if self.body == "python":
            return "\n".join(
                f"{self.opener}{python_call(c['name'], c.get('args') or {})}{self.closer}"
                for c in calls
            )
        bodies = [self.call_json(c["name"], c.get("args") or {}) for c in calls]
        if not self.opener:
            value: Any = bodies[0] if len(bodies) == 1 else bodies
            return json.dumps(value, ensure_ascii=False)
        return "\n".join(
            f"{self.opener}{json.dumps(body, ensure_ascii=False)}{self.closer}" for body in bodies
        )

    def result_text(self, text: str) -> str:
        """A tool result as the model reads it (Gemma's ``tool_output`` block)."""
        return f"```tool_output\n{text}\n```" if self.body == "python" else text

    @staticmethod
    def template_tools(specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Tool specs as a chat template's ``tools`` variable (OpenAI's function shape)."""
        return [{"type": "function", "function": dict(spec)} for spec in specs]


JSON_CALLS = ToolFormat(
    name="json",
    opener="",
    closer="",
    arguments_key="parameters",
    result_role="ipython",
    tools_in_template=False,
    parallel_as_list=True,
)

HERMES_CALLS = ToolFormat(
    name="hermes",
    opener="<tool_call>\n",
    closer="\n</tool_call>",
    arguments_key="arguments",
    result_role="tool",
    tools_in_template=True,
    parallel_as_list=False,
)

JSON_USER_RESULTS = ToolFormat(
    name="json-user-results",
    opener="",
    closer="",
    arguments_key="parameters",
    result_role="user",
    tools_in_template=False,
    parallel_as_list=True,
)

TOOL_CODE_CALLS = ToolFormat(
    name="tool_code",
    opener="```tool_code\n",
    closer="\n```",
    arguments_key="parameters",
    result_role="user",
    tools_in_template=False,
    parallel_as_list=False,
    body="python",
)

TOOL_FORMATS = {f.name: f for f in (JSON_CALLS, HERMES_CALLS, JSON_USER_RESULTS, TOOL_CODE_CALLS)}


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


def python_call_end(text: str) -> int | None:
    """Where the first complete ``name(...)`` in ``text`` ends (brackets balanced), else None."""
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


def parse_python_call(text: str, arguments_key: str) -> tuple[Any, str | None]:
    """``name(key=value, ...)`` as ``{"name": ..., arguments_key: {...}}``, or why it is not."""
    import ast

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
