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
  grammar of the call (``call_syntax.python``); tools are described in the system
  message; results come back as ``user`` turns in a ```` ```tool_output ```` block, since
  Gemma's template allows only alternating turns.
* ``JSON_USER_RESULTS`` (SEA-Guard Gemma): calls as ``JSON_CALLS``, results as ``user`` turns.
* ``XML_CALLS`` (Nemotron 3: SEA-LION v4.8; Qwen3-Coder's dialect): ``<tool_call>`` around
  ``<function=name>`` with one ``<parameter=key>`` block per argument (``call_syntax.xml``).
* ``GEMMA4_CALLS`` (Gemma 4: SEA-LION v4.5 Gemma, as Gemma 4's chat template writes calls):
  ``<|tool_call>call:name{key:value}<tool_call|>``, strings in ``<|"|>`` (``call_syntax.gemma4``).
* ``APERTUS_CALLS`` (Apertus: SEA-LION v4 Apertus): ``<|tools_prefix|>`` around a JSON list of
  ``{name: arguments}`` objects (``call_syntax.apertus``).

Data flow: tool specs -> ``ToolFormat.template_tools`` (for templates that describe tools)
or the plan's instructions; earlier calls -> ``format_calls`` -> assistant text; a model's
answer -> ``json_part`` -> the JSON body read by ``AnswerPlan``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sealion_agents.call_syntax import JSON_LIST_SYNTAX, JSON_SYNTAX, CallSyntax
from sealion_agents.call_syntax.apertus import APERTUS_SYNTAX
from sealion_agents.call_syntax.gemma4 import GEMMA4_SYNTAX
from sealion_agents.call_syntax.python import PYTHON_SYNTAX
from sealion_agents.call_syntax.xml import XML_SYNTAX

__all__ = [
    "APERTUS_CALLS",
    "GEMMA4_CALLS",
    "HERMES_CALLS",
    "JSON_CALLS",
    "JSON_USER_RESULTS",
    "TOOL_CODE_CALLS",
    "TOOL_FORMATS",
    "XML_CALLS",
    "ToolFormat",
]


@dataclass(frozen=True)
class ToolFormat:
    """The text of a tool call in one model family's answers.

    The defaults are those of a native format: the template describes the tools, results come
    back in ``tool`` turns, one call per answer with its arguments under ``"arguments"``.
    """

    name: str
    opener: str
    """Text before a call's body ("" when the body is the whole answer)."""
    closer: str
    """Text after a call's body."""
    arguments_key: str = "arguments"
    """The key of the call's arguments in its canonical JSON value."""
    result_role: str = "tool"
    """The chat role of a tool result message."""
    tools_in_template: bool = True
    """The chat template describes the tools itself (its ``tools`` variable)."""
    parallel_as_list: bool = False
    """Several calls in one answer are one body (a JSON list); else one call per answer."""
    syntax: CallSyntax = JSON_SYNTAX
    """How the call itself is written (``call_syntax``)."""
    result_wrapper: tuple[str, str] = ("", "")
    """Text before and after a tool result as the model reads it."""
    call_separator: str = "\n"
    """Text between two calls' blocks in one answer."""

    @property
    def body(self) -> str:
        """The syntax's name ("json", "python"...)."""
        return self.syntax.name

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
        """The body of a call's text (its opener removed)."""
        stripped = text.lstrip()
        tag = self.opener.strip()
        if tag and stripped.startswith(tag):
            stripped = stripped[len(tag) :].lstrip()
        return stripped

    def body_end(self, text: str) -> int | None:
        """Where the first complete call body in ``text`` (opener removed) ends, else None."""
        return self.syntax.end(text)

    def parse_body(
        self, text: str, tools: Sequence[tuple[str, dict[str, Any]]] = ()
    ) -> tuple[Any, str | None]:
        """A call body as the JSON value the call schema checks: (value, None) or (None, why)."""
        return self.syntax.parse(text, self.arguments_key, tools)

    def grammar(self, tools: Sequence[tuple[str, dict[str, Any]]], *, parallel: bool) -> str | None:
        """The grammar of a call body to one of ``tools`` (None: the call's JSON schema)."""
        return self.syntax.grammar(tools, parallel=parallel)

    def call_json(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """One call as its canonical JSON value."""
        return {"name": name, self.arguments_key: arguments}

    def format_calls(self, calls: Sequence[Any]) -> str:
        """Earlier tool calls as the model writes them."""
        pairs = [(c["name"], c.get("args") or {}) for c in calls]
        bodies = self.syntax.write(pairs, self.arguments_key)
        return self.call_separator.join(f"{self.opener}{body}{self.closer}" for body in bodies)

    def result_text(self, text: str) -> str:
        """A tool result as the model reads it (Gemma's ``tool_output`` block)."""
        before, after = self.result_wrapper
        return f"{before}{text}{after}"

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
    syntax=JSON_LIST_SYNTAX,
)

HERMES_CALLS = ToolFormat(
    name="hermes",
    opener="<tool_call>\n",
    closer="\n</tool_call>",
)

JSON_USER_RESULTS = ToolFormat(
    name="json-user-results",
    opener="",
    closer="",
    arguments_key="parameters",
    result_role="user",
    tools_in_template=False,
    parallel_as_list=True,
    syntax=JSON_LIST_SYNTAX,
)

TOOL_CODE_CALLS = ToolFormat(
    name="tool_code",
    opener="```tool_code\n",
    closer="\n```",
    arguments_key="parameters",
    result_role="user",
    tools_in_template=False,
    syntax=PYTHON_SYNTAX,
    result_wrapper=("```tool_output\n", "\n```"),
)

XML_CALLS = ToolFormat(
    name="xml",
    opener="<tool_call>\n",
    closer="\n</tool_call>",
    syntax=XML_SYNTAX,
)

GEMMA4_CALLS = ToolFormat(
    name="gemma4",
    opener="<|tool_call>",
    closer="<tool_call|>",
    arguments_key="parameters",
    syntax=GEMMA4_SYNTAX,
    call_separator="",
)

APERTUS_CALLS = ToolFormat(
    name="apertus",
    opener="<|tools_prefix|>",
    closer="<|tools_suffix|>",
    parallel_as_list=True,
    syntax=APERTUS_SYNTAX,
)

TOOL_FORMATS = {
    f.name: f
    for f in (
        JSON_CALLS,
        HERMES_CALLS,
        JSON_USER_RESULTS,
        TOOL_CODE_CALLS,
        XML_CALLS,
        GEMMA4_CALLS,
        APERTUS_CALLS,
    )
}
