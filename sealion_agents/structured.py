"""``with_structured_output`` for ChatSeaLion: Pydantic models, TypedDicts and JSON schemas.

Data flow: schema + method -> a bound model (``response_format`` for "json_schema" and
"json_mode", one forced tool for "function_calling") -> the constrained answer -> a parser
(Pydantic object or dict) -> with ``include_raw``: ``{"raw", "parsed", "parsing_error"}``.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Literal

from langchain_core.language_models.base import LanguageModelInput
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import (
    JsonOutputKeyToolsParser,
    PydanticToolsParser,
)
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass

from sealion_agents.tool_calls import AnswerPlan

__all__ = ["StructuredOutputMixin"]

Method = Literal["json_schema", "function_calling", "json_mode"]


def _is_pydantic(schema: Any) -> bool:
    return isinstance(schema, type) and is_basemodel_subclass(schema)


def _checked_json_schema(schema: Any) -> dict[str, Any]:
    """The JSON schema of a Pydantic model, TypedDict, function dict or schema dict.

    One that cannot be enforced is refused here, before any generation.
    """
    if isinstance(schema, dict) and "function" not in schema and "name" not in schema:
        json_schema = schema  # a JSON schema already
    else:
        json_schema = convert_to_json_schema(schema)
    AnswerPlan.for_json(json_schema)
    return json_schema


class StructuredOutputMixin:
    """Adds ``with_structured_output`` to a chat model that has ``bind`` and ``bind_tools``."""

    def with_structured_output(  # type: ignore[override]
        self,
        schema: Any = None,
        *,
        method: Method = "json_schema",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """This model answering with data that matches ``schema``.

        Args:
            schema: a Pydantic model (the result is an instance), a TypedDict or a JSON
                schema (the result is a dict). Not needed for "json_mode".
            method: "json_schema" (default: the answer is JSON decoded under the schema),
                "function_calling" (the schema as a forced tool call), "json_mode" (a JSON
                object: the schema's, when one is given; say in the prompt what it holds).
            include_raw: return ``{"raw": AIMessage, "parsed": ..., "parsing_error": ...}``
                instead of raising when parsing fails.
            strict: accepted for compatibility; decoding is always under the schema.
            **kwargs: none are accepted (an error names them).

        The reasoning (thinking on) is free and stays in ``raw``'s ``reasoning_content``.
        """
        if kwargs:
            raise ValueError(f"with_structured_output got unexpected arguments {sorted(kwargs)}.")
        if method not in ("json_schema", "function_calling", "json_mode"):
            raise ValueError(
                f"method={method!r} is not supported: use 'json_schema', 'function_calling' or "
                "'json_mode'."
            )
        if schema is None and method != "json_mode":
            raise ValueError(
                f"method={method!r} needs a schema (a Pydantic model, TypedDict or dict)."
            )
        pydantic = _is_pydantic(schema)
        llm: Runnable[Any, Any]
        parser: Runnable[Any, Any]
        trace: dict[str, Any] = {"kwargs": {"method": method, "strict": strict}}
        if method == "function_calling":
            tool = convert_to_openai_tool(schema)
            name = tool["function"]["name"]
            llm = self.bind_tools(  # type: ignore[attr-defined]
                [schema],
                tool_choice=name,
                parallel_tool_calls=False,
                ls_structured_output_format={**trace, "schema": tool},
            )
            parser = (
                PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
                if pydantic
                else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
            )
        elif method == "json_schema":
            json_schema = _checked_json_schema(schema)
            name = json_schema.get("title", "answer")
            llm = self.bind(  # type: ignore[attr-defined]
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": name, "schema": json_schema, "strict": True},
                },
                ls_structured_output_format={**trace, "schema": json_schema},
            )
            parser = (
                PydanticOutputParser(pydantic_object=schema) if pydantic else JsonOutputParser()
            )  # type: ignore[arg-type]
        else:  # json_mode: any JSON object, or the schema's when one is given
            response_format: dict[str, Any] = {"type": "json_object"}
            if schema is not None:
                json_schema = _checked_json_schema(schema)
                response_format = {"type": "json_schema", "json_schema": {"schema": json_schema}}
            llm = self.bind(  # type: ignore[attr-defined]
                response_format=response_format,
                ls_structured_output_format={**trace, "schema": schema},
            )
            parser = (
                PydanticOutputParser(pydantic_object=schema) if pydantic else JsonOutputParser()
            )  # type: ignore[arg-type]
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        failed = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([failed], exception_key="parsing_error")
