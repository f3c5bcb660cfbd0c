"""The GGUF runtime in-process, through llama-cpp-python.

Data flow: template messages -> the GGUF's own chat template (``thinking_mode`` set) ->
prompt text (+ an assistant prefix when continuing) -> token ids -> ``Llama.generate`` ->
token ids -> incremental UTF-8 text -> ``TextDelta`` events.

One ``Llama`` object crashes the process when two threads use it at once, so every
generation holds the backend's lock from tokenizing to the last token. Consecutive calls
that share a prompt prefix reuse llama.cpp's KV cache (``Llama.generate`` keeps it).
"""

from __future__ import annotations

import atexit
import codecs
import logging
import random
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sealion_agents.backends.base import (
    Event,
    Finished,
    GenerationRequest,
    PromptInfo,
    SyncBackend,
    TextDelta,
)
from sealion_agents.chat_template import ChatTemplate
from sealion_agents.errors import ContextWindowExceededError, require
from sealion_agents.reasoning import THINK_OPEN

__all__ = ["DEFAULT_N_CTX", "LlamaCppBackend"]

logger = logging.getLogger(__name__)

DEFAULT_N_CTX = 8192
"""Context window used when none is given (bounded by what the model was trained for)."""

_CTX_PAD = 256

DEFAULT_TEMPERATURE = 0.6
DEFAULT_TOP_P = 0.95
DEFAULT_TOP_K = 40


class LlamaCppBackend(SyncBackend):
    """Runs a GGUF file with llama-cpp-python; loads on first use."""

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
        self._llama_kwargs = llama_kwargs
        self._llama = llama
        self._template: ChatTemplate | None = None
        self._name = name
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()

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
        return self.load()

    def load(self) -> Any:
        """Load the model now (otherwise the first generation does)."""
        with self._load_lock:
            if self._llama is None:
                self._llama = self._load()
                # free it before interpreter teardown, where llama-cpp-python's __del__ fails
                atexit.register(_close_at_exit, weakref.ref(self))
            if self._template is None:
                self._template = self._read_template(self._llama)
            return self._llama

    def _load(self) -> Any:
        llama_cpp = require("llama_cpp", extra="gguf", feature="The GGUF runtime")
        if self._path is None:
            self._path = Path(self._resolve())
        trained = self._trained_context(llama_cpp, self._path)
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
        logger.info("loading %s with n_ctx=%d", self._path, n_ctx)
        return llama_cpp.Llama(
            model_path=str(self._path),
            n_ctx=n_ctx,
            n_gpu_layers=self._n_gpu_layers,
            verbose=self._verbose,
            **self._llama_kwargs,
        )

    def _trained_context(self, llama_cpp: Any, path: Path) -> int:
        """The trained context from the GGUF metadata (a vocab-only load reads no weights)."""
        vocab = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=self._verbose)
        try:
            arch = vocab.metadata.get("general.architecture", "llama")
            trained = int(vocab.metadata.get(f"{arch}.context_length", 0))
        finally:
            vocab.close()
        return trained if trained > 0 else DEFAULT_N_CTX

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
    def n_ctx(self) -> int:
        """The context window of the loaded model."""
        return int(self.llama.n_ctx())

    def close(self) -> None:
        """Free the model; the next generation loads it again."""
        with self._load_lock, self._lock:
            if self._llama is not None:
                self._llama.close()
            self._llama = None

    # -- generation ----------------------------------------------------------------

    def render(self, request: GenerationRequest) -> str:
        """The prompt text for a request, as the model will see it."""
        self.load()
        assert self._template is not None
        return (
            self._template.render(request.messages, thinking=request.thinking)
            + request.assistant_prefix
        )

    def count_tokens(self, text: str) -> int:
        """Number of model tokens in ``text`` (special tokens parsed)."""
        llama = self.load()
        with self._lock:
            return len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    @staticmethod
    def _tokenize_prompt(llama: Any, prompt: str) -> list[int]:
        """Prompt ids with exactly one BOS where the model wants one (templates often hold it)."""
        tokens: list[int] = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        bos = llama.token_bos()
        if llama._model.add_bos_token() and bos >= 0 and tokens[:1] != [bos]:
            tokens.insert(0, bos)
        return tokens

    def stream(self, request: GenerationRequest) -> Iterator[Event]:
        """Generate under the lock, yielding one ``TextDelta`` per token."""
        llama = self.load()
        prompt = self.render(request)
        with self._lock:
            tokens = self._tokenize_prompt(llama, prompt)
            n_ctx = int(llama.n_ctx())
            if len(tokens) + (request.max_tokens or 1) > n_ctx:
                raise ContextWindowExceededError(
                    prompt_tokens=len(tokens), max_tokens=request.max_tokens, n_ctx=n_ctx
                )
            yield PromptInfo(
                prompt_tokens=len(tokens), opens_reasoning=prompt.rstrip().endswith(THINK_OPEN)
            )
            yield from self._generate(llama, tokens, request, n_ctx)

    def _generate(
        self, llama: Any, tokens: list[int], request: GenerationRequest, n_ctx: int
    ) -> Iterator[Event]:
        llama_cpp = require("llama_cpp", extra="gguf", feature="The GGUF runtime")
        vocab = llama._model.vocab
        budget = n_ctx - len(tokens)
        if request.max_tokens is not None:
            budget = min(budget, request.max_tokens)
        llama.set_seed(request.seed if request.seed is not None else random.randint(0, 2**31 - 1))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        produced = 0
        reason = "length"
        generator = llama.generate(
            tokens,
            temp=DEFAULT_TEMPERATURE if request.temperature is None else request.temperature,
            top_p=DEFAULT_TOP_P if request.top_p is None else request.top_p,
            top_k=DEFAULT_TOP_K if request.top_k is None else request.top_k,
            min_p=0.0,
            repeat_penalty=1.0,
        )
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
        tail = decoder.decode(b"", final=True)
        if tail:
            yield TextDelta(text=tail, tokens=0)
        yield Finished(reason=reason, completion_tokens=produced)


def _close_at_exit(ref: weakref.ref[LlamaCppBackend]) -> None:
    backend = ref()
    if backend is not None:
        backend.close()
