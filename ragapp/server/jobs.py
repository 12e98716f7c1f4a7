"""Background ingest jobs (uploads and re-syncs), one at a time, with progress to poll or stream."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_KEEP_JOBS = 200  # finished jobs remembered for polling


@dataclass
class FileProgress:
    path: str
    status: str = "queued"  # queued | added | updated | unchanged | failed | skipped | removed
    chunks: int = 0
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "name": Path(self.path).name,
            "status": self.status,
            "chunks": self.chunks,
            "reason": self.reason,
        }


@dataclass
class Job:
    """One ingest run: its state and per-file progress. Written by the worker thread, read
    by request handlers; ``version`` moves on every change so watchers know when to send."""

    id: str
    kind: str  # "upload" | "sync"
    collection: str
    state: str = "queued"  # queued | running | done | failed
    files_total: int = 0
    files_done: int = 0
    chunks: int = 0
    files: dict[str, FileProgress] = field(default_factory=dict)
    report: dict[str, Any] | None = None
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    # the work after the files (``index``: the BM25 cache), files done of total
    current_phase: dict[str, Any] | None = None
    version: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    def expect(self, paths: list[str]) -> None:
        with self._lock:
            for path in paths:
                self.files.setdefault(path, FileProgress(path))
            self.version += 1

    def set_file(self, path: str, status: str, reason: str | None = None) -> None:
        with self._lock:
            progress = self.files.setdefault(path, FileProgress(path))
            progress.status, progress.reason = status, reason
            self.version += 1

    def set_state(self, state: str, **fields: Any) -> None:
        with self._lock:
            self.state = state
            for name, value in fields.items():
                setattr(self, name, value)
            self.version += 1

    # IngestProgress (ingest/pipeline.py)
    def start(self, total_files: int) -> None:
        with self._lock:
            self.files_total = max(total_files, len(self.files))
            self.version += 1

    def file_done(self, path: str, status: str, chunks: int) -> None:
        with self._lock:
            progress = self.files.setdefault(path, FileProgress(path))
            progress.status, progress.chunks = status, chunks
            self.files_done += 1
            self.chunks += chunks
            self.version += 1

    def phase(self, name: str, done: int, total: int) -> None:
        with self._lock:
            self.current_phase = {"name": name, "done": done, "total": total}
            self.version += 1

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return self._json()

    def _json(self) -> dict[str, Any]:
        failures = [
            {"path": f.path, "reason": f.reason or "failed"}
            for f in self.files.values()
            if f.status == "failed"
        ]
        return {
            "id": self.id,
            "kind": self.kind,
            "collection": self.collection,
            "state": self.state,
            "files_total": self.files_total,
            "files_done": self.files_done,
            "chunks": self.chunks,
            "failures": failures,
            "files": [f.to_json() for f in self.files.values()],
            "phase": self.current_phase,
            "report": self.report,
            "error": self.error,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
        }


class Jobs:
    """Runs ingest jobs one after another in a worker thread (they share the CPU and the
    embedder with each other and with questions)."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragapp-ingest")

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def submit(self, kind: str, collection: str, work: Callable[[Job], dict[str, Any]]) -> Job:
        job = Job(id=uuid.uuid4().hex[:12], kind=kind, collection=collection)
        with self._lock:
            self._jobs[job.id] = job
            finished = [j for j in self._jobs.values() if j.finished]
            for old in finished[: max(0, len(self._jobs) - _KEEP_JOBS)]:
                del self._jobs[old.id]
        self._worker.submit(self._run, job, work)
        return job

    @staticmethod
    def _run(job: Job, work: Callable[[Job], dict[str, Any]]) -> None:
        job.set_state("running")
        try:
            report = work(job)
            for failure in report.get("failed", []):
                job.set_file(failure["path"], "failed", failure["reason"])
            job.set_state("done", report=report, finished_at=time.time())
        except Exception as exc:  # noqa: BLE001 - reported to the client, logged here
            log.exception("ingest job %s failed", job.id)
            error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            job.set_state("failed", error=error, finished_at=time.time())

    def shutdown(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)
