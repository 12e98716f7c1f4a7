"""Red-team checks of `ragapp serve` over HTTP, against a real uvicorn server on loopback
with the bundled embedder: the token on every route the app serves (the list is read from
the app, so a new route cannot slip past), ids, paths and names that try to leave the
collection or the uploads folder, uploaded HTML never served as a page, file names with
markup escaped, the limit on wrong guesses of the token, and the Host check (loopback names
only without a token, no malformed ones ever). No question reaches the LLM: the ones asked
are out of scope, so they are refused after retrieval."""

from __future__ import annotations

import mimetypes
import os
import re
import secrets
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ragapp.server import create_app
from ragapp.server.documents import SUPPORTED_EXTENSIONS
from ragapp.server.security import COOKIE, FAILURE_WINDOW_S, MAX_FAILURES, Auth
from ragapp.server.state import document_id
from ragapp.server.testing import running_server
from ragapp.settings import Settings
from tests.server_helpers import (
    LIGHTHOUSE,
    OUT_OF_SCOPE,
    server_settings,
    sse_events,
    upload,
    wait_for_job,
)

pytestmark = pytest.mark.e2e

TOKEN = "red-team-t0ken-4f9c"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "RAGAPP-RED-TEAM-SECRET-7d1e"  # in a file next to the data dir, never ingested
LEAKS = (SECRET, "root:x:0:", "GuardMiddleware", "def create_app")  # what a leak would show

# What answers without the token, and why. Everything else the app serves needs it.
PUBLIC_ROUTES = {
    ("GET", "/healthz"): "liveness for orchestrators: says {'status': 'ok'} and nothing else",
    ("GET", "/login"): "the sign-in page",
    ("POST", "/login"): "the sign-in form posts the token here",
    ("POST", "/logout"): "ends the session it is sent with; there is nothing to protect",
}
PUBLIC_ASSETS = {  # static files the sign-in page shows before anyone has signed in
    "/static/app.css": "the sign-in page's style sheet: bundled with ragapp, no user data",
    "/static/favicon.svg": "the sign-in page's logo: bundled with ragapp, no script in it",
}
LOGIN_PAGES = {("GET", "/"), ("GET", "/documents/{doc_id}")}  # HTML: strangers go to /login

MARKUP_NAMES = ["<img src=x onerror=alert(1)>.txt", '"><svg onload=alert(2)>.md']
EVIL_HTML = (
    b"<!doctype html><html><body><h1>Evil page</h1><p>The evil page talks about kittens.</p>"
    b"<script>alert('uploaded html ran')</script><img src=x onerror=alert(2)></body></html>"
)
EVIL_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert("svg ran")</script>'
    b"<text>An image about kittens.</text></svg>"
)
# types a browser runs scripts in when it renders them: none may be served as such
EXECUTABLE_TYPES = ("text/html", "application/xhtml", "image/svg", "text/xml", "application/xml",
                    "text/javascript", "application/javascript", "text/xsl", "multipart/")  # fmt: skip


@dataclass
class Guarded:
    """The server with a token, its documents, and where it may write."""

    url: str
    app: Any
    settings: Settings
    client: httpx.Client  # sends the bearer token
    root: Path  # the data dir's parent, where the secret lives
    doc_id: str  # lighthouse.txt
    job_id: str  # the (finished) first upload
    spare: dict[str, str]  # a document per auth mode for the DELETE route to remove
    jobs: list[str] = field(default_factory=list)  # started by the checks, awaited at the end

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    @property
    def auth(self) -> Auth:
        return self.app.state.server.auth

    @property
    def uploads(self) -> Path:
        return self.data_dir / "uploads" / self.settings.collection

    def documents(self) -> list[dict[str, Any]]:
        return self.client.get("/api/documents").json()["documents"]

    def document(self, name: str) -> dict[str, Any]:
        return next(d for d in self.documents() if d["name"] == name)


def _check_headers(response: httpx.Response) -> None:
    """On every response the suite sees: nosniff, and a CSP on HTML."""
    assert response.headers.get("x-content-type-options") == "nosniff", response.url
    if response.headers.get("content-type", "").startswith("text/html"):
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, response.url
        assert "object-src 'none'" in csp and "frame-ancestors 'none'" in csp


def client(url: str, **kw: Any) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=120, event_hooks={"response": [_check_headers]}, **kw)


def signed_in(url: str) -> str:
    """A session cookie from the sign-in form."""
    with client(url) as browser:
        res = browser.post("/login", data={"token": TOKEN}, follow_redirects=False)
        assert res.status_code == 303, res.text
        return res.cookies[COOKIE]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    root = tmp_path_factory.mktemp("hostile")
    (root / "secret.txt").write_text(f"{SECRET}\n")
    # parses run in this process: the parse sandbox is ingest's (test_crash_safety.py), and
    # starting its worker for each job would be most of this suite's time
    settings = server_settings(root / "data", parse_timeout_s=0, parse_memory_mb=0)
    app = create_app(settings, token=TOKEN)
    with running_server(app) as url, client(url, headers=BEARER) as http:
        files = [
            ("lighthouse.txt", LIGHTHOUSE.encode()),
            ("evil.html", EVIL_HTML),
            ("SHOUTING.HTM", EVIL_HTML),
            ("notes.md", b"# Notes\n\nThe notes mention <script>alert(3)</script> kittens.\n"),
            ("spare-bearer.txt", b"A spare file for the DELETE route (bearer).\n"),
            ("spare-cookie.txt", b"A spare file for the DELETE route (cookie).\n"),
        ]
        res = upload(http, files)
        assert res.status_code == 202, res.text
        job = wait_for_job(http, res.json()["job_id"])
        assert job["state"] == "done" and job["failures"] == [], job
        # names with markup can't come in through an upload (they are sanitised), but files
        # dropped into the uploads folder keep theirs: a re-sync ingests them as they are
        for name in MARKUP_NAMES:
            (settings.data_dir / "uploads" / "default" / name).write_text(
                f"A file called {name} about kittens.\n"
            )
        sync = wait_for_job(http, http.post("/api/sync").json()["job_id"])
        assert sync["report"]["added"] == len(MARKUP_NAMES), sync
        docs = {d["name"]: d["id"] for d in http.get("/api/documents").json()["documents"]}
        assert set(MARKUP_NAMES) <= set(docs)
        served = Guarded(
            url, app, settings, http, root, docs["lighthouse.txt"], job["id"],
            {"bearer": docs["spare-bearer.txt"], "cookie": docs["spare-cookie.txt"]},
        )  # fmt: skip
        yield served
        for job_id in served.jobs:
            wait_for_job(http, job_id)


@pytest.fixture(autouse=True)
def forgiven(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts with no wrong guesses counted against 127.0.0.1, where every
    request of this suite comes from."""
    yield
    if "guarded" in request.fixturenames:
        request.getfixturevalue("guarded").auth.failures.clear()


@pytest.fixture(scope="module")
def open_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The default server: no token, on loopback."""
    app = create_app(server_settings(tmp_path_factory.mktemp("open") / "data"))
    with running_server(app) as url:
        yield url


# --- the routes, from the app itself ---------------------------------------------------------


def served_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path) for every route of the app, routers included (as FastAPI's own OpenAPI
    builder walks them); a static mount as `/static/{path}`."""
    routes: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, Mount):
            assert isinstance(route.app, StaticFiles), f"a mount this suite can't probe: {route}"
            routes.add(("GET", f"{route.path}/{{path}}"))
        elif isinstance(route, Route):
            path = re.sub(r"{(\w+):\w+}", r"{\1}", str(context.path))  # {x:path}: {x}
            routes |= {(m, path) for m in context.methods or () if m != "HEAD"}
        else:
            raise AssertionError(f"a route of a kind this suite does not know: {route!r}")
    return routes


def static_mounts(app: Any) -> list[tuple[str, Path]]:
    """(URL prefix, folder) of each static mount."""
    mounts = (c.original_route for c in iter_route_contexts(app.routes))
    return [(m.path, Path(str(m.app.directory))) for m in mounts if isinstance(m, Mount)]


def static_files(app: Any) -> list[str]:
    """The URL of every file the static mounts serve."""
    return [
        f"{prefix}/{p.relative_to(folder).as_posix()}"
        for prefix, folder in static_mounts(app)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]


def concrete(s: Guarded, method: str, path: str, auth: str = "bearer") -> list[str]:
    """The URLs to try for a route: its parameters filled with real ids; a static mount,
    every file in it."""
    if path.endswith("/{path}"):
        return [u for u in static_files(s.app) if u.startswith(path.removesuffix("{path}"))]
    values = {"doc_id": s.spare[auth] if method == "DELETE" else s.doc_id, "job_id": s.job_id}
    names = set(re.findall(r"{(\w+)}", path))
    assert names <= set(values), f"{method} {path}: no value for {names - set(values)} here"
    return [path.format(**values)]


def request_for(s: Guarded, method: str, path: str) -> dict[str, Any]:
    """A well-formed request for the route: what it needs to succeed."""
    question = [{"role": "user", "content": OUT_OF_SCOPE}]
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/api/ask"): {"json": {"question": OUT_OF_SCOPE}},
        ("POST", "/api/chat"): {"json": {"messages": question}},
        ("POST", "/v1/chat/completions"): {"json": {"model": "ragapp", "messages": question}},
        ("POST", "/api/documents"): {
            "files": [("files", (f"works-{uuid.uuid4().hex[:6]}.txt", b"kittens\n", "text/plain"))]
        },
        ("POST", "/login"): {"data": {"token": TOKEN}},
    }
    assert set(bodies) <= served_routes(s.app), "a request for a route the app no longer has"
    return bodies.get((method, path), {})


def denied_as_expected(res: httpx.Response, method: str, path: str) -> bool:
    if (method, path) in LOGIN_PAGES:
        return res.status_code == 303 and res.headers["location"] == "/login"
    return res.status_code == 401 and res.headers.get("www-authenticate") == "Bearer"


WRONG_CREDENTIALS = {
    "none": {},
    "wrong bearer": {"Authorization": "Bearer not-the-token"},
    "an empty bearer": {"Authorization": "Bearer"},
    "the token under another scheme": {"Authorization": f"Basic {TOKEN}"},
    "the token itself as the cookie": {"Cookie": f"{COOKIE}={TOKEN}"},
    "a made-up session id": {"Cookie": f"{COOKIE}={secrets.token_urlsafe(32)}"},
}


def test_every_route_needs_the_token(guarded: Guarded) -> None:
    routes = served_routes(guarded.app)
    assert set(PUBLIC_ROUTES) <= routes and routes >= LOGIN_PAGES
    assert {("GET", "/static/{path}"), ("POST", "/api/ask"), ("GET", "/v1/models")} <= routes
    assert set(PUBLIC_ASSETS) <= set(static_files(guarded.app))
    let_in, checked = [], 0
    ended = signed_in(guarded.url)
    with client(guarded.url, cookies={COOKIE: ended}) as browser:
        assert browser.post("/logout", follow_redirects=False).status_code == 303
    with client(guarded.url) as stranger:
        for method, path in sorted(routes - set(PUBLIC_ROUTES)):
            for url in concrete(guarded, method, path):
                if url in PUBLIC_ASSETS:
                    continue
                tries = [(what, {"headers": h}) for what, h in WRONG_CREDENTIALS.items()]
                tries.append(("the token in the query", {"params": {"token": TOKEN}}))
                tries.append(
                    ("a session that signed out", {"headers": {"Cookie": f"{COOKIE}={ended}"}})
                )
                for verb in (method, "HEAD") if method == "GET" else (method,):
                    for what, creds in tries:
                        kw = request_for(guarded, method, path) if verb != "HEAD" else {}
                        guarded.auth.failures.clear()  # each guess checked, none limited
                        res = stranger.request(verb, url, **creds, **kw)
                        if not denied_as_expected(res, method, path):
                            let_in.append(f"{verb} {url} ({what}): {res.status_code}")
                        assert not any(leak in res.text for leak in LEAKS)
                        checked += 1
    assert not let_in, "let in without the token:\n" + "\n".join(let_in)
    assert checked > 100


def test_public_routes_and_assets_are_only_those_named(guarded: Guarded) -> None:
    with client(guarded.url) as stranger:
        assert stranger.get("/healthz").json() == {"status": "ok"}
        login = stranger.get("/login")
        assert login.status_code == 200 and 'name="token"' in login.text
        # the sign-in page needs exactly the public assets, and they answer without a token
        needed = set(re.findall(r'(?:src|href)="(/static/[^"?]+)', login.text))
        assert needed == set(PUBLIC_ASSETS)
        for asset in PUBLIC_ASSETS:
            res = stranger.get(asset)
            assert res.status_code == 200 and res.content
            assert b"<script" not in res.content.lower() and b"onload" not in res.content.lower()
        assert stranger.post("/login", data={"token": "wrong"}).status_code == 401
        assert stranger.post("/logout", follow_redirects=False).status_code == 303
        # /docs and /redoc (Swagger UI, ReDoc) would load scripts from a CDN: not served
        for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            assert guarded.client.get(path).status_code == 404
            assert stranger.get(path, follow_redirects=False).status_code == 303  # to /login
        # a path the app does not serve is refused without the token before a 404 says so
        for path in ("/api/nope", "/v1/nope", "/static/nope.js"):
            assert stranger.get(path).status_code == 401, path
            assert guarded.client.get(path).status_code == 404, path


@pytest.mark.parametrize("auth", ["bearer", "cookie"])
def test_every_route_works_with_the_token(guarded: Guarded, auth: str) -> None:
    creds = BEARER if auth == "bearer" else {}
    cookies = {COOKIE: signed_in(guarded.url)} if auth == "cookie" else {}
    with client(guarded.url, headers=creds, cookies=cookies) as http:
        for method, path in sorted(served_routes(guarded.app)):
            if (method, path) in {("POST", "/logout")}:
                continue  # checked above; it would end this client's session
            for url in concrete(guarded, method, path, auth):
                kw = request_for(guarded, method, path)
                res = http.request(method, url, follow_redirects=False, **kw)
                if (method, path) == ("POST", "/login"):
                    assert res.status_code == 303 and COOKIE in res.headers["set-cookie"]
                    continue
                assert res.status_code in (200, 202), (method, url, res.status_code, res.text)
                if res.status_code == 202:
                    guarded.jobs.append(res.json()["job_id"])
                if path.endswith("/events"):
                    assert res.headers["content-type"].startswith("text/event-stream")
                    assert sse_events(res)[-1][0] == "done"  # the job has finished: it ends
                if path in ("/api/ask", "/api/chat"):
                    assert res.json()["refused"] is True
                if method == "DELETE":
                    assert res.json()["upload_deleted"] is True


Raw = tuple[int, dict[str, str], bytes]  # status, headers, body


def raw(url: str, head: str, timeout: float = 10, head_only: bool = False) -> Raw:
    """Send the request head as written (no client normalises its path) and read the
    response until the server closes the connection, or to the end of its head."""
    parts = urlsplit(url)
    request = head.replace("\n", "\r\n").encode("latin-1") + b"\r\n\r\n"
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if head_only and b"\r\n\r\n" in data:
                break
    status_line, _, rest = data.partition(b"\r\n")
    header_block, _, payload = rest.partition(b"\r\n\r\n")
    headers = {}
    for line in header_block.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, payload


def raw_get(url: str, path: str, headers: dict[str, str] | None = None) -> Raw:
    host = urlsplit(url).netloc
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return raw(url, "\n".join(lines))


def test_refused_before_the_body_is_read(guarded: Guarded) -> None:
    """A stranger's request is answered 401 from its headers: the server neither waits
    for a body (a gigabyte announced, none sent) nor parses one (no 422 from the schema)."""
    host = urlsplit(guarded.url).netloc
    for method, path in sorted(served_routes(guarded.app) - set(PUBLIC_ROUTES)):
        if method not in ("POST", "PUT", "PATCH", "DELETE"):
            continue
        url = concrete(guarded, method, path)[0]
        head = f"{method} {url} HTTP/1.1\nHost: {host}\nConnection: close\n"
        head += "Content-Type: application/json\nContent-Length: 1073741824"
        started = time.monotonic()
        status, headers, _ = raw(guarded.url, head, timeout=5, head_only=True)
        assert status == 401 and time.monotonic() - started < 5, (method, path, status)
        assert headers["x-content-type-options"] == "nosniff"
        with client(guarded.url) as stranger:
            bad = stranger.request(
                method, url, content=b"{not json", headers={"content-type": "application/json"}
            )
        assert bad.status_code == 401, (method, path, bad.status_code, bad.text)


def test_guessing_the_token_is_limited(guarded: Guarded) -> None:
    """Thirty wrong tokens at once from one address, half through the sign-in form and half
    as bearer tokens: exactly MAX_FAILURES are checked (401), the rest get 429 unchecked, and
    so does the right token until the window frees. A session started before goes on."""
    session = signed_in(guarded.url)
    guarded.auth.failures.window_s = 5.0  # a minute in real life: too long to wait out here

    def guess(n: int) -> httpx.Response:
        with client(guarded.url) as stranger:
            if n % 2:
                return stranger.post("/login", data={"token": f"guess-{n}"})
            return stranger.get("/api/status", headers={"Authorization": f"Bearer guess-{n}"})

    try:
        with ThreadPoolExecutor(30) as pool:
            answers = list(pool.map(guess, range(30)))
        statuses = sorted(res.status_code for res in answers)
        assert statuses == [401] * MAX_FAILURES + [429] * (30 - MAX_FAILURES), statuses
        waits = [int(res.headers["retry-after"]) for res in answers if res.status_code == 429]
        assert all(1 <= wait <= 5 for wait in waits), waits
        limited = guarded.client.get("/api/status")  # the right token, not even checked
        assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 5
        with client(guarded.url, cookies={COOKIE: session}) as browser:
            assert browser.get("/api/status").status_code == 200
        time.sleep(int(limited.headers["retry-after"]))
        assert guarded.client.get("/api/status").status_code == 200
        signed_in(guarded.url)
    finally:
        guarded.auth.failures.window_s = FAILURE_WINDOW_S


# --- ids, paths and names that try to get out ------------------------------------------------


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def _outside_uploads(s: Guarded) -> dict[str, int]:
    """Every file under the root except the uploads folders and the data dir's own stores
    (whose files change with every write); a new top-level entry of the data dir counts."""
    internal = [p for p in s.data_dir.iterdir() if p.name != "uploads" and p.is_dir()]
    tree = _tree(s.root)
    allowed = [s.data_dir / "uploads", *internal]
    return {
        k: v for k, v in tree.items() if not any((s.root / k).is_relative_to(d) for d in allowed)
    }


HOSTILE_IDS = [
    "..",
    ".",
    "%2e%2e",
    "..%2f..%2f..%2fsecret.txt",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.txt",
    "..%5c..%5c..%5csecret.txt",
    "..\\..\\secret.txt",
    "%00",
    "0000%00.txt",
    "%2fetc%2fpasswd",
    "C:%5cWindows%5cwin.ini",
    "%c0%ae%c0%ae%c0%af",
    "a" * 8000,
]


def test_ids_cannot_reach_other_files(guarded: Guarded) -> None:
    secret = guarded.root / "secret.txt"
    ingested = guarded.document("lighthouse.txt")["path"]
    ids = [*HOSTILE_IDS,
           document_id(str(secret)),  # a well-formed id of a file not in the collection
           quote(str(secret), safe=""), quote(ingested, safe=""),  # paths instead of ids
           guarded.doc_id + "%00", guarded.doc_id + "%2f..%2f..", guarded.doc_id.upper()]  # fmt: skip
    before = len(guarded.documents())
    templates = [(m, p) for m, p in served_routes(guarded.app) if "{" in p and "static" not in p]
    assert {p for _, p in templates} >= {"/api/documents/{doc_id}/file", "/api/jobs/{job_id}"}
    host = urlsplit(guarded.url).netloc
    for method, template in sorted(templates):
        (param,) = re.findall(r"{\w+}", template)
        for value in ids:
            path = template.replace(param, value)
            head = f"{method} {path} HTTP/1.1\nHost: {host}\nConnection: close\n"
            head += f"Authorization: Bearer {TOKEN}"
            status, headers, body = raw(guarded.url, head)
            assert 400 <= status < 500, (method, path[:120], status, body[:300])
            assert headers.get("x-content-type-options") == "nosniff"
            assert not any(leak.encode() in body for leak in LEAKS), (method, path[:120])
    assert len(guarded.documents()) == before  # no DELETE found anything to remove


def test_a_file_swapped_for_a_link_after_ingest_is_not_served(
    guarded: Guarded, tmp_path: Path
) -> None:
    """The /etc/passwd swap: an ingested file replaced by a link to a file outside the
    collection (the secret next to the data dir) is refused, its content never sent."""
    from ingest.pipeline import ingest_paths

    folder = tmp_path / "shared-folder"
    folder.mkdir()
    report = folder / "report.txt"
    ingested = b"The quarterly report on the kittens of Kestrel Point.\n"
    report.write_bytes(ingested)
    ingest_paths([folder], guarded.app.state.server.app().collection)
    doc = guarded.document("report.txt")
    try:
        status, _, body = raw_get(guarded.url, doc["file_url"], BEARER)
        assert status == 200 and body == ingested
        report.unlink()
        report.symlink_to(guarded.root / "secret.txt")
        for headers in (BEARER, {**BEARER, "Range": "bytes=0-10"}):
            status, _, body = raw_get(guarded.url, doc["file_url"], headers)
            assert status == 409 and b"changed since it was ingested" in body, (status, body)
            assert not any(leak.encode() in body for leak in LEAKS)
    finally:
        assert guarded.client.delete(f"/api/documents/{doc['id']}").status_code == 200


STATIC_HOSTILE = [
    "/static/../security.py",
    "/static/../../server/security.py",
    "/static/..%2fsecurity.py",
    "/static/%2e%2e/security.py",
    "/static/%2e%2e%2fsecurity.py",
    "/static/..%5csecurity.py",
    "/static/..\\security.py",
    "/static/%5c..%5csecurity.py",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/../../../../../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/static/app.css%00",
    "/static/app.css%00.js",
    "/static/app.css/",
    "/static/app.css/..%2f..%2fsecurity.py",
    "/static/" + "a" * 8000,
    "/static/%c0%ae%c0%ae/security.py",
]


def test_static_paths_stay_in_the_static_folder(guarded: Guarded) -> None:
    assets = {url: guarded.client.get(url).content for url in static_files(guarded.app)}
    for path in STATIC_HOSTILE:
        for headers in ({}, BEARER):
            status, response_headers, body = raw_get(guarded.url, path, headers)
            assert status < 500, (path[:120], status)
            assert not any(leak.encode() in body for leak in LEAKS), path[:120]
            if status == 200:  # only ever one of the bundled assets
                assert body in assets.values(), path[:120]
            assert response_headers.get("x-content-type-options") == "nosniff"
    # the secret file next to the data dir, as a path relative to each static folder
    for mount, folder in static_mounts(guarded.app):
        relative = os.path.relpath(guarded.root / "secret.txt", folder)
        status, _, body = raw_get(guarded.url, f"{mount}/{relative}", BEARER)
        assert 400 <= status < 500 and SECRET.encode() not in body


HOSTILE_COLLECTIONS = [
    "..",
    "../x",
    "../../../../tmp/ragapp-red-team",
    "..\\..\\x",
    "/etc",
    "/tmp/ragapp-red-team",
    "default/../x",
    "default\x00",
    "a\x00b",
    "<script>",
    "default%2f..%2f..",
    "x" * 600,
    " ",
]


def test_collection_names_cannot_escape(guarded: Guarded) -> None:
    before = _outside_uploads(guarded)
    roots = {p.name for p in (guarded.data_dir / "uploads").iterdir()}
    takes_collection = [  # from the app's own schema
        (method.upper(), path)
        for path, operations in guarded.app.openapi()["paths"].items()
        for method, operation in operations.items()
        if any(p["name"] == "collection" for p in operation.get("parameters", []))
    ]
    assert ("POST", "/api/documents") in takes_collection and len(takes_collection) > 8
    takes_collection.append(("GET", "/documents/{doc_id}"))  # the viewer reads it too
    for method, path in sorted(takes_collection):
        url = concrete(guarded, method, path)[0]
        for name in HOSTILE_COLLECTIONS:
            kw = request_for(guarded, method, path)
            res = guarded.client.request(method, url, params={"collection": name}, **kw)
            assert res.status_code == 422, (method, path, name[:40], res.status_code, res.text)
    for name in HOSTILE_COLLECTIONS:
        res = guarded.client.post(
            "/v1/chat/completions",
            json={"model": f"ragapp:{name}", "messages": [{"role": "user", "content": "x?"}]},
        )
        assert res.status_code in (404, 422), (name[:40], res.status_code, res.text)
    assert _outside_uploads(guarded) == before
    assert {p.name for p in (guarded.data_dir / "uploads").iterdir()} == roots
    assert not Path("/tmp/ragapp-red-team").exists() and not Path("/etc/uploads").exists()


def test_collection_names_the_disk_or_the_store_refuse_are_422(guarded: Guarded) -> None:
    for name in ("a" * 300, "a..b", "127.0.0.1"):
        res = upload(guarded.client, [("kittens.txt", b"kittens\n")], collection=name)
        if res.status_code == 202:
            guarded.jobs.append(res.json()["job_id"])
        assert res.status_code == 422, (name[:20], res.status_code, res.text[:200])


def multipart(names: list[bytes], data: bytes = b"kittens and nothing else\n") -> tuple[bytes, str]:  # fmt: skip
    """A multipart body with file names exactly as given (no client escaping them)."""
    boundary = uuid.uuid4().hex
    body = b""
    for name in names:
        body += (f"--{boundary}\r\n".encode() + b'Content-Disposition: form-data; name="files"; '
                 b'filename="' + name + b'"\r\nContent-Type: text/plain\r\n\r\n' + data + b"\r\n")  # fmt: skip
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_upload_names_stay_in_the_uploads_folder(guarded: Guarded) -> None:
    tag = uuid.uuid4().hex[:8]
    absolute = Path(f"/tmp/ragapp-red-team-{tag}.txt")
    names = [
        f"../../../rt-{tag}-a.txt",
        f"..%2f..%2f..%2frt-{tag}-b.txt",
        f"..%252f..%252frt-{tag}-c.txt",
        str(absolute),
        f"..\\..\\..\\rt-{tag}-d.txt",
        f"C:\\Windows\\rt-{tag}-e.txt",
        f"rt-{tag}-f\x00.txt",
        f"rt-{tag}-g.txt\x00.html",
        f"\x00../../rt-{tag}-h.txt",
        f"{'x' * 400}-{tag}.txt",
        f".hidden-{tag}.txt",
        f"uploads/../../rt-{tag}-j.txt",
        f"aux.{tag}.txt",
        "<img src=x onerror=alert(1)>.txt",
        f"rt-{tag}-\u202etxt.md",
    ]
    before = _outside_uploads(guarded)
    body, ctype = multipart([n.encode() for n in names])
    res = guarded.client.post("/api/documents", content=body, headers={"content-type": ctype})
    assert res.status_code == 202, res.text
    guarded.jobs.append(res.json()["job_id"])
    saved = [Path(f["path"]) for f in res.json()["files"]]
    assert len(saved) == len(names)
    for path in saved:
        assert path.parent == guarded.uploads.resolve() and path.is_file(), path
        assert len(path.name) <= 140 and not path.name.startswith(".")
        assert not set(path.name) & set("/\\\x00<>\"'"), path.name
    wait_for_job(guarded.client, res.json()["job_id"])
    assert _outside_uploads(guarded) == before  # nothing written anywhere else
    assert not absolute.exists()
    assert not [p for p in Path("/tmp").glob(f"*{tag}*")]
    assert not [p for p in guarded.uploads.iterdir() if p.is_dir()]

    # names that sanitise to nothing usable, or are no file at all: 4xx, nothing saved
    files_before = sorted(guarded.uploads.iterdir())
    unusable = [b"", b".", b"..", b"/", b"\x00", b"../../etc/passwd", b"a.txt/", b"a" * 70000]
    for bad in [*unusable, f"kittens-{tag}.svg".encode()]:
        body, ctype = multipart([bad])
        res = guarded.client.post("/api/documents", content=body, headers={"content-type": ctype})
        assert 400 <= res.status_code < 500, (bad[:40], res.status_code, res.text)
    broken = guarded.client.post(
        "/api/documents",
        content=b"--x\r\nnot a part",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert 400 <= broken.status_code < 500
    assert sorted(guarded.uploads.iterdir()) == files_before


# --- uploaded content is never a page; names with markup are text ------------------------------


def test_uploaded_html_and_svg_are_never_served_as_pages(guarded: Guarded) -> None:
    for name in ("evil.html", "SHOUTING.HTM", "notes.md", "lighthouse.txt"):
        doc = guarded.document(name)
        res = guarded.client.get(doc["file_url"])
        assert res.status_code == 200 and b"<script>" in res.content  # the bytes, unchanged
        ctype = res.headers["content-type"]
        assert ctype.startswith("text/plain"), (name, ctype)
        assert "sandbox" in res.headers["content-security-policy"]
        assert res.headers["x-content-type-options"] == "nosniff"
    # an SVG is not a supported type: refused, and nothing saved
    before = sorted(guarded.uploads.iterdir())
    assert upload(guarded.client, [("kittens.svg", EVIL_SVG)]).status_code == 415
    assert sorted(guarded.uploads.iterdir()) == before
    # no supported type is one a browser would run scripts in, unless the file view makes it
    # plain text (HTML, shown above); a new type like .svg or .xhtml must be made safe first
    for ext in SUPPORTED_EXTENSIONS:
        guessed = mimetypes.guess_type(f"x{ext}")[0] or "application/octet-stream"
        if ext in (".html", ".htm"):
            continue
        assert not guessed.startswith(EXECUTABLE_TYPES), (ext, guessed)


def test_markup_in_file_names_is_escaped(guarded: Guarded) -> None:
    for name in MARKUP_NAMES:
        doc = guarded.document(name)
        html = guarded.client.get(doc["view_url"]).text
        assert name not in html, name  # the raw markup never reaches the page
        escaped = name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        escaped = escaped.replace('"', "&#34;")
        assert escaped in html, (name, html[:2000])
        res = guarded.client.get(doc["file_url"])
        assert res.status_code == 200 and "\n" not in res.headers["content-disposition"]
        assert '"><' not in res.headers["content-disposition"]
    # the listing that carries the names is JSON, never HTML
    assert guarded.client.get("/api/documents").headers["content-type"] == "application/json"


def test_markup_in_file_names_runs_nothing_in_a_browser(guarded: Guarded) -> None:
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium")
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    from playwright.sync_api import sync_playwright

    from tests.integration.test_browser import CHROMIUM_ARGS

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context()
        context.add_cookies([{"name": COOKIE, "value": signed_in(guarded.url), "url": guarded.url}])
        page = context.new_page()
        fired: list[str] = []
        page.on("dialog", lambda d: (fired.append(d.message), d.dismiss()))
        page.on("pageerror", lambda exc: fired.append(str(exc)))
        page.goto(guarded.url + "/")
        count = len(guarded.documents())
        page.wait_for_function(f"document.querySelectorAll('#doc-list .doc').length === {count}")
        names = page.locator("#doc-list .doc-name")
        assert set(MARKUP_NAMES) <= set(names.all_text_contents())
        assert page.locator("#doc-list img, #doc-list [onload], #doc-list [onerror]").count() == 0
        viewer = names.filter(has_text=MARKUP_NAMES[1]).get_attribute("href")
        page.goto(guarded.url + viewer)
        assert page.locator("h1.doc-title").text_content() == MARKUP_NAMES[1]
        page.goto(guarded.url + guarded.document("evil.html")["file_url"])
        page.wait_for_timeout(300)
        assert fired == [], fired
        browser.close()


# --- without a token: loopback Host names only ----------------------------------------------


FOREIGN_HOSTS = [
    "evil.example",
    "evil.example:80",
    "127.0.0.1.nip.io",
    "localhost.evil.example",
    "localhost.",
    "127.0.0.2",
    "0.0.0.0",
    "[::ffff:7f00:1]",
    "192.168.1.10:8000",
    "xn--lcalhost-9za",
]
MALFORMED_HOSTS = [  # refused with or without a token
    "127.0.0.1:{port}@evil.example",
    "localhost:{port}@evil.example:80",
    "[::1]:{port}@evil.example",
    "127.0.0.1:{port}:{port}",
    "127.0.0.1:",
    "[::1]x",
    "[::1",
    "127.0.0.1:{port}/x",
]


def test_without_a_token_only_loopback_hosts_are_served(open_url: str, guarded: Guarded) -> None:
    port = urlsplit(open_url).port
    requests = sorted(  # every route of the same app (the open server has no documents)
        (method, url)
        for method, path in served_routes(guarded.app)
        for url in concrete(guarded, method, path)
    )
    assert {("GET", "/healthz"), ("GET", "/static/app.js"), ("POST", "/api/ask")} <= set(requests)
    for host in FOREIGN_HOSTS:
        for method, url in requests:
            head = f"{method} {url} HTTP/1.1\nHost: {host}\nConnection: close\nContent-Length: 0"
            status, headers, body = raw(open_url, head)
            assert status == 400, (host, method, url, status)
            assert b"only answers to localhost" in body
            assert headers["x-content-type-options"] == "nosniff"
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        status, _, _ = raw(open_url, f"GET /api/status HTTP/1.1\nHost: {host}\nConnection: close")
        assert status == 200, host
    # with a token the server may be reached under any name, but only with the token
    status, _, _ = raw(
        guarded.url, "GET /api/status HTTP/1.1\nHost: evil.example\nConnection: close"
    )
    assert status == 401
    # and never under a malformed one: a userinfo part, two ports, an open bracket
    for url in (open_url, guarded.url):
        port = urlsplit(url).port
        for host in MALFORMED_HOSTS:
            head = f"GET /api/status HTTP/1.1\nHost: {host.format(port=port)}\nConnection: close"
            status, _, body = raw(url, f"{head}\nAuthorization: Bearer {TOKEN}")
            assert status == 400 and b"malformed Host header" in body, (url, host, status)
