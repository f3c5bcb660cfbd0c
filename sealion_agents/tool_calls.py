r"""Tool calls decoded under their JSON schema, in the text format of the model's family.

The model profile's ``ToolFormat`` (``tool_formats``) decides the text; by default (SEA-LION
v3.5 R, whose Llama 3.1 base follows this style best, and which has no tool-calling format
of its own):

* the tools are described in a system message (``AnswerPlan.instructions``): each tool as
  ``{"name", "description", "parameters"}`` JSON, then how to call one; a format whose chat
  template describes tools itself (Hermes) gets them as the template's ``tools`` variable
  and only the instruction of the tool choice;
* a call is the whole answer: ``{"name": "<tool>", "parameters": {...}}``, or a JSON list of
  such objects for several calls at once (when ``parallel_tool_calls`` allows); Hermes
  writes ``<tool_call>\n{"name": ..., "arguments": {...}}`` (one call per answer);
* an earlier assistant turn that called tools is rendered in the same format (its text
  first, if any); a tool result is a message in the format's role (``ipython``, Llama 3.1's
  role for tool output; ``tool`` for Hermes) holding the tool's output text, prefixed with
  ``Error:`` when it failed.

Reasoning is never read for calls: only the answer after ``</think>`` is.

Data flow: tools + ``tool_choice`` -> ``AnswerPlan`` (instructions, the JSON schema of an
allowed answer) -> constrained decoding -> answer text -> ``AnswerPlan.read`` -> tool calls
(with ids) or invalid tool calls (with the reason).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from langchain_core.messages import InvalidToolCall, ToolCall
from langchain_core.utils.function_calling import convert_to_openai_tool

from sealion_agents.backends.base import AnswerConstraint
from sealion_agents.call_syntax import EndScanner
from sealion_agents.json_schema import (
    Constraint,
    JsonValueEnd,
    hoist_definitions,
    json_value_end,
    prepare,
)
from sealion_agents.tool_formats import JSON_CALLS, ToolFormat

__all__ = ["AnswerPlan", "CALL_OPENERS", "format_calls", "tool_specs"]

CALL_OPENERS = "{["
"""First characters of an answer that is a call (JSON object or list)."""

Kind = Literal["tools", "json"]


def tool_specs(tools: Sequence[Any]) -> list[dict[str, Any]]:
    """Tools (LangChain tools, functions, Pydantic models, dicts) as name/description/schema."""
    specs: list[dict[str, Any]] = []
    seen: dict[str, dict[str, Any]] = {}
    for tool in tools:
        function = convert_to_openai_tool(tool)["function"]
        name = str(function["name"])
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        if name in seen:
            if _same_parameters(seen[name], parameters):
                continue  # the same tool twice (a model and its schema): once is enough
            raise ValueError(
                f"Two different tools are named {name!r}: give each tool its own name."
            )
        seen[name] = parameters
        specs.append(
            {
                "name": name,
                "description": str(function.get("description") or ""),
                "parameters": parameters,
            }
        )
    return specs


def _same_parameters(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same schema, titles and descriptions aside."""

    def core(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: core(v) for k, v in node.items() if k not in ("title", "description")}
        if isinstance(node, list):
            return [core(v) for v in node]
        return node

    return bool(core(a) == core(b))


def normalise_choice(tool_choice: Any, names: Sequence[str]) -> str:
    """LangChain's and OpenAI's ``tool_choice`` spellings as auto, none, any or a tool name."""
    if tool_choice is None or tool_choice == "auto":
        return "auto"
    if tool_choice is True:  # LangChain: "a tool must be called"; with one tool, that one
        return names[0] if len(names) == 1 else "any"
    if tool_choice in ("any", "required"):
        return "any"
    if tool_choice is False or tool_choice == "none":
        return "none"
    if isinstance(tool_choice, dict):  # {"type": "function", "function": {"name": ...}}
        name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
        if name is None:
            raise ValueError(f"tool_choice={tool_choice!r} names no tool.")
        tool_choice = name
    if isinstance(tool_choice, str) and tool_choice in names:
        return tool_choice
    raise ValueError(
        f"tool_choice={tool_choice!r} is not one of the bound tools {list(names)}; use 'auto', "
        "'any', 'required', 'none', True or a tool name."
    )


def format_calls(calls: Sequence[Any], tool_format: ToolFormat = JSON_CALLS) -> str:
    """Earlier tool calls as the model writes them (one object, or a list of several)."""
    return tool_format.format_calls(calls)


@dataclass(frozen=True)
class AnswerPlan:
    """What the answer of one turn must be: a tool call, structured JSON, or free text.

    ``forced``: the answer must match ``constraint`` (tool choice "any" or a tool name, or
    structured output). Otherwise ("auto") the model chooses: an answer that opens with
    ``{`` or ``[`` is a call and is then constrained; anything else is text.
    """

    kind: Kind
    constraint: Constraint
    forced: bool
    tools: tuple[dict[str, Any], ...] = ()
    instructions: str = ""
    retries: int = 2
    """Extra attempts when a reply breaks a rule checked only after decoding."""
    tool_format: ToolFormat = JSON_CALLS
    """How calls are written (the model profile's format)."""
    allowed: tuple[dict[str, Any], ...] = ()
    """The tools the choice allows (all of them, or the one named)."""
    parallel: bool = False
    """Several calls may come in one answer (formats that write them as one body)."""

    @cached_property
    def grammar(self) -> str | None:
        """The answer's grammar where the call syntax writes one, else None (JSON schema)."""
        if self.kind != "tools":
            return None
        tools = [(t["name"], t["parameters"]) for t in self.allowed]
        return self.tool_format.grammar(tools, parallel=self.parallel)

    def answer_constraint(self, **fields: Any) -> AnswerConstraint:
        """The backend's constraint for this plan's answer."""
        return AnswerConstraint(self.constraint.schema, grammar=self.grammar, **fields)

    @property
    def opener(self) -> str:
        """Text a call's JSON follows in the answer ("" for structured output)."""
        return self.tool_format.opener if self.kind == "tools" else ""

    @property
    def template_tools(self) -> tuple[dict[str, Any], ...]:
        """The tools for the chat template's ``tools`` variable (formats that describe them)."""
        if self.kind != "tools" or not self.tool_format.tools_in_template:
            return ()
        return tuple(self.tool_format.template_tools(self.tools))

    @classmethod
    def for_tools(
        cls,
        specs: Sequence[dict[str, Any]],
        choice: str,
        *,
        parallel: bool = True,
        retries: int = 2,
        tool_format: ToolFormat = JSON_CALLS,
    ) -> AnswerPlan | None:
        """The plan for bound tools and a normalised choice (None for "none").

        ``parallel`` allows several calls in one answer where the format writes them as
        one JSON list; other formats make one call per answer.
        """
        if choice == "none" or not specs:
            return None
        parallel = parallel and tool_format.parallel_as_list
        key = tool_format.arguments_key
        allowed = [s for s in specs if choice in ("auto", "any") or s["name"] == choice]
        options: list[dict[str, Any]] = []
        definitions: dict[str, Any] = {}
        for i, spec in enumerate(allowed):
            parameters, defs = hoist_definitions(spec["parameters"], f"tool{i}_")
            definitions.update(defs)
            options.append(
                {
                    "type": "object",
                    "properties": {"name": {"const": spec["name"]}, key: parameters},
                    "required": ["name", key],
                    "additionalProperties": False,
                }
            )
        call: dict[str, Any] = options[0] if len(options) == 1 else {"anyOf": options}
        schema: dict[str, Any] = call
        if parallel:
            schema = {"anyOf": [call, {"type": "array", "items": call, "minItems": 1}]}
        if definitions:
            schema = {**schema, "$defs": definitions}
        names = ", ".join(s["name"] for s in allowed)
        constraint = prepare(schema, what=f"the parameters of the tool(s) {names}")
        return cls(
            kind="tools",
            constraint=constraint,
            forced=choice != "auto",
            tools=tuple(specs),
            instructions=_instructions(specs, choice, parallel, tool_format),
            retries=retries,
            tool_format=tool_format,
            allowed=tuple(allowed),
            parallel=parallel,
        )

    @classmethod
    def for_json(
        cls, schema: dict[str, Any] | None, *, retries: int = 2, name: str = "the schema"
    ) -> AnswerPlan:
        """Structured output: the answer is JSON matching ``schema`` (None: any JSON object)."""
        if schema is None:
            constraint = Constraint(schema={"type": "object"})
            instructions = "Answer with only a JSON object, no other text."
        else:
            constraint = prepare(schema, what=name)
            instructions = (
                "Answer with only a JSON object that matches this JSON schema, no other text:\n"
                + json.dumps(schema, ensure_ascii=False)
            )
        return cls(
            kind="json",
            constraint=constraint,
            forced=True,
            instructions=instructions,
            retries=retries,
        )

    def opens_call(self, answer: str) -> bool | None:
        """For "auto": True when the answer begins a call, False for text, None: not yet known."""
        if self.kind == "tools":
            return self.tool_format.opens_call(answer)
        stripped = answer.lstrip()
        if not stripped:
            return None
        return stripped[0] in CALL_OPENERS

    def body_end(self, answer: str) -> int | None:
        """Where the answer's value ends in its body (opener removed), else None: not yet."""
        if self.kind != "tools":
            return json_value_end(answer)
        return self.tool_format.body_end(self.tool_format.json_part(answer))

    def end_scanner(self) -> EndScanner:
        """``body_end`` for an answer that grows token by token (reads mostly what is new)."""
        return _AnswerEnd(self)

    def json_text(self, answer: str) -> str:
        """The answer's value (a call's opener and anything after the value removed)."""
        body = self.tool_format.json_part(answer) if self.kind == "tools" else answer.lstrip()
        end = self.tool_format.body_end(body) if self.kind == "tools" else json_value_end(body)
        return (body[:end] if end is not None else body).strip()

    def read(self, text: str) -> tuple[list[ToolCall], list[InvalidToolCall]]:
        """The calls in a constrained answer: schema-valid ones, and the others with the reason."""
        body = self.json_text(text)
        if self.tool_format.body == "json":
            value, error = self.constraint.check(body)
        else:
            tools = [(t["name"], t["parameters"]) for t in self.allowed]
            parsed, error = self.tool_format.parse_body(body, tools)
            if error is None:
                value, error = self.constraint.check(json.dumps(parsed, ensure_ascii=False))
        if error is None:
            objects = value if isinstance(value, list) else [value]
            key = self.tool_format.arguments_key
            return [
                ToolCall(name=o["name"], args=o[key], id=_call_id(), type="tool_call")
                for o in objects
            ], []
        return [], [self._invalid(body, error)]

    def _invalid(self, text: str, error: str) -> InvalidToolCall:
        name = None
        try:
            value = self.tool_format.parse_body(text)[0] or json.loads(text)
            first = value[0] if isinstance(value, list) and value else value
            if isinstance(first, dict) and isinstance(first.get("name"), str):
                name = first["name"]
        except ValueError:
            pass
        return InvalidToolCall(
            name=name,
            args=text,
            id=_call_id(),
            error=f"The model's tool call {error}.",
            type="invalid_tool_call",
        )


class _AnswerEnd:
    """Where a growing answer's value ends, each token's text read about once.

    The body is found once (after blanks and, for a call, its opener); from then on the
    syntax's scanner reads what is new.
    """

    def __init__(self, plan: AnswerPlan) -> None:
        self._plan = plan
        self._body: EndScanner | None = None

    def scan(self, answer: str) -> int | None:
        """Where the value ends in ``answer`` (a longer version of the last), else None."""
        if self._body is None:
            start = self._body_start(answer)
            if start is None:
                return None
            if self._plan.kind == "tools":
                self._body = self._plan.tool_format.syntax.end_scanner(start)
            else:
                self._body = JsonValueEnd(start)
        return self._body.scan(answer)

    def _body_start(self, answer: str) -> int | None:
        """Where the body begins, once that is known (None: blanks or a partial opener)."""
        at = len(answer) - len(answer.lstrip())
        tag = self._plan.opener.strip()
        if tag and answer.startswith(tag, at):
            rest = answer[at + len(tag) :]
            at = len(answer) - len(rest.lstrip())
        elif tag and tag.startswith(answer[at:]):
            return None  # the opener may still be coming
        return at if at < len(answer) else None


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _instructions(
    specs: Sequence[dict[str, Any]], choice: str, parallel: bool, tool_format: ToolFormat
) -> str:
    lines: list[str] = []
    if not tool_format.tools_in_template:  # else the chat template describes the tools
        lines.append("You can call these tools (the parameters are JSON schemas):")
        lines += [json.dumps(spec, ensure_ascii=False) for spec in specs]
        several = (
            " To make several calls at once, answer with a JSON list of such objects."
            if parallel
            else ""
        )
        call = tool_format.syntax.example(tool_format.arguments_key)
        lines.append(
            f"To call a tool, answer with only {tool_format.opener}{call}{tool_format.closer}"
            f".{several} Tool results come back in messages from "
            f'"{tool_format.result_role}".'
        )
    if choice == "auto":
        lines.append("If no tool is needed, answer the user in plain text.")
    elif choice == "any":
        lines.append("Answer now with a tool call.")
    else:
        lines.append(f"Answer now with a call to the tool {choice!r}.")
    return "\n".join(lines)
