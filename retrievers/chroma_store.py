"""The store ``open_store`` returns: langchain-chroma's ``Chroma`` with its parts made public.

data flow: chromadb client + collection name + embeddings -> :class:`SeaLionStore` (a
``langchain_chroma.Chroma``: ``as_retriever``, ``add_documents``, ``similarity_search``... as
ever) -> ``client``, ``collection``, ``embedding_info`` for the retriever, ingestion, the
lexical index and the server's tenant collections.

This is the one module that reads langchain-chroma's private ``_client`` and ``_collection``.
Importing it imports chromadb, so the rest of the package imports it only where a store is
opened (``open_store``, ``as_sealion_store`` in :mod:`store`).
"""

from __future__ import annotations

from typing import Any

from chromadb import Collection
from chromadb.api import ClientAPI
from langchain_chroma import Chroma
from sealion_agents.retrievers.embeddings import EmbeddingsDescription, describe_embeddings

__all__ = ["SeaLionStore"]


class SeaLionStore(Chroma):
    """A ``langchain_chroma.Chroma`` whose chromadb client, collection and model are public.

    Example:
        >>> store = open_store(persist_directory="kb")  # doctest: +SKIP
        >>> store.collection.count(), store.embedding_info.model_id  # doctest: +SKIP
    """

    def __init__(
        self, *args: Any, embedding_info: EmbeddingsDescription | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._embedding_info = embedding_info

    @classmethod
    def adopt(cls, store: Chroma) -> SeaLionStore:
        """The same client, collection and embeddings as a plain ``Chroma`` made by other code."""
        return cls(
            client=store._client,
            collection_name=store._collection.name,
            embedding_function=store.embeddings,
            relevance_score_fn=store.override_relevance_score_fn,
            create_collection_if_not_exists=False,
        )

    @property
    def client(self) -> ClientAPI:
        """The chromadb client: an embedded ``PersistentClient`` or an ``HttpClient``."""
        return self._client

    @property
    def collection(self) -> Collection:
        """The chromadb collection (a ``ValueError`` after ``delete_collection``)."""
        return self._collection

    @property
    def embedding_info(self) -> EmbeddingsDescription:
        """The embedding model's ``model_id``, ``dimension``, ``max_tokens`` and ``source``."""
        if self._embedding_info is None:
            self._embedding_info = describe_embeddings(self.embeddings)
        return self._embedding_info
