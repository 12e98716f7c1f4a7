"""The file records (the sync ledger): which files each collection holds, as of their last
complete write. Owned by ragapp.collection.Collection; nothing else writes them.

A row is written only after the file's chunks are all in the store, and removed only
after they are gone from it, so after a crash the ledger never claims more than the store
holds; the next ingest redoes whatever was in flight (chunk ids are deterministic, so a
redo upserts the same ids and never duplicates).

Why not LangChain's indexing API (``index()`` + ``SQLRecordManager``)? It keys records by a
hash of each parsed document, so it must re-parse every file on every run to learn that
nothing changed, it re-embeds a renamed file (the path is part of the hash), and it embeds
inside ``add_documents``, file by file, which rules out batching across files and
parsing in parallel while embedding. A file-level ledger answers "unchanged?" from
``stat()`` alone and lets a moved file reuse its vectors.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    collection  TEXT NOT NULL,
    path        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    chunks      INTEGER NOT NULL,
    ingested_at REAL NOT NULL,
    PRIMARY KEY (collection, path)
);
CREATE INDEX IF NOT EXISTS files_by_hash ON files (collection, sha256);
"""


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    mtime_ns: int
    sha256: str
    chunks: int
    ingested_at: float


class Ledger:
    """SQLite file in the data dir; one set of rows per collection."""

    def __init__(self, db_path: Path, collection: str) -> None:
        self.db_path = db_path
        self.collection = collection
        db_path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.db_path, timeout=30)) as conn, conn:
            yield conn

    def entries(self) -> dict[str, FileEntry]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT path, size, mtime_ns, sha256, chunks, ingested_at FROM files "
                "WHERE collection = ? ORDER BY path",
                (self.collection,),
            ).fetchall()
        return {r[0]: FileEntry(*r) for r in rows}

    def record(self, path: str, size: int, mtime_ns: int, sha256: str, chunks: int) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self.collection, path, size, mtime_ns, sha256, chunks, time.time()),
            )

    def touch(self, path: str, size: int, mtime_ns: int) -> None:
        """Same content, new stat (e.g. the file was touched): remember the new mtime."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE files SET size = ?, mtime_ns = ? WHERE collection = ? AND path = ?",
                (size, mtime_ns, self.collection, path),
            )

    def forget(self, path: str) -> None:
        with self._connect() as conn:
            conn.execute(
                "DELETE FROM files WHERE collection = ? AND path = ?", (self.collection, path)
            )

    def clear(self) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM files WHERE collection = ?", (self.collection,))


def is_under(source: str, root: Path) -> bool:
    """Whether a recorded source path lies in ``root`` (or is ``root``)."""
    p = Path(source)
    return p == root or root in p.parents
