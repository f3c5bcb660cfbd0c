"""SEA-LION on any OpenAI-compatible server: ``vllm serve``, llama.cpp's server, AI Singapore's API.

Data flow: template messages (control tokens in their text neutralised, since the server
renders and tokenizes) + options -> one request body (``_Request.body``; thinking as
``chat_template_kwargs``) -> ``POST {base_url}/chat/completions`` with ``stream: true`` ->
SSE lines -> JSON chunks -> ``_ChunkReader`` -> events, whichever way the server sent the
reasoning:

* a ``reasoning`` field (vLLM with ``--reasoning-parser``), or ``reasoning_content`` (older
  vLLM, llama.cpp's C++ server): ``ReasoningDelta`` events;
* inline ``<think>`` tags in ``content`` (no reasoning parser on the server): ``TextDelta``
  events, parsed by ``ReasoningParser`` like every other backend's output.
  When the chat template pre-fills ``<think>`` in the prompt the output starts inside the
  reasoning; the backend asks vLLM's ``/tokenize`` once per thinking mode whether the prompt
  ends with ``<think>``, and on other servers holds the first reply back until the output
  shows it (then remembers the answer).

With thinking off, text a server puts in the reasoning field is answer text (vLLM's
reasoning parser can misfile the whole answer there when the prompt already closed the
reasoning).

Tokens are counted by the server's own tokenizer (vLLM's ``/tokenize``, llama.cpp's
``/tokenize``, llama-cpp-python's ``/extras/tokenize/count``) or by a tokenizer the user
names (a local tokenizer folder or GGUF); the context window comes from the server
(vLLM's ``max_model_len``, llama.cpp's ``/props``) or from the user.

``sealion serve`` answers vLLM's ``/tokenize`` and ``max_model_len`` too, but continues no
assistant message and reads none of vLLM's constraint fields; it is told from vLLM by its
models' ``owned_by`` ("sealion-agents"), and gets plain chat completions (constrained
answers validated and retried, reasoning prefill learnt from the output).

Sync and async share the request builder and the chunk reader; only the HTTP loop differs.
Opening a request is retried with exponential backoff on connection errors, 429 and 5xx;
a stream that breaks after it began is an error (its events were already delivered).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sealion_agents.backends.base import (
    ChatBackend,
    Event,
    Finished,
    GenerationRequest,
    PromptInfo,
    ReasoningDelta,
    TextDelta,
)
from sealion_agents.chat_template import thinking_mode
from sealion_agents.errors import (
    ServerAuthenticationError,
    ServerError,
    ServerModelNotFoundError,
    ServerUnavailableError,
    TokenizerUnavailableError,
    require,
)
from sealion_agents.literal_text import neutralise
from sealion_agents.reasoning import THINK_CLOSE, THINK_OPEN

__all__ = ["API_KEY_ENV", "OpenAIBackend", "local_token_counter"]

logger = logging.getLogger(__name__)

SEALION_SERVE_OWNER = "sealion-agents"
"""``owned_by`` of the models ``sealion serve`` lists (vLLM-like counting, no continuation)."""

API_KEY_ENV = "SEALION_API_KEY"
"""Environment variable read for the API key when none is given."""

DEFAULT_TIMEOUT = 600.0
"""Seconds to wait for a server response when ``timeout`` is not set."""
CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a connection when ``timeout`` is not set."""
BACKOFF = 0.5
"""First retry delay in seconds; it doubles on every retry (with jitter)."""
MAX_BACKOFF = 8.0


_STRUCTURED_MODES = {"auto", "structured_outputs", "response_format", "grammar", "none"}


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# -- the request, shared by sync and async ----------------------------------------------


@dataclass(frozen=True)
class _Request:
    """One HTTP request: path, JSON body, this call's timeout and retries (None: the backend's)."""

    path: str
    body: dict[str, Any]
    timeout: float | None = None
    max_retries: int | None = None


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

    ``opens``: whether the prompt ends inside the reasoning (None: unknown; the output is
    held back until it shows). Server-split reasoning becomes ``ReasoningDelta`` events;
    tags in ``content`` stay as they are, for the reasoning parser.
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
        self._in_split_reasoning = False  # the server is sending reasoning in its own field
        self._held: list[TextDelta | ReasoningDelta] = []
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
            for piece in self._pieces(reasoning, content, tokens):
                events += self._route(piece)
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

    def _pieces(
        self, reasoning: str, content: str, tokens: int
    ) -> list[TextDelta | ReasoningDelta]:
        """The chunk's events, its tokens shared out between reasoning and answer."""
        if not (reasoning or content):
            return []
        if not self.thinking:
            return [TextDelta(reasoning + content, tokens)]  # thinking off: it is all answer
        pieces: list[TextDelta | ReasoningDelta] = []
        if reasoning and not self._in_split_reasoning and reasoning.startswith(THINK_OPEN):
            # vLLM's reasoning parser keeps the tag when it arrives in one chunk with more
            # tokens (a busy server batches its deltas): the tag is not reasoning text
            reasoning = reasoning[len(THINK_OPEN) :]
        if reasoning:
            self._in_split_reasoning = True
            pieces.append(ReasoningDelta(reasoning, tokens if not content else max(0, tokens - 1)))
            tokens = min(tokens, 1) if content else 0
        if content:
            if self._in_split_reasoning and not reasoning and tokens > 1:
                # the server swallowed the </think> token: count it with the reasoning
                pieces.append(ReasoningDelta("", tokens - 1))
                tokens = 1
            self._in_split_reasoning = False
            pieces.append(TextDelta(content, tokens))
        return pieces

    def _route(self, piece: TextDelta | ReasoningDelta) -> list[Event]:
        if self.opens is not None:
            self._produced += piece.tokens
            return [piece]
        self._held.append(piece)
        held = "".join(p.text for p in self._held if isinstance(p, TextDelta))
        if isinstance(piece, ReasoningDelta) or held.lstrip().startswith(THINK_OPEN):
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


def local_token_counter(path: str | Path) -> Callable[[str], int]:
    """Count tokens with a local tokenizer: a folder holding ``tokenizer.json``, or a GGUF."""
    path = Path(path).expanduser()
    if path.is_dir() and (path / "tokenizer.json").is_file():
        tokenizers = require("tokenizers", extra="tokenizers", feature="A local tokenizer")
        tokenizer = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
        return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)
    if path.is_file() and path.suffix == ".gguf":
        llama_cpp = require("llama_cpp", extra="gguf", feature="A GGUF tokenizer")
        from llama_cpp._internals import LlamaModel

        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        model = LlamaModel(path_model=str(path), params=params, verbose=False)
        lock = threading.Lock()

        def count(text: str) -> int:
            with lock:
                return len(model.tokenize(text.encode("utf-8"), False, False))

        return count
    raise FileNotFoundError(
        f"tokenizer={str(path)!r} is neither a folder holding tokenizer.json nor a .gguf file. "
        "Pass the model's Hugging Face folder (with tokenizer.json) or its GGUF file."
    )


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
        """
        if structured_output not in _STRUCTURED_MODES:
            raise ValueError(
                f"structured_output={structured_output!r}: use one of {sorted(_STRUCTURED_MODES)}."
            )
        self._structured = structured_output
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
        self._headers = dict(headers or {})
        self._prefilled: dict[bool, bool | None] = {False: False}
        if reasoning_prefilled is not None:
            self._prefilled[True] = reasoning_prefilled
        self._probed: set[bool] = set()
        self._continues = continues
        self._sealion_serve: bool | None = None  # found from the model list
        self._client: Any = None
        self._aclients: dict[int, Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r})"

    @property
    def model_name(self) -> str:
        """The model name sent to the server."""
        return self.model

    @property
    def continues(self) -> bool:
        """Whether the server continues an assistant message (vLLM, or ``continues=True``)."""
        if self._continues is None and self._structured_mode() == "structured_outputs":
            self._continues = True  # found a vLLM server
        return bool(self._continues)

    @property
    def parallel_generations(self) -> int:
        """16: the server batches concurrent requests."""
        return 16

    @property
    def constraint_support(self) -> str:
        """Answer with a structured-output field, whole with grammars, else none."""
        mode = self._structured_mode()
        if mode in ("structured_outputs", "response_format"):
            return "answer"
        return "whole" if mode == "grammar" else "none"

    def _structured_mode(self) -> str:
        """The structured-output mode, finding the server's kind once when "auto"."""
        if self._structured != "auto":
            return self._structured
        try:
            mode = self._find_structured_mode()
        except ServerUnavailableError:
            return "none"  # not up (yet): the request itself retries, then says so
        self._structured = mode
        return mode

    def _find_structured_mode(self) -> str:
        mode = "none"
        count = self._post_root("/extras/tokenize/count", {"model": self.model, "input": ""})
        if count is not None and count.status_code == 200:  # llama-cpp-python
            mode = "grammar"
        else:
            props = self._get_root("/props")
            if props is not None and props.status_code == 200:  # llama.cpp's C++ server
                mode = "grammar"
            else:
                body = {"model": self.model, "prompt": ""}
                tokenize = self._post_root("/tokenize", body)
                ok = tokenize is not None and tokenize.status_code == 200
                if ok and not self._is_sealion_serve():  # vLLM
                    mode = "structured_outputs"
        if mode == "grammar" and importlib.util.find_spec("llama_cpp") is None:
            mode = "none"  # its grammars are built with llama-cpp-python's converter
        return mode

    # -- what the contract asks: window, token counts, load ----------------------------

    def load(self) -> None:
        """Reach the server now: check it serves the model and learn its context window."""
        self._models()
        if self._window is None:
            try:
                self.context_window  # noqa: B018  (asks the server)
            except TokenizerUnavailableError:
                pass  # generation works without it; counting will say what to pass

    def _is_sealion_serve(self) -> bool:
        """Whether the server is ``sealion serve`` (its model list read once; False if unread)."""
        if self._sealion_serve is None:
            try:
                self._models()
            except (ServerError, ValueError):
                return False
        return bool(self._sealion_serve)

    def _models(self) -> list[dict[str, Any]]:
        response = self._get("/models")
        if response.status_code == 404:
            self._sealion_serve = False
            return []  # a server without a model list: nothing to check
        if response.status_code != 200:
            error = self._failure(response.status_code, response.text, None)
            if isinstance(error, _Retryable):
                raise ServerUnavailableError(str(error))
            raise error
        models = [m for m in response.json().get("data", []) if isinstance(m, dict)]
        self._sealion_serve = any(
            m.get("id") == self.model and m.get("owned_by") == SEALION_SERVE_OWNER for m in models
        )
        names = {str(m.get("id")) for m in models}
        wanted = {self.model} | ({self.thinking_off_model} if self.thinking_off_model else set())
        missing = sorted(wanted - names)
        if missing and names:
            raise ServerModelNotFoundError(
                f"{self.base_url} does not serve {missing[0]!r}; it serves {sorted(names)}."
            )
        return models

    @property
    def context_window(self) -> int:
        """The served context length: given, or asked from the server once."""
        if self._window is not None:
            return self._window
        window = None
        for model in self._models():
            if model.get("id") == self.model and model.get("max_model_len"):
                window = int(model["max_model_len"])  # vLLM
        if window is None:
            response = self._get_root("/props")  # llama.cpp's C++ server
            if response is not None and response.status_code == 200:
                settings = response.json().get("default_generation_settings") or {}
                n_ctx = settings.get("n_ctx") or response.json().get("n_ctx")
                window = int(n_ctx) if n_ctx else None
        if window is None:
            raise TokenizerUnavailableError(
                f"{self.base_url} (model {self.model!r}) does not report its context length: "
                "pass context_window=<tokens> (the server's n_ctx or max_model_len) to "
                "ChatSeaLion.from_openai."
            )
        self._window = window
        return window

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` as the server will read it (message text, neutralised)."""
        if self._counter is None:
            self._counter = self._find_counter()
        return self._counter(neutralise(text))

    def _find_counter(self) -> Callable[[str], int]:
        if self._tokenizer_path is not None:
            return local_token_counter(self._tokenizer_path)
        body = {"model": self.model, "prompt": "", "content": "", "add_special_tokens": False}
        response = self._post_root("/tokenize", body)  # vLLM and llama.cpp's C++ server
        if response is not None and response.status_code == 200:
            return self._server_counter("/tokenize", lambda t: {**body, "prompt": t, "content": t})
        response = self._post_root("/extras/tokenize/count", {"model": self.model, "input": ""})
        if response is not None and response.status_code == 200:  # llama-cpp-python
            offset = int(response.json().get("count", 0))  # its BOS: counted for empty text
            counter = self._server_counter(
                "/extras/tokenize/count", lambda t: {"model": self.model, "input": t}
            )
            return lambda text: max(0, counter(text) - offset)
        raise TokenizerUnavailableError(
            f"{self.base_url} (model {self.model!r}) has no tokenize endpoint, so its tokens "
            "cannot be counted: pass tokenizer=<the model's tokenizer folder or GGUF file> "
            "and context_window=<tokens> to ChatSeaLion.from_openai."
        )

    def _server_counter(
        self, path: str, body: Callable[[str], dict[str, Any]]
    ) -> Callable[[str], int]:
        def count(text: str) -> int:
            response = self._post_root(path, body(text))
            if response is None or response.status_code != 200:
                status = "no answer" if response is None else f"HTTP {response.status_code}"
                raise ServerError(f"{self._root}{path} failed to count tokens ({status}).")
            document = response.json()
            if "count" in document:
                return int(document["count"])
            return len(document.get("tokens") or [])

        return count

    def _get(self, path: str) -> Any:
        try:
            return self._sync_client().get(self.base_url + path, headers=self._headers_for())
        except httpx.TransportError as exc:
            raise ServerUnavailableError(
                f"{self.base_url} (model {self.model!r}) cannot be reached: {exc}"
            ) from exc

    def _get_root(self, path: str) -> Any:
        try:
            return self._sync_client().get(self._root + path, headers=self._headers_for())
        except httpx.TransportError:
            return None

    def _post_root(self, path: str, body: dict[str, Any]) -> Any:
        try:
            return self._sync_client().post(
                self._root + path, json=body, headers=self._headers_for()
            )
        except httpx.TransportError as exc:
            raise ServerUnavailableError(
                f"{self.base_url} (model {self.model!r}) cannot be reached: {exc}"
            ) from exc

    # -- the request, shared by sync and async -------------------------------------

    def model_for(self, thinking: bool) -> str:
        """The model name to request for a thinking mode."""
        return self.thinking_off_model if not thinking and self.thinking_off_model else self.model

    def build(self, request: GenerationRequest) -> _Request:
        """The chat-completions request for a generation."""
        messages = [_server_message(m) for m in request.messages]
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
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.constraint is not None:
            body.update(self._constraint_fields(request))
        body.update(request.options.sampling())
        body = _merge(body, self.extra_body)
        body = _merge(body, dict(request.extra))
        options = request.options
        return _Request("/chat/completions", body, options.timeout, options.max_retries)

    def _constraint_fields(self, request: GenerationRequest) -> dict[str, Any]:
        """The body fields that constrain the answer, by the server's structured-output mode."""
        constraint = request.constraint
        assert constraint is not None
        mode = self._structured_mode()
        if mode == "structured_outputs":
            from sealion_agents.grammars import structured_outputs

            return {"structured_outputs": structured_outputs(constraint.schema)}
        if mode == "response_format":
            spec = {"name": "answer", "schema": constraint.schema, "strict": True}
            return {"response_format": {"type": "json_schema", "json_schema": spec}}
        if mode == "grammar":
            from sealion_agents.grammars import answer_grammar

            grammar = answer_grammar(
                constraint.schema,
                after_reasoning=constraint.after_reasoning,
                optional=constraint.optional,
            )
            return {"grammar": grammar}
        return {}

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
            if response.status_code != 200 or self._is_sealion_serve():
                return  # sealion serve splits the reasoning itself: nothing to learn here
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

    def _attempts(self, request: _Request) -> int:
        retries = self.max_retries if request.max_retries is None else request.max_retries
        return retries + 1

    def _request_timeout(self, request: _Request) -> Any:
        return self._timeout() if request.timeout is None else httpx.Timeout(request.timeout)

    def _open(self, request: _Request) -> Any:
        client = self._sync_client()
        last: Exception | None = None
        attempts = self._attempts(request)
        for attempt in range(attempts):
            if attempt:
                time.sleep(self._delay(attempt - 1, last))  # type: ignore[arg-type]
            try:
                response = client.send(
                    client.build_request(
                        "POST",
                        self.base_url + request.path,
                        json=request.body,
                        headers=self._headers_for(),
                        timeout=self._request_timeout(request),
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
        raise self._gave_up(attempts, last)

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
        attempts = self._attempts(request)
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self._delay(attempt - 1, last))  # type: ignore[arg-type]
            try:
                response = await client.send(
                    client.build_request(
                        "POST",
                        self.base_url + request.path,
                        json=request.body,
                        headers=self._headers_for(),
                        timeout=self._request_timeout(request),
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
        raise self._gave_up(attempts, last)

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


def _server_message(message: dict[str, str]) -> dict[str, str]:
    """A template message as OpenAI's API takes it (tool results in the "tool" role)."""
    out = {"role": message["role"], "content": neutralise(message.get("content", ""))}
    if message["role"] == "ipython":
        out["role"] = "tool"  # Llama 3.1 templates render it as "ipython"
        out["tool_call_id"] = message.get("tool_call_id") or "call"
    return out


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
