"""Security by default: loopback unless a token is set, bearer-token checks, same-origin
writes, loopback Host names (no DNS rebinding), and upload names that cannot escape."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import unicodedata
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "ragapp_session"
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
    whenever the server has a token."""
    if not request_authorized(request, request.app.state.server.token):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


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


class GuardMiddleware:
    """Two checks before any route runs:

    - without a token the server is on loopback, and only loopback Host names are served,
      so a web page cannot reach it through DNS rebinding;
    - a write (POST, PUT, PATCH, DELETE) sent by a browser from another origin is refused,
      so a web page cannot upload, delete or ask through the user's browser (CORS is off,
      so it cannot read responses either).
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        problem = None
        if not self.token and _host_name(host).lower() not in LOOPBACK_NAMES:
            problem = (400, "this server only answers to localhost (set a token to serve others)")
        elif scope["method"] in _UNSAFE_METHODS and _cross_origin(
            headers.get("origin"), headers.get("sec-fetch-site"), host
        ):
            problem = (403, "cross-origin request refused")
        if problem is None:
            await self.app(scope, receive, send)
            return
        from starlette.responses import JSONResponse

        await JSONResponse({"detail": problem[1]}, status_code=problem[0])(scope, receive, send)


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
