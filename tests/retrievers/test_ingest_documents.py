"""ingest() with LangChain's own inputs: Documents built by hand and real langchain-community
loaders (CSV from a file, a web page from a local HTTP server on 127.0.0.1), with the same
content ids, idempotent re-runs, per-item errors and progress as files."""

from __future__ import annotations

import http.server
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from langchain_core.document_loaders import BaseLoader
from langchain_core.documents import Document
from sealion_agents.retrievers import SEARetriever, ingest, open_store

from tests.local_http import local_http_server

from .conftest import require_retrieval_deps

require_retrieval_deps()

THAI_PAGE = (
    "<html><head><title>ตลาดน้ำ</title></head><body><h1>ตลาดน้ำดำเนินสะดวก</h1>"
    "<p>ตลาดน้ำดำเนินสะดวกเปิดทุกวันตั้งแต่เจ็ดโมงเช้า พ่อค้าแม่ค้าขายผลไม้บนเรือ</p>"
    "<script>var tracking = 1;</script></body></html>"
)


@pytest.fixture
def store(tmp_path: Path, e5):  # type: ignore[no-untyped-def]
    return open_store(e5, "lc-docs", persist_directory=tmp_path / "chroma")


def _sources(store) -> dict[str, int]:  # type: ignore[no-untyped-def]
    out: dict[str, int] = {}
    for m in store.collection.get(include=["metadatas"])["metadatas"]:
        out[m["source"]] = out.get(m["source"], 0) + 1
    return out


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "market.html").write_text(THAI_PAGE, encoding="utf-8")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    with local_http_server(handler) as base:
        yield base


def test_documents_built_by_hand_are_idempotent_and_replaced_when_changed(store) -> None:  # type: ignore[no-untyped-def]
    docs = [
        Document("Kaya toast is bread with coconut jam.", metadata={"source": "kb://kaya"}),
        Document(
            "Laksa is a spicy noodle soup.", metadata={"source": "kb://laksa", "tags": ["food"]}
        ),
        Document("No source here.", metadata={}),
    ]
    seen: list[tuple[int, int]] = []
    first = ingest(store, docs, show_progress=False, on_progress=lambda a, b: seen.append((a, b)))
    assert sorted(first.added) == ["kb://kaya", "kb://laksa"]
    (problem,) = first.errors.values()
    assert "needs metadata['source']" in problem
    assert seen[-1][0] == seen[-1][1] == first.chunks_added > 0
    stored = store.collection.get(where={"source": "kb://laksa"}, include=["metadatas"])
    assert stored["metadatas"][0]["tags"] == '["food"]'  # lists become JSON text for Chroma
    again = ingest(store, docs[:2], show_progress=False)
    assert sorted(again.unchanged) == ["kb://kaya", "kb://laksa"] and again.chunks_added == 0
    changed = [
        Document("Kaya toast is bread with pandan coconut jam.", metadata={"source": "kb://kaya"})
    ]
    replaced = ingest(store, changed, show_progress=False)
    assert replaced.replaced == ["kb://kaya"] and replaced.chunks_deleted >= 1
    assert set(_sources(store)) == {"kb://kaya", "kb://laksa"}


def test_csv_loader_rows_become_one_source(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from langchain_community.document_loaders import CSVLoader

    csv = tmp_path / "hawkers.csv"
    csv.write_text(
        "stall,dish,price\nAh Seng,Chicken rice,4.50\nMak Cik,Nasi lemak,3.80\n"
        "Muthu,Roti prata,2.20\n",
        encoding="utf-8",
    )
    report = ingest(store, CSVLoader(str(csv), encoding="utf-8"), show_progress=False)
    assert report.added == [str(csv)] and report.ok
    found = SEARetriever(store=store, k=1).invoke("Where can I get nasi lemak?")
    assert "Mak Cik" in found[0].page_content
    assert ingest(store, CSVLoader(str(csv)), show_progress=False).unchanged == [str(csv)]


def test_web_page_from_a_local_http_server(store, web_server: str) -> None:  # type: ignore[no-untyped-def]
    from langchain_community.document_loaders import WebBaseLoader

    url = f"{web_server}/market.html"
    loader = WebBaseLoader(url, show_progress=False)
    report = ingest(store, [loader], show_progress=False)
    assert report.added == [url], report.errors
    stored = store.collection.get(where={"source": url}, include=["documents", "metadatas"])
    text = " ".join(stored["documents"])
    assert "ตลาดน้ำดำเนินสะดวกเปิดทุกวัน" in text and "tracking" not in text
    assert stored["metadatas"][0]["title"] == "ตลาดน้ำ"
    assert ingest(store, [WebBaseLoader(url, show_progress=False)], show_progress=False).unchanged


class _Broken(BaseLoader):
    def lazy_load(self) -> Iterator[Document]:
        yield Document("half", metadata={"source": "never-stored"})
        raise ConnectionError("the wiki went away")


def test_a_failing_loader_is_an_error_and_the_rest_is_stored(
    store,
    web_server: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from langchain_community.document_loaders import WebBaseLoader

    note = tmp_path / "note.txt"
    note.write_text("Chendol is a shaved-ice dessert.", encoding="utf-8")
    missing = WebBaseLoader(f"{web_server}/gone.html", raise_for_status=True, show_progress=False)
    report = ingest(store, [_Broken(), missing, str(note)], show_progress=False)
    assert report.errors["_Broken"] == "the loader failed (ConnectionError: the wiki went away)"
    assert "404" in report.errors[f"WebBaseLoader({web_server}/gone.html)"]
    assert report.added == [str(note)]
    assert set(_sources(store)) == {str(note)}
    with pytest.raises(TypeError, match="file or folder paths, LangChain Documents or"):
        ingest(store, [42], show_progress=False)
