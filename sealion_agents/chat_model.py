"""``ChatSeaLion``: the LangChain chat model for SEA-LION, over any backend.

Data flow:
  input: LangChain messages -> template dicts (earlier reasoning removed or kept, tool
         calls written, as the model's profile says) + options -> ``GenerationRequest``
         -> backend (renders with the profile's thinking switch, generates)
  output: backend events -> ``TurnDecoder`` (reasoning vs answer, stop sequences, thinking
         budget, usage) -> ``AIMessageChunk``s -> ``AIMessage`` whose reasoning sits in
         ``additional_kwargs["reasoning_content"]`` and never in ``content``.

Tools and structured output (``bind_tools``, ``with_structured_output``) become an
``AnswerPlan``: its instructions join the system message, and the decoder constrains the
answer (never the reasoning) through the backend's constrained decoding.

The sync and async paths share one decoder and differ only in how they iterate. Inside a
``batch()`` on a batching backend, generations go to that call's ``BatchRounds`` (one engine
call per round) instead of streaming one by one; everything else is LangChain's machinery.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.language_models.base import LanguageModelInput
from langchain_core.language_models.chat_models import agenerate_from_stream, generate_from_stream
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, RunnableSerializable
from langchain_core.runnables.configurable import RunnableConfigurableFields
from pydantic import ConfigDict, Field, field_validator

from sealion_agents.backends.base import ChatBackend, Event, GenerationRequest, close_iterator
from sealion_agents.batching import CURRENT_ROUNDS, BatchRounds, batch_rounds
from sealion_agents.decoding import TurnDecoder
from sealion_agents.messages import to_template_messages
from sealion_agents.options import GenerationOptions, option_names
from sealion_agents.profiles import ModelProfile
from sealion_agents.structured import StructuredOutputMixin
from sealion_agents.tool_calls import AnswerPlan, normalise_choice, tool_specs

__all__ = ["ChatSeaLion"]

_CALL_OPTIONS = option_names()
_PLAN_OPTIONS = ("tools", "tool_choice", "parallel_tool_calls", "response_format", "strict")


class ChatSeaLion(StructuredOutputMixin, BaseChatModel, GenerationOptions):
    """Chat model for AI Singapore's SEA-LION, with its thinking mode switchable.

    Build it from a backend: ``ChatSeaLion.from_gguf(...)`` (llama.cpp in-process),
    ``from_vllm(...)``, ``from_openai(...)`` or ``ChatSeaLion(backend=...)``. The generation
    options (``thinking``, ``max_thinking_tokens``, ``max_tokens``, ``temperature``,
    ``top_p``, ``top_k``, ``seed``, and ``timeout``, ``max_retries`` for servers: see
    ``GenerationOptions``) are instance defaults here and
    can be given per call (``llm.invoke(msgs, thinking=False)``) or per chain step
    (``llm.with_thinking(False)``, ``llm.bind(max_tokens=256)``).
    """

    backend: ChatBackend = Field(exclude=True, repr=False)
    """The engine that runs the model (a ``ChatBackend``)."""
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    """Stop sequences; they cut the answer, never the reasoning."""
    streaming: bool = False
    """Stream internally even on ``invoke`` (token callbacks fire)."""
    constraint_retries: int = Field(default=2, ge=0)
    """Extra attempts for a tool call or structured answer that breaks a rule of its schema
    that decoding cannot enforce (numeric bounds...), before it is reported invalid."""

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    @field_validator("backend", mode="before")
    @classmethod
    def _check_backend(cls, backend: Any) -> Any:
        if not isinstance(backend, ChatBackend):
            raise TypeError(
                f"backend must be a sealion_agents.backends.base.ChatBackend; got "
                f"{type(backend).__name__}. Use ChatSeaLion.from_gguf(...), from_vllm(...) or "
                "from_openai(...) to build one."
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
        profile: ModelProfile | str | None = None,
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
            profile: the model profile, a name from ``profiles.PROFILES`` or a
                ``ModelProfile`` (default: found from the file's name and chat template).
            **kwargs: other ``ChatSeaLion`` fields (``temperature``, ``max_tokens``...).
        """
        from sealion_agents.backends.llamacpp import LlamaCppBackend
        from sealion_agents.hub import is_repo_id, resolve_gguf

        options: dict[str, Any] = dict(llama_kwargs or {})
        options.update(n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, chat_template=chat_template)
        options["profile"] = profile
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
    def from_vllm(
        cls,
        model: Any,
        *,
        thinking: bool = True,
        profile: ModelProfile | str | None = None,
        **kwargs: Any,
    ) -> ChatSeaLion:
        """SEA-LION on vLLM in-process, from a repo id, a model folder or a started ``vllm.LLM``.

        The engine starts on the first call (or ``load()``); ``close()`` shuts it down
        (an engine passed in is left to its owner). Keyword arguments that are
        ``ChatSeaLion`` fields (``temperature``, ``max_tokens``, ``seed``...) configure the
        chat model; ``name``, ``chat_template``, ``profile`` (a name from
        ``profiles.PROFILES``; default: found from the model's name and template) and
        ``speculative`` (decode with the profile's draft model) the backend; all others go to
        ``vllm.LLM`` (``tensor_parallel_size``, ``gpu_memory_utilization``,
        ``max_model_len``, ``dtype``, ``quantization``, ``enforce_eager``...).
        """
        from sealion_agents.backends.vllm import VLLMBackend

        fields = {
            k: kwargs.pop(k) for k in list(kwargs) if k in cls.model_fields and k != "backend"
        }
        if isinstance(model, (str, Path)):
            backend = VLLMBackend(model, profile=profile, **kwargs)
        else:
            backend = VLLMBackend(llm=model, profile=profile, **kwargs)
        return cls(backend=backend, thinking=thinking, **fields)

    @classmethod
    def from_openai(
        cls,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        thinking: bool = True,
        profile: ModelProfile | str | None = None,
        **kwargs: Any,
    ) -> ChatSeaLion:
        """SEA-LION behind an OpenAI-compatible server (``vllm serve``, llama.cpp, AI Singapore).

        ``api_key`` defaults to the ``SEALION_API_KEY`` environment variable. ``timeout`` and
        ``max_retries`` apply to the HTTP requests (per instance here, or per call). Token
        counting uses the server's tokenize endpoint (vLLM, llama.cpp) or ``tokenizer=`` (a
        local tokenizer folder or GGUF); the context window comes from the server or
        ``context_window=``. Other backend options
        (``thinking_off_model``, ``reasoning_prefilled``, ``extra_body``, ``headers``,
        ``continues``) go to ``OpenAIBackend``; other keyword arguments are ``ChatSeaLion``
        fields. ``profile``: the model profile (a name from ``profiles.PROFILES``), where the
        served name does not tell the model (a proxy).
        """
        from sealion_agents.backends.openai import OpenAIBackend

        fields = {
            k: kwargs.pop(k) for k in list(kwargs) if k in cls.model_fields and k != "backend"
        }
        transport = {k: fields[k] for k in ("timeout", "max_retries") if fields.get(k) is not None}
        backend = OpenAIBackend(
            base_url, model=model, api_key=api_key, profile=profile, **transport, **kwargs
        )
        return cls(backend=backend, thinking=thinking, **fields)

    # -- conveniences ----------------------------------------------------------------

    def with_thinking(self, thinking: bool = True, **options: Any) -> Runnable:
        """This model with thinking switched on or off for one chain step."""
        return self.bind(thinking=thinking, **options)

    def bind_tools(
        self,
        tools: Sequence[Any],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        parallel_tool_calls: bool | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """This model with tools it may call (LangChain tools, functions, Pydantic, dicts).

        ``tool_choice``: "auto" (default: the model answers in text or calls), "any" or
        "required" or True (a call is certain), a tool name (that tool), "none" (no call).
        ``parallel_tool_calls=False`` allows one call per answer. Calls are always decoded
        under their JSON schema (``strict`` is accepted for compatibility and always on).
        The reasoning is never constrained and never read for calls.
        """
        specs = tool_specs(tools)
        choice = normalise_choice(tool_choice, [spec["name"] for spec in specs])
        AnswerPlan.for_tools(specs, choice)  # a schema that cannot be enforced fails here
        bound: dict[str, Any] = {"tools": specs, "tool_choice": choice}
        if parallel_tool_calls is not None:
            bound["parallel_tool_calls"] = parallel_tool_calls
        return self.bind(**bound, **kwargs)

    @property
    def model_name(self) -> str:
        """The backend's model name."""
        return str(self.backend.model_name)

    def load(self) -> ChatSeaLion:
        """Load (and download) the model, or reach the server, now rather than on first use."""
        self.backend.load()
        return self

    def close(self) -> None:
        """Free the model's memory; the next call loads it again."""
        self.backend.close()

    def get_num_tokens(self, text: str) -> int:
        """Count tokens with the model's own tokenizer (the text read as message text)."""
        return int(self.backend.count_tokens(text))

    @property
    def context_window(self) -> int:
        """The model's context window in tokens."""
        return int(self.backend.context_window)

    @property
    def sealion_profile(self) -> ModelProfile:
        """The model's SEA-LION profile (thinking switch, tool format, history; ``profiles``).

        (LangChain's ``profile`` field is its own capability table.)
        """
        return self.backend.profile

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
        unknown = sorted(
            k
            for k in kwargs
            if k not in _CALL_OPTIONS and k not in _PLAN_OPTIONS and not k.startswith("ls_")
        )
        if unknown:
            raise TypeError(
                f"ChatSeaLion got unknown call options {unknown}; per-call options are "
                f"{list(_CALL_OPTIONS)} (tools through bind_tools, schemas through "
                "with_structured_output)."
            )
        options = GenerationOptions(
            **{name: kwargs.get(name, getattr(self, name)) for name in _CALL_OPTIONS}
        )
        profile = self.backend.profile
        if profile.tools.tools_in_template and not self.backend.renders_tools:
            tools_format = dataclasses.replace(profile.tools, tools_in_template=False)
            profile = dataclasses.replace(profile, tool_format=tools_format)
        if options.thinking and not profile.can_think:
            options = options.model_copy(update={"thinking": False})  # documented no-op
        plan = self._plan(kwargs, profile)
        template_messages = to_template_messages(messages, profile)
        tools: tuple[dict[str, Any], ...] = ()
        if plan is not None:
            if plan.instructions:
                template_messages = _with_instructions(template_messages, plan.instructions)
            tools = plan.template_tools
        request = GenerationRequest(messages=template_messages, options=options, tools=tools)
        decoder = TurnDecoder(
            model_name=self.model_name,
            stop=list(stop if stop is not None else self.stop or []),
            max_thinking_tokens=options.max_thinking_tokens if options.thinking else None,
            max_tokens=options.max_tokens,
            plan=plan,
            support=self.backend.constraint_support if plan is not None else "none",
            continues=self.backend.continues if plan is not None else True,
            reasoning_tags=profile.reasoning_tags,
        )
        return decoder.first_request(request), decoder

    def _plan(self, kwargs: dict[str, Any], profile: ModelProfile) -> AnswerPlan | None:
        """What the answer must be: a tool call, structured JSON, or (None) free text."""
        response_format = kwargs.get("response_format")
        if response_format is not None:
            kind = response_format.get("type") if isinstance(response_format, dict) else None
            if kind == "json_object":
                return AnswerPlan.for_json(None, retries=self.constraint_retries)
            if kind == "json_schema":
                spec = response_format.get("json_schema") or {}
                schema = spec.get("schema")
                name = f"the schema {spec.get('name')!r}" if spec.get("name") else "the schema"
                return AnswerPlan.for_json(schema, retries=self.constraint_retries, name=name)
            raise ValueError(
                f"response_format={response_format!r} is not supported: use "
                "{'type': 'json_schema', 'json_schema': {'schema': ...}} or "
                "{'type': 'json_object'} (or with_structured_output)."
            )
        tools = kwargs.get("tools")
        if not tools:
            return None
        specs = tool_specs(tools)
        choice = normalise_choice(kwargs.get("tool_choice"), [s["name"] for s in specs])
        parallel = kwargs.get("parallel_tool_calls")
        return AnswerPlan.for_tools(
            specs,
            choice,
            parallel=True if parallel is None else bool(parallel),
            retries=self.constraint_retries,
            tool_format=profile.tools,
        )

    def _rounds(self) -> BatchRounds | None:
        """The ``batch()`` call this generation belongs to, if it batches on this backend."""
        rounds = CURRENT_ROUNDS.get()
        return rounds if rounds is not None and rounds.backend is self.backend else None

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request: GenerationRequest | None
        request, decoder = self._prepare(messages, stop, kwargs)
        rounds = self._rounds()
        while request is not None:
            events: Iterator[Event]
            events = iter(rounds.submit(request)) if rounds else self.backend.stream(request)
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
        rounds = self._rounds()
        while request is not None:
            stream: AsyncIterator[Event]
            if rounds is not None:
                stream = _async_iter(await rounds.asubmit(request))
            else:
                stream = self.backend.astream(request)
            try:
                async for event in stream:
                    for chunk in decoder.feed(event):
                        if run_manager:
                            await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                        yield chunk
                    if decoder.interrupted:
                        break
            finally:
                aclose = getattr(stream, "aclose", None)
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
        return _with_invalid_calls(
            generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return _with_invalid_calls(
            await agenerate_from_stream(self._astream(messages, stop, run_manager, **kwargs))
        )

    # -- batches: LangChain's machinery, one engine call per round on vLLM ------------------

    def batch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:  # type: ignore[override]
        """Run many inputs; on a batching backend each round of them is ONE engine call.

        LangChain runs the inputs (``max_concurrency``, cache, rate limiter, callbacks as
        for any chat model); without a ``max_concurrency`` a batching backend gets them all
        at once, since the engine batches them anyway.
        """
        with _gathered(self, config, len(inputs)) as configs:
            return super().batch(inputs, configs, return_exceptions=return_exceptions, **kwargs)

    async def abatch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:  # type: ignore[override]
        """Async ``batch``: the same rounds, awaited; the engine call runs in a thread."""
        with _gathered(self, config, len(inputs)) as configs:
            return await super().abatch(
                inputs, configs, return_exceptions=return_exceptions, **kwargs
            )

    def configurable_fields(self, **kwargs: Any) -> RunnableSerializable[Any, Any]:
        """Fields set per call through the config; a batch may mix them (``thinking``...).

        On a batching backend, a batch whose inputs configure different values (one input
        thinking, the next not) is still one engine call per round.
        """
        super().configurable_fields(**kwargs)  # LangChain's checks of the field names
        return _BatchingConfigurableFields(default=self, fields=kwargs)


def _with_instructions(messages: list[dict[str, str]], instructions: str) -> list[dict[str, str]]:
    """The plan's instructions at the end of the first system message (or as a new one)."""
    if messages and messages[0]["role"] == "system":
        first = messages[0]
        text = first["content"]
        return [
            {**first, "content": f"{text}\n\n{instructions}" if text else instructions},
            *messages[1:],
        ]
    return [{"role": "system", "content": instructions}, *messages]


def _with_invalid_calls(result: ChatResult) -> ChatResult:
    """Calls that broke their schema, as the message's ``invalid_tool_calls``.

    A stream carries them in the last chunk's ``response_metadata["invalid_tool_calls"]``:
    LangChain's chunk merging would read a JSON body as a valid call.
    """
    for generation in result.generations:
        message = generation.message
        invalid = message.response_metadata.pop("invalid_tool_calls", None)
        if invalid and isinstance(message, AIMessage):
            message.invalid_tool_calls = list(invalid)
    return result


@contextmanager
def _gathered(
    model: Any, config: RunnableConfig | list[RunnableConfig] | None, size: int
) -> Iterator[RunnableConfig | list[RunnableConfig] | None]:
    """The configs a batch of ``model`` runs with.

    Gathered into engine rounds where its backend batches (and no outer batch call gathers
    already), else as given.
    """
    gathers = (
        isinstance(model, ChatSeaLion)
        and model.backend.supports_batch
        and size > 1
        and model._rounds() is None
    )
    if not gathers:
        yield config
        return
    with batch_rounds(model.backend, config, size) as configs:
        yield configs


async def _async_iter(events: list[Event]) -> AsyncIterator[Event]:
    """A round's events as an async iterator, like a backend's ``astream``."""
    for event in events:
        yield event


class _BatchingConfigurableFields(RunnableConfigurableFields):
    """LangChain's configurable fields, with the rounds of a batch gathered around them."""

    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[Any]:
        """LangChain's batch, one engine call per round on a batching backend."""
        with _gathered(self.default, config, len(inputs)) as configs:
            return super().batch(inputs, configs, return_exceptions=return_exceptions, **kwargs)

    async def abatch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[Any]:
        """Async ``batch``, gathered the same way."""
        with _gathered(self.default, config, len(inputs)) as configs:
            return await super().abatch(
                inputs, configs, return_exceptions=return_exceptions, **kwargs
            )
