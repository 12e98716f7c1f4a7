"""The file records (the sync ledger): which files each collection holds, as of their last
complete write. Owned by ragapp.collection.Collection; nothing else writes them.

They live in the store, in the collection's ``files`` side table (ragapp.store), so every
host pointed at one Chroma server sees the same files. A record is written only after the
file's chunks are all in the store, and removed only after they are gone from it, so after
a crash the ledger never claims more than the store holds; the next ingest redoes whatever
was in flight (chunk ids are deterministic, so a redo upserts the same ids and never
duplicates). Each write gives the record a new ``generation``: a host's BM25 cache compares
them to re-index only the files that changed.

Why not LangChain's indexing API (``index()`` + ``SQLRecordManager``)? It keys records by a
hash of each parsed document, so it must re-parse every file on every run to learn that
nothing changed, it re-embeds a renamed file (the path is part of the hash), and it embeds
inside ``add_documents``, file by file, which rules out batching across files and
parsing in parallel while embedding. A file-level ledger answers "unchanged?" from
``stat()`` alone and lets a moved file reuse its vectors.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
import uuid
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ragapp.store import ChunkStore


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    mtime_ns: int
    sha256: str
    chunks: int
    ingested_at: float
    generation: str = ""  # new on every write of the file's chunks
    windows: int = 0  # the window size its window vectors were cut at; 0: it has none

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> FileEntry:
        return cls(
            path=str(meta["path"]),
            size=int(meta.get("size", 0)),
            mtime_ns=int(meta.get("mtime_ns", 0)),
            sha256=str(meta.get("sha256", "")),
            chunks=int(meta.get("chunks", 0)),
            ingested_at=float(meta.get("ingested_at", 0.0)),
            generation=str(meta.get("generation", "")),
            windows=int(meta.get("windows", 0)),
        )


@dataclass(frozen=True)
class FailedFile:
    """A file that could not be parsed (or held no text), as it was when that happened:
    while its stat or hash is unchanged a sync reports it again without parsing it."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    reason: str
    attempted_at: float
    skipped: bool = False  # no text found: reported as skipped, not as a failure

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> FailedFile:
        return cls(
            path=str(meta["path"]),
            size=int(meta.get("size", 0)),
            mtime_ns=int(meta.get("mtime_ns", 0)),
            sha256=str(meta.get("sha256", "")),
            reason=str(meta.get("reason", "")),
            attempted_at=float(meta.get("attempted_at", 0.0)),
            skipped=bool(meta.get("skipped", False)),
        )


class Ledger:
    """A collection's file records, in its store."""

    def __init__(self, store: ChunkStore) -> None:
        self.store = store

    def entries(self) -> dict[str, FileEntry]:
        found = (FileEntry.from_meta(m) for m in self.store.records())
        return {e.path: e for e in sorted(found, key=lambda e: e.path)}

    def get(self, path: str) -> FileEntry | None:
        found = self.store.records([path])
        return FileEntry.from_meta(found[0]) if found else None

    def entries_of(self, paths: list[str]) -> dict[str, FileEntry]:
        """The records of these paths only (one request per thousand)."""
        found: dict[str, FileEntry] = {}
        for start in range(0, len(paths), 1000):
            for meta in self.store.records(paths[start : start + 1000]):
                found[str(meta["path"])] = FileEntry.from_meta(meta)
        return found

    def with_hash(self, sha256: str) -> str | None:
        """A recorded file with this content, if any."""
        found = self.store.records(where={"sha256": sha256})
        return min(str(m["path"]) for m in found) if found else None

    def record(
        self, path: str, size: int, mtime_ns: int, sha256: str, chunks: int, windows: int = 0
    ) -> None:
        entry = FileEntry(
            path, size, mtime_ns, sha256, chunks, time.time(), uuid.uuid4().hex, windows
        )
        self.store.put_records([asdict(entry)])

    def touch(self, path: str, size: int, mtime_ns: int) -> None:
        """Same content, new stat (e.g. the file was touched): remember the new mtime (the
        generation stays: the chunks did not change)."""
        if (entry := self.get(path)) is not None:
            self.store.put_records([{**asdict(entry), "size": size, "mtime_ns": mtime_ns}])

    def set_windows(self, path: str, windows: int) -> None:
        if (entry := self.get(path)) is not None:
            self.store.put_records([{**asdict(entry), "windows": windows}])

    def forget(self, path: str) -> None:
        self.store.delete_records([path])

    # --- files that failed ----------------------------------------------------------------
    def failures(self, paths: list[str] | None = None) -> dict[str, FailedFile]:
        """The failure records of these paths (all of them without: O(failed files))."""
        if paths is None:
            return {str(m["path"]): FailedFile.from_meta(m) for m in self.store.failures()}
        found: dict[str, FailedFile] = {}
        for start in range(0, len(paths), 1000):
            for meta in self.store.failures(paths[start : start + 1000]):
                found[str(meta["path"])] = FailedFile.from_meta(meta)
        return found

    def remember_failure(self, failure: FailedFile) -> None:
        self.store.put_failures([asdict(failure)])

    def forget_failures(self, paths: list[str]) -> None:
        if paths:
            self.store.delete_failures(paths)

    def import_legacy(self, db_path: Path) -> int:
        """Records of an earlier ragapp (ledger.sqlite in the data dir), moved into the store once,
        when the store holds chunks but no records. Returns how many were moved."""
        if not db_path.is_file() or not self.store.exists() or self.store.records():
            return 0
        try:
            with closing(sqlite3.connect(db_path)) as conn:
                rows = conn.execute(
                    "SELECT path, size, mtime_ns, sha256, chunks, ingested_at FROM files "
                    "WHERE collection = ?",
                    (self.store.name,),
                ).fetchall()
        except sqlite3.Error:
            return 0
        if rows:
            self.store.put_records(
                [
                    asdict(FileEntry(path, size, mtime, sha, chunks, at, uuid.uuid4().hex))
                    for path, size, mtime, sha, chunks, at in rows
                ]
            )
        return len(rows)


def is_under(source: str, root: Path) -> bool:
    """Whether a recorded source path lies in ``root`` (or is ``root``)."""
    p, root = Path(source), Path(source_key(root))
    return p == root or root in p.parents


def source_key(path: Path | str) -> str:
    """A path as it is stored and shown, losslessly: the bytes of a name that are not
    UTF-8 (which Python holds as surrogate escapes) become ``\\xNN``, as ``ls -b`` shows
    them; every other path is unchanged. ``source_path`` turns it back."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


_ESCAPED_BYTE = re.compile(rb"\\x([89a-f][0-9a-f])")


def source_path(source: str) -> Path:
    """The file a stored source names: the inverse of ``source_key``. A name that really
    holds a backslash sequence (and exists) is taken as it is."""
    path = Path(source)
    if "\\x" not in source or path.exists() or path.is_symlink():
        return path
    raw = _ESCAPED_BYTE.sub(lambda m: bytes([int(m[1], 16)]), source.encode("utf-8"))
    return Path(os.fsdecode(raw))


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(source: str) -> str:
    """A source for a report line or a log: control characters in a name (a newline, a
    tab) shown escaped (``\\n``), so one file stays one line."""
    return _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), source)
