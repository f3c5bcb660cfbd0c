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
* ``JSON_USER_RESULTS`` (Gemma 3 and 4: SEA-LION v4 and v4.5 Gemma): calls as ``JSON_CALLS``,
  described in the system message as AI Singapore's tool-calling guide advises for Gemma;
  results come back as ``user`` turns, since Gemma's template allows only alternating turns.

Data flow: tool specs -> ``ToolFormat.template_tools`` (for templates that describe tools)
or the plan's instructions; earlier calls -> ``format_calls`` -> assistant text; a model's
answer -> ``json_part`` -> the JSON body read by ``AnswerPlan``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["HERMES_CALLS", "JSON_CALLS", "JSON_USER_RESULTS", "TOOL_FORMATS", "ToolFormat"]


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

    def call_json(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """One call as its JSON body."""
        return {"name": name, self.arguments_key: arguments}

    def format_calls(self, calls: Sequence[Any]) -> str:
        """Earlier tool calls as the model writes them."""
        bodies = [self.call_json(c["name"], c.get("args") or {}) for c in calls]
        if not self.opener:
            value: Any = bodies[0] if len(bodies) == 1 else bodies
            return json.dumps(value, ensure_ascii=False)
        return "\n".join(
            f"{self.opener}{json.dumps(body, ensure_ascii=False)}{self.closer}" for body in bodies
        )

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

TOOL_FORMATS = {f.name: f for f in (JSON_CALLS, HERMES_CALLS, JSON_USER_RESULTS)}
