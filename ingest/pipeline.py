"""Make a collection mirror the given files and folders.

For each file: unchanged content (same hash, complete in the store) is skipped; otherwise it
is parsed and chunked, its chunks are embedded together with other files' chunks in
batches, and then written per file (new chunks first, stale ones removed after). Files that
vanished from an ingested folder are removed. A file that fails is reported with its
reason and keeps whatever the store already had for it; the rest goes on.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ingest.chunking import chunk_elements
from ingest.discover import Discovered, discover, is_under
from ingest.loaders import LoadError, UnsupportedFile, file_type, load_elements
from ragapp.settings import Settings
from ragapp.store import ChunkStore
from ragapp.types import Chunk

# Embed once this many chunks are waiting: a few full embedding batches across small files,
# yet often enough that progress (files count when they are in the store) moves steadily.
_FLUSH_CHUNKS = 64


class IngestProgress(Protocol):
    def start(self, total_files: int) -> None: ...
    def file_done(self, path: str, status: str, chunks: int) -> None: ...


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0  # chunks embedded and written by this run
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "failed": [{"path": p, "reason": r} for p, r in self.failed],
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
        }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class _Pending:
    source: str
    status: str
    chunks: list[Chunk]


class _Run:
    def __init__(
        self, store: ChunkStore, settings: Settings, progress: IngestProgress | None
    ) -> None:
        self.store = store
        self.settings = settings
        self.progress = progress
        self.report = IngestReport()
        self.pending: list[_Pending] = []

    def _done(self, path: str, status: str, chunks: int = 0) -> None:
        if self.progress is not None:
            self.progress.file_done(path, status, chunks)

    def _fail(self, path: str, reason: str, status: str = "failed") -> None:
        (self.report.failed if status == "failed" else self.report.skipped).append((path, reason))
        self._done(path, status)

    def visit(self, found: Discovered, known: dict[str, Any]) -> None:
        path, source = found.path, str(found.path)
        try:
            size = path.stat().st_size
            if size > self.settings.max_file_mb * 1024 * 1024:
                raise LoadError(f"larger than the {self.settings.max_file_mb:g} MiB limit")
            file_hash = file_sha256(path)
            record = known.get(source)
            if record is not None and record.complete and record.file_hash == file_hash:
                self.report.unchanged += 1
                self._done(source, "unchanged")
                return
            chunks = chunk_elements(
                load_elements(path),
                source=source,
                file_hash=file_hash,
                file_type=file_type(path),
                chunk_size=self.settings.chunk_size,
                chunk_overlap=self.settings.chunk_overlap,
            )
            if not chunks:
                raise LoadError("no text found")
        except UnsupportedFile as exc:
            # Inside a folder an unsupported file is skipped; named on its own, it failed.
            self._fail(source, str(exc), "failed" if found.path == found.root else "skipped")
            return
        except LoadError as exc:
            self._fail(source, str(exc))
            return
        except OSError as exc:
            self._fail(source, f"cannot read: {exc.strerror or exc}")
            return
        self.pending.append(_Pending(source, "updated" if record else "added", chunks))
        if sum(len(p.chunks) for p in self.pending) >= _FLUSH_CHUNKS:
            self.flush()

    def flush(self) -> None:
        """Embed every waiting chunk in one go, then write file by file."""
        if not self.pending:
            return
        texts = [c.text for p in self.pending for c in p.chunks]
        vectors = self.store.embeddings.embed_documents(texts)
        at = 0
        for p in self.pending:
            n = len(p.chunks)
            self.store.write_file(p.source, p.chunks, vectors[at : at + n])
            at += n
            setattr(self.report, p.status, getattr(self.report, p.status) + 1)
            self.report.chunks += n
            self._done(p.source, p.status, n)
        self.pending.clear()


def ingest_paths(
    paths: list[Path],
    store: ChunkStore,
    settings: Settings,
    progress: IngestProgress | None = None,
    keep_deleted: bool = False,
) -> IngestReport:
    """Sync the collection with ``paths`` (files and folders)."""
    started = time.perf_counter()
    missing = [str(p) for p in paths if not Path(p).exists()]
    run = _Run(store, settings, progress)
    found = list(discover(p for p in paths if Path(p).exists()))
    if progress is not None:
        progress.start(len(found))
    known = store.files()
    for item in found:
        run.visit(item, known)
    run.flush()

    run.report.failed += [(p, "no such file or directory") for p in missing]
    if not keep_deleted:
        present = {str(f.path) for f in found}
        roots = [Path(p).expanduser().resolve() for p in paths if Path(p).is_dir()]
        for source in known:
            if source not in present and any(is_under(source, r) for r in roots):
                store.remove_file(source)
                run.report.removed += 1
    run.report.seconds = time.perf_counter() - started
    return run.report
