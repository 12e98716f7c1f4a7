"""The web UI: one page (chat + documents), a login page when a token is set, and a
read-only viewer of a document's extracted text. Jinja2 escapes everything it renders;
the page's script builds the DOM with textContent only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

import ragapp
from ragapp.app import RagApp
from ragapp.server import documents as docs
from ragapp.server.security import COOKIE, TOO_MANY, retry_headers
from ragapp.server.state import ServerState, chunk_anchor

HERE = Path(__file__).parent
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
router = APIRouter(include_in_schema=False)


def _state(request: Request) -> ServerState:
    return request.app.state.server


def _render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(name).render(version=ragapp.__version__, **context)
    return HTMLResponse(html, status_code=status_code)


def _login_redirect(request: Request) -> Response | None:
    if _state(request).auth.check(request).right:
        return None
    return RedirectResponse("/login", status_code=303)


@router.get("/", response_class=HTMLResponse)
async def index(request: Request) -> Response:
    if (redirect := _login_redirect(request)) is not None:
        return redirect
    state = _state(request)
    return _render(
        "index.html",
        collection=state.default_collection,
        auth_required=bool(state.token),
        max_upload_mb=f"{state.settings.max_file_mb:g}",
        accept=",".join(docs.SUPPORTED_EXTENSIONS),
        extensions=" ".join(e.lstrip(".") for e in docs.SUPPORTED_EXTENSIONS),
    )


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    if not _state(request).token:
        return RedirectResponse("/", status_code=303)
    return _render("login.html", error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the token (within the client's limit of wrong guesses) and start a session:
    a random id in an HttpOnly, SameSite=Strict cookie, so the page, its API calls and file
    links work without sending the token."""
    auth = _state(request).auth
    if not auth.token:
        return RedirectResponse("/", status_code=303)
    form = await request.form(max_files=0, max_fields=2)
    guess = auth.guess(request, str(form.get("token", "")))
    if guess.retry_after:
        page = _render("login.html", 429, error=TOO_MANY.format(guess.retry_after).capitalize())
        page.headers.update(retry_headers(guess))
        return page
    if not guess.right:
        return _render("login.html", status_code=401, error="That token is not right.")
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE,
        auth.sessions.start(),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session on the server, so a copy of the cookie stops working too."""
    _state(request).auth.sessions.end(request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/documents/{doc_id}", response_class=HTMLResponse)
async def view_document(doc_id: str, request: Request, collection: str | None = None) -> Response:
    """A document's text as ingested, chunk by chunk with its page; `#c-...` anchors mark
    the chunks the answers cite."""
    if (redirect := _login_redirect(request)) is not None:
        return redirect
    state = _state(request)
    app = state.app(collection)  # InvalidCollectionError: 422

    def load() -> tuple[Any, list[dict[str, Any]]]:
        entry = docs.find_document(app.collection, doc_id)
        if entry is None:
            raise HTTPException(404, "no such document in this collection")
        return entry, _chunks(app, entry.path)

    entry, chunks = await to_thread.run_sync(load)
    info = docs.document_json(app.collection, entry)
    return _render("viewer.html", doc=info, chunks=chunks, collection=app.settings.collection)


def _chunks(app: RagApp, source: str) -> list[dict[str, Any]]:
    return [
        {"anchor": chunk_anchor(c.text), "text": c.text, "page": c.page, "section": c.section}
        for c in app.collection.chunks_of(source)
    ]
