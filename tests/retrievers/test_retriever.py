"""SEARetriever: the LangChain standard suite, and exact dense / BM25 / hybrid behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_tests.integration_tests import RetrieversIntegrationTests
from sealion_agents.retrievers import (
    BM25Index,
    SEARetriever,
    SEATextSplitter,
    ingest,
    lexical_tokens,
    open_store,
)
from sealion_agents.retrievers.fusion import (
    lexical_weight,
    standard_scores,
    weighted_rrf,
    zscore_fusion,
)

from .conftest import SAMPLES, require_retrieval_deps

require_retrieval_deps()

_SHARED: dict[str, object] = {}


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory, e5):
    """One store with one small document per language, shared by this module."""
    folder = tmp_path_factory.mktemp("docs")
    for lang, text in SAMPLES.items():
        (folder / f"{lang}.txt").write_text(text, encoding="utf-8")
    store = open_store(e5, persist_directory=tmp_path_factory.mktemp("db"))
    splitter = SEATextSplitter.from_embeddings(e5, chunk_size=256)
    assert ingest(store, folder, splitter, show_progress=False).ok
    _SHARED["store"] = store
    return store, folder


class TestSEARetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _kb(self, kb) -> None:
        pass

    @property
    def retriever_constructor(self) -> type[SEARetriever]:
        return SEARetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"store": _SHARED["store"], "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "เมืองหลวงของประเทศไทย"


def _top_source(docs) -> str:
    return Path(docs[0].metadata["source"]).stem


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_thai_query_finds_the_thai_document(kb, mode: str) -> None:
    store, _ = kb
    docs = SEARetriever(store=store, mode=mode, k=3).invoke("เมืองหลวงของประเทศไทย")
    assert _top_source(docs) == "th"


def test_bm25_needs_icu_words_for_thai(kb) -> None:
    store, _ = kb
    # no spaces in the query: whitespace BM25 would see one unknown "word"
    assert "เมืองหลวงของประเทศไทย".split() == ["เมืองหลวงของประเทศไทย"]
    assert lexical_tokens("เมืองหลวงของประเทศไทย") == ["เมือง", "หลวง", "ของ", "ประเทศไทย"]
    index = SEARetriever(store=store).bm25_index()
    assert index.coverage("เมืองหลวงของประเทศไทย") == 1.0
    [(top_id, _)] = index.search("ประเทศไทย", k=1)
    assert store.collection.get(ids=[top_id])["metadatas"][0]["source"].endswith("/th.txt")


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_metadata_filter(kb, mode: str) -> None:
    store, folder = kb
    only = str(folder / "vi.txt")
    docs = SEARetriever(store=store, mode=mode, k=3, filter={"source": only}).invoke(
        "thủ đô Việt Nam"
    )
    assert [d.metadata["source"] for d in docs] == [only]
    docs = SEARetriever(store=store, mode=mode, k=3).invoke("thủ đô", filter={"source": only})
    assert [d.metadata["source"] for d in docs] == [only]


def test_k_and_ids(kb) -> None:
    store, _ = kb
    retriever = SEARetriever(store=store, k=4)
    docs = retriever.invoke("capital city", k=2)
    assert len(docs) == 2 and all(d.id for d in docs)
    assert len(retriever.invoke("capital city")) == 4


def test_mmr_skips_near_duplicates(tmp_path: Path, e5) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(SAMPLES["en"], encoding="utf-8")
    (folder / "b.txt").write_text(SAMPLES["en"] + " ", encoding="utf-8")  # same text
    (folder / "c.txt").write_text("Singapore's airport is Changi.", encoding="utf-8")
    (folder / "d.txt").write_text(SAMPLES["th"], encoding="utf-8")
    store = open_store(e5, persist_directory=tmp_path / "db")
    ingest(store, folder, show_progress=False)
    query = "Singapore port"
    plain = SEARetriever(store=store, mode="dense", k=2).invoke(query)
    assert sorted(_top_source([d]) for d in plain) == ["a", "b"]
    diverse = SEARetriever(store=store, mode="dense", k=2, use_mmr=True).invoke(query)
    assert {_top_source([d]) for d in diverse} in ({"a", "c"}, {"b", "c"})


def test_reranker_orders_the_result(kb) -> None:
    store, _ = kb
    calls = []

    def by_length(query: str, docs) -> list[float]:
        calls.append((query, len(docs)))
        return [float(len(d.page_content)) for d in docs]

    docs = SEARetriever(store=store, k=3, reranker=by_length).invoke("capital")
    lengths = [len(d.page_content) for d in docs]
    assert lengths == sorted(lengths, reverse=True)
    assert calls == [("capital", len(SAMPLES))]  # reranked every candidate (fetch_k >= corpus)


def test_bm25_index_follows_new_chunks(tmp_path: Path, docs_dir, e5) -> None:
    store = open_store(e5, persist_directory=tmp_path / "db")
    ingest(store, docs_dir, show_progress=False)
    retriever = SEARetriever(store=store, mode="bm25", k=1)
    assert retriever.invoke("Kinabalu") == []
    (docs_dir / "new.txt").write_text("Mount Kinabalu is in Sabah.", encoding="utf-8")
    ingest(store, docs_dir, show_progress=False)
    assert _top_source(retriever.invoke("Kinabalu")) == "new"


def test_lexical_weight_ramp() -> None:
    assert [lexical_weight(c) for c in (0.0, 0.4, 0.5, 0.6, 1.0)] == [0.0, 0.0, 0.5, 1.0, 1.0]


def test_cross_lingual_query_gets_no_bm25_weight() -> None:
    index = BM25Index(["en"], [SAMPLES["en"]])
    assert index.coverage("Singapore port busiest") == 1.0
    # Thai and Vietnamese questions share only the name with English text
    assert index.coverage("ท่าเรือของ Singapore ยุ่งที่สุดไหม") == pytest.approx(1 / 6)
    assert index.coverage("Cảng Singapore có bận không") == pytest.approx(1 / 5)
    assert lexical_weight(index.coverage("ท่าเรือของ Singapore ยุ่งที่สุดไหม")) == 0.0


def test_weighted_rrf_is_exact() -> None:
    fused = weighted_rrf([(["a", "b", "c"], 1.0), (["c", "a"], 0.5), (["z"], 0.0)], rrf_k=60)
    assert [i for i, _ in fused] == ["a", "c", "b"]
    assert fused[0][1] == pytest.approx(1 / 61 + 0.5 / 62)
    assert fused[1][1] == pytest.approx(1 / 63 + 0.5 / 61)


def test_standard_scores_exact() -> None:
    z = standard_scores([("a", 3.0), ("b", 1.0), ("c", 2.0)])
    std = (2 / 3) ** 0.5
    assert z == pytest.approx({"a": 1 / std, "b": -1 / std, "c": 0.0})
    assert standard_scores([("a", 0.8), ("b", 0.8)]) == {"a": 0.0, "b": 0.0}  # no separation
    assert standard_scores([]) == {}


def test_zscore_fusion_follows_the_ranking_that_separates() -> None:
    """Same ranks, different confidence: the ranking whose winner stands out decides."""
    flat_dense = [("x", 0.801), ("y", 0.800), ("z", 0.799), ("w", 0.798)]
    sharp_bm25 = [("y", 9.0), ("x", 1.1), ("z", 1.0), ("w", 0.9)]
    fused = zscore_fusion([(flat_dense, 1.0), (sharp_bm25, 1.0)])
    assert [i for i, _ in fused][:2] == ["y", "x"]
    # reciprocal ranks see only the order: the tie goes to the first ranking's winner
    assert [i for i, _ in weighted_rrf([(["x", "y", "z", "w"], 1), (["y", "x", "z", "w"], 1)])][
        0
    ] == "x"
    sharp_dense = [("x", 0.95), ("y", 0.70), ("z", 0.69), ("w", 0.68)]
    flat_bm25 = [("y", 5.01), ("x", 5.00), ("z", 4.99), ("w", 4.98)]
    assert zscore_fusion([(sharp_dense, 1.0), (flat_bm25, 1.0)])[0][0] == "x"


def test_zscore_fusion_missing_and_weights() -> None:
    dense = [("a", 0.9), ("b", 0.5), ("c", 0.4)]
    lexical = [("d", 4.0), ("a", 2.0)]
    fused = dict(zscore_fusion([(dense, 1.0), (lexical, 0.5)]))
    zd, zl = standard_scores(dense), standard_scores(lexical)
    # a candidate one ranking did not return gets that ranking's lowest standard score
    assert fused["b"] == pytest.approx(zd["b"] + 0.5 * zl["a"])
    assert fused["d"] == pytest.approx(min(zd.values()) + 0.5 * zl["d"])
    assert fused["a"] == pytest.approx(zd["a"] + 0.5 * zl["a"])
    # weight 0 drops a ranking entirely (its candidates do not enter)
    assert [i for i, _ in zscore_fusion([(dense, 1.0), (lexical, 0.0)])] == ["a", "b", "c"]
    assert zscore_fusion([]) == []


@pytest.mark.parametrize("fusion", ["zscore", "rrf"])
def test_hybrid_is_the_fusion_of_its_own_two_rankings(kb, fusion: str) -> None:
    """The real dense scores (cosine) and BM25 scores from the index, fused as documented."""
    store, _ = kb
    retriever = SEARetriever(store=store, k=6, fusion=fusion)
    query = "Jakarta ibu kota, Singapore port, Hà Nội"  # words of three documents
    total = store.collection.count()
    dense, _ = retriever._dense(store.embeddings.embed_query(query), total, None)
    index = retriever.bm25_index()
    lexical = index.search(query, total)
    weight = lexical_weight(index.coverage(query))
    assert weight > 0 and len(lexical) == 3 and dense[0][1] > dense[-1][1]
    if fusion == "zscore":
        expected = zscore_fusion([(dense, 1.0), (lexical, weight)])
    else:
        expected = weighted_rrf([([i for i, _ in dense], 1.0), ([i for i, _ in lexical], weight)])
    assert [d.id for d in retriever.invoke(query)] == [i for i, _ in expected[:6]]


def test_cross_encoder_reranker_plumbing(kb, minilm_dir: str) -> None:
    """No cross-encoder ships on PyPI: a BERT folder with a fresh head proves the wiring only."""
    from sealion_agents.retrievers import CrossEncoderReranker

    store, _ = kb
    reranker = CrossEncoderReranker(minilm_dir, device="cpu")
    docs = SEARetriever(store=store, k=9).invoke("capital")
    scores = reranker("capital", docs)
    assert len(scores) == len(docs) and all(isinstance(s, float) for s in scores)
    reranked = SEARetriever(store=store, k=9, reranker=reranker).invoke("capital")
    expected = [d.id for _, d in sorted(zip(scores, docs, strict=True), key=lambda p: -p[0])]
    assert [d.id for d in reranked] == expected
