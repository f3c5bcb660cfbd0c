"""The splitter: token-sized chunks, never cut inside an ICU word, exact offsets."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from sealion_agents.retrievers import SEATextSplitter, word_boundaries

from .conftest import SAMPLES, require_retrieval_deps

require_retrieval_deps()


def _inside_word(text: str, offset: int) -> bool:
    """True when ``offset`` falls strictly inside an ICU word segment that is not whitespace."""
    from sealion_agents.retrievers.splitting import _segments

    return any(s < offset < e and not text[s:e].isspace() for s, e in _segments("word", text, ""))


@pytest.mark.parametrize("lang", ["th", "lo", "km", "my"])
def test_no_chunk_boundary_inside_a_word(lang: str, e5) -> None:
    text = " ".join([SAMPLES[lang]] * 4)
    splitter = SEATextSplitter.from_embeddings(e5, chunk_size=12, chunk_overlap=4)
    spans = splitter.split_spans(text)
    assert len(spans) >= 4
    bounds = word_boundaries(text)
    for start, end in spans:
        assert start in bounds and end in bounds, (lang, start, end)
        assert not _inside_word(text, start) and not _inside_word(text, end)
        assert e5.count_tokens(text[start:end]) <= 12
    # in order, no text skipped between chunks, and most neighbours overlap
    pairs = list(zip(spans, spans[1:], strict=False))
    for (s1, e1), (s2, e2) in pairs:
        assert s1 < s2 and e1 < e2 and text[e1:s2].strip() == ""
    assert sum(s2 < e1 for (_, e1), (s2, _) in pairs) >= len(pairs) // 2


def test_words_not_characters_are_the_unit() -> None:
    """With a word-count length, chunks hold whole words; overlap repeats whole words."""
    text = "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย"
    words = ["กรุงเทพมหานคร", "เป็น", "เมือง", "หลวง", "ของ", "ประเทศไทย"]
    from sealion_agents.retrievers import lexical_tokens

    assert lexical_tokens(text) == words

    def count_words(s: str) -> int:
        return len(lexical_tokens(s))

    splitter = SEATextSplitter(count_words, chunk_size=2, chunk_overlap=1)
    assert splitter.split_text(text) == [
        "กรุงเทพมหานครเป็น",
        "เป็นเมือง",
        "เมืองหลวง",
        "หลวงของ",
        "ของประเทศไทย",
    ]


def test_sentences_are_kept_whole_when_they_fit() -> None:
    text = "One two three. Four five six. Seven eight nine."

    def count_words(s: str) -> int:
        return len(s.split())

    splitter = SEATextSplitter(count_words, chunk_size=6, chunk_overlap=0)
    assert splitter.split_text(text) == ["One two three. Four five six.", "Seven eight nine."]


def test_a_word_longer_than_a_chunk_is_cut_at_characters() -> None:
    splitter = SEATextSplitter(len, chunk_size=10, chunk_overlap=0)
    assert splitter.split_text("a" * 25) == ["a" * 10, "a" * 10, "a" * 5]


def test_documents_keep_source_page_and_offsets(e5) -> None:
    text = SAMPLES["th"] + "\n\n" + SAMPLES["en"]
    doc = Document(page_content=text, metadata={"source": "/x/a.pdf", "page": 3})
    splitter = SEATextSplitter.from_embeddings(e5, chunk_size=20, chunk_overlap=4)
    chunks = splitter.split_documents([doc])
    assert len(chunks) > 2
    for chunk in chunks:
        meta = chunk.metadata
        assert meta["source"] == "/x/a.pdf" and meta["page"] == 3
        assert text[meta["start_index"] : meta["end_index"]] == chunk.page_content
        assert chunk.page_content == chunk.page_content.strip()


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="chunk_overlap must be >= 0 and smaller than chunk_size"):
        SEATextSplitter(len, chunk_size=10, chunk_overlap=10)
    with pytest.raises(ValueError, match="chunk_size must be positive"):
        SEATextSplitter(len, chunk_size=0)


def test_chunk_size_is_capped_at_what_the_model_reads(e5) -> None:
    from langchain_core.embeddings import FakeEmbeddings

    assert SEATextSplitter.from_embeddings(e5, chunk_size=1000).chunk_size == 508

    class Unsaid(FakeEmbeddings):
        def count_tokens(self, text: str) -> int:
            return len(text)

    assert SEATextSplitter.from_embeddings(Unsaid(size=3), chunk_size=1000).chunk_size == 512
