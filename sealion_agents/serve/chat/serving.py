"""The work behind the OpenAI-compatible routes: models, chat completions, token counts.

The chat model, and each of the caller's collections as a grounded Q&A model
(``qa/<collection>``). As vLLM does, each model in ``/v1/models`` carries ``max_model_len``
(the context window; the same model answers every entry), and ``/tokenize`` counts a text's
tokens with the model's own tokenizer, so OpenAI-compatible clients that read vLLM's fields
(``ChatSeaLion.from_openai``) need no ``context_window=`` or ``tokenizer=``.

data flow (chat): ChatRequest -> messages + options (+ tools) -> ``check_fits`` ->
``state.admitted`` -> ChatSeaLion.ainvoke/astream -> completion / chunks (the stream owns the
admission). (qa): the last user message + earlier turns -> GroundedQA over the caller's
collection -> reasoning streamed as it comes, the verified answer (with its sources appended)
as content, and ``citations`` / ``sources`` / ``sealion`` fields (``openai_protocol``).
(tokenize): TokenizeRequest -> the model's ``get_num_tokens`` in the server's counting
thread (no generation slot) -> ``count`` and ``max_model_len``.

A chat whose text is too long for the context window whatever its tokens (its bytes over the
window times the model's longest token) is refused with 400 ``context_length_exceeded``
before it is tokenized or takes a place in the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from langchain_core.callbacks import UsageMetadataCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage
from starlette.requests import Request

from sealion_agents.serve.chat.screening import (
    CONTENT_FILTER,
    Blocked,
    screen_reply,
    screen_request,
)
from sealion_agents.serve.deps import require_ready
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
    qa_content,
    qa_extra,
    qa_finish,
    qa_question,
    to_messages,
    usage,
    usage_totals,
)
from sealion_agents.serve.state import Admission, ServerState
from sealion_agents.serve.streaming import event_stream, json_event, started

__all__ = ["OWNED_BY", "QA_PREFIX", "TOKENIZE_MAX_BYTES", "ChatServing", "check_fits"]

QA_PREFIX = "qa/"
OWNED_BY = "sealion-agents"
"""``owned_by`` of every model this server lists: how clients tell it from vLLM, whose
``/tokenize`` and ``max_model_len`` it shares but not its turn continuation or constraint
fields (``OpenAIBackend`` keeps to plain chat completions here)."""

TOKENIZE_MAX_BYTES = 6 * MAX_TOKENIZE_CHARS + 64 * 1024
"""Most bytes of a ``/tokenize`` body (its longest text, every character JSON-escaped), when
``--max-body-mb`` is larger."""


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


class ChatServing:
    """Serves the OpenAI-compatible API of one server."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.config = state.config

    def tokenize_limit(self) -> int:
        """Most bytes of a ``/tokenize`` body."""
        return min(TOKENIZE_MAX_BYTES, self.config.max_body_bytes)

    # -- routes -----------------------------------------------------------------------

    def models(self, key: ApiKey) -> dict[str, Any]:
        """``/v1/models``: the chat model and a ``qa/`` model per collection of the caller."""
        created = int(time.time())
        entry: dict[str, Any] = {"object": "model", "created": created, "owned_by": OWNED_BY}
        if self.state.context_window is not None:
            entry["max_model_len"] = self.state.context_window  # vLLM's field
        data = [{"id": self.config.model_id, **entry}]
        for found in self.state.collections.for_tenant(key.tenant):
            data.append({"id": QA_PREFIX + found["name"], **entry})
        return {"object": "list", "data": data}

    async def create_completion(self, request: Request, req: ChatRequest, key: ApiKey) -> Any:
        """``/v1/chat/completions``: a completion, or a stream of chunks."""
        require_ready(self.state)
        collection = None
        if req.model.startswith(QA_PREFIX):
            collection = req.model[len(QA_PREFIX) :]
            try:
                self.state.collections.open(key.tenant, collection)
            except LookupError as exc:
                raise self._no_model(req.model) from exc
        elif req.model != self.config.model_id:
            raise self._no_model(req.model)
        messages = to_messages(req.messages)
        options = generation_options(req)
        check_fits(messages if collection is None else messages[-1:], self.state)
        async with self.state.admitted(key) as admission:
            if collection is not None:
                return await self._qa(request, req, messages, options, collection, admission)
            return await self._chat(request, req, messages, options, admission)

    async def tokenize(self, req: TokenizeRequest, key: ApiKey) -> dict[str, Any]:
        """``/tokenize``: the count of a text by the model's own tokenizer."""
        model = req.model or self.config.model_id
        if model.startswith(QA_PREFIX):
            try:
                known = await asyncio.to_thread(
                    self.state.collections.exists, key.tenant, model[len(QA_PREFIX) :]
                )
            except ValueError:  # a name no collection can have
                known = False
            if not known:
                raise self._no_model(model)
        elif model != self.config.model_id:
            raise self._no_model(model)
        if req.prompt is None:
            if req.messages is not None:
                raise RequestError(
                    "this server counts the tokens of a text: send 'prompt' (the chat form, "
                    "'messages', is not supported)",
                    "messages",
                )
            raise RequestError("prompt: the text to count is required", "prompt")
        require_ready(self.state)
        count = await self.state.count_tokens(req.prompt)
        body: dict[str, Any] = {"count": count}
        if self.state.context_window is not None:
            body["max_model_len"] = self.state.context_window
        return body

    # -- the two kinds of model -------------------------------------------------------

    async def _chat(
        self,
        request: Request,
        req: ChatRequest,
        messages: list[BaseMessage],
        options: dict[str, Any],
        admission: Admission,
    ) -> Any:
        llm: Any = self.state.llm
        if req.tools:
            tool_options: dict[str, Any] = {}
            if req.tool_choice is not None:
                tool_options["tool_choice"] = req.tool_choice
            if req.parallel_tool_calls is not None:
                tool_options["parallel_tool_calls"] = req.parallel_tool_calls
            llm = llm.bind_tools(req.tools, **tool_options)
        rails = self.state.guardrails
        language = self.config.default_language
        if rails is not None:
            blocked = await screen_request(rails, messages, language)
            if blocked is not None:
                return self._refused(request, req, blocked, admission)
        began = time.monotonic()
        if not req.stream:
            message = await llm.ainvoke(messages, **options)
            body = completion(message, req.model, self.config.reasoning_fields)
            self._count_tokens("chat", body["usage"])
            if rails is not None:
                blocked = await screen_reply(rails, messages, message.text, language)
                if blocked is not None:
                    fields = self.config.reasoning_fields
                    refused = completion(blocked.message(), req.model, fields, blocked.extra())
                    return refused | {"usage": body["usage"]}
            return body
        writer = ChunkWriter(req.model, self.config.reasoning_fields)
        chunks = await started(llm.astream(messages, **options))
        holds = rails is not None and rails.holds_answer
        shows_reasoning = rails is None or rails.shows_reasoning

        async def events() -> AsyncIterator[dict[str, str]]:
            totals, finish, calls, timed = None, "stop", False, False
            held: list[tuple[Any, bool]] = []  # (chunk, with its reasoning) until it passes
            text: list[str] = []
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    calls = calls or bool(chunk.tool_call_chunks)
                    if chunk.usage_metadata:
                        totals = usage(chunk)
                    finish = chunk.response_metadata.get("finish_reason") or finish
                    if holds:
                        text.append(chunk.text)
                        thought = chunk.additional_kwargs.get("reasoning_content")
                        shown = thought if thought and shows_reasoning else ""
                        data = writer.delta(reasoning=shown)
                        held.append((chunk, not shows_reasoning))
                    else:
                        data = writer.from_message(chunk)
                    if data is not None:
                        if not timed:
                            self._first_token("chat", began)
                            timed = True
                        yield json_event(data)
            blocked = None
            if holds:  # the reply is complete: it is shown only if it passes
                assert rails is not None
                blocked = await screen_reply(rails, messages, "".join(text), language)
            if holds and not timed:  # the client's first token: the checked reply
                self._first_token("chat", began)
            if blocked is not None:
                yield json_event(writer.delta(content=blocked.refusal))
                yield json_event(writer.finish(CONTENT_FILTER, blocked.extra()))
            else:
                for chunk, with_reasoning in held:
                    data = writer.from_message(chunk, reasoning=with_reasoning)
                    if data is not None:
                        yield json_event(data)
                yield json_event(writer.finish("tool_calls" if calls else finish))
            self._count_tokens("chat", totals)
            if req.stream_options and req.stream_options.include_usage:
                yield json_event(writer.usage_chunk(totals))
            yield json_event("[DONE]")

        return event_stream(self.state, request, events(), admission, done=True)

    def _refused(
        self, request: Request, req: ChatRequest, blocked: Blocked, admission: Admission
    ) -> Any:
        """A request the guard refused: the refusal as the answer, nothing generated."""
        fields = self.config.reasoning_fields
        if not req.stream:
            return completion(blocked.message(), req.model, fields, blocked.extra())
        writer = ChunkWriter(req.model, fields)

        async def events() -> AsyncIterator[dict[str, str]]:
            yield json_event(writer.delta(content=blocked.refusal))
            yield json_event(writer.finish(CONTENT_FILTER, blocked.extra()))
            if req.stream_options and req.stream_options.include_usage:
                yield json_event(writer.usage_chunk(None))
            yield json_event("[DONE]")

        return event_stream(self.state, request, events(), admission, done=True)

    async def _qa(
        self,
        request: Request,
        req: ChatRequest,
        messages: list[BaseMessage],
        options: dict[str, Any],
        collection: str,
        admission: Admission,
    ) -> Any:
        question = qa_question(messages)
        chain = self.state.grounded_qa(admission.key.tenant, collection, options)
        handler = UsageMetadataCallbackHandler()
        with_sources = self.config.sources_in_content
        began = time.monotonic()
        if not req.stream:
            result = await chain.ainvoke(question, {"callbacks": [handler]})
            totals = usage_totals(handler.usage_metadata.values())
            self._count_tokens("qa", totals)
            message = AIMessage(
                qa_content(result, with_sources),
                additional_kwargs={"reasoning_content": result.reasoning}
                if result.reasoning
                else {},
                response_metadata={"finish_reason": qa_finish(result)},
            )
            body = completion(message, req.model, self.config.reasoning_fields, qa_extra(result))
            return body | {"usage": totals}
        writer = ChunkWriter(req.model, self.config.reasoning_fields)
        steps = await started(chain.astream(question, {"callbacks": [handler]}))

        async def events() -> AsyncIterator[dict[str, str]]:
            timed = False
            async with contextlib.aclosing(steps):
                async for step in steps:
                    data = None
                    if step.kind == "reasoning":
                        data = writer.delta(reasoning=step.text)
                    elif step.kind == "result" and step.result is not None:
                        data = writer.delta(content=qa_content(step.result, with_sources))
                    if data is not None:
                        if not timed:
                            self._first_token("qa", began)
                            timed = True
                        yield json_event(data)
                    if step.kind == "result" and step.result is not None:
                        finish = qa_finish(step.result)
                        yield json_event(writer.finish(finish, qa_extra(step.result)))
            totals = usage_totals(handler.usage_metadata.values())
            self._count_tokens("qa", totals)
            if req.stream_options and req.stream_options.include_usage:
                yield json_event(writer.usage_chunk(totals))
            yield json_event("[DONE]")

        return event_stream(self.state, request, events(), admission, done=True)

    # -- helpers ----------------------------------------------------------------------

    def _no_model(self, name: str) -> ApiError:
        return ApiError(
            404,
            f"the model {name!r} does not exist: GET /v1/models lists '{self.config.model_id}' "
            f"and '{QA_PREFIX}<collection>' for each of your collections",
            code="model_not_found",
            param="model",
        )

    def _first_token(self, kind: str, began: float) -> None:
        self.state.metrics.ttft.labels(kind).observe(time.monotonic() - began)

    def _count_tokens(self, kind: str, totals: dict[str, Any] | None) -> None:
        if not totals:
            return
        reasoning = totals["completion_tokens_details"]["reasoning_tokens"]
        metrics = self.state.metrics
        metrics.reasoning_tokens.labels(kind).inc(reasoning)
        metrics.answer_tokens.labels(kind).inc(max(0, totals["completion_tokens"] - reasoning))
