"""Idempotent, resumable ingestion of files and folders into a Chroma store.

data flow: paths -> files -> load_file (per-file LoadError -> report), Documents and loaders
(web loaders via web_loaders: per URL, HTTP errors raise -> report) -> content hash
-> unchanged? skip : split -> chunk ids from content -> chunks not yet stored -> batches
-> embed (one batch ahead, in a worker thread) + upsert and index (this thread, meanwhile)
-> then delete the file's chunks from older versions.

Guarantees:

- Chunk ids are derived from source, file content (and splitter settings), position and text,
  so ingesting the same files again adds nothing.
- A changed file's new chunks are stored first and its old chunks deleted after, so a crash
  never leaves a file with no chunks.
- A process killed in the middle leaves some chunks of the current version; the next run
  stores only the missing ones (same ids) and ends with exactly the chunks of a clean run.
- A bad file (corrupt PDF, binary, empty, invalid UTF-8, too large, odd name) is reported
  in :attr:`IngestReport.errors` and never stops the batch nor touches stored chunks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from sealion_agents.retrievers._deps import require
from sealion_agents.retrievers.lexical_index import lexical_index_for
from sealion_agents.retrievers.loaders import (
    DEFAULT_MAX_FILE_BYTES,
    SUPPORTED_SUFFIXES,
    LoadError,
    iter_files,
    load_file,
    source_name,
    web_loaders,
)
from sealion_agents.retrievers.splitting import SEATextSplitter
from sealion_agents.retrievers.store import as_sealion_store, check_embeddings

logger = logging.getLogger(__name__)

__all__ = ["IngestCancelledError", "IngestReport", "delete_source", "ingest"]


class IngestCancelledError(Exception):
    """``ingest`` stopped because its ``cancel`` event was set.

    Chunks of files it had not finished were removed; stored files are untouched.
    ``report`` holds what was done.
    """

    def __init__(self, report: IngestReport) -> None:
        super().__init__("ingestion was cancelled")
        self.report = report


@dataclass
class IngestReport:
    """What one :func:`ingest` call did, per file."""

    added: list[str] = field(default_factory=list)
    """Sources stored for the first time."""
    replaced: list[str] = field(default_factory=list)
    """Sources whose content changed; old chunks were replaced."""
    unchanged: list[str] = field(default_factory=list)
    """Sources already stored with the same content (nothing embedded)."""
    errors: dict[str, str] = field(default_factory=dict)
    """Source -> a message naming the problem and what to do."""
    ignored: list[str] = field(default_factory=list)
    """Files inside folders with a type that is not loaded (images, archives...)."""
    chunks_added: int = 0
    """Chunks embedded and stored by this call."""
    chunks_deleted: int = 0
    """Chunks of older file versions deleted by this call."""

    @property
    def ok(self) -> bool:
        """True when no file failed."""
        return not self.errors


@dataclass
class _Pending:
    source: str
    old_ids: list[str]
    replaced: bool
    ids: list[str] = field(default_factory=list)


def _content_hash(docs: list[Document], signature: str) -> str:
    h = hashlib.sha256(signature.encode())
    for doc in docs:
        h.update(b"\x00page\x00" + str(doc.metadata.get("page", 0)).encode())
        h.update(doc.page_content.encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:32]


def _chunk_id(source: str, doc_hash: str, index: int, text: str) -> str:
    key = f"{source}\x00{doc_hash}\x00{index}\x00{text}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(key).hexdigest()[:32]


def delete_source(
    store: Any, path: str | os.PathLike[str], *, relative_to: str | os.PathLike[str] | None = None
) -> int:
    """Delete every chunk of one file (by its path) and return how many were deleted."""
    source = _source(Path(path), relative_to)
    store = as_sealion_store(store)
    coll = store.collection
    ids = coll.get(where={"source": source}, include=[])["ids"]
    if ids:
        lexical = lexical_index_for(store)
        lexical.intend(ids)
        coll.delete(ids=ids)
        lexical.delete(ids)
    logger.info("deleted %d chunks of %s", len(ids), source)
    return len(ids)


def _source(path: Path, relative_to: str | os.PathLike[str] | None) -> str:
    """The ``source`` of a file: its absolute path, or its path below ``relative_to``."""
    if relative_to is None:
        return source_name(path)
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(relative_to))).as_posix()


def _files(paths: Iterable[str | os.PathLike[str]], report: IngestReport) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        p = Path(path)
        if not p.exists():
            report.errors[source_name(p)] = "no such file or folder; check the path"
            continue
        in_folder = p.is_dir()

        def unreadable(error: OSError, folder: Path = p) -> None:
            name = source_name(error.filename or folder)
            report.errors[name] = f"cannot read this folder ({error.strerror}); check permissions"

        for f in iter_files(p, on_error=unreadable):
            if in_folder and f.is_symlink():
                report.errors[source_name(f)] = (
                    "symbolic link, not followed (it may point outside the folder); pass its "
                    "target explicitly to index it"
                )
            elif in_folder and f.suffix.lower() not in SUPPORTED_SUFFIXES:
                report.ignored.append(source_name(f))
            else:
                out.append(f)
    return out


def _loader_name(loader: Any) -> str:
    """How a loader is named in the report: its class and what it reads."""
    for attr in ("file_path", "web_path", "url", "path"):
        try:
            value = getattr(loader, attr, None)
        except Exception:  # WebBaseLoader.web_path raises when it has several URLs
            continue
        if isinstance(value, (str, os.PathLike)) and str(value):
            return f"{type(loader).__name__}({value})"
    paths = getattr(loader, "web_paths", None)
    if paths:
        return f"{type(loader).__name__}({', '.join(map(str, paths))})"
    return type(loader).__name__


def _plain_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata Chroma can store: str, int, float, bool (None dropped, others as JSON text)."""
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if value is None:
            continue
        if isinstance(value, (str, int, float, bool)):
            out[str(key)] = value
        else:
            out[str(key)] = json.dumps(value, ensure_ascii=False, default=str)
    return out


def _grouped(docs: Iterable[Document], fallback: str) -> dict[str, list[Document]]:
    """Documents by ``metadata["source"]`` (in first-seen order), each a copy."""
    groups: dict[str, list[Document]] = {}
    for doc in docs:
        source = str(doc.metadata.get("source") or fallback)
        metadata = _plain_metadata({**doc.metadata, "source": source})
        groups.setdefault(source, []).append(Document(doc.page_content, metadata=metadata))
    return groups


Unit = tuple[str, Callable[[], list[Document]]]
"""One source to ingest: its name, and how to get its pages (may raise LoadError)."""


def _units(
    items: Any,
    report: IngestReport,
    relative_to: str | os.PathLike[str] | None,
    max_file_bytes: int,
) -> list[Unit]:
    """Paths (files, folders), ``Document``s and ``BaseLoader``s as sources to ingest.

    Documents are grouped by their ``source`` metadata; a loader runs now, and one that
    fails is an error of the report under its name (the other items go on). Web loaders
    run as :func:`~sealion_agents.retrievers.loaders.web_loaders` makes them: an HTTP error
    page fails its URL and is never stored.
    """
    from langchain_core.document_loaders import BaseLoader

    if isinstance(items, (str, os.PathLike, Document, BaseLoader)):
        items = [items]
    units: list[Unit] = []
    paths: list[str | os.PathLike[str]] = []
    loose: list[Document] = []
    for item in items:
        if isinstance(item, Document):
            if not item.metadata.get("source"):
                report.errors[f"Document {len(loose) + 1}: {item.page_content[:40]!r}"] = (
                    "a Document needs metadata['source'] (a file name, URL or id) so that "
                    "re-runs find it; set one"
                )
                continue
            loose.append(item)
        elif isinstance(item, BaseLoader):
            for loader in web_loaders(item):  # HTTP error pages raise; one per URL
                units += _loader_units(loader, report)
        elif isinstance(item, (str, os.PathLike)):
            paths.append(item)
        else:
            raise TypeError(
                "ingest takes file or folder paths, LangChain Documents or document loaders; "
                f"got {type(item).__name__}"
            )
    for source, docs in _grouped(loose, fallback="").items():
        units.append((source, _given(docs)))
    for path in _files(paths, report):
        units.append((_source(path, relative_to), _file_loader(path, relative_to, max_file_bytes)))
    return units


def _loader_units(loader: Any, report: IngestReport) -> list[Unit]:
    """Run ``loader`` now: its documents by source, or an error of the report under its name."""
    name = _loader_name(loader)
    try:
        groups = _grouped(loader.lazy_load(), fallback=name)
    except Exception as exc:
        report.errors[name] = f"the loader failed ({type(exc).__name__}: {exc})"
        logger.warning("loader %s failed", name, exc_info=True)
        return []
    if not groups:
        report.errors[name] = "the loader returned no documents"
    return [(source, _given(docs)) for source, docs in groups.items()]


def _given(docs: list[Document]) -> Callable[[], list[Document]]:
    return lambda: docs


def _file_loader(
    path: Path, relative_to: str | os.PathLike[str] | None, max_file_bytes: int
) -> Callable[[], list[Document]]:
    def load() -> list[Document]:
        docs = load_file(path, max_file_bytes=max_file_bytes)
        for doc in docs:
            doc.metadata["source"] = _source(path, relative_to)
        return docs

    return load


def ingest(
    store: Any,
    paths: Any,
    splitter: SEATextSplitter | None = None,
    *,
    batch_size: int = 64,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    show_progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    relative_to: str | os.PathLike[str] | None = None,
) -> IngestReport:
    """Ingest files and folders into ``store`` (a ``langchain_chroma.Chroma``).

    Args:
        store: from :func:`~sealion_agents.retrievers.open_store`.
        paths: what to ingest, one or an iterable of: file and folder paths (folders are
            walked; unsupported types are listed in ``report.ignored``), LangChain
            ``Document``s (grouped by ``metadata["source"]``, which they must have), and
            document loaders (any ``BaseLoader``, e.g. langchain-community's; their documents
            grouped by source). Each source gets the same content ids, idempotent re-runs and
            per-item errors as a file. Web loaders are run on copies that fail on HTTP 4xx/5xx
            (an error page is never stored), a WebBaseLoader per URL with a line per block.
        splitter: defaults to :class:`SEATextSplitter` measured in the store's model tokens.
        batch_size: chunks per embedding call and per write.
        max_file_bytes: larger files are refused with an error in the report.
        show_progress: show a tqdm progress bar over the chunks to embed (their total grows
            as files are split; rate and time left follow), with files done as a postfix.
        on_progress: called with (chunks stored, chunks to store so far) after each batch.
        cancel: when set, ingestion stops before the next file or batch, removes the chunks
            of files it had not finished and raises :class:`IngestCancelledError`.
        relative_to: name sources by their path below this folder (an upload store) rather
            than by absolute path.

    Returns:
        An :class:`IngestReport`; check ``report.errors``.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    store = as_sealion_store(store)
    embeddings = store.embeddings
    if splitter is None:
        splitter = SEATextSplitter.from_embeddings(embeddings)
    coll = store.collection
    check_embeddings(coll, store.embedding_info)  # never add vectors of another model
    lexical = lexical_index_for(store)
    lexical.sync(coll)  # settles what an interrupted run left half-written
    report = IngestReport()
    units = _units(paths, report, relative_to, max_file_bytes)

    bar = None
    if show_progress:
        bar = require("tqdm.auto", "The ingestion progress bar").tqdm(
            total=0, unit="chunk", desc="ingest"
        )
    files_done = 0

    pending_chunks: list[tuple[str, str, dict[str, Any]]] = []
    pending_files: list[_Pending] = []
    counts = {"stored": 0, "total": 0}
    added_now: set[str] = set()  # ids this call stored for files not finalized yet

    def progress() -> None:
        if on_progress is not None:
            on_progress(counts["stored"], counts["total"])

    def check_cancel() -> None:
        if cancel is None or not cancel.is_set():
            return
        stale = [i for pend in pending_files for i in pend.ids if i in added_now]
        if stale:
            lexical.intend(stale)
            coll.delete(ids=stale)
            lexical.delete(stale)
        pending_files.clear()
        pending_chunks.clear()
        if bar is not None:
            bar.close()
        raise IngestCancelledError(report)

    def store_batch(batch: list[tuple[str, str, dict[str, Any]]], vectors: Any) -> None:
        ids, texts = [c[0] for c in batch], [c[1] for c in batch]
        lexical.intend(ids)  # journaled first: a crash after here is settled by sync
        coll.upsert(ids=ids, embeddings=vectors, documents=texts, metadatas=[c[2] for c in batch])
        lexical.add(ids, texts)
        added_now.update(ids)
        report.chunks_added += len(batch)
        counts["stored"] += len(batch)
        progress()
        if bar is not None:
            bar.update(len(batch))
        logger.info("stored %d chunks (%d this run)", len(batch), report.chunks_added)

    def flush() -> None:
        if not pending_chunks:
            _finalize()
            return
        batches = [
            pending_chunks[i : i + batch_size] for i in range(0, len(pending_chunks), batch_size)
        ]

        def embed(batch: list[tuple[str, str, dict[str, Any]]]) -> Any:
            return embeddings.embed_documents([c[1] for c in batch])

        # the next batch is embedded while this one is written (Chroma, lexical index)
        worker = ThreadPoolExecutor(1, thread_name_prefix="sealion-embed")
        stored_now = 0
        try:
            ahead: Future[Any] = worker.submit(embed, batches[0])
            for n, batch in enumerate(batches):
                check_cancel()
                vectors = ahead.result()
                if n + 1 < len(batches):
                    ahead = worker.submit(embed, batches[n + 1])
                store_batch(batch, vectors)
                stored_now += len(batch)
        except IngestCancelledError:
            raise
        except Exception as exc:  # embedding or storage failed: report the files, keep old data
            counts["total"] -= len(pending_chunks) - stored_now
            if bar is not None:  # these chunks will not come: the total shrinks
                bar.total -= len(pending_chunks) - stored_now
                bar.refresh()
            logger.exception("storing a batch failed")
            for pend in pending_files:
                report.errors[pend.source] = f"storing chunks failed ({type(exc).__name__}: {exc})"
            pending_files.clear()
        finally:
            worker.shutdown(wait=False, cancel_futures=True)
        pending_chunks.clear()
        _finalize()

    def _finalize() -> None:
        for pend in pending_files:
            if pend.old_ids:
                lexical.intend(pend.old_ids)
                coll.delete(ids=pend.old_ids)
                lexical.delete(pend.old_ids)
                report.chunks_deleted += len(pend.old_ids)
            (report.replaced if pend.replaced else report.added).append(pend.source)
            added_now.difference_update(pend.ids)
        pending_files.clear()

    for source, load in units:
        check_cancel()
        try:
            docs = load()
            doc_hash = _content_hash(docs, splitter.signature)
            stored = coll.get(where={"source": source}, include=["metadatas"])
            current = [
                i
                for i, m in zip(stored["ids"], stored["metadatas"], strict=False)
                if (m or {}).get("doc_hash") == doc_hash
            ]
            current_set = set(current)
            old = [i for i in stored["ids"] if i not in current_set]
            expected = next(
                (
                    int(m["n_chunks"])
                    for m in stored["metadatas"]
                    if (m or {}).get("doc_hash") == doc_hash and "n_chunks" in m
                ),
                -1,
            )
            if not old and len(current) == expected:
                report.unchanged.append(source)
                continue
            chunks = splitter.split_documents(docs)
            if not chunks:
                raise LoadError(source, "no text left after splitting")
            have = set(current)
            pend = _Pending(source=source, old_ids=old, replaced=bool(old))
            for index, chunk in enumerate(chunks):
                chunk.metadata.update(
                    {"doc_hash": doc_hash, "chunk_index": index, "n_chunks": len(chunks)}
                )
                cid = _chunk_id(source, doc_hash, index, chunk.page_content)
                pend.ids.append(cid)
                if cid not in have:
                    pending_chunks.append((cid, chunk.page_content, chunk.metadata))
                    counts["total"] += 1
                    if bar is not None:
                        bar.total += 1
            stale = have - set(pend.ids)  # same hash, different chunks: cannot happen, be safe
            pend.old_ids.extend(stale)
            pending_files.append(pend)
            progress()
        except LoadError as exc:
            report.errors[source] = exc.problem
            logger.warning("skipped %s", exc)
        except Exception as exc:  # anything unexpected still must not stop the batch
            report.errors[source] = f"unexpected error ({type(exc).__name__}: {exc})"
            logger.exception("failed on %s", source)
        finally:
            files_done += 1
            if bar is not None:
                bar.set_postfix(files=f"{files_done}/{len(units)}")
        if len(pending_chunks) >= batch_size:
            flush()
    flush()
    if bar is not None:
        bar.close()
    logger.info(
        "ingest: %d added, %d replaced, %d unchanged, %d errors, %d chunks stored",
        len(report.added),
        len(report.replaced),
        len(report.unchanged),
        len(report.errors),
        report.chunks_added,
    )
    return report
