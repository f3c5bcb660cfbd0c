"""``ChatSeaLion``: the LangChain chat model for SEA-LION, over any backend.

Data flow:
  input: LangChain messages -> template dicts (earlier reasoning removed) + options
         -> ``GenerationRequest`` -> backend (renders with ``thinking_mode``, generates)
  output: backend events -> ``TurnDecoder`` (reasoning vs answer, stop sequences, thinking
         budget, usage) -> ``AIMessageChunk``s -> ``AIMessage`` whose reasoning sits in
         ``additional_kwargs["reasoning_content"]`` and never in ``content``.

The sync and async paths share one decoder and differ only in how they iterate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.language_models.base import LanguageModelInput
from langchain_core.language_models.chat_models import agenerate_from_stream, generate_from_stream
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult, LLMResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import get_config_list
from pydantic import ConfigDict, Field, field_validator

from sealion_agents.backends.base import (
    BatchBackend,
    ChatBackend,
    Event,
    GenerationRequest,
    close_iterator,
)
from sealion_agents.decoding import TurnDecoder
from sealion_agents.messages import to_template_messages

__all__ = ["ChatSeaLion"]

_CALL_OPTIONS = (
    "thinking",
    "max_thinking_tokens",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
)


class ChatSeaLion(BaseChatModel):
    """Chat model for AI Singapore's SEA-LION, with its thinking mode switchable.

    Build it from a backend: ``ChatSeaLion.from_gguf(...)`` (llama.cpp in-process) or
    ``ChatSeaLion(backend=...)``. Every option below can also be given per call
    (``llm.invoke(msgs, thinking=False)``) or per chain step (``llm.with_thinking(False)``,
    ``llm.bind(max_tokens=256)``).
    """

    backend: Any = Field(exclude=True, repr=False)
    """The engine that runs the model (implements ``ChatBackend``)."""
    thinking: bool = True
    """Let the model reason in ``<think>`` before answering (SEA-LION's default: on)."""
    max_thinking_tokens: int | None = Field(default=None, ge=1)
    """Thinking budget: at this many reasoning tokens the reasoning closes and the model answers."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Most tokens to generate in all, reasoning included (None: up to the context window)."""
    temperature: float | None = Field(default=None, ge=0.0)
    """Sampling temperature (None: the backend's default, 0.6 for the GGUF runtime)."""
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    """Nucleus sampling probability mass."""
    top_k: int | None = Field(default=None, ge=0)
    """Sample from the k most likely tokens (0: no limit)."""
    seed: int | None = None
    """Random seed for reproducible sampling."""
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    """Stop sequences; they cut the answer, never the reasoning."""
    timeout: float | None = Field(default=None, gt=0)
    """Seconds to wait for a server backend (in-process backends ignore it)."""
    max_retries: int = Field(default=2, ge=0)
    """Retries on connection errors for server backends."""
    streaming: bool = False
    """Stream internally even on ``invoke`` (token callbacks fire)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    @field_validator("backend")
    @classmethod
    def _check_backend(cls, backend: Any) -> Any:
        if not isinstance(backend, ChatBackend):
            raise TypeError(
                f"backend must implement sealion_agents.backends.base.ChatBackend "
                f"(model_name, stream, astream, close); got {type(backend).__name__}. "
                "Use ChatSeaLion.from_gguf(...) to build one."
            )
        return backend

    # -- constructors ----------------------------------------------------------------

    @classmethod
    def from_gguf(
        cls,
        model: str | Path,
        *,
        quant: str | None = None,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        n_ctx: int | None = None,
        n_gpu_layers: int = -1,
        chat_template: str | None = None,
        thinking: bool = True,
        llama_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ChatSeaLion:
        """SEA-LION on llama.cpp from a local ``.gguf`` or a Hugging Face repo id.

        Nothing is loaded or downloaded until the first call (or ``load()``).

        Args:
            model: a ``.gguf`` path, or a repo id such as
                ``"aisingapore/Llama-SEA-LION-v3.5-8B-R-GGUF"`` (then ``quant`` picks the file).
            quant: the quantization to download, e.g. ``"Q4_K_M"``.
            revision: repo branch, tag or commit.
            cache_dir: Hugging Face cache folder (default: the hub's own).
            n_ctx: context window (default: ``min(8192, trained context)``).
            n_gpu_layers: layers offloaded to a GPU build of llama.cpp (-1: all).
            chat_template: Jinja template overriding the one stored in the GGUF.
            thinking: default thinking mode of this instance.
            llama_kwargs: more ``llama_cpp.Llama`` arguments (``n_threads``, ``n_batch``...).
            **kwargs: other ``ChatSeaLion`` fields (``temperature``, ``max_tokens``...).
        """
        from sealion_agents.backends.llamacpp import LlamaCppBackend
        from sealion_agents.hub import is_repo_id, resolve_gguf

        options: dict[str, Any] = dict(llama_kwargs or {})
        options.update(n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, chat_template=chat_template)
        text = str(model)
        if not Path(text).exists() and is_repo_id(text):

            def download() -> Path:
                return resolve_gguf(text, quant=quant, revision=revision, cache_dir=cache_dir)

            name = f"{text}:{quant}" if quant else text
            backend = LlamaCppBackend(resolve=download, name=name, **options)
        else:
            backend = LlamaCppBackend(Path(text), **options)
        return cls(backend=backend, thinking=thinking, **kwargs)

    @classmethod
    def from_vllm(cls, model: Any, *, thinking: bool = True, **kwargs: Any) -> ChatSeaLion:
        """SEA-LION on vLLM in-process, from a repo id, a model folder or a started ``vllm.LLM``.

        The engine starts on the first call (or ``load()``); ``close()`` shuts it down
        (an engine passed in is left to its owner). Keyword arguments that are
        ``ChatSeaLion`` fields (``temperature``, ``max_tokens``, ``seed``...) configure the
        chat model; ``name`` and ``chat_template`` the backend; all others go to
        ``vllm.LLM`` (``tensor_parallel_size``, ``gpu_memory_utilization``,
        ``max_model_len``, ``dtype``, ``quantization``, ``enforce_eager``...).
        """
        from sealion_agents.backends.vllm import VLLMBackend

        fields = {
            k: kwargs.pop(k) for k in list(kwargs) if k in cls.model_fields and k != "backend"
        }
        if isinstance(model, (str, Path)):
            backend = VLLMBackend(model, **kwargs)
        else:
            backend = VLLMBackend(llm=model, **kwargs)
        return cls(backend=backend, thinking=thinking, **fields)

    @classmethod
    def from_openai(
        cls,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        thinking: bool = True,
        **kwargs: Any,
    ) -> ChatSeaLion:
        """SEA-LION behind an OpenAI-compatible server (``vllm serve``, llama.cpp, AI Singapore).

        ``api_key`` defaults to the ``SEALION_API_KEY`` environment variable. ``timeout`` and
        ``max_retries`` apply to the HTTP requests. Backend options (``thinking_off_model``,
        ``reasoning_prefilled``, ``extra_body``, ``headers``) go to ``OpenAIBackend``; other
        keyword arguments are ``ChatSeaLion`` fields.
        """
        from sealion_agents.backends.openai import OpenAIBackend

        fields = {
            k: kwargs.pop(k) for k in list(kwargs) if k in cls.model_fields and k != "backend"
        }
        probe = cls.model_construct(**fields)  # field defaults, e.g. max_retries
        backend = OpenAIBackend(
            base_url,
            model=model,
            api_key=api_key,
            timeout=probe.timeout,
            max_retries=probe.max_retries,
            **kwargs,
        )
        return cls(backend=backend, thinking=thinking, **fields)

    # -- conveniences ----------------------------------------------------------------

    def with_thinking(self, thinking: bool = True, **options: Any) -> Runnable:
        """This model with thinking switched on or off for one chain step."""
        return self.bind(thinking=thinking, **options)

    @property
    def model_name(self) -> str:
        """The backend's model name."""
        return str(self.backend.model_name)

    def load(self) -> ChatSeaLion:
        """Load (and download) the model now rather than on the first call."""
        load = getattr(self.backend, "load", None)
        if callable(load):
            load()
        return self

    def close(self) -> None:
        """Free the model's memory; the next call loads it again."""
        self.backend.close()

    def get_num_tokens(self, text: str) -> int:
        """Count tokens with the model's own tokenizer when the backend has one."""
        count = getattr(self.backend, "count_tokens", None)
        return int(count(text)) if callable(count) else super().get_num_tokens(text)

    @property
    def context_window(self) -> int | None:
        """The backend's context window in tokens, when it knows it."""
        n_ctx = getattr(self.backend, "n_ctx", None)
        return int(n_ctx) if n_ctx is not None else None

    @property
    def _llm_type(self) -> str:
        return "chat-sealion"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            **{name: getattr(self, name) for name in _CALL_OPTIONS},
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="sealion",
            ls_model_name=str(kwargs.get("model") or self.model_name),
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        stop = stop or self.stop
        if stop:
            params["ls_stop"] = stop
        return params

    # -- one turn ----------------------------------------------------------------------

    def _prepare(
        self, messages: list[BaseMessage], stop: Sequence[str] | None, kwargs: dict[str, Any]
    ) -> tuple[GenerationRequest, TurnDecoder]:
        unknown = sorted(k for k in kwargs if k not in _CALL_OPTIONS and not k.startswith("ls_"))
        if unknown:
            raise TypeError(
                f"ChatSeaLion got unknown call options {unknown}; per-call options are "
                f"{list(_CALL_OPTIONS)}."
            )
        options = {name: kwargs.get(name, getattr(self, name)) for name in _CALL_OPTIONS}
        budget = options["max_thinking_tokens"]
        if budget is not None and budget < 1:
            raise ValueError("max_thinking_tokens must be at least 1; use thinking=False for none.")
        request = GenerationRequest(
            messages=to_template_messages(messages),
            thinking=bool(options["thinking"]),
            max_tokens=options["max_tokens"],
            temperature=options["temperature"],
            top_p=options["top_p"],
            top_k=options["top_k"],
            seed=options["seed"],
        )
        decoder = TurnDecoder(
            model_name=self.model_name,
            stop=list(stop if stop is not None else self.stop or []),
            max_thinking_tokens=budget if request.thinking else None,
            max_tokens=request.max_tokens,
        )
        return request, decoder

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request: GenerationRequest | None
        request, decoder = self._prepare(messages, stop, kwargs)
        while request is not None:
            events = self.backend.stream(request)
            try:
                for event in events:
                    for chunk in decoder.feed(event):
                        if run_manager:
                            run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                        yield chunk
                    if decoder.interrupted:
                        break
            finally:
                close_iterator(events)
            request = decoder.next_request(request)
        yield from decoder.finish()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        request: GenerationRequest | None
        request, decoder = self._prepare(messages, stop, kwargs)
        while request is not None:
            events = self.backend.astream(request)
            try:
                async for event in events:
                    for chunk in decoder.feed(event):
                        if run_manager:
                            await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                        yield chunk
                    if decoder.interrupted:
                        break
            finally:
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    await aclose()
            request = decoder.next_request(request)
        for chunk in decoder.finish():
            yield chunk

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await agenerate_from_stream(self._astream(messages, stop, run_manager, **kwargs))

    # -- batches: one engine call for backends that batch (vLLM) ---------------------------

    def batch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:  # type: ignore[override]
        """Run many inputs; a batching backend gets them all in one engine call."""
        if not isinstance(self.backend, BatchBackend) or len(inputs) < 2:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        configs = get_config_list(config, len(inputs))
        stop = kwargs.pop("stop", None)
        conversations = [self._convert_input(item).to_messages() for item in inputs]
        runs = [
            self._callback_manager(CallbackManager, cfg).on_chat_model_start(
                self._serialized,
                [messages],
                invocation_params=self._get_invocation_params(stop=stop, **kwargs),
                name=cfg.get("run_name"),
                run_id=cfg.get("run_id"),
                batch_size=len(inputs),
            )[0]
            for messages, cfg in zip(conversations, configs, strict=True)
        ]
        try:
            rounds = self._batch_rounds(conversations, stop, kwargs)
            requests = next(rounds)
            while True:
                requests = rounds.send(self.backend.generate_batch(requests))
        except StopIteration as done:
            results: list[ChatResult | BaseException] = done.value
        except Exception as exc:  # the engine call failed: every input failed
            results = [exc] * len(inputs)
        return self._finish_batch(runs, results, return_exceptions)

    async def abatch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:  # type: ignore[override]
        """Async ``batch``: the engine call runs in a worker thread."""
        if not isinstance(self.backend, BatchBackend) or len(inputs) < 2:
            return await super().abatch(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            )
        configs = get_config_list(config, len(inputs))
        stop = kwargs.pop("stop", None)
        conversations = [self._convert_input(item).to_messages() for item in inputs]
        runs = [
            (
                await self._callback_manager(AsyncCallbackManager, cfg).on_chat_model_start(
                    self._serialized,
                    [messages],
                    invocation_params=self._get_invocation_params(stop=stop, **kwargs),
                    name=cfg.get("run_name"),
                    run_id=cfg.get("run_id"),
                    batch_size=len(inputs),
                )
            )[0]
            for messages, cfg in zip(conversations, configs, strict=True)
        ]
        try:
            rounds = self._batch_rounds(conversations, stop, kwargs)
            requests = next(rounds)
            while True:
                outputs = await asyncio.to_thread(self.backend.generate_batch, requests)
                requests = rounds.send(outputs)
        except StopIteration as done:
            results: list[ChatResult | BaseException] = done.value
        except Exception as exc:
            results = [exc] * len(inputs)
        out: list[Any] = []
        for run, result in zip(runs, results, strict=True):
            if isinstance(result, BaseException):
                await run.on_llm_error(result)
                if not return_exceptions:
                    raise result
                out.append(result)
            else:
                await run.on_llm_end(LLMResult(generations=[list(result.generations)]))
                out.append(result.generations[0].message)
        return out

    def _callback_manager(self, kind: Any, config: RunnableConfig) -> Any:
        return kind.configure(
            config.get("callbacks"),
            self.callbacks,
            self.verbose,
            config.get("tags"),
            self.tags,
            config.get("metadata"),
            self.metadata,
        )

    def _batch_rounds(
        self, conversations: list[list[BaseMessage]], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> Generator[list[GenerationRequest], list[list[Event]], list[ChatResult | BaseException]]:
        """Decode batched generations; yields the requests of each engine round.

        A thinking budget may need a second round for the inputs it cut short.
        """
        prepared: list[tuple[GenerationRequest, TurnDecoder] | BaseException] = []
        for messages in conversations:
            try:
                prepared.append(self._prepare(messages, stop, dict(kwargs)))
            except Exception as exc:  # bad input fails alone, not the whole batch
                prepared.append(exc)
        chunks: list[list[ChatGenerationChunk]] = [[] for _ in conversations]
        pending = [i for i, item in enumerate(prepared) if not isinstance(item, BaseException)]
        requests = {i: prepared[i][0] for i in pending}  # type: ignore[index]
        while pending:
            outputs = yield [requests[i] for i in pending]
            follow_up: list[int] = []
            for i, events in zip(pending, outputs, strict=True):
                decoder = prepared[i][1]  # type: ignore[index]
                for event in events:
                    chunks[i] += decoder.feed(event)
                    if decoder.interrupted:
                        break
                following = decoder.next_request(requests[i])
                if following is not None:
                    requests[i] = following
                    follow_up.append(i)
            pending = follow_up
        results: list[ChatResult | BaseException] = []
        for i, item in enumerate(prepared):
            if isinstance(item, BaseException):
                results.append(item)
            else:
                results.append(generate_from_stream(iter(chunks[i] + item[1].finish())))
        return results

    @staticmethod
    def _finish_batch(
        runs: list[CallbackManagerForLLMRun],
        results: list[ChatResult | BaseException],
        return_exceptions: bool,
    ) -> list[Any]:
        out: list[Any] = []
        for run, result in zip(runs, results, strict=True):
            if isinstance(result, BaseException):
                run.on_llm_error(result)
                if not return_exceptions:
                    raise result
                out.append(result)
            else:
                run.on_llm_end(LLMResult(generations=[list(result.generations)]))
                out.append(result.generations[0].message)
        return out
