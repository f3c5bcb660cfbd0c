"""The lexical index of a collection, kept on disk: SQLite FTS5 over ICU words, BM25-ranked.

data flow: chunk text -> ICU words (``lexical_tokens``, casefolded) -> each word as a short
ASCII hash (FTS5's tokenizer then never splits a Thai, Lao, Khmer or Burmese word at a vowel
mark) -> an FTS5 row per chunk id; query -> the same hashed words, OR-ed -> FTS5 ``bm25()``.

Why SQLite FTS5: it ships inside Python, ranks with BM25 (k1=1.2, b=0.75), updates in place
(add and delete one chunk at a time), persists with the collection, and lets several processes
on one machine read and write one file (write-ahead log). The in-memory bm25s index it replaces
was rebuilt from Chroma whenever the chunk count changed: 67 s and 1.3 GB at 100k chunks.

Consistency with Chroma (which holds the text and vectors):
- ``ingest`` records the ids it is about to write or delete (the journal), writes Chroma, then
  this index, then clears the journal, each step committed. After a crash, :meth:`sync` checks
  the journaled ids against Chroma and makes the index agree (a handful of ids, not a rebuild).
- :meth:`sync` also compares the chunk counts; when another writer changed Chroma, the id sets
  are compared and only the difference is fetched and indexed.

Where the file lives: beside an embedded Chroma folder (``<folder>/sealion-lexical/<collection
id>.sqlite3``); with a Chroma server, in ``SEALION_LEXICAL_DIR`` (default
``~/.cache/sealion-agents/lexical``) on each application machine. Processes on one machine share
the file; each other machine keeps its own, brought up to date incrementally by ``sync``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sealion_agents.retrievers.lexical import lexical_tokens
from sealion_agents.retrievers.store import as_sealion_store

__all__ = [
    "LexicalIndex",
    "collection_index_path",
    "drop_lexical_index",
    "lexical_index_for",
    "lexical_index_path",
]

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ids (n INTEGER PRIMARY KEY, cid TEXT UNIQUE NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks USING fts5(
    words, tokenize = 'unicode61 remove_diacritics 0'
);
CREATE VIRTUAL TABLE IF NOT EXISTS vocabulary USING fts5vocab(chunks, 'row');
CREATE TABLE IF NOT EXISTS journal (cid TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_SYNC_PAGE = 5000


def _word(token: str) -> str:
    """A word as FTS5 sees it: 'w' + 12 hex digits of its hash (one token, any script)."""
    return "w" + hashlib.blake2b(token.encode("utf-8"), digest_size=6).hexdigest()


class LexicalIndex:
    """BM25 over one collection's chunks, persisted in a SQLite file (see the module docs)."""

    def __init__(self, path: str | os.PathLike[str], locale: str = "") -> None:
        self.path = Path(path)
        self.locale = locale
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        with self._db:  # the chunk count, kept by every write (counting 1M rows takes ~50 ms)
            self._db.execute("INSERT OR IGNORE INTO meta SELECT 'chunks', count(*) FROM ids")
        self._lock = threading.RLock()

    def close(self) -> None:
        """Close the file (the index stays on disk)."""
        with self._lock:
            self._db.close()

    def __len__(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'chunks'").fetchone()
            return int(row[0])

    # -- writing ---------------------------------------------------------------------------

    def _words(self, text: str) -> str:
        return " ".join(_word(t) for t in lexical_tokens(text, self.locale))

    def intend(self, ids: Iterable[str]) -> None:
        """Journal ids about to be written to or deleted from Chroma (committed at once)."""
        with self._lock, self._db:
            self._db.executemany("INSERT OR IGNORE INTO journal VALUES (?)", ((i,) for i in ids))

    def add(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        """Index (or re-index) chunks, and clear them from the journal."""
        words = [self._words(t or "") for t in texts]
        with self._lock, self._db:
            removed = self._remove(ids)
            for cid, text in zip(ids, words, strict=True):
                n = self._db.execute("INSERT INTO ids (cid) VALUES (?)", (cid,)).lastrowid
                self._db.execute("INSERT INTO chunks (rowid, words) VALUES (?, ?)", (n, text))
            self._count(len(ids) - removed)
            self._db.executemany("DELETE FROM journal WHERE cid = ?", ((i,) for i in ids))

    def delete(self, ids: Iterable[str]) -> None:
        """Remove chunks, and clear them from the journal."""
        ids = list(ids)
        with self._lock, self._db:
            self._count(-self._remove(ids))
            self._db.executemany("DELETE FROM journal WHERE cid = ?", ((i,) for i in ids))

    def _remove(self, ids: Sequence[str]) -> int:
        removed = 0
        for cid in ids:
            row = self._db.execute("SELECT n FROM ids WHERE cid = ?", (cid,)).fetchone()
            if row is not None:
                self._db.execute("DELETE FROM chunks WHERE rowid = ?", row)
                self._db.execute("DELETE FROM ids WHERE n = ?", row)
                removed += 1
        return removed

    def _count(self, change: int) -> None:
        if change:
            self._db.execute("UPDATE meta SET value = value + ? WHERE key = 'chunks'", (change,))

    def sync(self, collection: Any, count: int | None = None) -> int:
        """Make the index agree with ``collection`` (journaled ids, then the counts).

        ``count``: the collection's chunk count when the caller just read it (saves asking
        Chroma again). Returns how many chunks were indexed or removed.
        """
        changed = 0
        with self._lock:
            journal = [row[0] for row in self._db.execute("SELECT cid FROM journal")]
        if journal:
            changed += self._settle(collection, journal)
        chroma_count = collection.count() if count is None or journal else count
        if chroma_count == len(self):
            return changed
        have = self._ids()
        theirs: set[str] = set()
        offset = 0
        while True:
            page = collection.get(include=[], limit=_SYNC_PAGE, offset=offset)["ids"]
            theirs.update(page)
            if len(page) < _SYNC_PAGE:
                break
            offset += _SYNC_PAGE
        extra = have - theirs
        missing = sorted(theirs - have)
        if extra:
            self.delete(extra)
        for start in range(0, len(missing), _SYNC_PAGE):
            got = collection.get(ids=missing[start : start + _SYNC_PAGE], include=["documents"])
            self.add(got["ids"], got["documents"])
        logger.info("lexical index synced: %d added, %d removed", len(missing), len(extra))
        return changed + len(extra) + len(missing)

    def _settle(self, collection: Any, ids: list[str]) -> int:
        """After a crash: the journaled ids take the state they have in Chroma."""
        got = collection.get(ids=ids, include=["documents"])
        present = set(got["ids"])
        self.add(got["ids"], got["documents"])
        self.delete(i for i in ids if i not in present)
        logger.info("lexical index: %d journaled chunks settled after an interruption", len(ids))
        return len(ids)

    def _ids(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT cid FROM ids")}

    # -- reading ---------------------------------------------------------------------------

    def coverage(self, query: str) -> float:
        """Share of the query's distinct non-numeric words found in the corpus (0.0 to 1.0)."""
        words = {_word(t) for t in lexical_tokens(query, self.locale) if not t.isdigit()}
        if not words:
            return 0.0
        marks = ",".join("?" * len(words))
        with self._lock:
            found = self._db.execute(
                f"SELECT count(*) FROM vocabulary WHERE term IN ({marks})",  # noqa: S608
                tuple(words),
            ).fetchone()[0]
        return int(found) / len(words)

    def search(
        self, query: str, k: int, allowed: set[str] | None = None
    ) -> list[tuple[str, float]]:
        """Top ``k`` ``(id, score)`` pairs by BM25, best first (``allowed``: only these ids)."""
        words = sorted({_word(t) for t in lexical_tokens(query, self.locale)})
        if not words or k <= 0 or allowed is not None and not allowed:
            return []
        match = " OR ".join(words)
        ranked = "SELECT rowid, bm25(chunks) AS rank FROM chunks WHERE chunks MATCH ?"
        params: tuple[Any, ...] = (match,)
        if allowed is not None:
            ranked += (
                " AND rowid IN (SELECT n FROM ids WHERE cid IN (SELECT value FROM json_each(?)))"
            )
            params += (json.dumps(sorted(allowed)),)
        sql = (
            f"SELECT ids.cid, -top.rank FROM ({ranked} ORDER BY rank LIMIT ?) AS top "  # noqa: S608
            "JOIN ids ON ids.n = top.rowid ORDER BY top.rank"
        )
        with self._lock:
            rows = self._db.execute(sql, (*params, k)).fetchall()
        return [(str(cid), float(score)) for cid, score in rows if float(score) > 0.0]


_OPEN: dict[str, LexicalIndex] = {}
_OPEN_LOCK = threading.Lock()


def lexical_index_path(store: Any) -> Path:
    """Where the lexical index of ``store``'s collection lives (see the module docs)."""
    chroma = as_sealion_store(store)
    return collection_index_path(chroma.client, chroma.collection)


def collection_index_path(client: Any, collection: Any) -> Path:
    """Where the lexical index of a chromadb ``collection`` reached through ``client`` lives."""
    folder: Path | None = None
    try:
        settings = client.get_settings() if client is not None else None
        if settings is not None and settings.is_persistent and settings.persist_directory:
            folder = Path(settings.persist_directory) / "sealion-lexical"
    except Exception:  # a client without settings: use the shared default below
        folder = None
    if folder is None:
        base = os.environ.get("SEALION_LEXICAL_DIR") or str(
            Path.home() / ".cache" / "sealion-agents" / "lexical"
        )
        folder = Path(base)
    return folder / f"{collection.id}.sqlite3"


def lexical_index_for(store: Any, locale: str = "") -> LexicalIndex:
    """The (process-wide, shared) lexical index of ``store``'s collection, opened once."""
    path = str(lexical_index_path(store))
    with _OPEN_LOCK:
        index = _OPEN.get(path)
        if index is None or index.locale != locale:
            index = LexicalIndex(path, locale)
            _OPEN[path] = index
        return index


def drop_lexical_index(client: Any, collection: Any) -> None:
    """Delete the lexical index file of a chromadb ``collection`` (call before deleting it)."""
    path = collection_index_path(client, collection)
    with _OPEN_LOCK:
        index = _OPEN.pop(str(path), None)
        if index is not None:
            index.close()
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
