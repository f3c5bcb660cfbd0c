"""GBNF grammars for llama.cpp from JSON schemas (llama-cpp-python's converter).

Data flow: a prepared JSON schema -> ``llama_cpp.llama_grammar.json_schema_to_gbnf`` -> GBNF
text; ``answer_grammar`` wraps it for engines that must constrain a whole reply in one
generation (llama.cpp's servers, which cannot continue an assistant turn): the reasoning
runs free up to ``</think>``, then the answer is the JSON value (or, for "auto", text that
does not open with ``{`` or ``[``).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from sealion_agents.errors import UnsupportedSchemaError, require
from sealion_agents.reasoning import THINK_CLOSE, THINK_OPEN

__all__ = ["answer_grammar", "schema_grammar"]

# Reasoning: any text that does not contain "</think>" (each partial tag must go on).
_REASONING_RULES = r"""
reasoning ::= ( [^<] | "<" [^/<] | "</" [^t<] | "</t" [^h<] | "</th" [^i<] | "</thi" [^n<] | "</thin" [^k<] | "</think" [^><] )*
free-text ::= [^{\[ \t\n] [^\x00]*
"""


def schema_grammar(schema: dict[str, Any]) -> str:
    """The GBNF grammar of the JSON values ``schema`` allows."""
    return _convert(json.dumps(schema, sort_keys=True))


@lru_cache(maxsize=64)
def _convert(schema_text: str) -> str:
    require("llama_cpp", extra="gguf", feature="Constrained decoding with llama.cpp")
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return str(json_schema_to_gbnf(schema_text))
    except Exception as exc:  # the converter asserts on what it cannot express
        raise UnsupportedSchemaError(
            f"llama.cpp's grammar converter cannot express this JSON schema: "
            f"{type(exc).__name__}: {exc}. Simplify the schema (plain types, enums, arrays, "
            "objects)."
        ) from exc


def answer_grammar(
    schema: dict[str, Any], *, after_reasoning: bool, opens_reasoning: bool, optional: bool
) -> str:
    """One grammar for a whole reply: free reasoning (if allowed), then the constrained answer.

    ``opens_reasoning``: the prompt already ends with ``<think>``; otherwise the reply may
    open it. ``optional``: the answer may be plain text instead of the JSON value.
    """
    grammar = schema_grammar(schema)
    grammar = re.sub(r"^root\s*::=", "json-answer ::=", grammar, count=1, flags=re.MULTILINE)
    answer = "( json-answer | free-text )" if optional else "json-answer"
    if not after_reasoning:
        root = f"root ::= [ \\t\\n]* {answer}"
    elif opens_reasoning:
        root = f'root ::= reasoning "{THINK_CLOSE}" [ \\t\\n]* {answer}'
    else:
        root = f'root ::= [ \\t\\n]* ( "{THINK_OPEN}" reasoning "{THINK_CLOSE}" [ \\t\\n]* )? {answer}'
    return f"{root}\n{grammar}\n{_REASONING_RULES}"
