"""OpenAI's chat-completions shape, both ways, and vLLM's ``/tokenize`` request.

Requests become LangChain messages and options; ``AIMessage``s and chunks become
completions and completion chunks; LangChain's usage records become OpenAI's ``usage``; a
grounded answer (``qa/<collection>``) becomes content with its sources and the
``citations`` / ``sources`` / ``sealion`` fields.

data flow: JSON body -> :class:`ChatRequest` (validated; unknown fields ignored) ->
``to_messages`` + ``generation_options`` -> ChatSeaLion -> ``completion`` (whole reply)
or ``ChunkWriter.chunk`` per ``AIMessageChunk`` -> JSON. Reasoning goes to
``reasoning_content`` and/or ``reasoning`` (a server option), never to ``content``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from pydantic import BaseModel, ConfigDict, Field, create_model

from sealion_agents.options import (
    CONNECTION_OPTIONS,
    GenerationOptions,
    option_names,
    optional_fields,
)
from sealion_agents.serve.config import ReasoningField

__all__ = [
    "ChatRequest",
    "ChunkWriter",
    "MAX_TOKENIZE_CHARS",
    "REQUEST_OPTIONS",
    "RequestError",
    "RequestOptions",
    "TokenizeRequest",
    "completion",
    "generation_options",
    "qa_content",
    "qa_extra",
    "qa_finish",
    "qa_question",
    "reasoning_fields",
    "request_options",
    "to_messages",
    "usage",
    "usage_totals",
]


class RequestError(ValueError):
    """A request the server cannot run; the message says what to change (answered 400)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class StreamOptions(BaseModel):
    include_usage: bool = False


REQUEST_OPTIONS = tuple(name for name in option_names() if name not in CONNECTION_OPTIONS)
"""The generation options a request to this server may set: every ``GenerationOptions``
field but the server backend's connection settings."""


class _RequestOptions(BaseModel):
    """A request body with the generation options (built on ``GenerationOptions``' fields)."""

    model_config = ConfigDict(extra="ignore")

    def with_own_names(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` (the option fields set) with the options set under the API's own names."""
        return values


if TYPE_CHECKING:
    RequestOptions = _RequestOptions
else:
    RequestOptions = create_model(
        "RequestOptions", __base__=_RequestOptions, **optional_fields(REQUEST_OPTIONS)
    )
    RequestOptions.__doc__ = _RequestOptions.__doc__


def request_options(request: RequestOptions) -> GenerationOptions:
    """The options a request (chat or ask) set, validated; unset ones stay unset."""
    values = {name: getattr(request, name) for name in REQUEST_OPTIONS}
    values = {name: value for name, value in values.items() if value is not None}
    return GenerationOptions(**request.with_own_names(values))


class ChatRequest(RequestOptions):
    """The fields of ``POST /v1/chat/completions`` this server reads.

    The generation options are ``GenerationOptions``' (``thinking`` is this server's own
    switch; ``chat_template_kwargs.thinking_mode`` is the standard one).
    """

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_completion_tokens: int | None = Field(default=None, ge=1)
    """OpenAI's newer name of ``max_tokens`` (wins over it)."""
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1)
    chat_template_kwargs: dict[str, Any] | None = None
    thinking_budget: int | None = Field(default=None, ge=1)
    """Another name of ``max_thinking_tokens`` (which wins over it)."""
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    continue_final_message: bool = False
    """vLLM's: continue the last assistant message. Refused (400): every reply here is a
    new assistant turn, and ignoring it would answer something else than was asked."""

    def with_own_names(self, values: dict[str, Any]) -> dict[str, Any]:
        """``max_completion_tokens``, ``thinking_budget`` and the template's thinking switch."""
        if self.max_completion_tokens is not None:
            values["max_tokens"] = self.max_completion_tokens
        if self.thinking_budget is not None:
            values.setdefault("max_thinking_tokens", self.thinking_budget)
        thinking = _template_thinking(self.chat_template_kwargs or {})
        if thinking is not None:
            values["thinking"] = thinking
        return values


MAX_TOKENIZE_CHARS = 1_000_000
"""Most characters ``POST /tokenize`` counts in one request (400 beyond)."""


class TokenizeRequest(BaseModel):
    """The fields of vLLM's ``POST /tokenize`` this server reads (its text form).

    ``model`` defaults to the chat model. The count is of ``prompt`` as the model reads it
    inside a message (control tokens as text, no BOS): ``add_special_tokens`` is accepted and
    not applied. vLLM's chat form (``messages``) is refused with a 400 naming ``prompt``.
    """

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    prompt: str | None = Field(default=None, max_length=MAX_TOKENIZE_CHARS)
    messages: list[Any] | None = None
    add_special_tokens: bool | None = None


def _template_thinking(kwargs: dict[str, Any]) -> bool | None:
    """The thinking switch of ``chat_template_kwargs`` (SEA-LION's, Qwen's, or plain)."""
    for name in ("thinking_mode", "enable_thinking", "thinking"):
        if name in kwargs:
            value = kwargs[name]
            if isinstance(value, bool):
                return value
            if str(value).lower() in {"on", "true", "1"}:
                return True
            if str(value).lower() in {"off", "false", "0"}:
                return False
            raise RequestError(
                f"chat_template_kwargs.{name} must be 'on' or 'off'; got {value!r}",
                f"chat_template_kwargs.{name}",
            )
    return None


def generation_options(request: ChatRequest) -> dict[str, Any]:
    """ChatSeaLion's per-call options from the request (only those it set)."""
    if request.n != 1:
        raise RequestError("n must be 1: this server returns one choice per request", "n")
    if request.continue_final_message:
        raise RequestError(
            "continue_final_message is not supported: this server answers with a new "
            "assistant turn (for a thinking budget send max_thinking_tokens instead)",
            "continue_final_message",
        )
    options = request_options(request).model_dump(exclude_unset=True)
    if request.stop:
        options["stop"] = [request.stop] if isinstance(request.stop, str) else request.stop
    return options


def _text(content: Any, role: str, index: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                texts.append(str(part.get("text", "")))
            else:
                raise RequestError(
                    f"messages[{index}] ({role}) has a {kind or type(part).__name__!s} part; "
                    "this model reads text only",
                    f"messages[{index}].content",
                )
        return "".join(texts)
    raise RequestError(
        f"messages[{index}].content must be a string or a list of text parts",
        f"messages[{index}].content",
    )


def _tool_calls(raw: Any, index: int) -> list[dict[str, Any]]:
    calls = []
    for call in raw or []:
        function = call.get("function") or {}
        arguments = function.get("arguments") or "{}"
        try:
            args = json.loads(arguments) if isinstance(arguments, str) else dict(arguments)
        except (ValueError, TypeError) as exc:
            raise RequestError(
                f"messages[{index}].tool_calls: arguments of {function.get('name')!r} are not "
                "a JSON object",
                f"messages[{index}].tool_calls",
            ) from exc
        calls.append({"name": function.get("name", ""), "args": args, "id": call.get("id")})
    return calls


def to_messages(raw: list[dict[str, Any]]) -> list[BaseMessage]:
    """LangChain messages from OpenAI's (system/developer, user, assistant, tool)."""
    out: list[BaseMessage] = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict):
            raise RequestError(f"messages[{i}] must be an object", f"messages[{i}]")
        role = message.get("role")
        content = _text(message.get("content"), str(role), i)
        if role in ("system", "developer"):
            out.append(SystemMessage(content))
        elif role == "user":
            out.append(HumanMessage(content))
        elif role == "assistant":
            out.append(AIMessage(content, tool_calls=_tool_calls(message.get("tool_calls"), i)))
        elif role == "tool":
            out.append(ToolMessage(content, tool_call_id=str(message.get("tool_call_id", ""))))
        else:
            raise RequestError(
                f"messages[{i}].role {role!r} is not one of system, developer, user, "
                "assistant, tool",
                f"messages[{i}].role",
            )
    return out


def reasoning_fields(text: str, fields: ReasoningField) -> dict[str, str]:
    """The reasoning under the field name(s) the server was told to use."""
    if fields == "both":
        return {"reasoning_content": text, "reasoning": text}
    return {fields: text}


def usage_totals(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """OpenAI's usage object: the sum of LangChain ``usage_metadata`` records (one a call)."""
    totals = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    reasoning = 0
    for meta in records:
        totals["prompt_tokens"] += meta.get("input_tokens", 0)
        totals["completion_tokens"] += meta.get("output_tokens", 0)
        totals["total_tokens"] += meta.get("total_tokens", 0)
        reasoning += (meta.get("output_token_details") or {}).get("reasoning", 0)
    return totals | {"completion_tokens_details": {"reasoning_tokens": reasoning}}


def usage(message: AIMessage | AIMessageChunk | None) -> dict[str, Any] | None:
    """OpenAI's usage object from one message's ``usage_metadata`` (None without one)."""
    meta = getattr(message, "usage_metadata", None)
    return usage_totals([meta]) if meta else None


def _openai_calls(message: AIMessage) -> list[dict[str, Any]]:
    return [
        {
            "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {
                "name": call["name"],
                "arguments": json.dumps(call["args"], ensure_ascii=False),
            },
        }
        for call in message.tool_calls
    ]


def completion(
    message: AIMessage, model: str, fields: ReasoningField, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A whole ``chat.completion`` for one reply."""
    body: dict[str, Any] = {"role": "assistant", "content": message.text}
    reasoning = message.additional_kwargs.get("reasoning_content")
    if reasoning:
        body |= reasoning_fields(reasoning, fields)
    finish = message.response_metadata.get("finish_reason", "stop")
    if message.tool_calls:
        body["tool_calls"] = _openai_calls(message)
        body["content"] = body["content"] or None
        finish = "tool_calls"
    result: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": body, "finish_reason": finish, "logprobs": None}],
        "usage": usage(message),
    }
    return result | (extra or {})


class ChunkWriter:
    """Builds the ``chat.completion.chunk`` objects of one streamed reply."""

    def __init__(self, model: str, fields: ReasoningField) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self.fields = fields
        self._started = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        if not self._started:
            delta = {"role": "assistant", **delta}
            self._started = True
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    def delta(
        self,
        *,
        content: str = "",
        reasoning: str = "",
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any] | None:
        """A chunk carrying new text, reasoning or tool-call pieces (None when empty)."""
        delta: dict[str, Any] = {}
        if reasoning:
            delta |= reasoning_fields(reasoning, self.fields)
        if content:
            delta["content"] = content
        if tool_calls:
            delta["tool_calls"] = tool_calls
        return self._chunk(delta) if delta else None

    def from_message(
        self, chunk: AIMessageChunk, *, reasoning: bool = True
    ) -> dict[str, Any] | None:
        """The chunk for one of ChatSeaLion's message chunks (``reasoning``: with its own)."""
        calls = [
            {
                "index": piece.get("index") or 0,
                **({"id": piece["id"], "type": "function"} if piece.get("id") else {}),
                "function": {
                    k: v
                    for k, v in (("name", piece.get("name")), ("arguments", piece.get("args")))
                    if v
                },
            }
            for piece in chunk.tool_call_chunks
        ]
        return self.delta(
            content=chunk.text,
            reasoning=(chunk.additional_kwargs.get("reasoning_content") or "") if reasoning else "",
            tool_calls=calls,
        )

    def finish(self, reason: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The chunk with ``finish_reason`` (and any extra top-level fields)."""
        return self._chunk({}, reason) | (extra or {})

    def usage_chunk(self, totals: dict[str, Any] | None) -> dict[str, Any]:
        """The last chunk when ``stream_options.include_usage``: no choices, the usage."""
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": totals,
        }


# -- grounded answers (``qa/<collection>``) ------------------------------------------


def qa_question(messages: list[BaseMessage]) -> dict[str, Any]:
    """GroundedQA's input from a chat: the last user message and the turns before it."""
    if not isinstance(messages[-1], HumanMessage):
        raise RequestError("a qa/ model answers a question: end the messages with a user message")
    history = [m for m in messages[:-1] if isinstance(m, (HumanMessage, AIMessage))]
    return {"question": messages[-1].text, "history": history}


def _label(source: Any) -> str:
    return source.source + (f", page {source.page}" if source.page is not None else "")


def qa_extra(result: Any) -> dict[str, Any]:
    """What a grounded answer adds to a completion.

    ``citations``: the source of [n] at index n-1, as Perplexity-style clients read it;
    ``sources``: every passage with its full text; ``sealion``: verdict, removed claims,
    language and query, and what a safety check blocked or withheld.
    """
    cited = {c.number for c in result.citations}
    return {
        "citations": [_label(s) for s in result.sources],
        "sources": [s.model_dump() | {"cited": s.number in cited} for s in result.sources],
        "sealion": {
            "status": result.status,
            "declined_by": result.declined_by,
            "blocked_stage": result.blocked_stage,
            "blocked_by": result.blocked_by,
            "withheld": result.withheld,
            "removed_claims": result.removed_claims,
            "language": result.language,
            "query": result.query,
        },
    }


def qa_finish(result: Any) -> str:
    """A grounded answer's ``finish_reason``: ``content_filter`` when a safety check blocked."""
    return "content_filter" if result.status == "blocked" else "stop"


def qa_content(result: Any, with_sources: bool) -> str:
    """The answer text, with its cited sources listed after it (Markdown)."""
    if not with_sources or not result.citations:
        return str(result.answer)
    lines = [f"[{c.number}] {_label(c)}" for c in result.citations]
    return f"{result.answer}\n\nSources:\n" + "\n".join(lines)
