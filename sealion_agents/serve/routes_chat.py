"""``/v1/models``, ``/v1/chat/completions`` and ``/tokenize``.

The chat model, and each of the caller's collections as a grounded Q&A model
(``qa/<collection>``). As vLLM does, each model in ``/v1/models`` carries ``max_model_len``
(the context window; the same model answers every entry), and ``POST /tokenize`` counts a
text's tokens with the model's own tokenizer, so OpenAI-compatible clients that read vLLM's
fields (``ChatSeaLion.from_openai``) need no ``context_window=`` or ``tokenizer=``.

data flow (chat): ChatRequest -> messages + options (+ tools) -> ChatSeaLion.ainvoke/astream
-> completion / chunks. (qa): the last user message + earlier turns -> GroundedQA over the
caller's collection -> reasoning streamed as it comes, the verified answer (with its
sources appended) as content, and ``citations`` / ``sources`` / ``sealion`` fields.
(tokenize): TokenizeRequest (bounded body and text) -> the model's ``get_num_tokens`` in
the server's counting thread (no generation slot) -> ``count`` and ``max_model_len``.

Every JSON body (here and in ``routes_documents``) is read by ``read_json``: counted as it
arrives and refused with 413 past ``--max-body-mb`` (a larger Content-Length at once),
refused with 400 when arrays and objects nest deeper than ``MAX_JSON_DEPTH`` (checked
without recursion before parsing). A chat whose text is too long for the context window
whatever its tokens (its bytes over the window times the model's longest token) is refused
with 400 ``context_length_exceeded`` before it is tokenized or takes a place in the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from langchain_core.callbacks import UsageMetadataCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from pydantic import BaseModel, ValidationError

from sealion_agents.serve.app import Caller, require_ready
from sealion_agents.serve.errors import ApiError
from sealion_agents.serve.keys import ApiKey
from sealion_agents.serve.openai_protocol import (
    MAX_TOKENIZE_CHARS,
    ChatRequest,
    ChunkWriter,
    RequestError,
    TokenizeRequest,
    completion,
    generation_options,
    to_messages,
)
from sealion_agents.serve.openai_protocol import usage as to_usage
from sealion_agents.serve.state import ServerState, Ticket
from sealion_agents.serve.streaming import event_stream, json_event, started

__all__ = [
    "MAX_JSON_DEPTH",
    "OWNED_BY",
    "chat_router",
    "check_fits",
    "json_depth",
    "parse_json",
    "qa_chain",
    "qa_extra",
    "read_body",
    "read_json",
]

Body = TypeVar("Body", bound=BaseModel)

QA_PREFIX = "qa/"
OWNED_BY = "sealion-agents"
"""``owned_by`` of every model this server lists: how clients tell it from vLLM, whose
``/tokenize`` and ``max_model_len`` it shares but not its turn continuation or constraint
fields (``OpenAIBackend`` keeps to plain chat completions here)."""

TOKENIZE_MAX_BYTES = 6 * MAX_TOKENIZE_CHARS + 64 * 1024
"""Most bytes of a ``/tokenize`` body (its longest text, every character JSON-escaped), when
``--max-body-mb`` is larger."""

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a request body may have (400 beyond)."""

_PARSE_INLINE = 256 * 1024
"""Bodies up to this many bytes are parsed on the event loop; larger ones in a thread."""

_SCAN = re.compile(r'["\[\]{}]')
_STRING_REST = re.compile(r'[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)


def json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep arrays and objects nest in JSON ``text`` (brackets in strings ignored).

    A loop, not recursion, linear in the text; it stops counting once past ``limit``.
    """
    depth = deepest = pos = 0
    while (found := _SCAN.search(text, pos)) is not None:
        char, pos = found.group(), found.end()
        if char == '"':
            rest = _STRING_REST.match(text, pos)
            if rest is None:  # an unterminated string: not JSON, which json.loads reports
                break
            pos = rest.end()
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if depth > limit:
                break
        else:
            depth -= 1
    return deepest


def parse_json(raw: bytes) -> Any:
    """A body as JSON, or a 400 that says why not (not JSON, or nested too deep)."""
    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
    except ValueError as exc:
        raise RequestError(f"the body is not valid JSON ({exc})") from exc
    if json_depth(text) > MAX_JSON_DEPTH:
        raise RequestError(
            f"the body nests arrays and objects more than {MAX_JSON_DEPTH} deep; flatten it"
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RequestError(f"the body is not valid JSON ({exc})") from exc


async def _read_bounded(request: Request, limit: int) -> bytes:
    """The body, or a 413 as soon as it is over ``limit`` bytes (declared or received)."""
    too_large = ApiError(
        413,
        f"the body is over the limit of {limit:,} bytes; send less, or ask the operator to "
        "raise --max-body-mb",
        code="too_large",
        headers={"Connection": "close"},  # the client need not send the rest
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int | None = None) -> Any:
    """The request body as JSON, read within ``limit`` bytes (default: ``--max-body-mb``).

    413 once over the limit (counted as it arrives); 400 when not JSON or nested too deep.
    """
    state: ServerState = request.app.state.server
    raw = await _read_bounded(request, limit or state.config.max_body_bytes)
    if len(raw) > _PARSE_INLINE:  # a large body does not hold up the other requests
        return await asyncio.to_thread(parse_json, raw)
    return parse_json(raw)


async def read_body(request: Request, model: type[Body], limit: int | None = None) -> Body:
    """The request body as JSON validated by ``model``, or a 400 naming the field."""
    try:
        return model.model_validate(await read_json(request, limit))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RequestError(f"{where}: {first['msg']}", where) from exc


def check_fits(messages: list[BaseMessage], state: ServerState) -> None:
    """400 ``context_length_exceeded`` when the text cannot fit the window, whatever it is.

    Sound, from bytes alone (nothing tokenized): a token is at most ``state.token_bytes``
    bytes, so B bytes of text are at least B / token_bytes tokens. Assistant turns are left
    out (templates may drop their reasoning) and each text is stripped (templates may trim).
    """
    window = state.context_window
    if window is None:
        return
    size = sum(
        len(m.text.strip().encode("utf-8", "ignore"))
        for m in messages
        if not isinstance(m, AIMessage)
    )
    least = -(-size // state.token_bytes)
    if least > window:
        raise ApiError(
            400,
            f"the messages hold {size:,} bytes of text, so at least {least:,} tokens (a token "
            f"of this model is at most {state.token_bytes} bytes): more than the context "
            f"window of {window:,} tokens. Shorten the messages.",
            code="context_length_exceeded",
            param="messages",
        )


def qa_chain(state: ServerState, tenant: str, collection: str, options: dict[str, Any]) -> Any:
    """A GroundedQA over the tenant's collection, with the request's thinking and limits."""
    from sealion_agents.qa.chain import GroundedQA

    return GroundedQA(
        llm=state.llm,
        retriever=state.retriever(tenant, collection),
        answer_thinking=options.get("thinking", True),
        answer_thinking_budget=options.get("max_thinking_tokens", 1024),
        answer_max_tokens=options.get("max_tokens", state.config.answer_max_tokens),
    )


def _label(source: Any) -> str:
    return source.source + (f", page {source.page}" if source.page is not None else "")


def qa_extra(result: Any) -> dict[str, Any]:
    """What a grounded answer adds to a completion.

    ``citations``: the source of [n] at index n-1, as Perplexity-style clients read it;
    ``sources``: every passage with its full text; ``sealion``: verdict, removed claims,
    language and query.
    """
    cited = {c.number for c in result.citations}
    return {
        "citations": [_label(s) for s in result.sources],
        "sources": [s.model_dump() | {"cited": s.number in cited} for s in result.sources],
        "sealion": {
            "status": result.status,
            "declined_by": result.declined_by,
            "removed_claims": result.removed_claims,
            "language": result.language,
            "query": result.query,
        },
    }


def qa_content(result: Any, with_sources: bool) -> str:
    """The answer text, with its cited sources listed after it (Markdown)."""
    if not with_sources or not result.citations:
        return str(result.answer)
    lines = [f"[{c.number}] {_label(c)}" for c in result.citations]
    return f"{result.answer}\n\nSources:\n" + "\n".join(lines)


def _question(messages: list[BaseMessage]) -> dict[str, Any]:
    if not isinstance(messages[-1], HumanMessage):
        raise RequestError("a qa/ model answers a question: end the messages with a user message")
    history = [m for m in messages[:-1] if isinstance(m, (HumanMessage, AIMessage))]
    return {"question": messages[-1].text, "history": history}


def _usage(handler: UsageMetadataCallbackHandler) -> dict[str, Any]:
    totals = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "reasoning": 0}
    for meta in handler.usage_metadata.values():
        totals["prompt_tokens"] += meta.get("input_tokens", 0)
        totals["completion_tokens"] += meta.get("output_tokens", 0)
        totals["total_tokens"] += meta.get("total_tokens", 0)
        totals["reasoning"] += (meta.get("output_token_details") or {}).get("reasoning", 0)
    reasoning = totals.pop("reasoning")
    return totals | {"completion_tokens_details": {"reasoning_tokens": reasoning}}


def chat_router(state: ServerState) -> APIRouter:
    """The OpenAI-compatible routes of ``state``'s server."""
    router = APIRouter()
    config = state.config

    def count_tokens(kind: str, usage: dict[str, Any] | None) -> None:
        if not usage:
            return
        reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
        state.metrics.reasoning_tokens.labels(kind).inc(reasoning)
        state.metrics.answer_tokens.labels(kind).inc(max(0, usage["completion_tokens"] - reasoning))

    @router.get("/v1/models")
    async def models(key: Caller) -> dict[str, Any]:
        created = int(time.time())
        entry: dict[str, Any] = {"object": "model", "created": created, "owned_by": OWNED_BY}
        if state.context_window is not None:
            entry["max_model_len"] = state.context_window  # vLLM's field
        data = [{"id": config.model_id, **entry}]
        for found in state.collections.for_tenant(key.tenant):
            data.append({"id": QA_PREFIX + found["name"], **entry})
        return {"object": "list", "data": data}

    @router.post("/v1/chat/completions")
    async def chat_completions(request: Request, key: Caller) -> Any:
        req = await read_body(request, ChatRequest)
        require_ready(request)
        collection = None
        if req.model.startswith(QA_PREFIX):
            collection = req.model[len(QA_PREFIX) :]
            try:
                state.collections.open(key.tenant, collection)
            except LookupError as exc:
                raise _no_model(req.model) from exc
        elif req.model != config.model_id:
            raise _no_model(req.model)
        messages = to_messages(req.messages)
        options = generation_options(req)
        check_fits(messages if collection is None else messages[-1:], state)
        ticket = await state.admit(key, generation=True)
        try:
            if collection is not None:
                return await _qa(request, req, messages, options, collection, key, ticket)
            return await _chat(request, req, messages, options, ticket)
        except BaseException:
            await ticket.release()
            raise

    @router.post("/tokenize")
    async def tokenize(request: Request, key: Caller) -> dict[str, Any]:
        """The count of a text by the model's own tokenizer (vLLM's ``/tokenize``, text form)."""
        limit = min(TOKENIZE_MAX_BYTES, config.max_body_bytes)
        req = await read_body(request, TokenizeRequest, limit)
        model = req.model or config.model_id
        if model.startswith(QA_PREFIX):
            try:
                known = await asyncio.to_thread(
                    state.collections.exists, key.tenant, model[len(QA_PREFIX) :]
                )
            except ValueError:  # a name no collection can have
                known = False
            if not known:
                raise _no_model(model)
        elif model != config.model_id:
            raise _no_model(model)
        if req.prompt is None:
            if req.messages is not None:
                raise RequestError(
                    "this server counts the tokens of a text: send 'prompt' (the chat form, "
                    "'messages', is not supported)",
                    "messages",
                )
            raise RequestError("prompt: the text to count is required", "prompt")
        require_ready(request)
        count = await state.count_tokens(req.prompt)
        body: dict[str, Any] = {"count": count}
        if state.context_window is not None:
            body["max_model_len"] = state.context_window
        return body

    def _no_model(name: str) -> ApiError:
        return ApiError(
            404,
            f"the model {name!r} does not exist: GET /v1/models lists '{config.model_id}' and "
            f"'{QA_PREFIX}<collection>' for each of your collections",
            code="model_not_found",
            param="model",
        )

    async def _chat(
        request: Request,
        req: ChatRequest,
        messages: list[BaseMessage],
        options: dict[str, Any],
        ticket: Ticket,
    ) -> Any:
        llm: Any = state.llm
        if req.tools:
            tool_options: dict[str, Any] = {}
            if req.tool_choice is not None:
                tool_options["tool_choice"] = req.tool_choice
            if req.parallel_tool_calls is not None:
                tool_options["parallel_tool_calls"] = req.parallel_tool_calls
            llm = llm.bind_tools(req.tools, **tool_options)
        began = time.monotonic()
        if not req.stream:
            message = await llm.ainvoke(messages, **options)
            await ticket.release()
            body = completion(message, req.model, config.reasoning_fields)
            count_tokens("chat", body["usage"])
            return body
        writer = ChunkWriter(req.model, config.reasoning_fields)
        chunks = await started(llm.astream(messages, **options))

        async def events() -> AsyncIterator[dict[str, str]]:
            usage, finish, calls, timed = None, "stop", False, False
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    data = writer.from_message(chunk)
                    if data is not None:
                        if not timed:
                            state.metrics.ttft.labels("chat").observe(time.monotonic() - began)
                            timed = True
                        calls = calls or bool(chunk.tool_call_chunks)
                        yield json_event(data)
                    if chunk.usage_metadata:
                        usage = to_usage(chunk)
                    finish = chunk.response_metadata.get("finish_reason") or finish
            yield json_event(writer.finish("tool_calls" if calls else finish))
            count_tokens("chat", usage)
            if req.stream_options and req.stream_options.include_usage:
                yield json_event(writer.usage_chunk(usage))
            yield json_event("[DONE]")

        return event_stream(state, request, events(), ticket, done=True)

    async def _qa(
        request: Request,
        req: ChatRequest,
        messages: list[BaseMessage],
        options: dict[str, Any],
        collection: str,
        key: ApiKey,
        ticket: Ticket,
    ) -> Any:
        question = _question(messages)
        chain = qa_chain(state, key.tenant, collection, options)
        handler = UsageMetadataCallbackHandler()
        began = time.monotonic()
        if not req.stream:
            result = await chain.ainvoke(question, {"callbacks": [handler]})
            await ticket.release()
            usage = _usage(handler)
            count_tokens("qa", usage)
            message = AIMessage(
                qa_content(result, config.sources_in_content),
                additional_kwargs={"reasoning_content": result.reasoning}
                if result.reasoning
                else {},
                response_metadata={"finish_reason": "stop"},
            )
            body = completion(message, req.model, config.reasoning_fields, qa_extra(result))
            return body | {"usage": usage}
        writer = ChunkWriter(req.model, config.reasoning_fields)
        steps = await started(chain.astream(question, {"callbacks": [handler]}))

        async def events() -> AsyncIterator[dict[str, str]]:
            timed = False
            async with contextlib.aclosing(steps):
                async for step in steps:
                    data = None
                    if step.kind == "reasoning":
                        data = writer.delta(reasoning=step.text)
                    elif step.kind == "result" and step.result is not None:
                        result = step.result
                        data = writer.delta(content=qa_content(result, config.sources_in_content))
                    if data is not None:
                        if not timed:
                            state.metrics.ttft.labels("qa").observe(time.monotonic() - began)
                            timed = True
                        yield json_event(data)
                    if step.kind == "result" and step.result is not None:
                        yield json_event(writer.finish("stop", qa_extra(step.result)))
            usage = _usage(handler)
            count_tokens("qa", usage)
            if req.stream_options and req.stream_options.include_usage:
                yield json_event(writer.usage_chunk(usage))
            yield json_event("[DONE]")

        return event_stream(state, request, events(), ticket, done=True)

    return router
