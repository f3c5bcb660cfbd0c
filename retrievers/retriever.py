"""One LangChain retriever over a Chroma store: dense, BM25, or language-aware hybrid.

data flow: query -> query vector -> Chroma top ``fetch_k`` (cosine, metadata filter)
          query -> ICU tokens -> BM25 top ``fetch_k`` (same filter, as an id mask)
          -> fusion (standard scores by default, or weighted reciprocal ranks)
          -> optional MMR -> optional cross-encoder rerank -> top ``k`` Documents
          (``id`` = Chroma id).

The store's chromadb collection and embeddings come from its handle
(:func:`~sealion_agents.retrievers.store.as_sealion_store`; a store from ``open_store`` is one).

The fusion (:mod:`fusion`) is decided per query from what the query's own results show: each
ranking's scores are standardised over its candidates, so the ranking that separates its top
results more sharply counts for more; the BM25 ranking is further weighted by the query's word
coverage in the corpus (none for a question in another language than the passages).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, PrivateAttr
from sealion_agents.retrievers._deps import require
from sealion_agents.retrievers.fusion import lexical_weight, weighted_rrf, zscore_fusion
from sealion_agents.retrievers.lexical_index import LexicalIndex, lexical_index_for
from sealion_agents.retrievers.store import (
    EmptyCollectionError,
    as_sealion_store,
    check_embeddings,
    display_name,
)

if TYPE_CHECKING:
    from sealion_agents.retrievers.chroma_store import SeaLionStore

logger = logging.getLogger(__name__)

__all__ = ["CrossEncoderReranker", "SEARetriever"]


class CrossEncoderReranker:
    """Rerank with a sentence-transformers ``CrossEncoder`` (for users who have one).

    No multilingual cross-encoder ships on PyPI; pass a hub name or a local folder.
    """

    def __init__(self, model_name: str, device: str | None = None, batch_size: int = 16) -> None:
        self.model_name = model_name
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None

    def __call__(self, query: str, documents: Sequence[Document]) -> list[float]:
        """Relevance scores of ``documents`` for ``query`` (higher is better)."""
        if self._model is None:
            st = require("sentence_transformers", "CrossEncoderReranker")
            self._model = st.CrossEncoder(self.model_name, device=self.device)
        pairs = [(query, d.page_content) for d in documents]
        return [float(s) for s in self._model.predict(pairs, batch_size=self.batch_size)]


class SEARetriever(BaseRetriever):
    """Dense, BM25 or hybrid retrieval over a ``langchain_chroma.Chroma`` store.

    Example:
        >>> store = open_store(persist_directory="kb")  # doctest: +SKIP
        >>> retriever = SEARetriever(store=store, k=5, filter={"source": "/docs/a.pdf"})
        >>> retriever.invoke("ค่าธรรมเนียมเท่าไร", k=3)  # doctest: +SKIP
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: Any
    """A ``langchain_chroma.Chroma``: from :func:`open_store`, or made by other code."""
    k: int = Field(default=4, ge=1)
    """Number of documents returned (also ``invoke(query, k=...)``)."""
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    """``hybrid`` fuses dense and BM25; ``dense`` and ``bm25`` use one ranking."""
    filter: dict[str, Any] | None = None
    """Chroma ``where`` filter on metadata, e.g. ``{"source": "/docs/a.pdf"}``."""
    fetch_k: int = Field(default=50, ge=1)
    """Candidates taken from each ranking before fusion, MMR and reranking."""
    use_mmr: bool = False
    """Diversify the results with maximal marginal relevance."""
    mmr_lambda: float = Field(default=0.5, ge=0.0, le=1.0)
    """MMR trade-off: 1.0 is pure relevance, 0.0 pure diversity."""
    fusion: Literal["zscore", "rrf"] = "zscore"
    """How ``hybrid`` fuses: ``zscore`` sums each ranking's standard scores (a ranking that
    separates its top results sharply counts for more); ``rrf`` is reciprocal rank fusion."""
    rrf_k: int = 60
    """Reciprocal rank fusion constant (``fusion="rrf"``)."""
    lexical_floor: float = 0.4
    """Query word coverage at or below which BM25 gets no weight."""
    lexical_full: float = 0.6
    """Query word coverage at or above which BM25 gets full weight."""
    reranker: Callable[[str, Sequence[Document]], Sequence[float]] | None = None
    """Optional ``(query, documents) -> scores``, e.g. :class:`CrossEncoderReranker`."""
    locale: str = ""
    """ICU locale for word breaking (``""`` works for all scripts)."""
    recount_seconds: float = Field(default=1.0, ge=0.0)
    """Chroma's chunk count (which finds chunks other writers added) is read at most this often
    (it costs ~56 ms at 1M chunks); 0 reads it on every query. Writes through this machine's
    lexical index (``ingest``, any process) are seen by the next query at once."""

    _checked: bool = PrivateAttr(default=False)
    _counted: tuple[float, int, int] | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _handle: SeaLionStore | None = PrivateAttr(default=None)

    @property
    def _chroma(self) -> SeaLionStore:
        """``store`` as a handle (itself when it came from ``open_store``)."""
        if self._handle is None:
            self._handle = as_sealion_store(self.store)
        return self._handle

    def bm25_index(self, count: int | None = None) -> LexicalIndex:
        """The collection's persistent lexical index, brought up to date with Chroma.

        Nothing is rebuilt: chunks ``ingest`` wrote are indexed already; what other writers
        changed (the chunk count differs) is found by id and indexed alone. ``count``: the
        chunk count the caller just read from Chroma, if it did.
        """
        index = lexical_index_for(self._chroma, self.locale)
        with self._lock:
            index.sync(self._chroma.collection, count)
        return index

    def _chunk_count(self, index: LexicalIndex | None) -> int:
        """Chroma's chunk count, or the last reading while it is recent.

        Re-read when ``recount_seconds`` passed, the lexical index changed size, or the
        collection looked empty.
        """
        mark = len(index) if index is not None else -1
        now = time.monotonic()
        with self._lock:
            last = self._counted
        if last is not None and last[1] > 0 and last[2] == mark:
            if now - last[0] < self.recount_seconds:
                return last[1]
        total = int(self._chroma.collection.count())
        with self._lock:
            self._counted = (now, total, mark)
        return total

    def refresh(self) -> None:
        """Bring the lexical index up to date now (``bm25_index`` does so on every query)."""
        self.bm25_index()

    # -- the parts ---------------------------------------------------------------------------
    def _dense(
        self, vector: list[float], n: int, where: dict[str, Any] | None
    ) -> tuple[list[tuple[str, float]], dict[str, Document]]:
        """Top ``n`` ``(id, cosine similarity)`` pairs, and their Documents."""
        res = self._chroma.collection.query(
            query_embeddings=[vector],
            n_results=n,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        ids = list(res["ids"][0])
        ranking = [(i, 1.0 - float(d)) for i, d in zip(ids, res["distances"][0], strict=False)]
        docs = {
            i: Document(id=i, page_content=t or "", metadata=dict(m or {}))
            for i, t, m in zip(ids, res["documents"][0], res["metadatas"][0], strict=False)
        }
        return ranking, docs

    def _fetch(self, ids: Sequence[str], docs: dict[str, Document]) -> None:
        missing = [i for i in ids if i not in docs]
        if missing:
            got = self._chroma.collection.get(ids=missing, include=["documents", "metadatas"])
            for i, t, m in zip(got["ids"], got["documents"], got["metadatas"], strict=False):
                docs[i] = Document(id=i, page_content=t or "", metadata=dict(m or {}))

    def _mmr(self, vector: list[float], ranked: list[tuple[str, float]], k: int) -> list[str]:
        """Pick ``k`` of the fused candidates by maximal marginal relevance."""
        np = require("numpy", "MMR")
        ids = [i for i, _ in ranked]
        got = self._chroma.collection.get(ids=ids, include=["embeddings"])
        by_id = dict(zip(got["ids"], got["embeddings"], strict=False))
        ids = [i for i in ids if i in by_id]
        if not ids:
            return []
        emb = np.asarray([by_id[i] for i in ids], dtype="float32")
        emb /= np.linalg.norm(emb, axis=1, keepdims=True) + 1e-12
        q = np.asarray(vector, dtype="float32")
        rel = emb @ (q / (np.linalg.norm(q) + 1e-12))  # cosine relevance, as in LangChain's MMR
        chosen: list[int] = []
        while len(chosen) < min(k, len(ids)):
            if chosen:
                redundancy = (emb @ emb[chosen].T).max(axis=1)
            else:
                redundancy = np.zeros(len(ids), dtype="float32")
            score = self.mmr_lambda * rel - (1 - self.mmr_lambda) * redundancy
            score[chosen] = -np.inf
            chosen.append(int(score.argmax()))
        return [ids[i] for i in chosen]

    def _fuse(
        self, rankings: list[tuple[list[tuple[str, float]], float]]
    ) -> list[tuple[str, float]]:
        if len(rankings) == 1:  # one ranking: its own order
            return list(rankings[0][0])
        if self.fusion == "rrf":
            return weighted_rrf([([i for i, _ in r], w) for r, w in rankings], self.rrf_k)
        return zscore_fusion(rankings)

    def _empty(self) -> EmptyCollectionError:
        name = display_name(self._chroma.collection)
        return EmptyCollectionError(
            f"collection {name!r} holds no documents: add some first (sealion "
            f"ingest PATH --collection {name!r}, ingest(store, paths) in Python, or an upload "
            "to sealion serve), or open the collection where they were stored"
        )

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        k = int(kwargs.get("k", self.k))
        where = kwargs.get("filter", self.filter) or None
        mode = kwargs.get("mode", self.mode)
        if mode not in ("hybrid", "dense", "bm25"):
            raise ValueError(f"mode must be 'hybrid', 'dense' or 'bm25', got {mode!r}")
        if not self._checked:  # a store not opened with open_store gets the same model check
            check_embeddings(self._chroma.collection, self._chroma.embedding_info)
            self._checked = True
        lexical = lexical_index_for(self._chroma, self.locale) if mode != "dense" else None
        total = self._chunk_count(lexical)
        if total == 0:
            raise self._empty()
        if k <= 0:
            return []
        n = min(max(self.fetch_k, k), total)
        docs: dict[str, Document] = {}
        rankings: list[tuple[list[tuple[str, float]], float]] = []
        vector: list[float] | None = None
        if mode in ("hybrid", "dense") or self.use_mmr:
            vector = self.store.embeddings.embed_query(query)
        if vector is not None and mode in ("hybrid", "dense"):
            dense, docs = self._dense(vector, n, where)
            rankings.append((dense, 1.0))
        if mode in ("hybrid", "bm25"):
            index = self.bm25_index(total)
            allowed = None
            if where:
                allowed = set(self._chroma.collection.get(where=where, include=[])["ids"])
            weight = 1.0
            if mode == "hybrid":
                weight = lexical_weight(
                    index.coverage(query), self.lexical_floor, self.lexical_full
                )
            if weight > 0:
                rankings.append((index.search(query, n, allowed), weight))
        fused = self._fuse(rankings)
        if self.use_mmr and vector is not None:
            top = self._mmr(vector, fused[:n], n if self.reranker else k)
        else:
            top = [i for i, _ in fused[: (n if self.reranker else k)]]
        self._fetch(top, docs)
        result = [docs[i] for i in top if i in docs]
        if self.reranker is not None and result:
            scores = list(self.reranker(query, result))
            order = sorted(range(len(result)), key=lambda i: -scores[i])
            result = [result[i] for i in order]
        return result[:k]
