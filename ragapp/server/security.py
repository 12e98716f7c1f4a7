"""Security by default: loopback unless a token is set, the token on every route but a
named few, same-origin writes, loopback Host names (no DNS rebinding), sign-in sessions
held by the server, a limit on wrong guesses of the token, and upload names that cannot
escape."""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "ragapp_session"
TOKEN_NEEDED = "missing or wrong token: send 'Authorization: Bearer <token>'"
TOO_MANY = "too many wrong tokens from this address: try again in {} s"
PUBLIC_PATHS = frozenset(
    {"/healthz", "/login", "/logout", "/static/app.css", "/static/favicon.svg"}
)
"""What answers without the token when the server has one: liveness, signing in and out,
and the bundled style sheet and logo the sign-in page shows."""
_NOT_PAGES = ("/api/", "/v1/", "/static/", "/openapi.json")  # a stranger gets 401, not /login
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_FAILURES = 10
"""Wrong tokens (sign-in form or bearer) one client may send in FAILURE_WINDOW_S seconds;
the next guess is answered 429 without being checked."""
FAILURE_WINDOW_S = 60.0
MAX_SESSIONS = 1000  # past it, a new sign-in ends the oldest session
_UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.I)
# RFC 3986's authority without userinfo: a name or IPv4 address, or an IPv6 literal in
# brackets, then an optional port of digits
_AUTHORITY = re.compile(
    r"(?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9.-]+))(?::(?P<port>[0-9]{1,5}))?"
)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str | None:
    """The host name of a Host header, lower case and without brackets or port; None when
    it is not a plain ``host[:port]`` (userinfo, a path, two ports, a port past 65535)."""
    match = _AUTHORITY.fullmatch(host_header)
    if match is None or (match["port"] and int(match["port"]) > 65535):
        return None
    if match["ip6"] is None:
        return match["name"].lower()
    try:
        ipaddress.IPv6Address(match["ip6"])
    except ValueError:
        return None
    return match["ip6"].lower()  # as written: [::1] is loopback, [0::1] is not


def token_matches(given: str, token: str) -> bool:
    return hmac.compare_digest(given.strip().encode(), token.encode())


def client_address(request: Request) -> str:
    """Whom the failure limit counts: the peer's address; for IPv6 its /64, which one
    machine usually holds whole."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # a Unix socket, or the test client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(frozen=True)
class Guess:
    """The outcome of one try of the token: right, wrong, or not checked because the
    client is over the limit (``retry_after`` seconds until its oldest failure expires)."""

    right: bool
    retry_after: int = 0


class FailureLimit:
    """At most ``limit`` wrong guesses per client in a sliding ``window_s``; past it a guess
    is refused unchecked until the oldest failure leaves the window. Right guesses don't
    count. In memory, per process; clients whose failures have expired are pruned."""

    def __init__(
        self,
        limit: int = MAX_FAILURES,
        window_s: float = FAILURE_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._pruned = clock()

    def guess(self, client: str, is_right: Callable[[], bool]) -> Guess:
        """Check a guess from ``client`` with ``is_right``, unless the client is over the
        limit; count it when it is wrong."""
        with self._lock:
            now = self.clock()
            self._prune(now)
            failures = self._failures.get(client)
            if failures is not None and len(failures) >= self.limit:
                wait = failures[0] + self.window_s - now
                if wait > 0:
                    return Guess(False, max(1, int(wait + 0.999)))
            if is_right():
                return Guess(True)
            if failures is None:
                failures = self._failures[client] = deque(maxlen=self.limit)
            failures.append(now)
            return Guess(False)

    def clear(self) -> None:
        with self._lock:
            self._failures.clear()

    def _prune(self, now: float) -> None:
        if now - self._pruned < self.window_s:
            return
        self._pruned = now
        stale = [c for c, f in self._failures.items() if f[-1] <= now - self.window_s]
        for client in stale:
            del self._failures[client]


class Sessions:
    """Sign-in sessions: random ids the server holds in memory, each valid for
    ``lifetime_s`` from sign-in until it signs out (a restart signs everyone out)."""

    def __init__(self, lifetime_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lifetime_s, self.clock = lifetime_s, clock
        self._expiry: dict[str, float] = {}  # id -> when it ends, oldest first
        self._lock = threading.Lock()

    def start(self) -> str:
        session = secrets.token_urlsafe(32)
        with self._lock:
            now = self.clock()
            for old in [s for s, end in self._expiry.items() if end <= now]:
                del self._expiry[old]
            while len(self._expiry) >= MAX_SESSIONS:
                del self._expiry[next(iter(self._expiry))]
            self._expiry[session] = now + self.lifetime_s
        return session

    def valid(self, session: str) -> bool:
        with self._lock:
            end = self._expiry.get(session)
            if end is not None and end <= self.clock():
                del self._expiry[session]
                end = None
        return end is not None

    def end(self, session: str) -> None:
        with self._lock:
            self._expiry.pop(session, None)


class Auth:
    """The server's token, its sign-in sessions, and the limit on wrong guesses."""

    def __init__(self, token: str | None, session_hours: float = 12.0) -> None:
        self.token = token or None
        self.sessions = Sessions(session_hours * 3600)
        self.failures = FailureLimit()

    def check(self, request: Request) -> Guess:
        """A live session cookie, or a bearer token in the Authorization header. A wrong
        bearer token counts against the client's limit; no credentials at all do not."""
        if not self.token:
            return Guess(True)
        session = request.cookies.get(COOKIE, "")
        if session and self.sessions.valid(session):
            return Guess(True)
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return Guess(False)
        return self.guess(request, given)

    def guess(self, request: Request, given: str) -> Guess:
        """One try of the token (bearer or sign-in form), within the client's limit."""
        token = self.token
        return self.failures.guess(
            client_address(request), lambda: token is not None and token_matches(given, token)
        )


def retry_headers(guess: Guess) -> dict[str, str]:
    return {"Retry-After": str(guess.retry_after)}


def require_token(request: Request) -> None:
    """Dependency of every /api and /v1 route: a bearer token (or the UI's session cookie)
    whenever the server has a token (a second lock: GuardMiddleware checks first)."""
    guess = request.app.state.server.auth.check(request)
    if guess.retry_after:
        raise HTTPException(429, TOO_MANY.format(guess.retry_after), headers=retry_headers(guess))
    if not guess.right:
        raise HTTPException(401, TOKEN_NEEDED, headers={"WWW-Authenticate": "Bearer"})


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
    """Four checks before any route runs, from the request's headers alone:

    - the Host header is a plain ``host[:port]`` (no userinfo, no second port); without a
      token the server is on loopback, and only loopback Host names are served, so a web
      page cannot reach it through DNS rebinding;
    - a write (POST, PUT, PATCH, DELETE) sent by a browser from another origin is refused,
      so a web page cannot upload, delete or ask through the user's browser (CORS is off,
      so it cannot read responses either);
    - with a token, only PUBLIC_PATHS answer without it: a page sends the stranger to
      /login, anything else is a 401, before a body is read or parsed. So every route is
      covered (/openapi.json and static files too), new ones included;
    - a client past its limit of wrong tokens gets 429 with Retry-After, its token unchecked.
    ``refuse`` builds the refusals (the app's error shape).
    """

    def __init__(self, app: ASGIApp, auth: Auth, refuse: Refusal) -> None:
        self.app = app
        self.auth = auth
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        response = self._refusal(request)
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    def _refusal(self, request: Request) -> Response | None:
        host = request.headers.get("host", "")
        path, method = request.scope["path"], request.method
        name = host_name(host)
        if host and name is None:
            return self.refuse(request, 400, "malformed Host header", None)
        if not self.auth.token and name not in LOOPBACK_NAMES:
            detail = "this server only answers to localhost (set a token to serve others)"
            return self.refuse(request, 400, detail, None)
        if method in _UNSAFE_METHODS and _cross_origin(
            request.headers.get("origin"), request.headers.get("sec-fetch-site"), host
        ):
            return self.refuse(request, 403, "cross-origin request refused", None)
        if not self.auth.token or path in PUBLIC_PATHS:
            return None
        guess = self.auth.check(request)
        if guess.retry_after:
            return self.refuse(
                request, 429, TOO_MANY.format(guess.retry_after), retry_headers(guess)
            )
        if guess.right:
            return None
        if method in ("GET", "HEAD") and not path.startswith(_NOT_PAGES):
            return RedirectResponse("/login", status_code=303)
        return self.refuse(request, 401, TOKEN_NEEDED, {"WWW-Authenticate": "Bearer"})


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
