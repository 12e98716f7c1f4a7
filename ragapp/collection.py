"""A collection: the one owner of everything a collection is.

    chunks + vectors   the store (Chroma, or memory in unit tests)
    file records       the ledger: which files it holds, as of their last complete write
    derived search     BM25 and window vectors (query/keyword.py), rebuilt when stale
    uploads            DATA_DIR/uploads/NAME: files given to the server

Every front end (CLI, server, eval) and the ingest pipeline change a collection only
through this object, so the pieces stay in step: chunks are written before their file
record and removed before it, and every write gives the store a new ``generation``. A
process compares the generation it derived its search index from with the store's (one
cheap read) to know whether the index is stale, whoever wrote in between.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

from ragapp.errors import EmptyCollectionError
from ragapp.ledger import FileEntry, Ledger, is_under
from ragapp.query.keyword import KeywordIndex
from ragapp.query.retriever import ScoredRetriever, file_filter, to_source
from ragapp.settings import Settings
from ragapp.store import ChunkStore
from ragapp.types import Chunk, Source


class Collection:
    """One collection's chunks, file records, derived search index and uploads."""

    def __init__(self, settings: Settings, store: ChunkStore) -> None:
        self.settings = settings
        self.store = store
        self._index: KeywordIndex | None = None
        self._index_generation: str | None = None
        self._index_lock = threading.Lock()

    @cached_property
    def ledger(self) -> Ledger:
        """The file records (SQLite in the data dir), opened on first use."""
        return Ledger(self.settings.data_dir / "ledger.sqlite", self.name)

    @property
    def name(self) -> str:
        return self.settings.collection

    @property
    def uploads_dir(self) -> Path:
        return self.settings.data_dir / "uploads" / self.name

    @property
    def search_dir(self) -> Path:
        return self.settings.data_dir / "keyword" / self.name

    # --- reading ------------------------------------------------------------------------------
    def generation(self) -> str:
        return self.store.generation()

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
        return {
            "documents": len(self.files()),
            "chunks": self.count(),
            "embedding_model": self.store.spec.name,
            "store": self.settings.chroma_url or str(self.settings.store_path),
        }

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
    ) -> None:
        """Store a file's chunks, then its record (a crash between leaves the file
        unrecorded, so the next sync redoes it)."""
        self.store.write_file(source, chunks, vectors)
        self.ledger.record(source, size, mtime_ns, sha256, len(chunks))

    def touch_file(self, source: str, size: int, mtime_ns: int) -> None:
        """Same content, new stat (the file was touched): remember the new stat."""
        self.ledger.touch(source, size, mtime_ns)

    def copy_of(self, source: str) -> tuple[list[Chunk], list[list[float]]]:
        """A file's chunks and vectors, to reuse for identical content under another path."""
        return self.store.file_chunks(source)

    def remove_files(self, sources: Iterable[str]) -> int:
        """Take files out: their chunks first, then their records (a crash in between leaves
        a record whose chunks are gone, which the next sync repairs, never chunks nobody
        knows about). Returns the number of chunks removed."""
        chunks = 0
        for source in sources:
            chunks += self.store.remove_file(source)
            self.ledger.forget(source)
        return chunks

    def files_under(self, roots: Iterable[Path]) -> list[str]:
        """The recorded files at or under any of ``roots``."""
        targets = [Path(r).expanduser().resolve() for r in roots]
        return [s for s in self.files() if any(is_under(s, t) for t in targets)]

    def reset(self) -> bool:
        """Delete the chunks, the records and the derived index (uploads and the user's
        files are not touched). Returns whether the store had the collection."""
        dropped = self.store.drop()
        self.ledger.clear()
        with self._index_lock:
            shutil.rmtree(self.search_dir, ignore_errors=True)
            self._index, self._index_generation = None, None
        return dropped

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
    def search_index(self) -> KeywordIndex | None:
        """The derived side of hybrid search (BM25, and window vectors unless window_chars
        is 0), brought up to date when the store's generation moved since it was loaded:
        rebuilt if its chunks differ, windows embedded only for new chunks. None unless
        search is hybrid."""
        if self.settings.search != "hybrid":
            return None
        with self._index_lock:
            generation = self.generation()
            if self._index is None:
                self._index = KeywordIndex(
                    self.search_dir,
                    self.store,
                    embeddings=lambda: self.store.embeddings,
                    window_chars=self.settings.window_chars,
                )
            if generation != self._index_generation:
                self._index.refresh()
                self._index_generation = generation
            return self._index

    def refresh_search_index(self) -> None:
        """Bring the search index up to date now (after a write), not at the next question."""
        if self.settings.search == "hybrid" and self.count():
            self.search_index()

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
        self.require_chunks()
        s = self.settings
        return ScoredRetriever(
            store=self.store,
            k=k or s.top_k,
            min_score=s.min_score if min_score is None else min_score,
            filter=where,
            mmr_lambda=s.mmr_lambda if s.search == "mmr" else None,
            keyword=self.search_index(),
        )

    def retrieve(
        self, question: str, k: int | None = None, where: dict[str, Any] | None = None
    ) -> list[Source]:
        """Top-k chunks, best first, whatever their score (retrieval is not a judgement)."""
        return [to_source(d) for d in self.retriever(k, -1.0, where).invoke(question)]
