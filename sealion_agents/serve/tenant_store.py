"""Collections per tenant over one Chroma (an embedded folder or a Chroma server).

data flow: (tenant, name) -> Chroma name: the name itself for the tenant "default" (what
``sealion ingest`` makes), else ``chroma_collection_name("<tenant>:<name>")`` with
``{"tenant": ...}`` in the collection's metadata -> ``open_store`` -> a ``SeaLionStore`` (a
LangChain Chroma store with its chromadb ``collection`` public), kept per collection. A
collection whose recorded tenant is not the caller's does not exist for the caller (404), so
one tenant can neither see, read, nor guess another's collections.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

from sealion_agents.retrievers.store import chroma_collection_name, display_name, open_store

if TYPE_CHECKING:
    from sealion_agents.retrievers.chroma_store import SeaLionStore

__all__ = ["DEFAULT_TENANT", "NotFound", "TenantCollections"]

logger = logging.getLogger(__name__)

DEFAULT_TENANT = "default"
TENANT_KEY = "tenant"


class NotFound(LookupError):
    """No such collection or document for this tenant."""


class TenantCollections:
    """Create, list, open and delete the collections of each tenant."""

    def __init__(self, client: Any, embeddings: Any) -> None:
        self.client = client
        self.embeddings = embeddings
        self._lock = threading.Lock()
        self._stores: dict[str, SeaLionStore] = {}

    @staticmethod
    def check_name(name: str) -> str:
        """The collection name, or a ``ValueError`` saying what is allowed."""
        if ":" in name:
            raise ValueError(f"the collection name {name!r} holds ':'; leave it out")
        chroma_collection_name(name)  # raises for empty, too long, '/', control characters
        return name.strip()

    def _full_name(self, tenant: str, name: str) -> str:
        name = self.check_name(name)
        return name if tenant == DEFAULT_TENANT else f"{tenant}:{name}"

    def _owned(self, tenant: str, collection: Any) -> bool:
        return (collection.metadata or {}).get(TENANT_KEY, DEFAULT_TENANT) == tenant

    def _get(self, chroma_name: str) -> Any | None:
        try:
            return self.client.get_collection(chroma_name)
        except Exception:  # chromadb raises NotFoundError / ValueError by version
            return None

    def _find(self, tenant: str, name: str) -> Any | None:
        found = self._get(chroma_collection_name(self._full_name(tenant, name)))
        return found if found is not None and self._owned(tenant, found) else None

    def exists(self, tenant: str, name: str) -> bool:
        """True when the tenant has a collection of this name."""
        return self._find(tenant, name) is not None

    def for_tenant(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's collections: name, chunk count, embedding model."""
        out = []
        prefix = "" if tenant == DEFAULT_TENANT else f"{tenant}:"
        for listed in self.client.list_collections():
            collection = (
                listed if hasattr(listed, "metadata") else self.client.get_collection(listed)
            )
            if not self._owned(tenant, collection):
                continue
            shown = display_name(collection)
            if prefix and not shown.startswith(prefix):
                continue
            meta = collection.metadata or {}
            out.append(
                {
                    "name": shown[len(prefix) :],
                    "chunks": collection.count(),
                    "embedding_model": meta.get("embedding_model"),
                }
            )
        return sorted(out, key=lambda c: c["name"])

    def open(self, tenant: str, name: str, *, create: bool = False) -> SeaLionStore:
        """The tenant's collection as a LangChain store; :class:`NotFound` unless ``create``."""
        full = self._full_name(tenant, name)
        with self._lock:
            found = self._find(tenant, name)
            # missing, or held by another tenant under the same Chroma name
            if found is None and (
                not create or self._get(chroma_collection_name(full)) is not None
            ):
                raise NotFound(f"no collection named {name!r}")
            cached = self._stores.get(full)
            if cached is not None and found is not None and cached.collection.id == found.id:
                return cached
            metadata = {} if tenant == DEFAULT_TENANT else {TENANT_KEY: tenant}
            store = open_store(
                self.embeddings, collection_name=full, client=self.client, metadata=metadata
            )
            self._stores[full] = store
            return store

    def delete(self, tenant: str, name: str) -> None:
        """Delete the tenant's collection and its chunks."""
        found = self._find(tenant, name)
        if found is None:
            raise NotFound(f"no collection named {name!r}")
        from sealion_agents.retrievers.lexical_index import drop_lexical_index

        with self._lock:
            self._stores.pop(self._full_name(tenant, name), None)
            drop_lexical_index(self.client, found)
            self.client.delete_collection(found.name)

    def documents(self, tenant: str, name: str) -> list[dict[str, Any]]:
        """Each stored document (its source) with its chunk count."""
        found = self._find(tenant, name)
        if found is None:
            raise NotFound(f"no collection named {name!r}")
        counts: Counter[str] = Counter()
        offset, page = 0, 5000
        while True:
            got = found.get(include=["metadatas"], limit=page, offset=offset)
            for meta in got["metadatas"]:
                counts[str((meta or {}).get("source", "?"))] += 1
            if len(got["ids"]) < page:
                break
            offset += page
        return [{"source": s, "chunks": n} for s, n in sorted(counts.items())]

    def delete_document(self, tenant: str, name: str, source: str) -> int:
        """Delete one document's chunks; return how many went."""
        found = self._find(tenant, name)
        if found is None:
            raise NotFound(f"no collection named {name!r}")
        ids = found.get(where={"source": source}, include=[])["ids"]
        if not ids:
            raise NotFound(f"no document {source!r} in collection {name!r}")
        found.delete(ids=ids)
        return len(ids)
