"""Web pages through ingest(): real langchain-community loaders against a local HTTP server on
127.0.0.1, real Chroma. An HTTP error page (4xx, 5xx) is its URL's error and never a chunk,
however the loader was built; page text keeps its blocks (title, heading, paragraph) apart
and its inline elements (<b>, <a>) in their sentence, in Python and through the CLI."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from sealion_agents.retrievers import SEARetriever, ingest, open_store

from tests.local_http import local_http_server

from .conftest import require_retrieval_deps

require_retrieval_deps()

ENGLISH_PAGE = (
    "<html lang='en'><head><title>Leave</title></head><body><h1>Annual leave</h1>"
    "<p>Full-time <b>employees</b> get 14 days of <a href='/pay.html'>paid leave</a> a year."
    "</p></body></html>"
)
ENGLISH_TEXT = "Leave\nAnnual leave\nFull-time employees get 14 days of paid leave a year."
THAI_PAGE = (
    "<html><head><title>ตลาดน้ำ</title></head><body><h1>ตลาดน้ำดำเนินสะดวก</h1>"
    "<p>ตลาดน้ำดำเนินสะดวก<b>เปิดทุกวัน</b>ตั้งแต่เจ็ดโมงเช้า</p><ul><li>ผลไม้</li><li>ก๋วยเตี๋ยว</li>"
    "</ul><script>var tracking = 1;</script></body></html>"
)
THAI_TEXT = "ตลาดน้ำ\nตลาดน้ำดำเนินสะดวก\nตลาดน้ำดำเนินสะดวกเปิดทุกวันตั้งแต่เจ็ดโมงเช้า\nผลไม้\nก๋วยเตี๋ยว"


class _Site(http.server.SimpleHTTPRequestHandler):
    """Files of the site folder; /boom.html answers 500 with an error page."""

    def do_GET(self) -> None:
        if self.path == "/boom.html":
            self.send_error(500, "database down")
        else:
            super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "leave.html").write_text(ENGLISH_PAGE, encoding="utf-8")
    (folder / "market.html").write_text(THAI_PAGE, encoding="utf-8")
    links = "<a href='/leave.html'>leave</a> <a href='/gone.html'>gone</a>"
    (folder / "index.html").write_text(f"<html><body><p>Staff handbook {links}</p></body></html>")
    with local_http_server(partial(_Site, directory=str(folder))) as base:
        yield base


@pytest.fixture
def store(tmp_path: Path, e5):  # type: ignore[no-untyped-def]
    return open_store(e5, "web", persist_directory=tmp_path / "chroma")


def _texts(store) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Stored chunk text by source (chunks joined in order)."""
    got = store.collection.get(include=["documents", "metadatas"])
    pairs = sorted(
        zip(got["metadatas"], got["documents"], strict=True),
        key=lambda p: (p[0]["source"], p[0]["chunk_index"]),
    )
    out: dict[str, str] = {}
    for meta, text in pairs:
        out[meta["source"]] = (out.get(meta["source"], "") + "\n" + text).strip()
    return out


def test_http_error_pages_are_errors_never_chunks(store, site: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Loaders built without raise_for_status: 404 and 500 are their items' errors."""
    from langchain_community.document_loaders import WebBaseLoader

    note = tmp_path / "note.txt"
    note.write_text("Chendol is a shaved-ice dessert.", encoding="utf-8")
    gone = WebBaseLoader(f"{site}/gone.html", show_progress=False)
    boom = WebBaseLoader(f"{site}/boom.html", show_progress=False)
    both = WebBaseLoader([f"{site}/leave.html", f"{site}/missing.html"], show_progress=False)
    report = ingest(store, [gone, boom, both, str(note)], show_progress=False)
    assert "404" in report.errors[f"WebBaseLoader({site}/gone.html)"]
    assert "500" in report.errors[f"WebBaseLoader({site}/boom.html)"]
    assert "404" in report.errors[f"WebBaseLoader({site}/missing.html)"]  # fails alone
    assert len(report.errors) == 3
    assert sorted(report.added) == sorted([f"{site}/leave.html", str(note)])
    assert set(_texts(store)) == {f"{site}/leave.html", str(note)}
    assert "Error response" not in " ".join(_texts(store).values())
    assert gone.raise_for_status is False and len(both.web_paths) == 2  # the user's, unchanged


def test_recursive_loader_skips_error_pages(store, site: str) -> None:  # type: ignore[no-untyped-def]
    from langchain_community.document_loaders import RecursiveUrlLoader

    crawl = RecursiveUrlLoader(f"{site}/index.html", max_depth=2, prevent_outside=False)
    report = ingest(store, [crawl], show_progress=False)
    assert report.ok, report.errors
    assert set(_texts(store)) == {f"{site}/index.html", f"{site}/leave.html"}


@pytest.mark.parametrize(
    ("page", "text"), [("leave.html", ENGLISH_TEXT), ("market.html", THAI_TEXT)]
)
def test_page_text_keeps_blocks_apart_and_inline_words_in_line(
    store,  # type: ignore[no-untyped-def]
    site: str,
    page: str,
    text: str,
) -> None:
    from langchain_community.document_loaders import WebBaseLoader

    url = f"{site}/{page}"
    report = ingest(store, [WebBaseLoader(url, show_progress=False)], show_progress=False)
    assert report.added == [url], report.errors
    assert _texts(store) == {url: text}
    again = ingest(store, [WebBaseLoader(url, show_progress=False)], show_progress=False)
    assert again.unchanged == [url]


def test_a_word_glued_before_is_found_by_bm25(store, site: str) -> None:  # type: ignore[no-untyped-def]
    """Glued, "LeaveAnnual leaveFull-time" held no token "annual": BM25 found nothing."""
    from langchain_community.document_loaders import WebBaseLoader

    url = f"{site}/leave.html"
    ingest(store, [WebBaseLoader(url, show_progress=False)], show_progress=False)
    for mode in ("bm25", "hybrid"):
        [found] = SEARetriever(store=store, k=1, mode=mode).invoke("annual")
        assert found.metadata["source"] == url
        assert found.metadata["title"] == "Leave"


def test_the_users_own_separator_is_kept(site: str) -> None:
    from langchain_community.document_loaders import WebBaseLoader
    from sealion_agents.retrievers.loaders import web_loaders

    mine = WebBaseLoader(
        f"{site}/leave.html", bs_get_text_kwargs={"separator": " | "}, show_progress=False
    )
    [page] = web_loaders(mine)
    [doc] = page.lazy_load()
    assert doc.page_content.startswith("Leave | Annual leave | Full-time  | employees")


def test_cli_url_ingest_stores_separated_text(tmp_path: Path, site: str) -> None:
    import chromadb

    url = f"{site}/leave.html"
    done = subprocess.run(
        [sys.executable, "-c", "from sealion_agents.cli import main; main()", "ingest", url,
         f"{site}/boom.html", "-c", "web", "--store", str(tmp_path / "s")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", "NO_COLOR": "1"},
    )  # fmt: skip
    assert done.returncode == 3, done.stderr  # one page stored, one failed
    assert "500" in done.stdout
    stored = chromadb.PersistentClient(path=str(tmp_path / "s")).get_collection("web").get()
    assert stored["documents"] == [ENGLISH_TEXT]
