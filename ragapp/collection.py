"""A collection: the one owner of everything a collection is.

    chunks + vectors   the store (Chroma, or memory in unit tests)
    window vectors     in the store too, written with each file's chunks (ragapp.windows)
    file records       the ledger, in the store: which files it holds, as of their last
                       complete write, each with a generation
    BM25               a per-host cache (query/keyword.py), brought up to date file by file
    uploads            DATA_DIR/uploads/NAME: files given to the server
    write lock         DATA_DIR/locks/NAME.lock: one writer at a time on this host

Every front end (CLI, server, eval) and the ingest pipeline change a collection only
through this object, so the pieces stay in step: chunks are written before their file
record and removed before it, and every write gives the store a new ``generation``. A
process compares the generation it derived its search index from with the store's (one
cheap read) to know whether the index is stale, whoever wrote in between.

Everything but BM25 and the uploads is in the store, so hosts sharing a Chroma server
share the collection; the data dir holds caches that are rebuilt from it.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

from ragapp.errors import DiskFullError, EmptyCollectionError
from ragapp.ledger import FileEntry, Ledger, is_under
from ragapp.query.keyword import KeywordIndex
from ragapp.query.retriever import ScoredRetriever, file_filter, to_source
from ragapp.settings import Settings
from ragapp.store import ChunkStore
from ragapp.types import Chunk, Source
from ragapp.windows import Vector, embed_with_windows

log = logging.getLogger(__name__)
BACKFILL_HINT = "run `ragapp backfill`"
Progress = Callable[[str, int, int], None]  # (what, done, total)


def describe_missing(missing: dict[str, Any]) -> str:
    """One line on what lacks derived search data, and the command that makes it."""
    parts = []
    if n := missing["unrecorded_chunks"]:
        parts.append(f"{n} chunks have no file record (not in keyword search)")
    if n := missing["files_without_windows"]:
        parts.append(
            f"{n} files ({missing['chunks_without_windows']} chunks) have no window vectors"
        )
    return "; ".join(parts) + f": {missing['fix']}"


_LOG_FILES = 200  # re-indexing this many files (a new host's first look) is said aloud


def _log_progress(done: int, total: int) -> None:
    if total >= _LOG_FILES and (done == total or done % max(total // 4, 1) < 64):
        log.info("keyword index: %d of %d changed files read from the store", done, total)


_MiB = 1 << 20
# bytes on disk per byte of chunk text and vectors, an upper bound: the Debian FAQ's 234
# chunks (137 KB of text, 360 KB of chunk vectors, their window vectors) take 4.8 MB, as
# Chroma keeps each vector in its log and its index and indexes the text for full-text search
_STORE_OVERHEAD = 8


@dataclass(frozen=True)
class Copy:
    """What the store holds for a file, to reuse for identical content under another path."""

    chunks: list[Chunk]
    vectors: list[Vector]
    windows: list[list[Vector]]
    window_chars: int


class Collection:
    """One collection's chunks, file records, derived search index and uploads."""

    def __init__(self, settings: Settings, store: ChunkStore) -> None:
        self.settings = settings
        self.store = store
        self._index: KeywordIndex | None = None
        self._index_generation: str | None = None
        self._index_lock = threading.Lock()
        self._checked_generation: str | None = None  # the generation last seen not empty
        self._thread_write_lock = threading.RLock()  # threads of this process queue here
        self._write_depth = 0

    @cached_property
    def ledger(self) -> Ledger:
        """The file records (in the store); those of an earlier ragapp, kept in the data
        dir, are moved in on first use."""
        ledger = Ledger(self.store)
        if moved := ledger.import_legacy(self.settings.data_dir / "ledger.sqlite"):
            log.warning("moved %d file records of %r into the store", moved, self.name)
        return ledger

    @property
    def name(self) -> str:
        return self.settings.collection

    @property
    def uploads_dir(self) -> Path:
        return self.settings.data_dir / "uploads" / self.name

    @property
    def search_dir(self) -> Path:
        """This host's BM25 cache."""
        return self.settings.data_dir / "search" / self.name

    # --- reading ------------------------------------------------------------------------------
    def generation(self) -> str:
        """The store's generation, with this process's reads brought up to what other
        processes wrote (ChunkStore.follow)."""
        return self.store.follow()

    def count(self) -> int:
        """Chunks in the store."""
        return self.store.count()

    def files(self) -> dict[str, FileEntry]:
        """The file records, by path."""
        return self.ledger.entries()

    def require_chunks(self, hint: str = "run `ragapp ingest PATH` first") -> None:
        if self.count() == 0:
            raise EmptyCollectionError(f"collection {self.name!r} is empty: {hint}")

    def chunks_of(self, source: str) -> list[Chunk]:
        """A file's chunks in file order (the document viewer)."""
        return self.store.file_chunks(source)[0]

    def status(self) -> dict[str, Any]:
        files = self.files()
        chunks = self.count()
        return {
            "documents": len(files),
            "chunks": chunks,
            "embedding_model": self.store.spec.name,
            "store": self.settings.chroma_url or str(self.settings.store_path),
            "missing": self.missing(files, chunks),
        }

    def missing(
        self, files: dict[str, FileEntry] | None = None, chunks: int | None = None
    ) -> dict[str, Any]:
        """What lacks derived search data, from the records alone: chunks no file record
        counts (written by another tool, or a crash before the record: not in BM25), and
        files without window vectors at this window size. ``ragapp backfill`` makes both."""
        files = self.files() if files is None else files
        chunks = self.count() if chunks is None else chunks
        size = self.settings.window_chars
        no_windows = [e for e in files.values() if size and e.windows != size]
        missing: dict[str, Any] = {
            "unrecorded_chunks": max(0, chunks - sum(e.chunks for e in files.values())),
            "files_without_windows": len(no_windows),
            "chunks_without_windows": sum(e.chunks for e in no_windows),
        }
        if missing["unrecorded_chunks"] or missing["files_without_windows"]:
            missing["fix"] = BACKFILL_HINT
        return missing

    def is_upload(self, path: str) -> bool:
        return is_under(path, self.uploads_dir.resolve())

    # --- writing ------------------------------------------------------------------------------
    def write_file(
        self,
        source: str,
        chunks: Sequence[Chunk],
        vectors: Sequence[Sequence[float]],
        size: int,
        mtime_ns: int,
        sha256: str,
        windows: Sequence[Sequence[Sequence[float]]] | None = None,
        window_chars: int = 0,
    ) -> None:
        """Store a file's chunks and window vectors (cut at ``window_chars``), then its
        record (a crash between leaves the file unrecorded, so the next sync redoes it).
        Refused before anything is written when the disk would fill (``require_space``)."""
        per_window = len(vectors[0]) * 4 if vectors else 0
        stored = sum(len(c.text.encode()) for c in chunks) + per_window * (
            len(vectors) + sum(len(w) for w in windows or [])
        )
        self.require_space(_STORE_OVERHEAD * stored, source)
        try:
            self.store.write_file(source, chunks, vectors, windows)
            self.ledger.record(source, size, mtime_ns, sha256, len(chunks), window_chars)
        except Exception as exc:
            if self._disk_full(exc):
                raise self._full(source) from exc
            raise

    def require_space(self, incoming: int = 0, source: str | None = None) -> None:
        """Refuse a write that would leave less than ``min_free_mb`` free on the data dir's
        disk (a full disk is where SQLite and Chroma fail in ways that outlive the write)."""
        if self.settings.chroma_url:  # a server's data lives on its own disk
            return
        free = self._free_bytes()
        if free < self.settings.min_free_mb * _MiB + incoming:
            raise self._full(source)

    def _free_bytes(self) -> int:
        folder = self.settings.data_dir
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        return shutil.disk_usage(folder).free

    def _disk_full(self, exc: BaseException) -> bool:
        """Whether a store error is the disk filling up: ENOSPC, SQLite's "database or disk
        is full", or any error while (almost) nothing is left free."""
        text = str(exc).lower()
        if getattr(exc, "errno", None) == errno.ENOSPC or "disk is full" in text:
            return True
        return not self.settings.chroma_url and self._free_bytes() < _MiB

    def _full(self, source: str | None = None) -> DiskFullError:
        free = self._free_bytes() / _MiB
        at = f" before writing {source}" if source else ""
        return DiskFullError(
            f"not enough disk space{at}: {free:.0f} MiB free on the disk holding "
            f"{self.settings.data_dir} (ragapp keeps min_free_mb = "
            f"{self.settings.min_free_mb:g} MiB free); free some space and rerun: "
            "what was written is kept"
        )

    def embed(
        self, chunks: Sequence[Chunk], texts: Sequence[str]
    ) -> tuple[list[Vector], list[list[Vector]]]:
        """The vectors of chunks (embedding ``texts``) and of their windows at this
        collection's window size, in one embedder call."""
        return embed_with_windows(self.store.embeddings, texts, chunks, self.settings.window_chars)

    def touch_file(self, source: str, size: int, mtime_ns: int) -> None:
        """Same content, new stat (the file was touched): remember the new stat."""
        self.ledger.touch(source, size, mtime_ns)

    def copy_of(self, source: str) -> Copy:
        """A file's chunks, vectors and window vectors, to reuse for identical content
        under another path."""
        chunks, vectors = self.store.file_chunks(source)
        windows = self.store.file_windows(source)
        entry = self.ledger.get(source)
        return Copy(
            chunks, vectors, [windows.get(c.id, []) for c in chunks], entry.windows if entry else 0
        )

    def remove_files(self, sources: Iterable[str]) -> int:
        """Take files out: their chunks first, then their records (a crash in between leaves
        a record whose chunks are gone, which the next sync repairs, never chunks nobody
        knows about). Returns the number of chunks removed."""
        chunks = 0
        with self.write_lock():
            sources = list(sources)
            for source in sources:
                chunks += self.store.remove_file(source)
                self.ledger.forget(source)
            self.ledger.forget_failures(sources)
        return chunks

    def files_under(self, roots: Iterable[Path]) -> list[str]:
        """The recorded files at or under any of ``roots``."""
        targets = [Path(r).expanduser().resolve() for r in roots]
        return [s for s in self.files() if any(is_under(s, t) for t in targets)]

    def reset(self) -> bool:
        """Delete the chunks, the records (all in the store) and this host's BM25 cache
        (uploads and the user's files are not touched). Returns whether the store had the
        collection."""
        dropped = self.store.drop()
        with self._index_lock:
            shutil.rmtree(self.search_dir, ignore_errors=True)
            shutil.rmtree(self.settings.data_dir / "keyword" / self.name, ignore_errors=True)
            self._index, self._index_generation = None, None
        return dropped

    @contextmanager
    def write_lock(self, waiting: Callable[[], None] | None = None) -> Iterator[None]:
        """One writer at a time for this collection on this host (an ingest, the server's
        upload or delete jobs): a lock file in the data dir, held until the block ends and
        released by the OS if the process dies. ``waiting`` is called once if another
        process holds it."""
        with self._thread_write_lock:  # re-entrant: a sync removes files under its own lock
            if self._write_depth:
                self._write_depth += 1
                try:
                    yield
                finally:
                    self._write_depth -= 1
                return
            path = self.settings.data_dir / "locks" / f"{self.name}.lock"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if waiting is not None:
                        waiting()
                    fcntl.flock(fh, fcntl.LOCK_EX)
                self._write_depth = 1
                try:
                    yield
                finally:
                    self._write_depth = 0
                    fcntl.flock(fh, fcntl.LOCK_UN)

    def save_upload(self, name: str, data: BinaryIO) -> Path:
        """Write an upload into the uploads folder under ``name`` (already sanitised),
        atomically; an earlier upload of the same name is replaced."""
        folder = self.uploads_dir
        folder.mkdir(parents=True, exist_ok=True)
        root = folder.resolve()
        dest = root / name
        if dest.parent != root or name in ("", ".", ".."):
            raise ValueError(f"unsafe file name {name!r}")
        fd, tmp = tempfile.mkstemp(dir=root, prefix=".upload-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                data.seek(0)
                while block := data.read(1 << 20):
                    out.write(block)
            os.replace(tmp, dest)  # replaces a symlink itself, never writes through it
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest

    # --- searching ----------------------------------------------------------------------------
    def search_index(
        self, generation: str | None = None, progress: Callable[[int, int], None] | None = None
    ) -> KeywordIndex | None:
        """The BM25 side of hybrid search, brought up to date when the store's generation
        moved since it was last refreshed (by this process or another on this host): only
        files whose record generation changed are re-indexed. None unless search is hybrid."""
        if self.settings.search != "hybrid":
            return None
        with self._index_lock:
            generation = self.generation() if generation is None else generation
            if self._index is None:
                self._index = KeywordIndex(self.search_dir, self.store)
                self._index_generation = self._index.generation()
            if generation != self._index_generation:
                started = time.perf_counter()
                changed = self._index.refresh(self.files(), generation, progress or _log_progress)
                if changed >= _LOG_FILES:
                    log.info(
                        "keyword index of %r: %d files indexed in %.1f s",
                        self.name, changed, time.perf_counter() - started,
                    )  # fmt: skip
                self._index_generation = generation
            return self._index

    def refresh_search_index(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Bring the search index up to date now (after a write), not at the next question;
        ``progress(files_done, files_total)`` while it re-indexes."""
        if self.settings.search == "hybrid" and self.count():
            self.search_index(progress=progress)

    def backfill(self, progress: Progress | None = None) -> dict[str, int]:
        """Make the derived data that ``missing`` reports: a record for every file whose
        chunks have none (one pass over the chunks' metadata), then window vectors for
        every file without them at this window size (embedding those files' windows only).
        Chunks are not re-embedded and no file is parsed. Returns what was made."""
        done = {"recorded_files": 0, "windowed_files": 0, "windows": 0}
        with self.write_lock():
            files = self.files()
            if self.count() > sum(e.chunks for e in files.values()):
                done["recorded_files"] = self._record_unrecorded(files, progress)
                files = self.files()
            size = self.settings.window_chars
            todo = [e for e in files.values() if size and e.windows != size]
            for n, entry in enumerate(todo, start=1):
                chunks, vectors = self.store.file_chunks(entry.path)
                _, windows = self.embed(chunks, [])  # the chunks keep their vectors
                self.store.write_file(entry.path, chunks, vectors, windows)
                self.ledger.set_windows(entry.path, size)
                done["windowed_files"] += 1
                done["windows"] += sum(len(w) for w in windows)
                if progress is not None:
                    progress("windows", n, len(todo))
        return done

    def _record_unrecorded(self, files: dict[str, FileEntry], progress: Progress | None) -> int:
        counts: dict[str, int] = {}
        hashes: dict[str, str] = {}
        total, seen = self.count(), 0
        for page in self.store.walk():
            for _, meta in page:
                source = str(meta.get("source", ""))
                counts[source] = counts.get(source, 0) + 1
                hashes.setdefault(source, str(meta.get("file_hash", "")))
            seen += len(page)
            if progress is not None:
                progress("records", seen, total)
        new = [s for s in counts if s and s not in files]
        for source in new:
            # no stat: the next sync of its folder hashes the file and only touches the record
            self.ledger.record(source, 0, 0, hashes[source], counts[source])
        return len(new)

    def search_filter(
        self,
        paths: Sequence[str] | None,
        file_types: Sequence[str] | None,
        cwd: Path | None = None,
        option: str = "--path",
    ) -> dict[str, Any] | None:
        """The filter for path globs and file types; NoMatchingFileError when globs match no
        recorded file."""
        return file_filter(
            self.files() if paths else [], paths, file_types, cwd or Path.cwd(), option
        )

    def retriever(
        self,
        k: int | None = None,
        min_score: float | None = None,
        where: dict[str, Any] | None = None,
    ) -> ScoredRetriever:
        generation = self.generation()  # and follow what other processes wrote
        if generation != self._checked_generation:  # counting grows with the collection
            self.require_chunks()
            self._checked_generation = generation
        s = self.settings
        keyword = self.search_index(generation)
        return ScoredRetriever(
            store=self.store,
            k=k or s.top_k,
            min_score=s.min_score if min_score is None else min_score,
            min_score_margin=s.min_score_margin,
            filter=where,
            mmr_lambda=s.mmr_lambda if s.search == "mmr" else None,
            keyword=keyword,
            windows=s.window_chars > 0,
        )

    def retrieve(
        self, question: str, k: int | None = None, where: dict[str, Any] | None = None
    ) -> list[Source]:
        """Top-k chunks, best first, whatever their score (retrieval is not a judgement)."""
        return [to_source(d) for d in self.retriever(k, -1.0, where).invoke(question)]
