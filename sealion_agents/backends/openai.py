"""SEA-LION on any OpenAI-compatible server: ``vllm serve``, llama.cpp's server, AI Singapore's API.

Data flow: template messages + options -> one request body (``_Request.body``; thinking as
``chat_template_kwargs``) -> ``POST {base_url}/chat/completions`` with ``stream: true`` ->
SSE lines -> JSON chunks -> ``_ChunkReader`` -> ``TextDelta`` events whose text holds the
reasoning inline between ``<think>`` tags, whichever way the server sent it:

* a ``reasoning`` field (vLLM with ``--reasoning-parser``), or ``reasoning_content`` (older
  vLLM, llama.cpp's C++ server): wrapped back into tags, so ``TurnDecoder``'s one parser
  sees the same text on every backend and the thinking budget works on these servers too;
* inline ``<think>`` tags in ``content`` (no reasoning parser on the server): passed through.
  When the chat template pre-fills ``<think>`` in the prompt the output starts inside the
  reasoning; the backend asks vLLM's ``/tokenize`` once per thinking mode whether the prompt
  ends with ``<think>``, and on other servers holds the first reply back until the output
  shows it (then remembers the answer).

With thinking off, text a server puts in the reasoning field is answer text (vLLM's
reasoning parser can misfile the whole answer there when the prompt already closed the
reasoning).

Sync and async share the request builder and the chunk reader; only the HTTP loop differs.
Opening a request is retried with exponential backoff on connection errors, 429 and 5xx;
a stream that breaks after it began is an error (its events were already delivered).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from sealion_agents.backends.base import (
    Event,
    Finished,
    GenerationRequest,
    PromptInfo,
    TextDelta,
)
from sealion_agents.chat_template import thinking_mode
from sealion_agents.reasoning import THINK_CLOSE, THINK_OPEN

__all__ = [
    "API_KEY_ENV",
    "OpenAIBackend",
    "ServerAuthenticationError",
    "ServerError",
    "ServerModelNotFoundError",
    "ServerUnavailableError",
]

logger = logging.getLogger(__name__)

API_KEY_ENV = "SEALION_API_KEY"
"""Environment variable read for the API key when none is given."""

DEFAULT_TIMEOUT = 600.0
"""Seconds to wait for a server response when ``timeout`` is not set."""
CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a connection when ``timeout`` is not set."""
BACKOFF = 0.5
"""First retry delay in seconds; it doubles on every retry (with jitter)."""
MAX_BACKOFF = 8.0


class ServerError(RuntimeError):
    """An OpenAI-compatible server failed the request."""


class ServerUnavailableError(ServerError):
    """The server could not be reached, or kept failing, after all retries."""


class ServerAuthenticationError(ServerError):
    """The server refused the API key (HTTP 401/403)."""


class ServerModelNotFoundError(ServerError):
    """The server does not serve the requested model."""


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# -- the request, shared by sync and async ----------------------------------------------


@dataclass(frozen=True)
class _Request:
    """One HTTP request: path and JSON body."""

    path: str
    body: dict[str, Any]


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


# -- the chunk reader, shared by sync and async -----------------------------------------


class _ChunkReader:
    """Turn the server's stream chunks into backend events (one reader per generation).

    ``opens``: whether the prompt ends inside the reasoning (None: unknown; the text is
    held back until the output shows it). Server-split reasoning is wrapped back into
    ``<think>`` tags, so the decoder parses every server's output the same way.
    """

    def __init__(self, *, thinking: bool, opens: bool | None, continuing: bool) -> None:
        self.thinking = thinking
        self.opens: bool | None = opens if thinking else False
        if continuing and self.opens is None:
            self.opens = False  # a continuation keeps the first prompt's parser anyway
        self.learned: bool | None = None  # what the output showed about the prompt
        self.prompt_tokens = 0
        self.finish_reason: str | None = None
        self.done = False
        self._started = False
        self._split = False  # the server sends reasoning in its own field
        self._in_reasoning = bool(self.opens)  # inside reasoning that we wrap in tags
        self._held: list[TextDelta] = []
        self._completion = 0  # cumulative completion tokens the server reported
        self._produced = 0

    def feed_line(self, line: str) -> list[Event]:
        """Consume one SSE line."""
        if not line.startswith("data:"):
            return []
        data = line[5:].strip()
        if data == "[DONE]":
            self.done = True
            return []
        chunk = json.loads(data)
        if "error" in chunk and not chunk.get("choices"):
            error = chunk["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise ServerError(f"the server reported an error mid-stream: {message}")
        return self.feed_chunk(chunk)

    def feed_chunk(self, chunk: dict[str, Any]) -> list[Event]:
        """Consume one parsed chunk."""
        events: list[Event] = []
        usage = chunk.get("usage") or {}
        if not self._started:
            self._started = True
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            if self.opens is not None:
                events.append(PromptInfo(self.prompt_tokens, opens_reasoning=self.opens))
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or choice.get("message") or {}
            reasoning = delta.get("reasoning") or delta.get("reasoning_content") or ""
            content = delta.get("content") or ""
            tokens = self._tokens(usage, bool(reasoning or content))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                if self.finish_reason == "stop" and "completion_tokens" in usage:
                    tokens = max(0, tokens - 1)  # the server counted the end-of-turn token
                elif not (reasoning or content):
                    tokens = 0
            if reasoning or content:
                for text, count in self._inline(reasoning, content, tokens):
                    events += self._route(text, count, bool(reasoning))
        return events

    def finish(self) -> list[Event]:
        """The closing events once the stream has ended."""
        events: list[Event] = []
        if not self._started:
            events.append(PromptInfo(0, opens_reasoning=bool(self.opens)))
        if self.opens is None:  # the reply never showed reasoning
            events += self._release(False)
        reason = "length" if self.finish_reason == "length" else "stop"
        events.append(Finished(reason=reason, completion_tokens=self._produced))
        return events

    def _tokens(self, usage: dict[str, Any], has_text: bool) -> int:
        completion = usage.get("completion_tokens")
        if completion is None:
            return 1 if has_text else 0
        tokens = max(0, int(completion) - self._completion)
        self._completion = int(completion)
        return tokens

    def _inline(self, reasoning: str, content: str, tokens: int) -> list[tuple[str, int]]:
        """Raw text pieces with the reasoning back between tags, and their token counts."""
        if not self.thinking:
            return [(reasoning + content, tokens)]  # no reasoning with thinking off: answer
        text = ""
        if reasoning:
            self._split = True
            if not self._in_reasoning:
                text += THINK_OPEN if not self.opens else ""
                self._in_reasoning = True
            text += reasoning
        if content and self._split and self._in_reasoning:
            self._in_reasoning = False
            if tokens > 1:  # the server swallowed the </think> token into this chunk
                return [(text + THINK_CLOSE, tokens - 1), (content, 1)]
            text += THINK_CLOSE
        return [(text + content, tokens)]

    def _route(self, text: str, tokens: int, split: bool) -> list[Event]:
        if self.opens is not None:
            self._produced += tokens
            return [TextDelta(text=text, tokens=tokens)]
        self._held.append(TextDelta(text=text, tokens=tokens))
        held = "".join(piece.text for piece in self._held)
        if split or held.lstrip().startswith(THINK_OPEN):
            self.learned = False  # the output opened the reasoning itself
            return self._release(False)
        if THINK_CLOSE in held:
            self.learned = True  # reasoning closed that never opened: the prompt opened it
            return self._release(True)
        return []

    def _release(self, opens: bool) -> list[Event]:
        self.opens = opens
        events: list[Event] = [PromptInfo(self.prompt_tokens, opens_reasoning=opens)]
        for piece in self._held:
            self._produced += piece.tokens
            events.append(piece)
        self._held = []
        return events


# -- the backend ------------------------------------------------------------------------


class OpenAIBackend:
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
                when thinking is on (default: ask the server, else learn from the output).
            extra_body: more fields for every request body (``chat_template``,
                ``repetition_penalty``...); dicts merge with the backend's own.
            headers: more HTTP headers.
            continues: whether the server honours ``continue_final_message`` (needed by the
                thinking budget); default: yes for vLLM (found by its ``/tokenize``).
        """
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more.")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self.timeout = timeout
        self.max_retries = max_retries
        self.thinking_off_model = thinking_off_model
        self.extra_body = dict(extra_body or {})
        self._headers = dict(headers or {})
        self._prefilled: dict[bool, bool | None] = {False: False}
        if reasoning_prefilled is not None:
            self._prefilled[True] = reasoning_prefilled
        self._probed: set[bool] = set()
        self._continues = continues
        self._client: Any = None
        self._aclients: dict[int, Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r})"

    @property
    def model_name(self) -> str:
        """The model name sent to the server."""
        return self.model

    # -- the request, shared by sync and async -------------------------------------

    def model_for(self, thinking: bool) -> str:
        """The model name to request for a thinking mode."""
        return self.thinking_off_model if not thinking and self.thinking_off_model else self.model

    def build(self, request: GenerationRequest) -> _Request:
        """The chat-completions request for a generation."""
        messages: list[dict[str, str]] = list(request.messages)
        body: dict[str, Any] = {
            "model": self.model_for(request.thinking),
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
            "chat_template_kwargs": {"thinking_mode": thinking_mode(request.thinking)},
        }
        if request.assistant_prefix:
            if not self._continues:
                raise ServerError(
                    f"{self.base_url} (model {self.model!r}) cannot continue an assistant "
                    "message, which the thinking budget (max_thinking_tokens) needs: use a vLLM "
                    "server, or pass continues=True if this server honours "
                    "continue_final_message."
                )
            opens = self._prefilled.get(request.thinking)
            prefix = (THINK_OPEN if opens else "") + request.assistant_prefix
            messages.append({"role": "assistant", "content": prefix})
            body["add_generation_prompt"] = False
            body["continue_final_message"] = True
        options = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "top_k": request.top_k,
            "seed": request.seed,
        }
        body.update({key: value for key, value in options.items() if value is not None})
        body = _merge(body, self.extra_body)
        body = _merge(body, dict(request.extra))
        return _Request("/chat/completions", body)

    def _headers_for(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", **self._headers}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _timeout(self) -> Any:
        if self.timeout is None:
            return httpx.Timeout(DEFAULT_TIMEOUT, connect=CONNECT_TIMEOUT)
        return httpx.Timeout(self.timeout)

    def _reader(self, request: GenerationRequest) -> _ChunkReader:
        return _ChunkReader(
            thinking=request.thinking,
            opens=self._prefilled.get(request.thinking),
            continuing=bool(request.assistant_prefix),
        )

    def _learn(self, thinking: bool, reader: _ChunkReader) -> None:
        if reader.learned is not None and self._prefilled.get(thinking) is None:
            self._prefilled[thinking] = reader.learned

    def _failure(self, status: int, text: str, retry_after: str | None) -> Exception:
        """The error for a non-200 response (``_Retryable`` when a retry may help)."""
        where = f"{self.base_url} (model {self.model!r})"
        detail = _error_message(text)
        if status in (401, 403):
            return ServerAuthenticationError(
                f"{where} refused the request (HTTP {status}): {detail}. Check the API key "
                f"(api_key=... or the {API_KEY_ENV} environment variable)."
            )
        if status == 404 or (status == 400 and "does not exist" in detail):
            return ServerModelNotFoundError(
                f"{where}: the server does not serve this model (HTTP {status}): {detail}. "
                f"List its models at {self.base_url}/models."
            )
        if status == 429 or status >= 500:
            delay = None
            if retry_after:
                try:
                    delay = float(retry_after)
                except ValueError:
                    delay = None
            return _Retryable(f"HTTP {status} from {where}: {detail}", delay)
        return ServerError(f"{where} rejected the request (HTTP {status}): {detail}")

    def _gave_up(self, attempts: int, last: Exception) -> ServerUnavailableError:
        return ServerUnavailableError(
            f"{self.base_url} (model {self.model!r}) did not answer after {attempts} "
            f"attempt(s): {last}"
        )

    def _delay(self, attempt: int, error: Exception) -> float:
        if isinstance(error, _Retryable) and error.retry_after is not None:
            return min(error.retry_after, MAX_BACKOFF)
        return min(BACKOFF * 2**attempt, MAX_BACKOFF) * (0.75 + random.random() / 2)

    def _probe_body(self, thinking: bool) -> dict[str, Any]:
        body = {
            "model": self.model_for(thinking),
            "messages": [{"role": "user", "content": "."}],
            "add_generation_prompt": True,
            "return_token_strs": True,
            "chat_template_kwargs": {"thinking_mode": thinking_mode(thinking)},
        }
        if "chat_template" in self.extra_body:
            body["chat_template"] = self.extra_body["chat_template"]
        return body

    @property
    def _root(self) -> str:
        return self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url

    # -- sync ------------------------------------------------------------------------

    def _sync_client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self._timeout())
            return self._client

    def _probe(self, thinking: bool) -> None:
        """Ask vLLM's ``/tokenize`` whether the prompt ends with ``<think>`` (once per mode)."""
        if thinking in self._probed or self._prefilled.get(thinking) is not None:
            return
        self._probed.add(thinking)
        client = self._sync_client()
        try:
            response = client.post(
                self._root + "/tokenize",
                json=self._probe_body(thinking),
                headers=self._headers_for(),
            )
            if response.status_code != 200:
                return
            if self._continues is None:
                self._continues = True  # vLLM: it honours continue_final_message
            document = response.json()
            tokens, strings = document.get("tokens") or [], document.get("token_strs") or []
            if strings:
                self._prefilled[thinking] = strings[-1] == THINK_OPEN
                return
            if not tokens:
                return
            response = client.post(
                self._root + "/detokenize",
                json={"model": self.model_for(thinking), "tokens": tokens[-1:]},
                headers=self._headers_for(),
            )
            if response.status_code == 200:
                self._prefilled[thinking] = response.json().get("prompt", "").strip() == THINK_OPEN
        except Exception:  # not a vLLM server: learn from the output instead
            logger.debug("no /tokenize on %s", self._root, exc_info=True)

    def _open(self, request: _Request) -> Any:
        client = self._sync_client()
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self._delay(attempt - 1, last))  # type: ignore[arg-type]
            try:
                response = client.send(
                    client.build_request(
                        "POST",
                        self.base_url + request.path,
                        json=request.body,
                        headers=self._headers_for(),
                    ),
                    stream=True,
                )
            except httpx.TransportError as exc:
                last = exc
                logger.info("%s: %s (attempt %d)", self.base_url, type(exc).__name__, attempt + 1)
                continue
            if response.status_code == 200:
                return response
            text = response.read().decode("utf-8", "replace")
            response.close()
            error = self._failure(response.status_code, text, response.headers.get("retry-after"))
            if not isinstance(error, _Retryable):
                raise error
            last = error
        assert last is not None
        raise self._gave_up(self.max_retries + 1, last)

    def stream(self, request: GenerationRequest) -> Iterator[Event]:
        """Stream one chat completion; closing the iterator closes the connection."""
        if request.thinking:
            self._probe(request.thinking)
        reader = self._reader(request)
        response = self._open(self.build(request))
        try:
            try:
                for line in response.iter_lines():
                    yield from reader.feed_line(line)
                    if reader.done:
                        break
            except httpx.TransportError as exc:
                raise self._broken(exc) from exc
            if not reader.done and reader.finish_reason is None:
                raise self._broken(None)
            self._learn(request.thinking, reader)
            yield from reader.finish()
        finally:
            response.close()

    def _broken(self, exc: Exception | None) -> ServerError:
        cause = f": {type(exc).__name__}: {exc}" if exc else ""
        return ServerError(
            f"{self.base_url} (model {self.model!r}) closed the stream before the reply "
            f"was complete{cause}"
        )

    # -- async -----------------------------------------------------------------------

    def _async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._aclients.get(id(loop))
        if client is None or client.is_closed:
            client = self._aclients[id(loop)] = httpx.AsyncClient(timeout=self._timeout())
        return client

    async def _aopen(self, request: _Request) -> Any:
        client = self._async_client()
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(self._delay(attempt - 1, last))  # type: ignore[arg-type]
            try:
                response = await client.send(
                    client.build_request(
                        "POST",
                        self.base_url + request.path,
                        json=request.body,
                        headers=self._headers_for(),
                    ),
                    stream=True,
                )
            except httpx.TransportError as exc:
                last = exc
                logger.info("%s: %s (attempt %d)", self.base_url, type(exc).__name__, attempt + 1)
                continue
            if response.status_code == 200:
                return response
            text = (await response.aread()).decode("utf-8", "replace")
            await response.aclose()
            error = self._failure(response.status_code, text, response.headers.get("retry-after"))
            if not isinstance(error, _Retryable):
                raise error
            last = error
        assert last is not None
        raise self._gave_up(self.max_retries + 1, last)

    async def astream(self, request: GenerationRequest) -> AsyncIterator[Event]:
        """Async twin of ``stream``, on ``httpx.AsyncClient``."""
        if request.thinking and request.thinking not in self._probed:
            await asyncio.to_thread(self._probe, request.thinking)  # once per mode
        reader = self._reader(request)
        response = await self._aopen(self.build(request))
        try:
            try:
                async for line in response.aiter_lines():
                    for event in reader.feed_line(line):
                        yield event
                    if reader.done:
                        break
            except httpx.TransportError as exc:
                raise self._broken(exc) from exc
            if not reader.done and reader.finish_reason is None:
                raise self._broken(None)
            self._learn(request.thinking, reader)
            for event in reader.finish():
                yield event
        finally:
            await response.aclose()

    def close(self) -> None:
        """Close the HTTP connections; the next call opens new ones."""
        with self._lock:
            client, self._client = self._client, None
            aclients, self._aclients = self._aclients, {}
        if client is not None:
            client.close()
        for aclient in aclients.values():
            try:
                asyncio.get_running_loop().create_task(aclient.aclose())
            except RuntimeError:  # no running loop: drop it, its sockets close with it
                pass


def _error_message(text: str) -> str:
    """The message in an OpenAI-style error body, else the body itself (shortened)."""
    try:
        document = json.loads(text)
    except ValueError:
        return text.strip()[:300] or "(empty body)"
    if isinstance(document, dict):
        error = document.get("error", document.get("detail", document))
        if isinstance(error, dict):
            return str(error.get("message") or error)[:300]
        return str(error)[:300]
    return str(document)[:300]
