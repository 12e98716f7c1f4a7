"""The keyword side of hybrid search: BM25 over a collection's chunk texts, in SQLite's FTS5.

It is a per-host cache (DATA_DIR/search/NAME.sqlite), derived from the store and kept up to
date file by file: every file record carries a generation that changes when the file's
chunks do, so bringing the index up to date reads the records (no texts, no chunk ids) and
re-indexes only the files whose generation moved, or drops those that are gone. The cost of
an update grows with what changed, not with the collection; a new host builds it once.
Chunks without a file record (written by another tool) are not in it: they are still
found by the dense search, and ``ragapp backfill`` records them.

The window vectors, the other derived part of hybrid search, are in the store itself
(ragapp.store's ``windows`` table), cut and embedded when a file is written
(ragapp.windows).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from ragapp.ledger import FileEntry
from ragapp.store import ChunkStore

_FILES_PER_READ = 64  # files whose chunks are read from the store per request
_TOKEN = re.compile(r"\w\w+")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, generation TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL, path TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_by_path ON chunks (path);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5 (text, tokenize = 'unicode61 remove_diacritics 2');
"""


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def match_expression(query: str) -> str:
    """The FTS5 query for a question: any of its words (two characters or more, not stop
    words), each quoted so nothing in it is read as FTS5 syntax. "" when none is left."""
    stop = _stopwords()
    words = dict.fromkeys(t for t in _TOKEN.findall(query.lower()) if t not in stop)
    return " OR ".join(f'"{w}"' for w in words)


class KeywordIndex:
    """BM25 over one collection's recorded files (``search`` returns chunk ids, best first)."""

    def __init__(self, path: Path, store: ChunkStore) -> None:
        self.path = path
        self.store = store
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode = WAL")  # readers never wait for a refresh
            conn.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # the timeout covers another process's refresh of the same cache
        with closing(sqlite3.connect(self.path, timeout=600, isolation_level=None)) as conn:
            yield conn

    def generation(self) -> str:
        """The store generation this index was last brought up to date with."""
        with self._connect() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return row[0] if row else ""

    def refresh(
        self,
        records: Mapping[str, FileEntry],
        generation: str,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Re-index the files whose record generation differs from the indexed one, drop the
        ones without a record, and remember ``generation``. Returns the files re-indexed."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")  # one refresher at a time; readers go on
            try:
                indexed = dict(conn.execute("SELECT path, generation FROM files").fetchall())
                changed = sorted(p for p, e in records.items() if indexed.get(p) != e.generation)
                gone = [p for p in indexed if p not in records]
                for path in gone:
                    self._forget(conn, path)
                for start in range(0, len(changed), _FILES_PER_READ):
                    batch = changed[start : start + _FILES_PER_READ]
                    self._index(conn, batch, {p: records[p].generation for p in batch})
                    if progress is not None:
                        progress(min(start + _FILES_PER_READ, len(changed)), len(changed))
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('generation', ?)", (generation,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return len(changed)

    @staticmethod
    def _forget(conn: sqlite3.Connection, path: str) -> None:
        conn.execute(
            "DELETE FROM fts WHERE rowid IN (SELECT rowid FROM chunks WHERE path = ?)", (path,)
        )
        conn.execute("DELETE FROM chunks WHERE path = ?", (path,))
        conn.execute("DELETE FROM files WHERE path = ?", (path,))

    def _index(
        self, conn: sqlite3.Connection, paths: list[str], generations: dict[str, str]
    ) -> None:
        docs = self.store.get(where={"source": {"$in": paths}})
        for path in paths:
            self._forget(conn, path)
        for doc, _ in docs:
            cursor = conn.execute(
                "INSERT INTO chunks (id, path) VALUES (?, ?)",
                (str(doc.id), str(doc.metadata.get("source", ""))),
            )
            conn.execute(
                "INSERT INTO fts (rowid, text) VALUES (?, ?)", (cursor.lastrowid, doc.page_content)
            )
        conn.executemany("INSERT INTO files VALUES (?, ?)", generations.items())

    def search(self, query: str, k: int) -> list[str]:
        expression = match_expression(query)
        if not expression:
            return []
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT chunks.id FROM fts JOIN chunks ON chunks.rowid = fts.rowid "
                "WHERE fts MATCH ? ORDER BY rank LIMIT ?",
                (expression, k),
            ).fetchall()
        return [r[0] for r in rows]

    def stats(self) -> dict[str, Any]:
        with self._connect() as conn:
            files, chunks = conn.execute(
                "SELECT (SELECT count(*) FROM files), (SELECT count(*) FROM chunks)"
            ).fetchone()
        return {"files": files, "chunks": chunks}
