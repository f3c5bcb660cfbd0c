"""Fusing a dense and a lexical ranking into one, from evidence each query carries.

data flow: each ranking's ``(id, score)`` candidates -> standard scores within that ranking
(z = (score - mean) / std over its own candidates; absent candidates get its lowest z)
-> weighted sum per id -> best first.

Why standard scores (``zscore_fusion``, the default) rather than reciprocal ranks: a rank
carries no confidence, so equal-weight rank fusion lets a weak ranking pull a strong one's
clear winner down (Khmer and Burmese, where the small multilingual embedding is weak and BM25
strong). A standard score measures how far a candidate stands out from that ranking's own
field for *this* query: a ranking that separates its top result sharply moves the fused order
a lot, a flat one (every cosine alike) barely. No weight is fitted per language; the scale of
each ranking (cosine near 0.8, BM25 unbounded) cancels out.

``lexical_weight`` scales the lexical ranking by the query's word coverage in the corpus: a
question in another language than the passages shares only names and numbers with them, and
lexical matches on those are noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["lexical_weight", "standard_scores", "weighted_rrf", "zscore_fusion"]

Ranking = Sequence[tuple[str, float]]
"""``(id, score)`` pairs, best first, higher scores better."""


def lexical_weight(coverage: float, floor: float = 0.4, full: float = 0.6) -> float:
    """Weight of BM25 in the fusion for a query whose words have ``coverage`` in the corpus."""
    if coverage <= floor:
        return 0.0
    if coverage >= full:
        return 1.0
    return (coverage - floor) / (full - floor)


def standard_scores(ranking: Ranking) -> dict[str, float]:
    """Each candidate's score in standard deviations from the ranking's mean (0 if all equal)."""
    if not ranking:
        return {}
    scores = [s for _, s in ranking]
    mean = sum(scores) / len(scores)
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))
    if std <= 1e-12 * max(1.0, abs(mean)):
        return {doc_id: 0.0 for doc_id, _ in ranking}
    return {doc_id: (s - mean) / std for doc_id, s in ranking}


def zscore_fusion(rankings: Sequence[tuple[Ranking, float]]) -> list[tuple[str, float]]:
    """Fuse ``(ranking, weight)`` pairs by weighted standard scores; best first.

    A candidate missing from a ranking gets that ranking's lowest standard score (it ranked
    below everything the ranking returned). Ties keep the order of first appearance.
    """
    standardized = [(standard_scores(r), w) for r, w in rankings if w > 0]
    fused: dict[str, float] = {}
    for z, _ in standardized:
        for doc_id in z:
            fused.setdefault(doc_id, 0.0)
    for z, weight in standardized:
        if not z:
            continue
        lowest = min(z.values())
        for doc_id in fused:
            fused[doc_id] += weight * z.get(doc_id, lowest)
    order = {doc_id: i for i, doc_id in enumerate(fused)}
    return sorted(fused.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def weighted_rrf(
    rankings: Sequence[tuple[Sequence[str], float]], rrf_k: int = 60
) -> list[tuple[str, float]]:
    """Reciprocal rank fusion of ``(ranked ids, weight)`` lists; best first, ties by first seen."""
    scores: dict[str, float] = {}
    for ids, weight in rankings:
        if weight <= 0:
            continue
        for rank, doc_id in enumerate(ids, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + weight / (rrf_k + rank)
    order = {doc_id: i for i, doc_id in enumerate(scores)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))
