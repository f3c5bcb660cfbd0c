"""Citations in an answer: ``[n]`` markers, and the answer cut into cited claims.

Data flow: answer text -> sentences (ICU's sentence breaker when icu4py is installed, so
Thai, Lao, Khmer and Burmese split right; punctuation otherwise) -> ``Claim(text, cited)``
with the numbers of the passages each claim cites.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Claim", "cited_numbers", "split_claims"]

_CITATION = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
_LEADING_CITATIONS = re.compile(r"^(\s*\[\d{1,3}(?:\s*[,;]\s*\d{1,3})*\])+")
_FALLBACK_SENTENCE = re.compile(r"(?<=[.!?。！？၊။។])\s+")


@dataclass(frozen=True)
class Claim:
    """One sentence of an answer and the passage numbers it cites."""

    text: str
    cited: tuple[int, ...]


def cited_numbers(text: str) -> list[int]:
    """Every passage number cited in ``text``, in order of first mention."""
    numbers: list[int] = []
    for group in _CITATION.findall(text):
        for part in re.split(r"[,;]", group):
            number = int(part.strip())
            if number not in numbers:
                numbers.append(number)
    return numbers


def _sentences(text: str) -> list[str]:
    try:
        from icu4py.breakers import SentenceBreaker
    except ImportError:
        return [s for s in _FALLBACK_SENTENCE.split(text) if s.strip()]
    return [str(s) for s in SentenceBreaker(text, "en") if str(s).strip()]


def split_claims(answer: str) -> list[Claim]:
    """Cut an answer into sentences; a citation right after a sentence end belongs to it."""
    pieces = _sentences(answer.strip())
    merged: list[str] = []
    for piece in pieces:
        lead = _LEADING_CITATIONS.match(piece)
        if lead and merged:
            merged[-1] = merged[-1].rstrip() + " " + lead.group(0).strip()
            piece = piece[lead.end() :]
        if piece.strip():
            merged.append(piece.strip())
    return [Claim(text=s, cited=tuple(cited_numbers(s))) for s in merged]
