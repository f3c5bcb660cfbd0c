"""Citations in an answer: ``[n]`` markers, and the answer cut into cited claims.

Data flow: answer text -> sentences (ICU's sentence breaker when icu4py is installed; the
sentence marks . ! ? 。 ។ ៕ ။ ၊ otherwise) -> in Thai, Lao, Khmer and Burmese text, which may
end a sentence with a space and no mark, also cut where a citation is followed by a space
and more of that script, then merge pieces too short to be a claim -> ``Claim(text, cited)``
with the numbers of the passages each claim cites.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["MIN_CLAIM_CHARS", "Claim", "cited_numbers", "split_claims"]

_CITATION = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
_CITATIONS = r"(?:\[\d{1,3}(?:\s*[,;]\s*\d{1,3})*\])+"
_LEADING_CITATIONS = re.compile(rf"^(\s*{_CITATIONS})+")
_FALLBACK_SENTENCE = re.compile(r"(?<=[.!?。！？၊။។៕])\s+")
_SPACED_SCRIPTS = "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff"  # Thai, Lao, Burmese, Khmer
_CITED_THEN_SPACE = re.compile(rf"{_CITATIONS}(?=\s+[{_SPACED_SCRIPTS}])")
_CITATION_RUN = re.compile(_CITATIONS)

MIN_CLAIM_CHARS = 8
"""Fewest characters (spaces, punctuation and citations not counted) of a claim cut at a space.

A shorter piece (a Thai ``ใช่`` "yes" before a citation, a ``ค่ะ`` politeness particle after
one) joins the claim after it, or the one before it at the end of the answer.
"""


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


def _claim_chars(piece: str) -> int:
    """Characters of a piece that are text: letters, vowel signs and digits."""
    text = _CITATION_RUN.sub("", piece)
    return sum(1 for ch in text if not ch.isspace() and unicodedata.category(ch)[0] != "P")


def _cut_after_citations(sentence: str) -> list[str]:
    """Cut where a citation is followed by a space and Thai, Lao, Khmer or Burmese text.

    These scripts separate sentences with a space (Thai, Lao) or may leave out their mark, so
    a sentence breaker sees one sentence where the answer has several. The citation the answer
    step puts at the end of each sentence marks where a claim ends; a space without one is
    often a clause boundary inside a sentence, so it does not cut.
    """
    pieces: list[str] = []
    start = 0
    for match in _CITED_THEN_SPACE.finditer(sentence):
        pieces.append(sentence[start : match.end()])
        start = match.end()
    pieces.append(sentence[start:])
    merged: list[str] = []
    carry = ""
    for piece in pieces:
        piece = (carry + " " + piece.strip()).strip() if carry else piece.strip()
        if _claim_chars(piece) < MIN_CLAIM_CHARS:
            carry = piece
        else:
            merged.append(piece)
            carry = ""
    if carry:
        if merged:
            merged[-1] += " " + carry
        else:
            merged.append(carry)
    return merged


def split_claims(answer: str) -> list[Claim]:
    """Cut an answer into sentences; a citation right after a sentence end belongs to it."""
    pieces = [p for s in _sentences(answer.strip()) for p in _cut_after_citations(s)]
    merged: list[str] = []
    for piece in pieces:
        lead = _LEADING_CITATIONS.match(piece)
        if lead and merged:
            merged[-1] = merged[-1].rstrip() + " " + lead.group(0).strip()
            piece = piece[lead.end() :]
        if piece.strip():
            merged.append(piece.strip())
    return [Claim(text=s, cited=tuple(cited_numbers(s))) for s in merged]
