"""SEA-LION on any OpenAI-compatible server: ``vllm serve``, llama.cpp's server, AI Singapore's API.

Data flow: template messages (control tokens in their text neutralised, since the server
renders and tokenizes) + options -> one request body (``build``; thinking as
``chat_template_kwargs``, constraints in the field the server reads) -> ``Transport.open``
(``POST {base_url}/chat/completions`` with ``stream: true``, retried) -> SSE lines ->
``ChunkReader`` -> events. Sync and async share the request builder, the reader and the
retry policy; only the HTTP loop differs.

What the server is (its kind, context window, tokenize endpoint, whether it continues an
assistant message, how it constrains output, whether its template pre-fills the opening
reasoning tag: the profile's, ``<think>``)
is found once by ``discovery`` in ``load()`` (or on first need) and kept as one
``ServerFacts``. When the chat template pre-fills the tag and the server cannot say
so, the first thinking reply is held back until the output shows it (then remembered).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from sealion_agents.backends.base import ChatBackend, Event, GenerationRequest
from sealion_agents.backends.openai.counting import local_token_counter, server_token_counter
from sealion_agents.backends.openai.discovery import ServerFacts, discover
from sealion_agents.backends.openai.reader import ChunkReader
from sealion_agents.backends.openai.transport import API_KEY_ENV, Request, Transport
from sealion_agents.errors import ServerError, ServerUnavailableError, TokenizerUnavailableError
from sealion_agents.literal_text import neutralise
from sealion_agents.profiles import ModelProfile, profile_named, resolve_profile

__all__ = ["OpenAIBackend"]

_STRUCTURED_MODES = {"auto", "structured_outputs", "response_format", "grammar", "none"}


class OpenAIBackend(ChatBackend):
    """Streams chat completions from an OpenAI-compatible server over HTTP (``httpx``)."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        timeout: float | None = None,
        max_retries: int = 2,
        thinking_off_model: str | None = None,
        reasoning_prefilled: bool | None = None,
        extra_body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        continues: bool | None = None,
        tokenizer: str | Path | None = None,
        context_window: int | None = None,
        structured_output: str = "auto",
        profile: ModelProfile | str | None = None,
    ) -> None:
        """Describe the server; nothing is sent until the first generation.

        Args:
            base_url: the server's OpenAI API root, e.g. ``http://127.0.0.1:8000/v1`` or
                ``https://api.sea-lion.ai/v1``.
            model: the model name the server knows.
            api_key: bearer token; default: the ``SEALION_API_KEY`` environment variable.
            timeout: seconds to wait for the connection and for each read (default: 10 s
                to connect, 600 s to read).
            max_retries: retries on connection errors, HTTP 429 and 5xx before failing.
            thinking_off_model: the model name to request when thinking is off, for
                servers that fix ``thinking_mode`` at start-up rather than per request
                (llama-cpp-python's server: serve the GGUF under two aliases).
            reasoning_prefilled: whether the chat template ends the prompt with ``<think>``
                (the profile's opening reasoning tag)
                when thinking is on (default: ask the server, else learn from the output).
            extra_body: more fields for every request body (``chat_template``,
                ``repetition_penalty``...); dicts merge with the backend's own.
            headers: more HTTP headers.
            continues: whether the server honours ``continue_final_message`` (needed by the
                thinking budget); default: yes for vLLM (found by its ``/tokenize``; not
                for ``sealion serve``, which answers it too).
            tokenizer: count tokens with this local tokenizer (a folder holding
                ``tokenizer.json``, or a ``.gguf``) instead of the server's tokenize endpoint.
            context_window: the served context length in tokens (default: asked from the
                server: vLLM's ``max_model_len``, llama.cpp's ``/props``).
            structured_output: how tool calls and structured answers are constrained:
                "structured_outputs" (vLLM's field; the turn continues after the reasoning),
                "response_format" (OpenAI's ``json_schema`` field, the same way), "grammar"
                (a GBNF grammar over the whole reply, for llama.cpp's servers), "none" (the
                reply is validated and retried: a hosted API without such fields), or
                "auto" (default: found from the server's endpoints).
            profile: the model profile (a name from ``profiles.PROFILES`` or a
                ``ModelProfile``); default: found from the served model's name (and the
                ``chat_template`` of ``extra_body``). Needed where a proxy renames the model.
        """
        if structured_output not in _STRUCTURED_MODES:
            raise ValueError(
                f"structured_output={structured_output!r}: use one of {sorted(_STRUCTURED_MODES)}."
            )
        self._structured = structured_output
        self._override = profile_named(profile) if isinstance(profile, str) else profile
        self._profile: ModelProfile | None = None
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more.")
        if context_window is not None and context_window < 16:
            raise ValueError(f"context_window={context_window} is too small.")
        if tokenizer is not None:
            tokenizer = Path(tokenizer).expanduser()
            if not tokenizer.exists():
                raise FileNotFoundError(
                    f"tokenizer={str(tokenizer)!r} does not exist: pass the model's tokenizer "
                    "folder (with tokenizer.json) or its GGUF file."
                )
        self._tokenizer_path = tokenizer
        self._counter: Callable[[str], int] | None = None
        self._window = context_window
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self.timeout = timeout
        self.max_retries = max_retries
        self.thinking_off_model = thinking_off_model
        self.extra_body = dict(extra_body or {})
        self._prefilled: dict[bool, bool | None] = {False: False}
        if reasoning_prefilled is not None:
            self._prefilled[True] = reasoning_prefilled
        self._continues = continues
        self._facts: ServerFacts | None = None
        self._facts_lock = threading.Lock()
        self._transport = Transport(
            self.base_url,
            model,
            api_key=self._api_key,
            headers=dict(headers or {}),
            timeout=timeout,
            max_retries=max_retries,
        )

    def __repr__(self) -> str:
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r})"

    @property
    def model_name(self) -> str:
        """The model name sent to the server."""
        return self.model

    @property
    def profile(self) -> ModelProfile:
        """The model's profile (given, or found from the served name; no request sent)."""
        if self._profile is None:
            template = self.extra_body.get("chat_template")
            self._profile = resolve_profile(
                names=(self.model,),
                template=template if isinstance(template, str) else None,
                override=self._override,
            )
        return self._profile

    @property
    def renders_tools(self) -> bool:
        """VLLM's servers render a request's ``tools`` in the chat template; others: unknown."""
        return self._is_vllm

    @property
    def _is_vllm(self) -> bool:
        """The server answered as vLLM (False while it cannot be reached)."""
        facts = self._server_if_up()
        return facts is not None and facts.kind == "vllm"

    @property
    def _client(self) -> Any:
        """The sync ``httpx.Client`` (None until first use); set it to send through another."""
        return self._transport.client

    @_client.setter
    def _client(self, client: Any) -> None:
        self._transport.client = client

    @property
    def parallel_generations(self) -> int:
        """16: the server batches concurrent requests."""
        return 16

    # -- what the server is: found once ----------------------------------------------

    def load(self) -> None:
        """Reach the server now: check it serves the model and learn what it offers."""
        with self._facts_lock:
            if self._facts is not None:
                return
            facts = discover(
                self._transport,
                self.model,
                thinking_off_model=self.thinking_off_model,
                chat_template=self.extra_body.get("chat_template"),
                probe_prefill=self._prefilled.get(True) is None,
                thinking_variables=self.profile.template_variables(True),
                tags=self.profile.reasoning_tags,
            )
            if self._prefilled.get(True) is None and facts.reasoning_prefilled is not None:
                self._prefilled[True] = facts.reasoning_prefilled
            self._facts = facts

    def _server(self) -> ServerFacts:
        """The server's facts, found now if ``load`` has not run (unreachable: an error)."""
        if self._facts is None:
            self.load()
        assert self._facts is not None
        return self._facts

    def _server_if_up(self) -> ServerFacts | None:
        """The server's facts, or None while it cannot be reached (the request then retries)."""
        try:
            return self._server()
        except ServerUnavailableError:
            return None

    def _structured_mode(self) -> str:
        if self._structured != "auto":
            return self._structured
        facts = self._server_if_up()
        return "none" if facts is None else facts.structured_mode

    @property
    def continues(self) -> bool:
        """Whether the server continues an assistant message (vLLM, or ``continues=True``)."""
        if self._continues is not None:
            return self._continues
        if self._structured == "structured_outputs":
            return True
        facts = self._server_if_up()
        return facts is not None and facts.kind == "vllm"

    @property
    def constraint_support(self) -> str:
        """Answer with a structured-output field, whole with grammars, else none."""
        mode = self._structured_mode()
        if mode in ("structured_outputs", "response_format"):
            return "answer"
        return "whole" if mode == "grammar" else "none"

    @property
    def context_window(self) -> int:
        """The served context length: given, or reported by the server."""
        if self._window is not None:
            return self._window
        window = self._server().context_window or self.profile.context_window
        if window is None:
            raise TokenizerUnavailableError(
                f"{self.base_url} (model {self.model!r}) does not report its context length: "
                "pass context_window=<tokens> (the server's n_ctx or max_model_len) to "
                "ChatSeaLion.from_openai (--context-window on the command line), or "
                "profile=<a SEA-LION profile> when the served name hides the model."
            )
        return window

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` as the server will read it (message text, neutralised)."""
        if self._counter is None:
            self._counter = self._find_counter()
        return self._counter(neutralise(text))

    def _find_counter(self) -> Callable[[str], int]:
        if self._tokenizer_path is not None:
            return local_token_counter(self._tokenizer_path)
        facts = self._server()
        if facts.tokenize_path is None:
            raise TokenizerUnavailableError(
                f"{self.base_url} (model {self.model!r}) has no tokenize endpoint, so its "
                "tokens cannot be counted: pass tokenizer=<the model's tokenizer folder or "
                "GGUF file> and context_window=<tokens> to ChatSeaLion.from_openai."
            )
        return server_token_counter(
            self._transport, self.model, facts.tokenize_path, facts.tokenize_offset
        )

    # -- the request, shared by sync and async -------------------------------------

    def model_for(self, thinking: bool) -> str:
        """The model name to request for a thinking mode."""
        return self.thinking_off_model if not thinking and self.thinking_off_model else self.model

    def build(self, request: GenerationRequest) -> Request:
        """The chat-completions request for a generation."""
        messages = [_server_message(m) for m in request.messages]
        profile = self.profile
        body: dict[str, Any] = {
            "model": self.model_for(request.thinking),
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        }
        variables = profile.template_variables(request.thinking)
        if variables:
            body["chat_template_kwargs"] = variables
        if self._is_vllm:  # keep reasoning tags and call tokens that a tokenizer marks special
            body["skip_special_tokens"] = False  # (Gemma 4's, Apertus's) in the text
        if request.tools:  # rendered by the template; the constraint decides the call
            body["tools"] = list(request.tools)
            body["tool_choice"] = "none"
        if request.assistant_prefix:
            if not self.continues:
                raise ServerError(
                    f"{self.base_url} (model {self.model!r}) cannot continue an assistant "
                    "message, which the thinking budget (max_thinking_tokens) needs: use a vLLM "
                    "server, or pass continues=True if this server honours "
                    "continue_final_message."
                )
            opens = self._prefilled.get(request.thinking)
            opening = profile.reasoning_tags.open if opens else ""
            prefix = opening + request.assistant_prefix
            messages.append({"role": "assistant", "content": prefix})
            body["add_generation_prompt"] = False
            body["continue_final_message"] = True
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.constraint is not None:
            body.update(self._constraint_fields(request))
        body.update(profile.sampling_for(request.thinking))
        body.update(request.options.sampling())
        body = _merge(body, self.extra_body)
        body = _merge(body, dict(request.extra))
        options = request.options
        return Request("/chat/completions", body, options.timeout, options.max_retries)

    def _constraint_fields(self, request: GenerationRequest) -> dict[str, Any]:
        """The body fields that constrain the answer, by the server's structured-output mode."""
        constraint = request.constraint
        assert constraint is not None
        mode = self._structured_mode()
        if mode == "structured_outputs":
            from sealion_agents.grammars import structured_outputs

            if constraint.grammar:
                return {"structured_outputs": {"grammar": constraint.grammar}}
            return {"structured_outputs": structured_outputs(constraint.schema)}
        if mode == "response_format" and constraint.grammar:
            return {}  # a JSON schema cannot say it: the reply is checked and retried instead
        if mode == "response_format":
            spec = {"name": "answer", "schema": constraint.schema, "strict": True}
            return {"response_format": {"type": "json_schema", "json_schema": spec}}
        if mode == "grammar":
            from sealion_agents.grammars import answer_grammar

            grammar = answer_grammar(
                constraint.schema,
                after_reasoning=constraint.after_reasoning,
                optional=constraint.optional,
                opener=constraint.opener,
                body_grammar=constraint.grammar,
                tags=self.profile.reasoning_tags,
            )
            return {"grammar": grammar}
        return {}

    def _reader(self, request: GenerationRequest) -> ChunkReader:
        return ChunkReader(
            thinking=request.thinking,
            opens=self._prefilled.get(request.thinking),
            continuing=bool(request.assistant_prefix),
            tags=self.profile.reasoning_tags,
        )

    def _learn(self, thinking: bool, reader: ChunkReader) -> None:
        if reader.learned is not None and self._prefilled.get(thinking) is None:
            self._prefilled[thinking] = reader.learned

    def _complete(self, reader: ChunkReader, thinking: bool) -> list[Event]:
        """The closing events of a stream that ended (an error if it ended too soon)."""
        if not reader.done and reader.finish_reason is None:
            raise self._transport.broken(None)
        self._learn(thinking, reader)
        return reader.finish()

    # -- sync and async loops ----------------------------------------------------------

    def stream(self, request: GenerationRequest) -> Iterator[Event]:
        """Stream one chat completion; closing the iterator closes the connection."""
        if request.thinking:
            self._server_if_up()  # vLLM says whether its template pre-fills the tag
        reader = self._reader(request)
        response = self._transport.open(self.build(request))
        try:
            try:
                for line in response.iter_lines():
                    yield from reader.feed_line(line)
                    if reader.done:
                        break
            except httpx.TransportError as exc:
                raise self._transport.broken(exc) from exc
            yield from self._complete(reader, request.thinking)
        finally:
            response.close()

    async def astream(self, request: GenerationRequest) -> AsyncIterator[Event]:
        """Async twin of ``stream``, on ``httpx.AsyncClient``."""
        if request.thinking and self._facts is None:
            await asyncio.to_thread(self._server_if_up)  # once: it may block on HTTP
        reader = self._reader(request)
        response = await self._transport.aopen(self.build(request))
        try:
            try:
                async for line in response.aiter_lines():
                    for event in reader.feed_line(line):
                        yield event
                    if reader.done:
                        break
            except httpx.TransportError as exc:
                raise self._transport.broken(exc) from exc
            for event in self._complete(reader, request.thinking):
                yield event
        finally:
            await response.aclose()

    def close(self) -> None:
        """Close the HTTP connections; the next call opens new ones."""
        self._transport.close()


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra``'s fields; a dict field merges with ``base``'s one level deep."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _server_message(message: dict[str, str]) -> dict[str, str]:
    """A template message as OpenAI's API takes it (tool results in the "tool" role)."""
    out = {"role": message["role"], "content": neutralise(message.get("content", ""))}
    if message["role"] in ("ipython", "tool"):
        out["role"] = "tool"  # Llama 3.1 templates render it as "ipython"
        out["tool_call_id"] = message.get("tool_call_id") or "call"
    if message.get("reasoning_content"):  # a profile that keeps earlier reasoning
        out["reasoning_content"] = neutralise(message["reasoning_content"])
    return out
