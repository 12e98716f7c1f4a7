"""Security by default: loopback unless a token is set, the token on every route but a
named few, same-origin writes, loopback Host names (no DNS rebinding), and upload names
that cannot escape."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import unicodedata
from collections.abc import Callable
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "ragapp_session"
TOKEN_NEEDED = "missing or wrong token: send 'Authorization: Bearer <token>'"
PUBLIC_PATHS = frozenset(
    {"/healthz", "/login", "/logout", "/static/app.css", "/static/favicon.svg"}
)
"""What answers without the token when the server has one: liveness, signing in and out,
and the bundled style sheet and logo the sign-in page shows."""
_NOT_PAGES = ("/api/", "/v1/", "/static/", "/openapi.json")  # a stranger gets 401, not /login
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
_UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.I)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def session_value(token: str) -> str:
    """What the login cookie holds: derived from the token, never the token itself."""
    return hmac.new(token.encode(), b"ragapp-session-v1", hashlib.sha256).hexdigest()


def token_matches(given: str, token: str) -> bool:
    return hmac.compare_digest(given.strip().encode(), token.encode())


def request_authorized(request: Request, token: str | None) -> bool:
    """A bearer token in the Authorization header, or the login cookie."""
    if not token:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token_matches(given, token):
        return True
    cookie = request.cookies.get(COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), session_value(token).encode())


def require_token(request: Request) -> None:
    """Dependency of every /api and /v1 route: a bearer token (or the UI's login cookie)
    whenever the server has a token (a second lock: GuardMiddleware checks first)."""
    if not request_authorized(request, request.app.state.server.token):
        raise HTTPException(401, TOKEN_NEEDED, headers={"WWW-Authenticate": "Bearer"})


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):  # [::1]:8000
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def _cross_origin(origin: str | None, fetch_site: str | None, host: str) -> bool:
    """Whether a browser sent this request from another origin. Sec-Fetch-Site says so
    directly where the browser sends it; else the Origin header must name this host."""
    if fetch_site:
        return fetch_site not in ("same-origin", "none")
    if origin is None:
        return False  # not a browser's cross-origin request (curl, the openai client)
    return origin == "null" or urlsplit(origin).netloc.lower() != host.lower()


Refusal = Callable[[Request, int, str, dict[str, str] | None], Response]


class GuardMiddleware:
    """Three checks before any route runs, from the request's headers alone:

    - without a token the server is on loopback, and only loopback Host names are served,
      so a web page cannot reach it through DNS rebinding;
    - a write (POST, PUT, PATCH, DELETE) sent by a browser from another origin is refused,
      so a web page cannot upload, delete or ask through the user's browser (CORS is off,
      so it cannot read responses either);
    - with a token, only PUBLIC_PATHS answer without it: a page sends the stranger to
      /login, anything else is a 401, before a body is read or parsed. So every route is
      covered (/openapi.json and static files too), new ones included.
    ``refuse`` builds the refusals (the app's error shape).
    """

    def __init__(self, app: ASGIApp, token: str | None, refuse: Refusal) -> None:
        self.app = app
        self.token = token
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        host = request.headers.get("host", "")
        path, method = scope["path"], scope["method"]
        response = None
        if not self.token and _host_name(host).lower() not in LOOPBACK_NAMES:
            detail = "this server only answers to localhost (set a token to serve others)"
            response = self.refuse(request, 400, detail, None)
        elif method in _UNSAFE_METHODS and _cross_origin(
            request.headers.get("origin"), request.headers.get("sec-fetch-site"), host
        ):
            response = self.refuse(request, 403, "cross-origin request refused", None)
        elif (
            self.token and path not in PUBLIC_PATHS and not request_authorized(request, self.token)
        ):
            if method in ("GET", "HEAD") and not path.startswith(_NOT_PAGES):
                response = RedirectResponse("/login", status_code=303)
            else:
                bearer = {"WWW-Authenticate": "Bearer"}
                response = self.refuse(request, 401, TOKEN_NEEDED, bearer)
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)


def safe_filename(raw: str, fallback: str = "upload") -> str:
    """A plain file name from whatever the client sent: the last path component (either
    separator), letters, digits and a few punctuation marks, no leading dots, bounded length.
    The result never contains a separator or '..', so it cannot leave the uploads folder."""
    name = unicodedata.normalize("NFKC", raw or "")
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if ch.isprintable())
    name = re.sub(r"[^\w.\- ()+,]+", "_", name)
    name = re.sub(r"_{2,}", "_", name).strip(" ._-")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    stem, ext = stem.strip(" ._-")[:120], ext[:16]
    if not stem:
        stem = fallback
    if _WINDOWS_RESERVED.match(stem):
        stem = "_" + stem
    return f"{stem}.{ext}" if ext else stem
