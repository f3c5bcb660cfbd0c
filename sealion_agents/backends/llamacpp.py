"""The GGUF runtime in-process, through llama-cpp-python.

Data flow: template messages -> control-token strings in message text hidden
(``literal_text``) -> the GGUF's own chat template (the profile's thinking switch set) ->
prompt text (+ an assistant prefix when continuing) -> token ids (template parts with
special tokens, message text as text) -> ``Llama.generate`` -> token ids -> incremental
UTF-8 text -> ``TextDelta`` events.

One ``Llama`` object crashes the process when two threads use it at once, so every use
holds the backend's ``ModelLock`` from tokenizing to the last token, and the model object is
only touched under it (``close`` waits for a running generation; a second call from the
thread that holds an open stream raises at once instead of hanging). Locks are always
taken in the order model lock -> load lock. Consecutive calls that share a prompt prefix
reuse llama.cpp's KV cache (``Llama.generate`` keeps it).

On CPUs where llama.cpp would repack weights for AMX, which crashes on quantized models
(``ggml_cpu``), models load without extra buffer types; elsewhere nothing changes.
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import ctypes
import logging
import random
import re
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sealion_agents.backends.base import (
    AnswerConstraint,
    ChatBackend,
    Event,
    Finished,
    GenerationRequest,
    PromptInfo,
    TextDelta,
)
from sealion_agents.backends.ggml_cpu import amx_repack_active
from sealion_agents.backends.gguf_vocab import read_gguf_metadata
from sealion_agents.backends.locks import ModelLock
from sealion_agents.chat_template import ChatTemplate
from sealion_agents.errors import ContextWindowExceededError, require
from sealion_agents.literal_text import (
    encode_message_text,
    encode_prompt,
    protect,
    reveal,
    special_pattern,
    split_encoder,
)
from sealion_agents.profiles import ModelProfile, gguf_facts, profile_named, resolve_profile

__all__ = ["DEFAULT_N_CTX", "LlamaCppBackend", "read_gguf_metadata"]

logger = logging.getLogger(__name__)

DEFAULT_N_CTX = 8192
"""Context window used when none is given (bounded by what the model was trained for)."""

_CTX_PAD = 256

#: Sampling defaults of SEA-LION's generation config, used when a call sets none.
SAMPLING_DEFAULTS = {"temperature": 0.6, "top_p": 0.95, "top_k": 40}

_PARAMS_LOCK = threading.Lock()


@contextlib.contextmanager
def _model_params(use_extra_bufts: bool) -> Iterator[None]:
    """Let ``llama_cpp.Llama`` load with ``use_extra_bufts`` set (it has no argument for it)."""
    if use_extra_bufts:
        yield
        return
    from llama_cpp import llama_cpp as lib

    original = lib.llama_model_default_params

    def without_extra_buffers() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    with _PARAMS_LOCK:
        lib.llama_model_default_params = without_extra_buffers
        try:
            yield
        finally:
            lib.llama_model_default_params = original


class LlamaCppBackend(ChatBackend):
    """Runs a GGUF file with llama-cpp-python; loads on first use.

    Constrained answers use llama.cpp grammars built from the JSON schema (``grammars``),
    applied from the first generated token.
    """

    @property
    def constraint_support(self) -> str:
        """Grammars apply from the first generated token: "answer"."""
        return "answer"

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        resolve: Any = None,
        n_ctx: int | None = None,
        n_gpu_layers: int = -1,
        chat_template: str | None = None,
        verbose: bool = False,
        llama: Any = None,
        name: str | None = None,
        use_extra_bufts: bool | None = None,
        profile: ModelProfile | str | None = None,
        **llama_kwargs: Any,
    ) -> None:
        """Describe the model; nothing is read until the first generation.

        Args:
            model_path: a local ``.gguf`` file.
            resolve: instead of ``model_path``, a callable returning the path on first use
                (a Hugging Face download).
            n_ctx: context window; default ``min(8192, trained context)``; rounded up
                to a multiple of 256 as llama.cpp does.
            n_gpu_layers: layers to offload to a GPU build of llama.cpp (-1: all).
            chat_template: a Jinja template overriding the one stored in the GGUF.
            verbose: let llama.cpp log to stderr.
            llama: an already loaded ``llama_cpp.Llama`` to use instead of loading.
            name: model name for metadata (default: the file name without ``.gguf``).
            use_extra_bufts: let llama.cpp repack weights into extra buffer types (default:
                yes, except where that is AMX, which crashes: see ``ggml_cpu``).
            profile: the model profile (a name from ``profiles.PROFILES`` or a
                ``ModelProfile``); default: found from the file's name and template.
            llama_kwargs: passed on to ``llama_cpp.Llama`` (n_threads, n_batch, ...).
        """
        if model_path is None and resolve is None and llama is None:
            raise ValueError("Give a GGUF model_path, a resolve callable or a loaded llama.")
        if model_path is not None:
            model_path = Path(model_path)
            if not model_path.is_file():
                raise FileNotFoundError(
                    f"No GGUF file at {model_path}. Pass the path of a .gguf file, or a "
                    "Hugging Face repo id with quant=..., e.g. "
                    "from_gguf('aisingapore/Llama-SEA-LION-v3.5-8B-R-GGUF', quant='Q4_K_M')."
                )
        if n_ctx is not None and n_ctx < 16:
            raise ValueError(f"n_ctx={n_ctx} is too small; use at least a few thousand tokens.")
        self._path = model_path
        self._resolve = resolve
        self._requested_n_ctx = n_ctx
        self._n_gpu_layers = n_gpu_layers
        self._template_override = chat_template
        self._verbose = verbose
        self._use_extra_bufts = use_extra_bufts
        self._llama_kwargs = llama_kwargs
        self._llama = llama
        self._override = profile_named(profile) if isinstance(profile, str) else profile
        self._profile: ModelProfile | None = None
        self._template: ChatTemplate | None = None
        self._specials: re.Pattern[str] | None = None
        self._name = name
        self._lock = ModelLock(f"The GGUF model {self.model_name}")
        self._load_lock = threading.Lock()
        self.extra_buffers_used: bool | None = None
        """Whether the loaded model uses extra buffer types (None: not loaded here)."""

    # -- loading -------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """The GGUF file name without its extension, or the given name."""
        if self._name:
            return self._name
        if self._path is not None:
            return self._path.stem
        return "gguf"

    @property
    def llama(self) -> Any:
        """The ``llama_cpp.Llama`` object, loading it on first access."""
        return self._loaded()

    def load(self) -> None:
        """Load the model now (otherwise the first generation does)."""
        self._loaded()

    def _loaded(self) -> Any:
        with self._load_lock:
            if self._llama is None:
                self._llama = self._load()
                # free it before interpreter teardown, where llama-cpp-python's __del__ fails
                atexit.register(_close_at_exit, weakref.ref(self))
            if self._template is None:
                self._template = self._read_template(self._llama)
            if self._specials is None:
                self._specials = special_pattern(_control_token_texts(self._llama))
            if self._profile is None:
                self._profile = self._find_profile(self._llama, self._template)
            return self._llama

    def _load(self) -> Any:
        llama_cpp = require("llama_cpp", extra="gguf", feature="The GGUF runtime")
        if self._path is None:
            self._path = Path(self._resolve())
        trained = self._trained_context(self._path)
        if self._requested_n_ctx:
            # llama.cpp pads the context to a multiple of 256; llama-cpp-python sizes its
            # token buffer from the number it was given, so give it the padded number.
            n_ctx = -(-self._requested_n_ctx // _CTX_PAD) * _CTX_PAD
        else:
            n_ctx = max(_CTX_PAD, min(DEFAULT_N_CTX, trained) // _CTX_PAD * _CTX_PAD)
        if n_ctx > trained:
            raise ValueError(
                f"n_ctx={n_ctx} is more than the {trained} tokens {self._path.name} was "
                f"trained for; use n_ctx <= {trained}."
            )
        extra = self._use_extra_bufts
        if extra is None:
            extra = not amx_repack_active()
        self.extra_buffers_used = extra
        logger.info("loading %s with n_ctx=%d, extra buffer types %s", self._path, n_ctx, extra)
        with _model_params(use_extra_bufts=extra):
            return llama_cpp.Llama(
                model_path=str(self._path),
                n_ctx=n_ctx,
                n_gpu_layers=self._n_gpu_layers,
                verbose=self._verbose,
                **self._llama_kwargs,
            )

    @staticmethod
    def _trained_context(path: Path) -> int:
        """The trained context from the GGUF metadata (no weights, no context)."""
        metadata = read_gguf_metadata(path)
        arch = metadata.get("general.architecture", "llama")
        trained = int(metadata.get(f"{arch}.context_length", 0) or 0)
        return trained if trained > 0 else DEFAULT_N_CTX

    @property
    def profile(self) -> ModelProfile:
        """The model's profile (given, or found from its name and template on load)."""
        self._loaded()
        assert self._profile is not None
        return self._profile

    def _find_profile(self, llama: Any, template: ChatTemplate) -> ModelProfile:
        facts = gguf_facts(llama.metadata)  # general.name, basename + size + finetune, arch
        names = (self._name, self._path.name if self._path is not None else None, *facts.names)
        return resolve_profile(
            names=names,
            template=template.source,
            override=self._override,
            architectures=facts.architectures,
        )

    def _read_template(self, llama: Any) -> ChatTemplate:
        source = self._template_override or llama.metadata.get("tokenizer.chat_template")
        if not source:
            raise ValueError(
                f"{self.model_name} stores no chat template (GGUF key "
                "tokenizer.chat_template): pass chat_template=... with a Jinja template."
            )

        def token_text(token_id: int) -> str:
            if token_id < 0:
                return ""
            return bytes(llama.detokenize([token_id], special=True)).decode("utf-8", "replace")

        return ChatTemplate(
            source, bos_token=token_text(llama.token_bos()), eos_token=token_text(llama.token_eos())
        )

    @property
    def context_window(self) -> int:
        """The context window of the loaded model."""
        return int(self._loaded().n_ctx())

    @property
    def longest_token_bytes(self) -> int:
        """Bytes of the longest token of the loaded model's vocabulary (about 0.1 s)."""
        from llama_cpp import llama_cpp as lib

        llama = self._loaded()
        buffer = ctypes.create_string_buffer(4096)
        # a negative length: the piece needs that many bytes (more than the buffer holds)
        return max(
            abs(lib.llama_token_to_piece(llama._model.vocab, token, buffer, len(buffer), 0, True))
            for token in range(llama.n_vocab())
        )

    def close(self) -> None:
        """Free the model (after a running generation ends); the next call loads it again."""
        with self._lock, self._load_lock:
            if self._llama is not None:
                self._llama.close()
            self._llama = None

    # -- prompts -------------------------------------------------------------------

    def render(self, request: GenerationRequest) -> str:
        """The prompt text for a request, as the model will read it."""
        self._loaded()
        assert self._template is not None
        return self._render(request.messages, request)

    def _render(self, messages: list[dict[str, str]], request: GenerationRequest) -> str:
        assert self._template is not None and self._profile is not None
        variables = self._profile.template_variables(request.thinking)
        prompt = self._template.render(messages, variables=variables, tools=request.tools)
        return prompt + request.assistant_prefix

    def _encode(self, llama: Any, request: GenerationRequest) -> tuple[list[int], str]:
        """Prompt ids (message text as text, one BOS where the model wants one) and text."""
        assert self._template is not None and self._specials is not None
        hidden = protect(request.messages, self._specials)
        prompt = self._render(hidden.messages, request)
        tokens = encode_prompt(prompt, hidden.literals, **_encoders(llama))
        bos = llama.token_bos()
        if llama._model.add_bos_token() and bos >= 0 and tokens[:1] != [bos]:
            tokens.insert(0, bos)
        return tokens, reveal(prompt, hidden.literals)

    def count_tokens(self, text: str) -> int:
        """Number of model tokens in ``text``, read as message text."""
        with self._lock:
            llama = self._loaded()
            assert self._specials is not None
            return len(encode_message_text(text, self._specials, **_encoders(llama)))

    # -- generation ----------------------------------------------------------------

    def stream(self, request: GenerationRequest) -> Iterator[Event]:
        """Generate under the model lock, yielding one ``TextDelta`` per token."""
        with self._lock:
            llama = self._loaded()
            tokens, prompt = self._encode(llama, request)
            n_ctx = int(llama.n_ctx())
            if len(tokens) + (request.max_tokens or 1) > n_ctx:
                raise ContextWindowExceededError(
                    prompt_tokens=len(tokens), max_tokens=request.max_tokens, n_ctx=n_ctx
                )
            opens = prompt.rstrip().endswith(self.profile.reasoning_tags.open)
            yield PromptInfo(prompt_tokens=len(tokens), opens_reasoning=opens)
            yield from self._generate(llama, tokens, request, n_ctx)

    def sampling(self, request: GenerationRequest) -> dict[str, Any]:
        """The sampler settings ``Llama.generate`` gets for a request.

        The call's settings, else the profile's recommendation for the mode, else SEA-LION's
        generation config.
        """
        recommended = self.profile.sampling_for(request.thinking)
        options = {**SAMPLING_DEFAULTS, **recommended, **request.options.sampling()}
        return {
            "temp": options["temperature"],
            "top_p": options["top_p"],
            "top_k": options["top_k"],
            "min_p": 0.0,
            "repeat_penalty": 1.0,
            "presence_penalty": float(options.get("presence_penalty", 0.0)),
        }

    def _generate(
        self, llama: Any, tokens: list[int], request: GenerationRequest, n_ctx: int
    ) -> Iterator[Event]:
        llama_cpp = require("llama_cpp", extra="gguf", feature="The GGUF runtime")
        vocab = llama._model.vocab
        budget = n_ctx - len(tokens)
        if request.max_tokens is not None:
            budget = min(budget, request.max_tokens)
        seed = request.options.seed
        llama.set_seed(seed if seed is not None else random.randint(0, 2**31 - 1))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        produced = 0
        reason = "length"
        samplers: list[Any] = []
        if request.constraint is not None:
            _constrain(llama, request.constraint, samplers)
        generator = llama.generate(tokens, **self.sampling(request))
        try:
            for token in generator:
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    reason = "stop"
                    break
                produced += 1
                text = decoder.decode(llama.detokenize([token], special=True))
                yield TextDelta(text=text)
                if produced >= budget:
                    break
        finally:
            generator.close()
            if samplers:
                del llama._init_sampler  # back to llama-cpp-python's own
                for sampler in samplers:
                    sampler.close()
        tail = decoder.decode(b"", final=True)
        if tail:
            yield TextDelta(text=tail, tokens=0)
        yield Finished(reason=reason, completion_tokens=produced)


def _encoders(llama: Any) -> dict[str, Callable[[str], list[int]]]:
    """Template text with special tokens parsed; hidden message strings as plain text."""
    return {
        "encode_template": lambda s: llama.tokenize(s.encode("utf-8"), False, True),
        # user-defined tokens (<think>) match even as text: split them apart as well
        "encode_text": split_encoder(lambda s: llama.tokenize(s.encode("utf-8"), False, False)),
    }


_GOOD_GRAMMARS: set[str] = set()


def _constrain(llama: Any, constraint: AnswerConstraint, samplers: list[Any]) -> None:
    """Make the next ``llama.generate`` sample under the answer's grammar (checked first).

    Its sampler chain is built as usual and wrapped in a ``GrammarCheckedSampler``, which
    tests the sampled token against the grammar instead of every token of the vocabulary.
    """
    from sealion_agents.backends.grammar_sampler import GrammarCheckedSampler, check_grammar
    from sealion_agents.grammars import schema_grammar

    text = constraint.grammar or schema_grammar(constraint.schema)
    vocab = llama._model.vocab
    if text not in _GOOD_GRAMMARS:
        check_grammar(vocab, text)
        _GOOD_GRAMMARS.add(text)
    own = type(llama)._init_sampler.__get__(llama)

    def init_sampler(**kwargs: Any) -> Any:
        sampler = GrammarCheckedSampler(own(**kwargs), vocab, llama.n_vocab(), text)
        samplers.append(sampler)
        return sampler

    llama._init_sampler = init_sampler


def _control_token_texts(llama: Any) -> list[str]:
    """The text of every control token of the model's vocabulary (``<|eot_id|>``...)."""
    from llama_cpp import llama_cpp as lib

    vocab = llama._model.vocab
    texts = []
    for token in range(lib.llama_vocab_n_tokens(vocab)):
        if lib.llama_vocab_get_attr(vocab, token) & lib.LLAMA_TOKEN_ATTR_CONTROL:
            text = lib.llama_vocab_get_text(vocab, token)
            if text:
                texts.append(text.decode("utf-8", "replace"))
    return texts


def _close_at_exit(ref: weakref.ref[LlamaCppBackend]) -> None:
    backend = ref()
    if backend is not None:
        with contextlib.suppress(Exception):
            backend.close()
