"""GBNF rules for the values of each tool parameter, for syntaxes that are not JSON.

Data flow: (tool name, parameters JSON schema) pairs -> llama.cpp's ``SchemaConverter``
(references resolved, integer ranges enumerated) -> per tool, per parameter: the GBNF rule
of its JSON values and whether it is required -> the syntax writes its own call rules around
them and ends with ``converter.format_grammar()`` (the value rules).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sealion_agents.call_syntax import ToolSpec
from sealion_agents.errors import UnsupportedSchemaError, require

__all__ = ["Parameter", "ToolRules", "parameter_rules", "sequence_rule"]


@dataclass(frozen=True)
class Parameter:
    """One parameter of a tool: its key, the GBNF rule of its JSON values, its schema."""

    key: str
    rule: str
    required: bool
    schema: dict[str, Any]


@dataclass(frozen=True)
class ToolRules:
    """A tool's parameters (required first, in the schema's order) and the value rules."""

    name: str
    parameters: tuple[Parameter, ...]


def parameter_rules(tools: Sequence[ToolSpec], *, feature: str) -> tuple[list[ToolRules], str]:
    """Each tool's parameter rules, and the GBNF text of all the value rules they name.

    ``feature`` names what needs the grammar, for the error when llama-cpp-python is missing.
    """
    require("llama_cpp", extra="gguf", feature=feature)
    from llama_cpp.llama_grammar import SchemaConverter

    from sealion_agents.grammars import (
        _enumerate_ranges,
        _safe_definitions,
        no_raw_control_characters,
    )

    converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    out: list[ToolRules] = []
    for i, (name, parameters) in enumerate(tools):
        schema = converter.resolve_refs(_enumerate_ranges(_safe_definitions(parameters)), "")
        properties: dict[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        params: list[Parameter] = []
        for j, key in enumerate(properties):
            try:
                rule = converter.visit(properties[key], f"call{i}-arg{j}")
            except Exception as exc:  # the converter asserts on what it cannot express
                raise UnsupportedSchemaError(
                    f"llama.cpp's grammar converter cannot express the parameter {key!r} of "
                    f"{name!r}: {type(exc).__name__}: {exc}."
                ) from exc
            params.append(Parameter(key, rule, key in required, properties[key]))
        ordered = [p for p in params if p.required] + [p for p in params if not p.required]
        out.append(ToolRules(name, tuple(ordered)))
    return out, no_raw_control_characters(converter.format_grammar())


def sequence_rule(items: Sequence[str], required: Sequence[bool], separator: str) -> str:
    """GBNF for the required items in order, each optional one after them at most once.

    ``items`` are GBNF expressions, required ones first; ``separator`` a GBNF expression
    between two items ("" for none).
    """
    sep = f"{separator} " if separator else ""
    must = [item for item, req in zip(items, required, strict=True) if req]
    may = [item for item, req in zip(items, required, strict=True) if not req]
    if must:
        return f" {sep}".join(must) + "".join(f" ( {sep}{p} )?" for p in may)
    if not may:
        return ""
    starts = [
        " ".join([may[k], *(f"( {sep}{p} )?" for p in may[k + 1 :])]) for k in range(len(may))
    ]
    return "( " + " | ".join(f"( {s} )" for s in starts) + " )?"
