"""Pack retrieved passages into the model's context budget, counted in its own tokens.

Data flow: ranked ``Document``s + a token counter + a budget -> numbered ``Source``s, best
first, whose rendered block never exceeds the budget (the last one that fits partly is cut
at a word boundary). Document text is data: delimiter look-alikes and chat-template special
tokens inside it are neutralised, so a document cannot close its passage or open a turn.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.documents import Document

__all__ = ["Source", "escape_document_text", "pack_sources", "render_sources"]

_SPECIAL = re.compile(r"<(/?)(\|[^|<>\n]{1,40}\||think|passages?)(\s[^<>]*)?>", re.IGNORECASE)
_MIN_PARTIAL_TOKENS = 32


@dataclass(frozen=True)
class Source:
    """One numbered passage given to the model, and where it came from."""

    number: int
    text: str
    source: str = ""
    page: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    truncated: bool = False


def escape_document_text(text: str) -> str:
    """Neutralise tags a document could use to break out of its passage.

    ``<|eot_id|>``, ``<think>``, ``</passage>`` and the like become ``‹|eot_id|›`` etc.:
    still readable, no longer a token or a delimiter.
    """
    return _SPECIAL.sub(lambda m: f"‹{m.group(1)}{m.group(2)}{m.group(3) or ''}›", text)


def _attribute(value: str) -> str:
    return escape_document_text(value).replace('"', "'").replace("\n", " ")


def render_source(source: Source) -> str:
    """One passage as the model sees it."""
    where = f' source="{_attribute(source.source)}"' if source.source else ""
    if source.page is not None:
        where += f' page="{source.page}"'
    return f'<passage id="{source.number}"{where}>\n{source.text}\n</passage>'


def render_sources(sources: Sequence[Source]) -> str:
    """The whole passages block."""
    body = "\n".join(render_source(s) for s in sources)
    return f"<passages>\n{body}\n</passages>"


def _page(metadata: dict[str, Any]) -> int | None:
    page = metadata.get("page")
    try:
        return int(page) if page is not None else None
    except (TypeError, ValueError):
        return None


def _cut_to_fit(text: str, fits: Callable[[str], bool]) -> str:
    """Longest word-boundary prefix of ``text`` that ``fits`` (binary search on length)."""
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if fits(text[:mid]):
            low = mid
        else:
            high = mid - 1
    cut = text[:low]
    space = cut.rfind(" ")
    if space > len(cut) // 2 and low < len(text):
        cut = cut[:space]
    return cut.rstrip()


def pack_sources(
    documents: Sequence[Document],
    *,
    count_tokens: Callable[[str], int],
    budget: int,
) -> list[Source]:
    """Number and keep the best passages whose rendered block fits ``budget`` tokens.

    Documents are taken in rank order; duplicates (same text) are skipped. When the next
    passage does not fit whole, it is cut to the room left (if that room is worth it) and
    packing stops, so a few best passages are never crowded out by later ones.
    """
    if budget <= 0:
        return []
    sources: list[Source] = []
    seen: set[str] = set()
    for document in documents:
        text = escape_document_text(document.page_content.strip())
        if not text or text in seen:
            continue
        seen.add(text)
        meta = dict(document.metadata)
        candidate = Source(
            number=len(sources) + 1,
            text=text,
            source=str(meta.get("source", "")),
            page=_page(meta),
            metadata=meta,
        )

        def fits(body: str, candidate: Source = candidate) -> bool:
            trial = [*sources, Source(**{**candidate.__dict__, "text": body})]
            return count_tokens(render_sources(trial)) <= budget

        if fits(text):
            sources.append(candidate)
            continue
        used = count_tokens(render_sources(sources)) if sources else 0
        if budget - used >= _MIN_PARTIAL_TOKENS:
            cut = _cut_to_fit(text, fits)
            if cut:
                sources.append(Source(**{**candidate.__dict__, "text": cut, "truncated": True}))
        break
    return sources
