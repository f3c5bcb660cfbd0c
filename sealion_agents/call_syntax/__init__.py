"""How a tool call's body is written: one ``CallSyntax`` per way a model family writes it.

A ``ToolFormat`` (``tool_formats``) decides the text around a call (its opener and closer), the
role of results and how tools are described; its ``syntax`` decides the call itself:

* ``JSON_SYNTAX``: ``{"name": ..., "arguments": {...}}`` (Llama 3.1, Hermes), decoded under
  the call's JSON schema;
* ``PYTHON_SYNTAX`` (``call_syntax.python``): ``name(key=value)`` (Gemma 3's ``tool_code``);
* the others in their own modules, each decoded under a grammar of the call that the syntax
  writes from the tools' parameter schemas.

Every syntax reads a call back as the canonical JSON value ``{"name": ..., <arguments key>:
{...}}`` (a list of them for several calls), which the call's JSON schema then checks, so a
model that writes a wrong value is caught the same way in every syntax.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from sealion_agents.json_schema import JsonValueEnd, json_value_end

__all__ = [
    "JSON_LIST_SYNTAX",
    "JSON_SYNTAX",
    "CallSyntax",
    "EndScanner",
    "JsonSyntax",
    "RescanEnd",
    "ToolSpec",
]

ToolSpec = tuple[str, dict[str, Any]]
"""A tool as a syntax sees it: its name and its parameters' JSON schema."""


class EndScanner(Protocol):
    """Where a body that grows ends: ``scan`` gets the whole text so far each time."""

    def scan(self, text: str) -> int | None:
        """Where the first complete body in ``text`` ends, else None (not yet)."""
        ...


class RescanEnd:
    """A syntax's ``end``, run again only when new text may close the body.

    That is text with ``}``, ``)``, ``]`` or ``>`` in it: no scan of the whole body for every
    token.
    """

    CLOSERS = "})]>"

    def __init__(self, end: Callable[[str], int | None], start: int = 0) -> None:
        self._find = end
        self._start = start
        self._seen = start
        self._end: int | None = None

    def scan(self, text: str) -> int | None:
        """Where the body (from ``start``) ends in ``text`` (the last text, longer), else None."""
        if self._end is None:
            new, self._seen = text[self._seen :], len(text)
            if any(c in new for c in self.CLOSERS):
                end = self._find(text[self._start :])
                self._end = None if end is None else self._start + end
        return self._end


class CallSyntax(Protocol):
    """How one call's body is written, constrained, found and read back."""

    name: str

    def grammar(self, tools: Sequence[ToolSpec], *, parallel: bool) -> str | None:
        """The GBNF grammar of a call body to one of ``tools`` (None: the call's JSON schema).

        ``parallel``: the body may hold several calls (syntaxes that write them in one body).
        """
        ...

    def end(self, text: str) -> int | None:
        """Where the first complete call body in ``text`` ends, else None (not yet)."""
        ...

    def end_scanner(self, start: int = 0) -> EndScanner:
        """``end`` for a body that grows token by token.

        The body starts at ``start`` in the text each ``scan`` is given; its end comes back
        as an index in that text.
        """
        ...

    def parse(
        self, text: str, arguments_key: str, tools: Sequence[ToolSpec] = ()
    ) -> tuple[Any, str | None]:
        """A body as the canonical JSON value: (value, None), or (None, why it is not one).

        ``tools``: the tools the call may name (a syntax that writes values untyped reads
        them by their schema); the call's JSON schema checks the value afterwards.
        """
        ...

    def write(self, calls: Sequence[tuple[str, dict[str, Any]]], arguments_key: str) -> list[str]:
        """Earlier calls as bodies, as the model writes them (one body per string)."""
        ...

    def example(self, arguments_key: str) -> str:
        """A call body in words, for instructions (``<tool name>`` and so on)."""
        ...


class JsonSyntax:
    """A call as JSON: ``{"name": ..., <arguments key>: {...}}``.

    ``bodies_as_list``: several calls are one JSON list (else one object per body).
    """

    name = "json"

    def __init__(self, *, bodies_as_list: bool) -> None:
        self.bodies_as_list = bodies_as_list

    def grammar(self, tools: Sequence[ToolSpec], *, parallel: bool) -> str | None:
        """None: the call's JSON schema is the constraint."""
        return None

    def end(self, text: str) -> int | None:
        """Where the first JSON object or array ends."""
        return json_value_end(text)

    def end_scanner(self, start: int = 0) -> EndScanner:
        """Reads only the new text each time."""
        return JsonValueEnd(start)

    def parse(
        self, text: str, arguments_key: str, tools: Sequence[ToolSpec] = ()
    ) -> tuple[Any, str | None]:
        """The JSON itself."""
        try:
            return json.loads(text), None
        except ValueError as exc:
            return None, f"is not valid JSON ({exc})"

    def write(self, calls: Sequence[tuple[str, dict[str, Any]]], arguments_key: str) -> list[str]:
        """One JSON object per call, or one list of them all."""
        bodies = [{"name": name, arguments_key: args} for name, args in calls]
        if self.bodies_as_list:
            value: Any = bodies[0] if len(bodies) == 1 else bodies
            return [json.dumps(value, ensure_ascii=False)]
        return [json.dumps(body, ensure_ascii=False) for body in bodies]

    def example(self, arguments_key: str) -> str:
        """A JSON object with the name and the arguments."""
        arguments = "<the arguments as a JSON object>"
        return f'a JSON object: {{"name": <tool name>, "{arguments_key}": {arguments}}}'


JSON_SYNTAX = JsonSyntax(bodies_as_list=False)
"""One JSON object per call (a format with an opener writes one block per call)."""
JSON_LIST_SYNTAX = JsonSyntax(bodies_as_list=True)
"""Several calls as one JSON list (Llama 3.1's answers are the JSON alone)."""
