"""The HTTP API under /api, and /healthz."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, BinaryIO

from anyio import AsyncFile, to_thread
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from sse_starlette import EventSourceResponse
from starlette.datastructures import UploadFile
from starlette.types import Message, Receive, Scope, Send

import ragapp
from ragapp.app import RagApp
from ragapp.backends import configured
from ragapp.backends.base import DEMO_NOTE, is_demo_model
from ragapp.errors import ConfigError, RagappError
from ragapp.server import documents as docs
from ragapp.server.answers import (
    Question,
    answer_events,
    answer_once,
    answer_stream,
    as_list,
    chat_history,
    done_json,
)
from ragapp.server.schemas import (
    AnswerOut,
    AskRequest,
    ChatRequest,
    CollectionsOut,
    DeletedOut,
    DocumentOut,
    DocumentsOut,
    JobAccepted,
    JobOut,
    StatusOut,
)
from ragapp.server.security import require_token
from ragapp.server.state import EMPTY_HINT, ServerState

MIB = 1024 * 1024
MAX_FILES_PER_UPLOAD = 20
SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "application/json": {},
            "text/event-stream": {
                "description": "With `Accept: text/event-stream`: events `queued` "
                "{position}, `started`, `sources` {sources}, `token` {text} (repeated), "
                "then `done` {answer, refused, not_found, citations, citations_added, "
                "timings} or `error` {status, error, detail}."
            },
        }
    }
}

router = APIRouter(prefix="/api", dependencies=[Depends(require_token)], tags=["api"])
health = APIRouter(tags=["health"])


def server_state(request: Request) -> ServerState:
    return request.app.state.server


State = Annotated[ServerState, Depends(server_state)]


def collection_app(
    state: State,
    collection: Annotated[
        str | None, Query(description="Collection to use (default: the server's).")
    ] = None,
) -> RagApp:
    return state.app(collection)  # InvalidCollectionError: 422


App = Annotated[RagApp, Depends(collection_app)]


def wants_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


def _event(name: str, data: dict[str, Any]) -> dict[str, str]:
    return {"event": name, "data": json.dumps(data, ensure_ascii=False)}


async def _answer_response(
    request: Request, state: ServerState, app: RagApp, question: Question
) -> Any:
    await to_thread.run_sync(app.collection.require_chunks, EMPTY_HINT)
    state.queue.check_room()  # a full line: 503 + Retry-After, before any stream starts
    if not wants_stream(request):
        return (await answer_once(state, app, question)).to_json()

    async def events() -> AsyncIterator[dict[str, str]]:
        async with aclosing(answer_events(state, app, question)) as answer:
            async for name, data in answer:
                yield _event(name, done_json(data["answer"]) if name == "done" else data)

    return answer_stream(events())


def _where(app: RagApp, path: Any, file_type: Any) -> dict[str, Any] | None:
    # NoMatchingFileError (404) when path globs match no file
    return app.collection.search_filter(as_list(path), as_list(file_type), option="path")


@router.post("/ask", response_model=AnswerOut, responses=SSE_RESPONSE)
async def ask(body: AskRequest, request: Request, state: State, app: App) -> Any:
    """Answer a question from the collection: `ragapp ask --json`'s shape, or SSE events
    with `Accept: text/event-stream`. A refusal (no passage above min_score) is a normal
    answer with `refused: true` and no sources."""
    where = _where(app, body.path, body.type)
    return await _answer_response(request, state, app, Question(body.question, body.k, None, where))


@router.post("/chat", response_model=AnswerOut, responses=SSE_RESPONSE)
async def chat(body: ChatRequest, request: Request, state: State, app: App) -> Any:
    """Answer the last user message with the earlier ones as history (follow-up questions
    are rewritten into standalone ones before retrieval). Same responses as /api/ask."""
    *earlier, last = body.messages
    if last.role != "user" or not last.content.strip():
        raise HTTPException(422, "the last message must be the user's question")
    history = chat_history([(m.role, m.content) for m in earlier], app.settings.history_turns)
    where = _where(app, body.path, body.type)
    return await _answer_response(
        request, state, app, Question(last.content, body.k, history, where)
    )


# --- documents ----------------------------------------------------------------------------------


@router.get("/documents", response_model=DocumentsOut)
async def list_documents(app: App) -> Any:
    """The files in the collection with their chunk counts (as `ragapp sources`), and
    under `failed` the files that could not be ingested, with the reason."""

    def collect() -> tuple[list[Any], list[Any]]:
        files = app.collection.files()
        return list(files.values()), docs.failed_files(app.collection, files)

    entries, failed = await to_thread.run_sync(collect)
    rows = [docs.document_json(app.collection, e) for e in entries]
    return {
        "collection": app.settings.collection,
        "documents": rows,
        "chunks": sum(r["chunks"] for r in rows),
        "failed": [docs.failed_json(app.collection, f) for f in failed],
    }


def _document(app: RagApp, doc_id: str) -> Any:
    entry = docs.find_document(app.collection, doc_id)
    if entry is None:
        raise HTTPException(
            404, f"no document {doc_id!r} in collection {app.settings.collection!r}"
        )
    return entry


@router.get("/documents/{doc_id}", response_model=DocumentOut)
async def get_document(doc_id: str, app: App) -> Any:
    return docs.document_json(app.collection, await to_thread.run_sync(_document, app, doc_id))


_INLINE = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
}
_AS_TEXT = {"txt", "text", "md", "markdown", "rst", "csv", "html", "htm", "eml"}


class _OpenedFile(FileResponse):
    """A FileResponse (ranges, HEAD, ETag) of a file already opened and checked, sent from
    that descriptor: the path is never opened again, so a swap after the check is not
    served. Its path is "" so that a Starlette that opened by path would fail loudly."""

    def __init__(self, file: BinaryIO, info: os.stat_result, **kw: Any) -> None:
        super().__init__("", stat_result=info, **kw)
        self.file = file

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extensions = dict(scope.get("extensions") or {})
        extensions.pop("http.response.pathsend", None)  # the server would open the path
        try:
            await super().__call__({**scope, "extensions": extensions}, receive, send)
        finally:
            self.file.close()

    @asynccontextmanager
    async def _open_file(self) -> AsyncIterator[AsyncFile[bytes]]:
        self.file.seek(0)
        yield AsyncFile(self.file)


@router.get("/documents/{doc_id}/file", response_class=FileResponse)
async def document_file(doc_id: str, app: App) -> Any:
    """The ingested file itself, only for files in the collection, and only while it holds
    the bytes that were ingested (409 when it changed: re-sync; 410 when it is gone). PDFs
    and images open in the browser (append `#page=N` to a PDF's URL); text formats, HTML
    included, are sent as sandboxed plain text; other formats as downloads."""

    def checked() -> tuple[str, BinaryIO, os.stat_result]:
        entry = _document(app, doc_id)
        return (Path(entry.path).name, *docs.open_as_ingested(app.collection, entry))

    name, file, info = await to_thread.run_sync(checked)
    kind = Path(name).suffix.lower().lstrip(".")
    if kind in _INLINE:
        return _OpenedFile(
            file, info, media_type=_INLINE[kind], filename=name, content_disposition_type="inline"
        )
    if kind in _AS_TEXT:
        return _OpenedFile(
            file,
            info,
            media_type="text/plain; charset=utf-8",
            filename=name,
            content_disposition_type="inline",
            headers={"Content-Security-Policy": "sandbox; default-src 'none'"},
        )
    return _OpenedFile(file, info, filename=name)


def _limited(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise HTTPException(413, "upload too large")
        return message

    return wrapped


@router.post(
    "/documents",
    status_code=202,
    response_model=JobAccepted,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "files": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                            }
                        },
                        "required": ["files"],
                    }
                }
            },
        }
    },
)
async def upload_documents(request: Request, state: State, app: App) -> Any:
    """Upload one or more files (multipart field `files`): they are saved under
    DATA_DIR/uploads/COLLECTION/ with sanitised names and ingested in the background.
    413 when a file is over max_file_mb, 415 for an unsupported type (nothing is saved
    then). Follow the returned job with /api/jobs/{id} or /api/jobs/{id}/events."""
    limit = int(app.settings.max_file_mb * MIB)
    body_limit = limit * MAX_FILES_PER_UPLOAD + MIB
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > body_limit:
        raise HTTPException(413, f"upload larger than {body_limit // MIB} MiB")
    limited = Request(request.scope, _limited(request.receive, body_limit))
    form = await limited.form(max_files=MAX_FILES_PER_UPLOAD, max_fields=MAX_FILES_PER_UPLOAD)
    try:
        files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        if not files:
            raise HTTPException(422, "no files in the upload (multipart field 'files')")
        names = docs.unique_names([f.filename or "" for f in files])
        unsupported = [n for n in names if Path(n).suffix.lower() not in docs.SUPPORTED_EXTENSIONS]
        if unsupported:
            raise HTTPException(
                415,
                f"unsupported file type: {', '.join(unsupported)} "
                f"(supported: {' '.join(docs.SUPPORTED_EXTENSIONS)})",
            )
        too_big = [n for f, n in zip(files, names, strict=True) if (f.size or 0) > limit]
        if too_big:
            raise HTTPException(
                413,
                f"{', '.join(too_big)}: larger than the {app.settings.max_file_mb:g} MiB limit",
            )

        def save() -> list[Path]:
            return [
                app.collection.save_upload(n, f.file) for f, n in zip(files, names, strict=True)
            ]

        saved = await to_thread.run_sync(save)
    finally:
        await form.close()
    job = state.jobs.submit("upload", app.settings.collection, docs.ingest_files(state, app, saved))
    return _accepted(job.id, app, [
        {"name": p.name, "path": str(p), "bytes": p.stat().st_size} for p in saved
    ])  # fmt: skip


def _accepted(job_id: str, app: RagApp, files: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "collection": app.settings.collection,
        "files": files,
        "status_url": f"/api/jobs/{job_id}",
        "events_url": f"/api/jobs/{job_id}/events",
    }


@router.delete("/documents/{doc_id}", response_model=DeletedOut)
async def delete_document(doc_id: str, state: State, app: App) -> Any:
    """Remove a file's chunks and its ledger row, and delete the uploaded copy if it was
    uploaded through the server (files ingested from your folders are never touched).
    The id of a failed file (GET /api/documents `failed`) forgets its failure record."""

    def delete() -> dict[str, Any]:
        failed = docs.find_failure(app.collection, doc_id)
        return docs.delete_document(app, failed or _document(app, doc_id))

    return await to_thread.run_sync(delete)


@router.post("/sync", status_code=202, response_model=JobAccepted)
async def sync(state: State, app: App) -> Any:
    """Re-sync the collection in the background: every file it holds is re-checked
    (changed files re-embedded, deleted ones removed) and the uploads folder mirrored."""
    job = state.jobs.submit("sync", app.settings.collection, docs.sync_collection(state, app))
    return _accepted(job.id, app, [])


# --- jobs -----------------------------------------------------------------------------------------


def _job(state: ServerState, job_id: str) -> Any:
    job = state.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id!r}")
    return job


@router.get("/jobs/{job_id}", response_model=JobOut)
async def get_job(job_id: str, state: State) -> Any:
    """An ingest job's progress: files done of total, chunks written, failures, state."""
    return _job(state, job_id).to_json()


@router.get(
    "/jobs/{job_id}/events",
    responses={200: {"content": {"text/event-stream": {"description": "`progress` {job} on "
    "each change, then `done` {job}."}}}},
)  # fmt: skip
async def job_events(job_id: str, state: State) -> EventSourceResponse:
    """Server-sent events: `progress` with the job (as GET /api/jobs/{id}) whenever it
    changes, then `done` when it has finished (state done or failed)."""
    job = _job(state, job_id)

    async def events() -> AsyncIterator[dict[str, str]]:
        seen = -1
        while True:
            version, finished = job.version, job.finished
            if version != seen:
                seen = version
                yield _event("done" if finished else "progress", job.to_json())
            if finished:
                return
            await asyncio.sleep(0.15)

    return EventSourceResponse(events(), ping=15)


# --- status -------------------------------------------------------------------------------------


def gpu_facts(state: ServerState) -> dict[str, Any]:
    """Whether llama.cpp offloads to a GPU (the facts `ragapp doctor` reports)."""
    settings = state.settings
    build = state.llama_build()
    supported = bool(build.get("gpu_offload"))
    offloads = configured(settings).gpu_offload
    active = supported and offloads and settings.n_gpu_layers != 0
    loaded = state.models.llm_loaded
    layers_offloaded = None
    if loaded is not None and offloads:
        arch = loaded.metadata.get("general.architecture", "")
        layers = int(loaded.metadata.get(f"{arch}.block_count", 0) or 0)
        wanted = layers + 1 if settings.n_gpu_layers < 0 else min(settings.n_gpu_layers, layers + 1)
        layers_offloaded = wanted if active else 0
    return {
        "supported": supported,
        "active": active,
        "backend": build.get("backend", "CPU") if active else "CPU",
        "n_gpu_layers": settings.n_gpu_layers,
        "layers_offloaded": layers_offloaded,
    }


@router.get("/status", response_model=StatusOut)
async def status(state: State, app: App) -> Any:
    """The collection (documents, chunks), the models and store in use, and whether the LLM
    runs with GPU offload."""

    def collect() -> dict[str, Any]:
        gpu = gpu_facts(state)
        return {
            "collection": app.settings.collection,
            "documents": len(app.collection.files()),
            "chunks": app.collection.count(),
            "embedding_model": app.embedding_spec.name,
            "llm": app.llm_label,
            "llm_note": DEMO_NOTE if is_demo_model(app.settings) else None,
            "store": app.settings.chroma_url or str(app.settings.store_path),
            "backend": app.settings.llm_backend,
            "gpu": gpu,
            "gpu_offload": gpu["active"],
            "llm_loaded": state.models.llm_loaded is not None,
            "queue": state.queue.pending,
            "auth_required": bool(state.token),
            "max_upload_mb": app.settings.max_file_mb,
            "version": ragapp.__version__,
        }

    return await to_thread.run_sync(collect)


@router.get("/collections", response_model=CollectionsOut)
async def collections(state: State) -> Any:
    """Every collection in the store, with document and chunk counts."""

    def collect() -> dict[str, Any]:
        rows = []
        for name in state.collection_names():
            try:
                app = state.app(name)
                row: dict[str, Any] = {"documents": len(app.collection.files()), "error": None}
                row["chunks"] = app.collection.count()
            except ConfigError:
                continue  # not a name ragapp would have made
            except RagappError as exc:  # e.g. built with another embedding model
                row = {"documents": 0, "chunks": 0, "error": str(exc)}
            rows.append({"name": name, "default": name == state.default_collection, **row})
        return {"default": state.default_collection, "collections": rows}

    return await to_thread.run_sync(collect)


@health.get("/healthz")
async def healthz() -> JSONResponse:
    """Liveness: answers without a token and without touching the models."""
    return JSONResponse({"status": "ok"})
