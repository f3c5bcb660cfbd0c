"""BM25 over ICU word tokens, for scripts with and without spaces between words.

data flow: text -> ICU words -> casefolded tokens with a letter or digit -> bm25s index;
query -> same tokens -> top ids and scores, optionally restricted to allowed ids.

``coverage`` (the share of a query's words that occur anywhere in the corpus) tells the hybrid
retriever whether lexical evidence is meaningful: a Thai question over English passages shares
only names and numbers with them, and BM25 on those would drown the dense ranking.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sealion_agents.retrievers._deps import require
from sealion_agents.retrievers.splitting import _segments

logger = logging.getLogger(__name__)

__all__ = ["BM25Index", "lexical_tokens"]


def lexical_tokens(text: str, locale: str = "") -> list[str]:
    """ICU word tokens of ``text``, casefolded, without spaces and punctuation."""
    out = []
    for start, end in _segments("word", text, locale):
        word = text[start:end]
        if any(ch.isalnum() for ch in word):
            out.append(word.casefold())
    return out


class BM25Index:
    """An in-memory BM25 index (bm25s) over a fixed list of ids and texts."""

    def __init__(self, ids: Sequence[str], texts: Sequence[str], locale: str = "") -> None:
        bm25s = require("bm25s", "BM25 search")
        self.ids = list(ids)
        self.locale = locale
        corpus = [lexical_tokens(t, locale) for t in texts]
        self._vocab: set[str] = {tok for doc in corpus for tok in doc}
        self._index = bm25s.BM25()
        if self.ids:
            self._index.index(corpus, show_progress=False)
        self._pos = {doc_id: i for i, doc_id in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def coverage(self, query: str) -> float:
        """Share of the query's distinct non-numeric words found in the corpus (0.0 to 1.0)."""
        words = {t for t in lexical_tokens(query, self.locale) if not t.isdigit()}
        if not words:
            return 0.0
        return sum(1 for w in words if w in self._vocab) / len(words)

    def search(
        self, query: str, k: int, allowed: set[str] | None = None
    ) -> list[tuple[str, float]]:
        """Top ``k`` ``(id, score)`` pairs with a positive score, best first."""
        if not self.ids or k <= 0:
            return []
        tokens = lexical_tokens(query, self.locale)
        if not tokens:
            return []
        mask = None
        if allowed is not None:
            np = require("numpy", "BM25 search")
            mask = np.zeros(len(self.ids), dtype="float32")
            for doc_id in allowed:
                pos = self._pos.get(doc_id)
                if pos is not None:
                    mask[pos] = 1.0
        docs, scores = self._index.retrieve(
            [tokens], k=min(k, len(self.ids)), show_progress=False, weight_mask=mask
        )
        return [
            (self.ids[int(d)], float(s))
            for d, s in zip(docs[0], scores[0], strict=False)
            if float(s) > 0.0
        ]
