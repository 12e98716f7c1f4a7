"""Make a collection mirror the given files and folders.

    discover → plan (stat; hash only when size/mtime moved) → parse + chunk in worker
    processes → embed in the main process, batched across files → write per file → ledger

Parsing runs in worker processes while the main process embeds, so the two overlap. A
file whose content the collection already holds under another path (moved, renamed,
copied) reuses those vectors instead of being parsed and embedded again. Files that
vanished from an ingested folder are removed. A file that fails is reported with its
reason (and logged in the data dir); it keeps whatever the store already had for it, and
the rest goes on.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ingest.chunking import chunk_elements, embedding_text, rekey
from ingest.discover import Discovered, discover
from ingest.limits import ParseLimits, ParsePool, memory_reason
from ingest.loaders import (
    NO_TEXT,
    LoadError,
    UnsupportedFile,
    file_type,
    is_supported,
    load_elements,
    use_local_spacy,
)
from ragapp.collection import Collection
from ragapp.ledger import FailedFile, FileEntry, is_under, one_line
from ragapp.types import Chunk

log = logging.getLogger("ragapp.ingest")
# Embed once this many chunks are waiting: a few full embedding batches across small files,
# yet often enough that progress (files count when they are in the store) moves steadily.
_FLUSH_CHUNKS = 64
# Fewer files than this to parse: in-process when the parse limits are off (starting a
# worker costs seconds). With them on, only small plain text is (no bomb fits in it, and a
# worker would cost more than its parse); the rest goes to a worker, under the limits.
_MIN_FILES_FOR_WORKERS = 6
_LIGHT_TYPES = frozenset({".txt", ".text", ".md", ".markdown", ".csv", ""})
_LIGHT_BYTES = 64 * 1024


class IngestProgress(Protocol):
    def start(self, total_files: int) -> None: ...
    def file_done(self, path: str, status: str, chunks: int) -> None: ...
    def phase(self, name: str, done: int, total: int) -> None:
        """Work after the files: ``index`` (the BM25 cache, files done of total)."""


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # failed or skipped files not parsed again (unchanged since then): path -> attempted at
    remembered: dict[str, str] = field(default_factory=dict)
    chunks: int = 0  # chunks written by this run
    reused: int = 0  # added/updated files whose vectors were copied, not recomputed
    seconds: float = 0.0
    # wall seconds by phase: scan (discover, stat, hash), parse (waiting on the parsers),
    # embed, write, remove, index (BM25); parsing overlaps embedding in worker processes
    phases: dict[str, float] = field(default_factory=dict)
    dry_run: bool = False
    changes: list[tuple[str, str]] = field(default_factory=list)  # (status, path)

    def _problem(self, path: str, reason: str) -> dict[str, Any]:
        if path in self.remembered:  # not parsed this time: when it was
            return {"path": path, "reason": reason, "attempted_at": self.remembered[path]}
        return {"path": path, "reason": reason}

    def count(self, status: str) -> None:
        setattr(self, status, getattr(self, status) + 1)

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.phases[phase] = self.phases.get(phase, 0.0) + time.perf_counter() - started

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "failed": [self._problem(p, r) for p, r in self.failed],
            "skipped": [self._problem(p, r) for p, r in self.skipped],
            "chunks": self.chunks,
            "reused": self.reused,
            "seconds": round(self.seconds, 3),
            "phases": {name: round(sec, 3) for name, sec in self.phases.items()},
        }
        if self.dry_run:
            data["dry_run"] = True
            data["changes"] = [{"status": s, "path": p} for s, p in self.changes]
        return data


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_file(
    path: Path,
    source: str,
    sha256: str,
    chunk_size: int,
    chunk_overlap: int,
    limits: ParseLimits | None = None,
) -> list[Chunk] | str:
    """Worker: the file at ``path`` to chunks under ``source``, or the reason it failed.
    Top-level so it pickles."""
    try:
        chunks = chunk_elements(
            load_elements(path, limits),
            source=source,
            file_hash=sha256,
            file_type=file_type(path),
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
        )
    except LoadError as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    except MemoryError:
        return memory_reason()
    return chunks or NO_TEXT


def _release_free_memory() -> None:
    """Hand freed heap back to the OS after each embedding batch. Batches of varying shapes
    fragment glibc's heap; without this, RSS crept up with corpus size (1,000 files: +228
    MB from a quarter of the run to its end, against +88 MB with it)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc() -> Any:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _load_libc()


def _init_worker() -> None:
    # Workers share the cores with the embedder: keep each parser single-threaded, and as
    # quiet as the main process (pandoc's and pdfminer's warnings are not the user's news).
    os.environ["OMP_NUM_THREADS"] = "1"
    for noisy in ("pypandoc", "unstructured", "pdfminer", "pypdf"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # Load what every parse needs now, so a file's time limit counts its parse, not the
    # seconds of imports a fresh worker spends before its first file.
    use_local_spacy()


@dataclass
class _Job:
    """A file that needs writing, with what is known about it."""

    path: Path
    source: str
    size: int
    mtime_ns: int
    sha256: str
    status: str  # "added" | "updated"
    reuse_from: str | None = None


class _Sync:
    def __init__(
        self,
        collection: Collection,
        progress: IngestProgress | None,
        dry_run: bool = False,
        retry_failed: bool = False,
        follow_symlinks: bool = False,
    ) -> None:
        self.dry_run = dry_run
        self.retry_failed = retry_failed
        self.follow_symlinks = follow_symlinks
        self.collection = collection
        self.settings = collection.settings
        self.progress = progress
        self.report = IngestReport()
        self.pending: list[tuple[_Job, list[Chunk]]] = []
        self.log_lines: list[str] = []
        self.failures: dict[str, FailedFile] = {}  # failure records of the files in view

    # --- bookkeeping ----------------------------------------------------------------------
    def done(self, path: str, status: str, chunks: int = 0) -> None:
        if self.progress is not None:
            self.progress.file_done(path, status, chunks)

    def fail(self, path: str, reason: str, skipped: bool = False) -> None:
        (self.report.skipped if skipped else self.report.failed).append((path, reason))
        if path in self.report.remembered:
            self.done(path, "skipped" if skipped else "failed")
            return  # logged when it was attempted
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        verdict = "skipped" if skipped else "failed"
        self.log_lines.append(f"{stamp}\t{verdict}\t{one_line(path)}\t{one_line(reason)}")
        self.done(path, "skipped" if skipped else "failed")

    # --- planning: what does each file need? ---------------------------------------------------
    def plan(
        self,
        found: Discovered,
        ledger: dict[str, FileEntry],
        twin_of: Callable[[str], str | None],
    ) -> _Job | None:
        """None when the file needs nothing (unchanged) or failed before parsing."""
        path, source = found.path, found.source
        if found.error:
            self.fail(source, found.error, skipped=found.skipped)
            return None
        try:
            if not is_supported(path):
                raise UnsupportedFile(f"unsupported file type {path.suffix or '(no extension)'!r}")
            st = path.stat()
            if st.st_size > self.settings.max_file_mb * 1024 * 1024:
                raise LoadError(f"larger than the {self.settings.max_file_mb:g} MiB limit")
            if st.st_size == 0:
                raise LoadError("empty file")
            entry = ledger.get(source)
            if entry and (entry.size, entry.mtime_ns) == (st.st_size, st.st_mtime_ns):
                self.report.unchanged += 1
                self.done(source, "unchanged")
                return None
            failure = None if self.retry_failed else self.failures.get(source)
            if failure and (failure.size, failure.mtime_ns) == (st.st_size, st.st_mtime_ns):
                self.still_failing(failure)
                return None
            sha = file_sha256(path)
            if failure and failure.sha256 == sha:  # touched, not changed: still failing
                if not self.dry_run:
                    self.collection.ledger.remember_failure(
                        replace(failure, size=st.st_size, mtime_ns=st.st_mtime_ns)
                    )
                self.still_failing(failure)
                return None
        except UnsupportedFile as exc:
            # Inside a folder an unsupported file is skipped; named on its own, it failed.
            self.fail(source, str(exc), skipped=found.path != found.root)
            return None
        except LoadError as exc:
            self.fail(source, str(exc))
            return None
        except OSError as exc:
            self.fail(source, f"cannot read: {exc.strerror or exc}")
            return None
        if entry and entry.sha256 == sha:
            if not self.dry_run:
                self.collection.touch_file(source, st.st_size, st.st_mtime_ns)
            self.report.unchanged += 1
            self.done(source, "unchanged")
            return None
        twin = twin_of(sha)
        if twin is not None and Path(twin).suffix.lower() != path.suffix.lower():
            twin = None  # same bytes, other format: parsed differently
        return _Job(
            path,
            source,
            st.st_size,
            st.st_mtime_ns,
            sha,
            "updated" if entry else "added",
            reuse_from=twin if twin and twin != source else None,
        )

    def still_failing(self, failure: FailedFile) -> None:
        """Report a file that failed (or held no text) and has not changed since, without
        parsing it again."""
        when = datetime.fromtimestamp(failure.attempted_at, UTC)
        self.report.remembered[failure.path] = when.isoformat(timespec="seconds")
        reason = (
            f"{failure.reason} (unchanged since the attempt of {when:%Y-%m-%d %H:%M} UTC; "
            "--retry-failed parses it again)"
        )
        self.fail(failure.path, reason, skipped=failure.skipped)

    # --- writing ----------------------------------------------------------------------------
    def add_parsed(self, job: _Job, result: list[Chunk] | str) -> None:
        if isinstance(result, str):
            skipped = result == NO_TEXT
            self.fail(job.source, result, skipped=skipped)
            failure = FailedFile(
                job.source, job.size, job.mtime_ns, job.sha256, result, time.time(), skipped
            )
            self.collection.ledger.remember_failure(failure)
            self.failures[job.source] = failure
            return
        self.pending.append((job, result))
        if sum(len(chunks) for _, chunks in self.pending) >= _FLUSH_CHUNKS:
            self.flush()

    def flush(self) -> None:
        """Embed every waiting chunk in one go (sorted by length inside the embedder), then
        write file by file, each followed by its ledger row."""
        if not self.pending:
            return
        every = [c for _, chunks in self.pending for c in chunks]
        with self.report.timed("embed"):
            vectors, windows = self.collection.embed(every, [embedding_text(c) for c in every])
        at = 0
        for job, chunks in self.pending:
            end = at + len(chunks)
            self.write(job, chunks, vectors[at:end], windows[at:end], self.settings.window_chars)
            at = end
        self.pending.clear()
        _release_free_memory()

    def write(
        self,
        job: _Job,
        chunks: Sequence[Chunk],
        vectors: Sequence[Sequence[float]],
        windows: Sequence[Sequence[Sequence[float]]],
        window_chars: int,
    ) -> None:
        with self.report.timed("write"):
            self.collection.write_file(
                job.source, chunks, vectors, job.size, job.mtime_ns, job.sha256,
                windows, window_chars,
            )  # fmt: skip
        if self.failures.pop(job.source, None) is not None:  # it parses now
            self.collection.ledger.forget_failures([job.source])
        self.report.count(job.status)
        self.report.chunks += len(chunks)
        self.done(job.source, job.status, len(chunks))

    def reuse(self, job: _Job) -> bool:
        """Copy the chunks and vectors of identical content held under another path."""
        assert job.reuse_from is not None
        copy = self.collection.copy_of(job.reuse_from)
        if not copy.chunks:
            return False
        moved = rekey(copy.chunks, source=job.source, file_type=file_type(job.path))
        self.write(job, moved, copy.vectors, copy.windows, copy.window_chars)
        self.report.reused += 1
        return True


def _parse_all(
    sync: _Sync, jobs: list[_Job], workers: int, parse: Callable[..., list[Chunk] | str]
) -> None:
    """Parse jobs in worker processes, under the parse limits (small text files in-process
    when there are few) and feed the results to the writer. Whenever no parse result is
    ready, the main process embeds what it has, so parsing and embedding overlap instead of
    waiting on each other."""
    limits = ParseLimits.from_settings(sync.settings)
    args = (sync.settings.chunk_size, sync.settings.chunk_overlap, limits)
    timed = sync.report.timed
    if workers < 1 or len(jobs) < _MIN_FILES_FOR_WORKERS:
        here = [j for j in jobs if workers < 1 or not limits.isolated or _light(j)]
        for job in here:
            with timed("parse"):
                result = parse(job.path, job.source, job.sha256, *args)
            sync.add_parsed(job, result)
        jobs = [j for j in jobs if j not in here]
        workers = min(workers, len(jobs))
    if not jobs:
        return
    todo = deque(enumerate(jobs))
    with ParsePool(workers, limits, parse, _init_worker) as pool:
        while todo or len(pool):
            while todo and pool.room > 0:
                key, job = todo.popleft()
                pool.submit(key, job.path, job.source, job.sha256, *args)
            ready = pool.collect(timeout=0)
            if not ready:
                if sync.pending:
                    sync.flush()  # embed while the parsers work
                    continue
                with timed("parse"):  # nothing to embed: waiting on the parsers
                    ready = pool.collect(timeout=None)
            for key, result in ready:
                sync.add_parsed(jobs[key], result)


def _light(job: _Job) -> bool:
    """A file cheaper to parse in-process than to hand to a worker: small plain text."""
    return job.path.suffix.lower() in _LIGHT_TYPES and job.size <= _LIGHT_BYTES


def ingest_paths(
    paths: Iterable[Path],
    collection: Collection,
    progress: IngestProgress | None = None,
    keep_deleted: bool = False,
    dry_run: bool = False,
    retry_failed: bool = False,
    follow_symlinks: bool = False,
) -> IngestReport:
    """Sync the collection with ``paths`` (files and folders), holding the collection's
    write lock: a second sync of overlapping folders waits, then finds them done. A file
    that failed before (or held no text) is reported again without being parsed while it
    is unchanged, unless ``retry_failed``. Links that lead outside the folders are skipped
    unless ``follow_symlinks``."""
    sync = _Sync(collection, progress, dry_run, retry_failed, follow_symlinks)
    if dry_run:
        return _ingest(paths, sync, keep_deleted)
    with collection.write_lock(lambda: _waiting(collection)):
        return _ingest(paths, sync, keep_deleted)


def _waiting(collection: Collection) -> None:
    log.warning("waiting for another process writing to collection %r", collection.name)


def _ingest(paths: Iterable[Path], sync: _Sync, keep_deleted: bool) -> IngestReport:
    started = time.perf_counter()
    collection, progress, dry_run = sync.collection, sync.progress, sync.dry_run
    settings = collection.settings
    paths = [Path(p).expanduser() for p in paths]
    sync.report.dry_run = dry_run
    missing = [str(p) for p in paths if not p.exists()]
    found = list(discover((p for p in paths if p.exists()), sync.follow_symlinks))
    if progress is not None:
        progress.start(len(found))
    roots = [p.resolve() for p in paths if p.is_dir()]
    if roots:  # a folder: every record, to find the files that vanished from it
        entries = collection.files()
        by_hash = {e.sha256: e.path for e in entries.values()}
        twin_of: Callable[[str], str | None] = by_hash.get
        sync.failures = collection.ledger.failures()
    else:  # files only: their own records, and a look-up per new content (cost: O(files given))
        entries = collection.ledger.entries_of([f.source for f in found])
        twin_of = collection.ledger.with_hash
        sync.failures = collection.ledger.failures([f.source for f in found])

    with sync.report.timed("scan"):
        jobs = [job for item in found if (job := sync.plan(item, entries, twin_of)) is not None]
    present = {f.source for f in found}
    # what was in there is unknown, not gone
    unlistable = [f.path for f in found if f.error and not f.skipped]
    gone = (
        []
        if keep_deleted
        else [
            s
            for s in entries
            if s not in present
            and any(is_under(s, r) for r in roots)
            and not any(is_under(s, u) for u in unlistable)
        ]
    )

    if dry_run:
        sync.report.changes = [(j.status, j.source) for j in jobs] + [("removed", s) for s in gone]
        for job in jobs:
            sync.report.count(job.status)
        sync.report.removed = len(gone)
    else:
        if jobs:
            collection.require_space()  # a full disk: one line now, not a parse wasted
        to_parse = [j for j in jobs if not (j.reuse_from and sync.reuse(j))]
        _parse_all(sync, to_parse, settings.resolved_ingest_workers, parse_file)
        sync.flush()
        with sync.report.timed("remove"):
            collection.remove_files(gone)
        sync.report.removed += len(gone)
        # the failure records of failed files that vanished from the folders
        collection.ledger.forget_failures(
            [s for s in sync.failures if s not in present and any(is_under(s, r) for r in roots)]
        )

    for path in missing:
        sync.fail(path, "no such file or directory")
    if sync.log_lines and not dry_run:
        log = settings.data_dir / "logs" / "ingest.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as fh:
            fh.write("\n".join(sync.log_lines) + "\n")
    report = sync.report
    if not dry_run and (report.chunks or report.removed or report.reused):
        # the BM25 cache, now rather than at the next question, as its own visible phase
        with report.timed("index"):
            collection.refresh_search_index(
                None if progress is None else lambda n, total: progress.phase("index", n, total)
            )
    report.seconds = time.perf_counter() - started
    return report
