"""create_app: the one FastAPI app serving the API, the OpenAI-compatible API and the UI."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import ragapp
from ragapp.errors import RagappError
from ragapp.server import api, openai_api, ui
from ragapp.server.answers import AnswerFailed
from ragapp.server.documents import resume_uploads
from ragapp.server.security import GuardMiddleware
from ragapp.server.state import ServerState
from ragapp.settings import Settings

STATIC = Path(__file__).parent / "static"
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


class SecurityHeaders:
    """nosniff, referrers only to this server, no framing on everything; a strict CSP on HTML pages (no inline
    script, nothing from other origins)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                ]
                ctype = dict(headers).get(b"content-type", b"")
                if ctype.startswith(b"text/html"):
                    extra.append((b"content-security-policy", PAGE_CSP.encode()))
                headers += [(k, v) for k, v in extra if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _is_openai(request: Request) -> bool:
    return request.url.path.startswith("/v1/")


def _error(
    request: Request, status: int, detail: Any, kind: str, headers: Any = None
) -> JSONResponse:
    if _is_openai(request):
        body: dict[str, Any] = {
            "error": {"message": str(detail), "type": kind, "code": status, "param": None}
        }
    else:
        body = {"detail": detail, "error": kind}
    return JSONResponse(body, status_code=status, headers=headers)


def _retry_after(error: dict[str, Any]) -> dict[str, str] | None:
    """The Retry-After header of a BusyError's body (the line is full, time ran out)."""
    seconds = error.get("retry_after")
    return {"Retry-After": str(seconds)} if seconds else None


def _refused(
    request: Request, status: int, detail: str, headers: dict[str, str] | None
) -> JSONResponse:
    """GuardMiddleware's refusals (no token, foreign Host, cross-origin write) as the app's
    other errors."""
    return _error(request, status, detail, "http_error", headers)


def create_app(settings: Settings, *, token: str | None = None, preload: bool = False) -> FastAPI:
    """The server for ``settings``' data dir: API under /api, OpenAI-compatible API under
    /v1, the web UI at /. With ``token``, every route but /healthz and the sign-in page
    (security.PUBLIC_PATHS) needs it; a page sends a stranger to the sign-in page.
    ``preload`` loads the models in the background at startup."""
    state = ServerState(settings, token)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if preload:
            threading.Thread(target=state.preload, name="ragapp-preload", daemon=True).start()
        await to_thread.run_sync(resume_uploads, state)  # uploads a stop left un-ingested
        yield
        state.jobs.shutdown()

    app = FastAPI(
        title="ragapp",
        version=ragapp.__version__,
        summary="Private, fully local question answering over your own documents.",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN: the schema is at /openapi.json
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.server = state

    @app.exception_handler(RagappError)
    async def ragapp_error(request: Request, exc: RagappError) -> JSONResponse:
        return _error(
            request, exc.http_status, str(exc), type(exc).__name__, _retry_after(exc.to_json())
        )

    @app.exception_handler(AnswerFailed)
    async def answer_failed(request: Request, exc: AnswerFailed) -> JSONResponse:
        data = exc.data
        return _error(
            request, data.get("status", 500), data.get("detail"), data.get("error", ""),
            _retry_after(data),
        )  # fmt: skip

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(request, exc.status_code, exc.detail, "http_error", exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if _is_openai(request):
            first = exc.errors()[0] if exc.errors() else {}
            where = ".".join(str(p) for p in first.get("loc", ()))
            return _error(
                request, 422, f"{where}: {first.get('msg', 'invalid')}", "invalid_request_error"
            )
        return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)

    app.include_router(api.health)
    app.include_router(api.router)
    app.include_router(openai_api.router)
    app.include_router(ui.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(GuardMiddleware, auth=state.auth, refuse=_refused)
    app.add_middleware(SecurityHeaders)
    return app
