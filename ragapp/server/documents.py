"""Documents of a collection: list, save uploads, ingest them, re-sync, delete.

Re-sync: the ledger records files, not the folders they were ingested from. Re-ingesting
each file's parent folder would pull in every sibling the user never chose (ingesting
~/Downloads/report.pdf must not index all of ~/Downloads), so a sync re-checks every file
the collection holds (changed ones are re-embedded, deleted ones removed) and mirrors the
collection's uploads folder (files put there are added). New files in a folder ingested
from the command line are picked up by `ragapp ingest FOLDER`, as before.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from ingest.discover import is_under
from ingest.loaders import PARTITIONERS, file_type
from ingest.pipeline import ingest_paths, remove_files
from ragapp.server.jobs import Job
from ragapp.server.security import safe_filename
from ragapp.server.state import CollectionApp, ServerState, document_id

SUPPORTED_EXTENSIONS = sorted(PARTITIONERS)


def is_upload(app: CollectionApp, path: str) -> bool:
    return is_under(path, app.uploads_dir.resolve())


def document_json(app: CollectionApp, entry: Any) -> dict[str, Any]:
    doc_id = document_id(entry.path)
    query = f"?collection={app.settings.collection}"
    return {
        "id": doc_id,
        "name": Path(entry.path).name,
        "path": entry.path,
        "type": file_type(Path(entry.path)),
        "chunks": entry.chunks,
        "bytes": entry.size,
        "ingested_at": datetime.fromtimestamp(entry.ingested_at, UTC).isoformat(timespec="seconds"),
        "uploaded": is_upload(app, entry.path),
        "file_url": f"/api/documents/{doc_id}/file{query}",
        "view_url": f"/documents/{doc_id}{query}",
    }


def find_document(app: CollectionApp, doc_id: str) -> Any | None:
    """The ledger entry with this id; only files in the collection can be found."""
    return next((e for e in app.ledger().entries().values() if document_id(e.path) == doc_id), None)


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


def save_upload(folder: Path, name: str, data: BinaryIO) -> Path:
    """Write an upload into ``folder`` under ``name`` (already sanitised), atomically; an
    earlier upload of the same name is replaced (and re-ingested as an update)."""
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


def ingest_files(state: ServerState, app: CollectionApp, paths: list[Path]) -> Any:
    """A job's work: ingest these files into the collection."""

    def work(job: Job) -> dict[str, Any]:
        job.expect([str(p) for p in paths])
        report = ingest_paths(paths, app.store, app.settings, job, ledger=app.ledger())
        refresh_search_index(state, app)
        return report.to_json()

    return work


def sync_collection(state: ServerState, app: CollectionApp) -> Any:
    """A job's work: re-check every known file and mirror the uploads folder."""

    def work(job: Job) -> dict[str, Any]:
        ledger = app.ledger()
        known = ledger.entries()
        uploads = app.uploads_dir
        outside = [p for p in known if not is_upload(app, p)]
        gone = [p for p in outside if not Path(p).is_file()]
        present = [Path(p) for p in outside if p not in gone]
        targets = present + ([uploads] if uploads.is_dir() else [])
        job.expect([str(p) for p in present])
        report = ingest_paths(targets, app.store, app.settings, job, ledger=ledger)
        if not uploads.is_dir():  # the uploads folder itself was deleted: forget its files
            gone += [p for p in known if is_upload(app, p)]
        remove_files(app.store, ledger, gone)
        report.removed += len(gone)
        for path in gone:
            job.set_file(path, "removed")
        refresh_search_index(state, app)
        return report.to_json()

    return work


def refresh_search_index(state: ServerState, app: CollectionApp) -> None:
    """After an ingest job: bring the BM25 index and window vectors up to date now, in the
    LLM queue's turn (no question reads them meanwhile), not at the next question."""
    state.keyword_changed(app.settings.collection)
    with state.queue.turn():
        state.prepare_retrieval(app)


def delete_document(state: ServerState, app: CollectionApp, entry: Any) -> dict[str, Any]:
    """Remove a file's chunks and ledger row, and the uploaded copy if it was an upload."""
    chunks = remove_files(app.store, app.ledger(), [entry.path])
    deleted = False
    if is_upload(app, entry.path):
        path = Path(entry.path)
        if path.is_file() or path.is_symlink():
            path.unlink()
            deleted = True
    state.keyword_changed(app.settings.collection)
    return {
        "id": document_id(entry.path),
        "path": entry.path,
        "chunks": chunks,
        "upload_deleted": deleted,
    }
