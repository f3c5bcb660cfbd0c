"""Grammars from JSON schemas: GBNF for llama.cpp, bounded-whitespace grammars for vLLM.

Data flow: a prepared JSON schema -> ``llama_cpp.llama_grammar.json_schema_to_gbnf`` -> GBNF
text; ``answer_grammar`` wraps it for engines that must constrain a whole reply in one
generation (llama.cpp's servers, which cannot continue an assistant turn): the reasoning
runs free up to its closing tag (the profile's; ``</think>`` by default), then the answer is
the JSON value (or, for "auto", text that does not open with ``{`` or ``[``). For vLLM,
``structured_outputs`` turns the schema into the fields of its structured outputs: a grammar
from xgrammar (vLLM's own converter) or from llama.cpp's converter, with at most one
whitespace character between tokens.

Whitespace is bounded everywhere: a model that does not lean towards closing its JSON could
otherwise write whitespace until ``max_tokens``.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import re
from functools import lru_cache
from typing import Any

from sealion_agents.errors import UnsupportedSchemaError, require
from sealion_agents.json_schema import rename_definitions
from sealion_agents.reasoning import THINK_TAGS, ReasoningTags

__all__ = [
    "answer_grammar",
    "gbnf_literal",
    "no_raw_control_characters",
    "schema_grammar",
    "structured_outputs",
    "text_without",
]

logger = logging.getLogger(__name__)

_GAP = "[ \\t\\n]{0,4}"  # whitespace before the reasoning or the answer: bounded


MAX_ENUMERATED_RANGE = 256
"""Integer ranges up to this size become an enumeration in the grammar (enforced exactly)."""


def schema_grammar(schema: dict[str, Any]) -> str:
    """The GBNF grammar of the JSON values ``schema`` allows.

    The converter ignores numeric bounds; a bounded integer range of at most
    ``MAX_ENUMERATED_RANGE`` values is written as the list of its values, so the grammar
    enforces it. Other bounds are checked after decoding.
    """
    # the schema's own property order: the grammar writes properties in it (as vLLM's does)
    return _convert(json.dumps(_enumerate_ranges(_safe_definitions(schema))))


def _safe_definitions(schema: dict[str, Any]) -> dict[str, Any]:
    """``$defs`` renamed ``def0``, ``def1``...

    The converter names rules after them and writes references to a name with ``_`` or
    ``-`` differently from its rule.
    """
    if not (schema.get("$defs") or schema.get("definitions")):
        return schema
    out, defs = rename_definitions(schema, lambda i, _: f"def{i}")
    out["$defs"] = defs
    root_ref = out.pop("$ref", None)
    if isinstance(root_ref, str) and root_ref.startswith("#/$defs/"):
        # the converter cannot start from a reference (a recursive Pydantic model's schema)
        out = {**copy.deepcopy(out["$defs"][root_ref.rsplit("/", 1)[1]]), **out}
    elif root_ref is not None:
        out["$ref"] = root_ref
    return out


def _enumerate_ranges(node: Any) -> Any:
    if isinstance(node, list):
        return [_enumerate_ranges(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _enumerate_ranges(v) for k, v in node.items()}
    if out.get("type") == "integer" and "enum" not in out and "const" not in out:
        low = _bound(out, "minimum", "exclusiveMinimum", 1)
        high = _bound(out, "maximum", "exclusiveMaximum", -1)
        if low is not None and high is not None and 0 <= high - low < MAX_ENUMERATED_RANGE:
            out = {"enum": list(range(low, high + 1))}
    return out


def _bound(node: dict[str, Any], inclusive: str, exclusive: str, step: int) -> int | None:
    """The inclusive integer bound a schema sets on one side, if any."""
    import math

    values = []
    if isinstance(node.get(inclusive), (int, float)):
        value = node[inclusive]
        values.append(math.ceil(value) if step > 0 else math.floor(value))
    if isinstance(node.get(exclusive), (int, float)):
        value = node[exclusive]
        values.append(math.floor(value) + 1 if step > 0 else math.ceil(value) - 1)
    if not values:
        return None
    return max(values) if step > 0 else min(values)


@lru_cache(maxsize=64)
def _convert(schema_text: str) -> str:
    require("llama_cpp", extra="gguf", feature="Constrained decoding with llama.cpp")
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar = str(json_schema_to_gbnf(schema_text))
    except Exception as exc:  # the converter asserts on what it cannot express
        raise UnsupportedSchemaError(
            f"llama.cpp's grammar converter cannot express this JSON schema: "
            f"{type(exc).__name__}: {exc}. Simplify the schema (plain types, enums, arrays, "
            "objects)."
        ) from exc
    # The converter writes characters beyond the BMP (emoji...) as UTF-16 surrogate escapes,
    # which llama.cpp reads as two invalid code points: write the character itself instead.
    return no_raw_control_characters(_SURROGATE_PAIR.sub(_astral, grammar))


def no_raw_control_characters(grammar: str) -> str:
    """llama.cpp's value rules with no raw control character in a string.

    JSON has none (``json.loads``, and so the answer's check, refuses them) and a Python
    literal cannot hold a raw newline; xgrammar's rules already leave them out.
    """
    return grammar.replace('char ::= [^"\\\\]', 'char ::= [^"\\\\\\x00-\\x1F]')


_SURROGATE_PAIR = re.compile(r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})", re.IGNORECASE)


def _astral(match: re.Match[str]) -> str:
    high, low = int(match.group(1), 16), int(match.group(2), 16)
    return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))


def answer_grammar(
    schema: dict[str, Any],
    *,
    after_reasoning: bool,
    optional: bool,
    opener: str = "",
    body_grammar: str | None = None,
    tags: ReasoningTags = THINK_TAGS,
) -> str:
    """One grammar for a whole reply: free reasoning (if allowed), then the constrained answer.

    With ``after_reasoning`` the reply may hold reasoning that ends in ``tags.close`` (opened
    by the reply or already by the prompt) before the answer. ``optional``: the answer may
    be plain text instead of the JSON value (text that does not begin like a call).
    ``opener``: text the JSON value follows (a call's tag, ``<tool_call>``);
    ``body_grammar``: the answer's own grammar where it is not JSON (a Python call).
    """
    grammar = body_grammar or schema_grammar(schema)
    grammar = re.sub(r"^root\s*::=", "json-answer ::=", grammar, count=1, flags=re.MULTILINE)
    call = f"{json.dumps(opener)} json-answer" if opener else "json-answer"
    answer = f"( {call} | free-text )" if optional else call
    first = re.escape(opener[0]) if opener else "{\\["
    free_text = f"free-text ::= [^{first} \\t\\n] [^\\x00]*\n"
    if after_reasoning:
        thought = f"( {gbnf_literal(tags.open)}? reasoning {gbnf_literal(tags.close)} {_GAP} )?"
        root = f"root ::= {_GAP} {thought} {answer}"
    else:
        root = f"root ::= {_GAP} {answer}"
    return f"{root}\n{grammar}\n{_reasoning_rule(tags.close)}{free_text}"


def _reasoning_rule(close: str) -> str:
    """The GBNF rule ``reasoning``: any text without ``close`` in it."""
    try:
        return "\n" + text_without("reasoning", close) + "\n"
    except UnsupportedSchemaError as exc:
        raise UnsupportedSchemaError(
            f"{exc} Use structured_output='none' (replies are checked and retried) with this model."
        ) from exc


def text_without(name: str, tag: str) -> str:
    """The GBNF rule ``name``: any text without ``tag`` in it, newlines included.

    Its helpers are ``name-loop`` and ``name-exit``. It follows the automaton that matches
    ``tag``: outside a match any character but the first goes on, and the first starts a
    partial match; a partial match loops back on the first character, leaves on a character
    that neither goes on with it nor starts it again, or ends the text (which may end in part
    of the tag). Exact when the tag's first character does not recur in it, as in every tag
    in use; a tag where it recurs is refused with a clear error.
    """
    if not tag or tag[0] in tag[1:]:
        raise UnsupportedSchemaError(
            f"The tag {tag!r} repeats its first character, which a grammar of text without it "
            "cannot exclude exactly."
        )
    first, rest = tag[0], tag[1:]
    if not rest:
        return f"{name} ::= [^{_class_char(first)}]*"
    loops = [gbnf_literal(rest[:i] + first) for i in range(len(rest))]
    exits = [
        (f"{gbnf_literal(rest[:i])} " if i else "")
        + f"[^{_class_char(rest[i])}{_class_char(first)}]"
        for i in range(len(rest))
    ]
    ends = [gbnf_literal(rest[:i]) for i in range(1, len(rest))]
    tail = f" ( {' | '.join(ends)} )?" if ends else ""
    return (
        f"{name} ::= ( [^{_class_char(first)}] | {gbnf_literal(first)} {name}-loop* {name}-exit )* "
        f"( {gbnf_literal(first)} {name}-loop*{tail} )?\n"
        f"{name}-loop ::= {' | '.join(loops)}\n"
        f"{name}-exit ::= {' | '.join(exits)}"
    )


def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    return json.dumps(text, ensure_ascii=False)


def _class_char(char: str) -> str:
    """One character as GBNF writes it inside ``[...]``."""
    escapes = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if char in escapes:
        return escapes[char]
    return "\\" + char if char in "\\]^-[" else char


def structured_outputs(schema: dict[str, Any]) -> dict[str, Any]:
    """The fields of vLLM's structured outputs that constrain a reply to ``schema``.

    The same fields go into ``StructuredOutputsParams`` (in-process) and a server request's
    ``structured_outputs``. vLLM (0.32) ignores a request's ``disable_any_whitespace`` (its
    engines read only the server-wide setting) and compiles ``json`` with any run of
    whitespace between tokens, so a grammar is sent instead: xgrammar's (installed with
    vLLM) or, without xgrammar, llama.cpp's, both with at most one whitespace character
    between tokens. With neither converter installed, or a schema xgrammar cannot convert
    (vLLM then picks another engine), the schema itself is sent.
    """
    grammar = _bounded_grammar(json.dumps(schema, ensure_ascii=False))
    if grammar is None:
        return {"json": schema, "disable_any_whitespace": True}
    return {"grammar": grammar}


@lru_cache(maxsize=64)
def _bounded_grammar(schema_text: str) -> str | None:
    if importlib.util.find_spec("xgrammar") is not None:
        import xgrammar

        try:
            grammar = xgrammar.Grammar.from_json_schema(schema_text, max_whitespace_cnt=1)
        except Exception:  # a schema xgrammar cannot convert
            logger.debug("xgrammar cannot convert the schema; sending it as JSON", exc_info=True)
            return None
        return str(grammar)
    if importlib.util.find_spec("llama_cpp") is not None:
        return schema_grammar(json.loads(schema_text))  # whitespace: one optional space
    return None
