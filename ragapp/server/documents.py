"""Documents of a collection: list (the files that failed too), save uploads, ingest them,
re-sync, delete.

Re-sync: the ledger records files, not the folders they were ingested from. Re-ingesting
each file's parent folder would pull in every sibling the user never chose (ingesting
~/Downloads/report.pdf must not index all of ~/Downloads), so a sync re-checks every file
the collection holds (changed ones are re-embedded, deleted ones removed) and mirrors the
collection's uploads folder (files put there are added). New files in a folder ingested
from the command line are picked up by `ragapp ingest FOLDER`, as before.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from fastapi import HTTPException

from ingest.loaders import PARTITIONERS, file_type
from ingest.pipeline import ingest_paths
from ragapp.app import RagApp
from ragapp.collection import Collection
from ragapp.errors import RagappError
from ragapp.ledger import FailedFile, FileEntry, source_key, source_path
from ragapp.server.jobs import Job
from ragapp.server.security import safe_filename
from ragapp.server.state import ServerState, document_id

SUPPORTED_EXTENSIONS = sorted(PARTITIONERS)
CHANGED = "the file changed since it was ingested; re-sync"

log = logging.getLogger(__name__)


def document_json(collection: Collection, entry: FileEntry) -> dict[str, Any]:
    doc_id = document_id(entry.path)
    query = f"?collection={collection.name}"
    return {
        "id": doc_id,
        "name": Path(entry.path).name,
        "path": entry.path,
        "type": file_type(Path(entry.path)),
        "chunks": entry.chunks,
        "bytes": entry.size,
        "ingested_at": _iso(entry.ingested_at),
        "uploaded": collection.is_upload(entry.path),
        "file_url": f"/api/documents/{doc_id}/file{query}",
        "view_url": f"/documents/{doc_id}{query}",
    }


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def find_document(collection: Collection, doc_id: str) -> FileEntry | None:
    """The file record with this id; only files in the collection can be found."""
    return next((e for e in collection.files().values() if document_id(e.path) == doc_id), None)


def open_as_ingested(collection: Collection, entry: FileEntry) -> tuple[BinaryIO, os.stat_result]:
    """The document's file, opened, if it holds the bytes that were ingested: its sha256 is
    taken from this descriptor, which is then served, so what is there now (another file, a
    link put in its place) is never sent. 410 when it is gone, 409 when it changed.

    Size and mtime can't vouch for it (an archive sets an mtime; any user can read a secret
    file's size and mtime to copy them), so every request hashes the file. An upload is saved
    as a regular file, so a link in its place is refused unread; a recorded path may be a
    link (``--follow-symlinks``), and what it points at must hold the ingested bytes."""
    path, name = source_path(entry.path), Path(entry.path).name
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    if collection.is_upload(entry.path):
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)  # O_NONBLOCK: a FIFO put in its place does not hang
    except (FileNotFoundError, NotADirectoryError):
        raise HTTPException(410, f"{name} is no longer on disk (run a re-sync)") from None
    except OSError:  # a link in an upload's place (ELOOP), a file no longer readable
        raise HTTPException(409, CHANGED) from None
    file = os.fdopen(fd, "rb")
    try:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size != entry.size:
            raise HTTPException(409, CHANGED)
        digest = hashlib.sha256()
        while block := file.read(1 << 20):
            digest.update(block)
        if digest.hexdigest() != entry.sha256:
            raise HTTPException(409, CHANGED)
        file.seek(0)
    except BaseException:
        file.close()
        raise
    return file, info


def failed_files(collection: Collection, known: Iterable[str]) -> list[FailedFile]:
    """The files that could not be ingested (or held no text), by path, leaving out any
    that the collection holds (``known``) from an earlier, good version."""
    recorded = set(known)
    failures = collection.ledger.failures()
    return [failures[p] for p in sorted(failures) if p not in recorded]


def failed_json(collection: Collection, failure: FailedFile) -> dict[str, Any]:
    return {
        "id": document_id(failure.path),
        "name": Path(failure.path).name,
        "path": failure.path,
        "type": file_type(Path(failure.path)),
        "bytes": failure.size,
        "reason": failure.reason,
        "skipped": failure.skipped,
        "attempted_at": _iso(failure.attempted_at),
        "uploaded": collection.is_upload(failure.path),
    }


def find_failure(collection: Collection, doc_id: str) -> FailedFile | None:
    """The failure record with this id (a file that is in the collection is not one)."""
    failed = failed_files(collection, collection.files())
    return next((f for f in failed if document_id(f.path) == doc_id), None)


def unique_names(names: list[str]) -> list[str]:
    """Sanitised names, made distinct within one upload ('a.txt', 'a-2.txt')."""
    seen: set[str] = set()
    out = []
    for raw in names:
        name = safe_filename(raw)
        stem, dot, ext = name.rpartition(".")
        if not dot:
            stem, ext = name, ""
        candidate, n = name, 1
        while candidate.lower() in seen:
            n += 1
            candidate = f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}"
        seen.add(candidate.lower())
        out.append(candidate)
    return out


def ingest_files(state: ServerState, app: RagApp, paths: list[Path]) -> Any:
    """A job's work: ingest these files into the collection."""

    def work(job: Job) -> dict[str, Any]:
        job.expect([str(p) for p in paths])
        report = ingest_paths(paths, app.collection, job)
        refresh_search_index(state, app)
        return report.to_json()

    return work


def resume_uploads(state: ServerState) -> list[str]:
    """At startup: ingest the uploads a stopped (or killed) server saved but never
    ingested, one job per collection, and delete the partial files of uploads cut off
    while being saved. Returns the ids of the jobs started."""
    root = state.settings.data_dir / "uploads"
    jobs = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        for partial in folder.glob(".upload-*.part"):
            partial.unlink(missing_ok=True)  # save_upload's temp file: never renamed
        try:
            app = state.app(folder.name)
            known = set(app.collection.files()) | set(app.collection.ledger.failures())
        except RagappError as exc:  # not a name ragapp makes, or a store it can't open
            log.warning("uploads of %r not resumed: %s", folder.name, exc)
            continue
        pending = [
            p
            for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".") and source_key(p) not in known
        ]
        if pending:
            log.info(
                "collection %r: ingesting %d upload(s) saved before the server stopped",
                folder.name,
                len(pending),
            )
            job = state.jobs.submit("upload", folder.name, ingest_files(state, app, pending))
            jobs.append(job.id)
    return jobs


def sync_collection(state: ServerState, app: RagApp) -> Any:
    """A job's work: re-check every known file and mirror the uploads folder."""
    collection = app.collection

    def work(job: Job) -> dict[str, Any]:
        known = collection.files()
        uploads = collection.uploads_dir
        outside = [p for p in known if not collection.is_upload(p)]
        gone = [p for p in outside if not source_path(p).is_file()]
        present = [p for p in outside if p not in gone]
        targets = [source_path(p) for p in present] + ([uploads] if uploads.is_dir() else [])
        job.expect(present)
        report = ingest_paths(targets, collection, job)
        if not uploads.is_dir():  # the uploads folder itself was deleted: forget its files
            gone += [p for p in known if collection.is_upload(p)]
        collection.remove_files(gone)
        report.removed += len(gone)
        for path in gone:
            job.set_file(path, "removed")
        refresh_search_index(state, app)
        return report.to_json()

    return work


def refresh_search_index(state: ServerState, app: RagApp) -> None:
    """After an ingest job: bring the BM25 index and window vectors up to date now, in an
    exclusive turn of the LLM queue (no question reads them meanwhile), not at the next
    question."""
    with state.queue.turn(exclusive=True):
        app.collection.refresh_search_index()


def delete_document(app: RagApp, entry: FileEntry | FailedFile) -> dict[str, Any]:
    """Remove a file's chunks and records (its failure record too), and the uploaded copy
    if it was an upload."""
    collection = app.collection
    chunks = collection.remove_files([entry.path])
    deleted = False
    if collection.is_upload(entry.path):
        path = source_path(entry.path)
        if path.is_file() or path.is_symlink():
            path.unlink()
            deleted = True
    return {
        "id": document_id(entry.path),
        "path": entry.path,
        "chunks": chunks,
        "upload_deleted": deleted,
    }
