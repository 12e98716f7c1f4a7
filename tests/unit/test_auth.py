"""The token's sign-in sessions, the limit on wrong guesses, and the Host check of
`ragapp serve`, in-process (FastAPI's TestClient, one client address per TestClient) over
the fake stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ragapp.server import create_app
from ragapp.server.security import (
    COOKIE,
    FAILURE_WINDOW_S,
    MAX_FAILURES,
    FailureLimit,
    Sessions,
    client_address,
    host_name,
)
from ragapp.store import forget_memory_spaces
from tests.server_helpers import server_settings

FAKE = {"chroma_url": "memory://auth", "embedding_model": "fake", "llm_backend": "fake"}
TOKEN = "s3cret-token"
RIGHT = {"Authorization": f"Bearer {TOKEN}"}
WRONG = {"Authorization": "Bearer not-it"}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    yield create_app(server_settings(tmp_path / "data", **FAKE), token=TOKEN)
    forget_memory_spaces(FAKE["chroma_url"])


def client(app: FastAPI, address: str = "10.0.0.1", **kw: Any) -> TestClient:
    """A client of the app from ``address`` (no lifespan: the fake stack needs none)."""
    return TestClient(app, base_url="http://127.0.0.1", client=(address, 50000), **kw)


def sign_in(http: TestClient) -> str:
    res = http.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert res.status_code == 303, res.text
    return res.cookies[COOKIE]


# --- sessions ----------------------------------------------------------------------------


def test_a_session_cookie_is_random_and_not_the_token(app: FastAPI) -> None:
    http = client(app)
    res = http.post("/login", data={"token": TOKEN}, follow_redirects=False)
    cookie = res.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # served over http on loopback: the browser must send it
    first, second = res.cookies[COOKIE], sign_in(http)
    assert first != second and len(first) >= 40 and TOKEN not in first + second
    https = TestClient(app, base_url="https://127.0.0.1")
    secure = https.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert "Secure" in secure.headers["set-cookie"]


def test_a_copied_cookie_stops_working_after_sign_out(app: FastAPI) -> None:
    browser = client(app)
    session = sign_in(browser)
    thief = client(app, "10.0.0.2", cookies={COOKIE: session})
    assert thief.get("/api/status").status_code == 200
    assert thief.get("/", follow_redirects=False).status_code == 200
    signed_out = browser.post("/logout", follow_redirects=False)
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/login"
    assert f'{COOKIE}=""' in signed_out.headers["set-cookie"]  # the browser forgets it too
    assert thief.get("/api/status").status_code == 401
    page = thief.get("/", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login"
    # another sign-in is a new session; the one that ended stays ended
    assert client(app, cookies={COOKIE: sign_in(browser)}).get("/api/status").status_code == 200
    assert thief.get("/api/status").status_code == 401


def test_a_session_expires_after_session_hours(tmp_path: Path) -> None:
    settings = server_settings(tmp_path / "data", session_hours=2, **FAKE)
    app = create_app(settings, token=TOKEN)
    clock = Clock()
    app.state.server.auth.sessions.clock = clock
    http = client(app)
    sign_in(http)
    clock.now += 2 * 3600 - 1
    assert http.get("/api/status").status_code == 200
    clock.now += 1
    assert http.get("/api/status").status_code == 401
    clock.now += 3600  # and it does not come back
    assert http.get("/", follow_redirects=False).headers["location"] == "/login"


def test_sessions_are_bounded_and_unknown_ids_refused() -> None:
    clock = Clock()
    sessions = Sessions(60, clock=clock)
    ids = [sessions.start() for _ in range(3)]
    assert len(set(ids)) == 3 and all(sessions.valid(s) for s in ids)
    assert not sessions.valid("") and not sessions.valid(TOKEN)
    sessions.end(ids[0])
    sessions.end("not-a-session")  # harmless
    assert not sessions.valid(ids[0]) and sessions.valid(ids[1])
    clock.now += 60
    assert not sessions.valid(ids[1])


# --- the limit on wrong guesses ------------------------------------------------------------


def test_the_eleventh_wrong_login_is_429_for_that_client_only(app: FastAPI) -> None:
    guesser, neighbour = client(app, "10.0.0.1"), client(app, "10.0.0.2")
    for _ in range(MAX_FAILURES):
        res = guesser.post("/login", data={"token": "guess"})
        assert res.status_code == 401 and "That token is not right." in res.text
    limited = guesser.post("/login", data={"token": "guess"})
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= FAILURE_WINDOW_S
    assert "Too many wrong tokens" in limited.text
    # not checked while limited: the right token gets the same answer, and no session
    right = guesser.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert right.status_code == 429 and COOKIE not in right.headers.get("set-cookie", "")
    assert guesser.get("/api/status", headers=RIGHT).status_code == 429
    # another address is not limited by it
    assert neighbour.post("/login", data={"token": "guess"}).status_code == 401
    sign_in(neighbour)
    assert neighbour.get("/api/status").status_code == 200


def test_wrong_bearer_tokens_count_and_right_ones_do_not(app: FastAPI) -> None:
    api = client(app, "10.0.0.3")
    for _ in range(3 * MAX_FAILURES):  # successes and requests without a token are free
        assert api.get("/api/status", headers=RIGHT).status_code == 200
        assert api.get("/api/status").status_code == 401
        assert api.get("/api/status", headers={"Authorization": "Basic x"}).status_code == 401
    session = sign_in(client(app, "10.0.0.3"))
    for _ in range(MAX_FAILURES):
        res = api.get("/api/status", headers=WRONG)
        assert res.status_code == 401 and res.headers["www-authenticate"] == "Bearer"
    limited = api.get("/api/status", headers=RIGHT)
    assert limited.status_code == 429 and limited.json()["error"] == "http_error"
    assert 1 <= int(limited.headers["retry-after"]) <= FAILURE_WINDOW_S
    openai = api.get("/v1/models", headers=WRONG)  # the OpenAI error shape there
    assert openai.status_code == 429 and openai.json()["error"]["code"] == 429
    assert api.get("/", headers=WRONG).status_code == 429  # a page too: no redirect
    # a session that was started before still works (its id is not the secret)
    assert client(app, "10.0.0.3", cookies={COOKIE: session}).get("/api/status").status_code == 200
    assert client(app, "10.0.0.4").get("/api/status", headers=RIGHT).status_code == 200


def test_the_window_slides() -> None:
    clock = Clock()
    limit = FailureLimit(limit=3, window_s=60, clock=clock)
    checked: list[str] = []

    def wrong() -> bool:
        checked.append("wrong")
        return False

    for _ in range(3):
        assert limit.guess("a", wrong).retry_after == 0
        clock.now += 10  # failures at 1000, 1010, 1020
    assert limit.guess("a", wrong).retry_after == 30  # 1030: the first expires at 1060
    assert limit.guess("a", lambda: True).retry_after == 30  # right, but not checked
    assert len(checked) == 3
    assert limit.guess("b", lambda: True).right  # others unaffected
    clock.now = 1059.5
    assert limit.guess("a", wrong).retry_after == 1  # rounded up, never 0
    clock.now = 1060
    assert limit.guess("a", lambda: True).right  # one slot free again
    assert limit.guess("a", wrong) == limit.guess("x", wrong)  # both wrong, counted
    assert limit.guess("a", wrong).retry_after == 10  # 1060: 1010 expires at 1070
    clock.now += 1000
    limit.guess("c", wrong)  # prunes the clients whose failures have all expired
    assert set(limit._failures) == {"c"}


@pytest.mark.parametrize(
    ("peer", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),  # one machine's /64: one client
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("testclient", "testclient"),
    ],
)
def test_clients_are_counted_by_address(peer: str, key: str) -> None:
    class Request:
        client = type("Address", (), {"host": peer})()

    assert client_address(Request()) == key  # type: ignore[arg-type]


# --- the Host header -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("127.0.0.1:8000", "127.0.0.1"),
        ("LOCALHOST:8000", "localhost"),
        ("localhost", "localhost"),
        ("[::1]:8000", "::1"),
        ("[::1]", "::1"),
        ("evil.com", "evil.com"),
        ("evil.com:80", "evil.com"),
        ("127.0.0.1:8000@evil.com", None),
        ("127.0.0.1@evil.com", None),
        ("user:pass@127.0.0.1", None),
        ("127.0.0.1:80:80", None),
        ("127.0.0.1:", None),
        ("127.0.0.1:99999", None),
        ("127.0.0.1:+80", None),
        ("[::1", None),
        ("[::1]x", None),
        ("[::1]:80:80", None),
        ("[zz::1]", None),
        ("::1", None),
        ("localhost/x", None),
        ("localhost?x", None),
        ("localhost#x", None),
        ("local host", None),
        ("", None),
    ],
)
def test_host_names_are_parsed_strictly(host: str, name: str | None) -> None:
    assert host_name(host) == name


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:8000", 200),
        ("localhost:8000", 200),
        ("[::1]:8000", 200),
        ("127.0.0.1:8000@evil.com", 400),
        ("evil.com", 400),
        ("127.0.0.1:80:80", 400),
        ("127.0.0.1.evil.com", 400),
        ("[::1]@evil.com", 400),
    ],
)
def test_without_a_token_only_loopback_hosts_answer(tmp_path: Path, host: str, status: int) -> None:
    app = create_app(server_settings(tmp_path / "data", **FAKE))
    res = client(app).get("/api/collections", headers={"Host": host})
    assert res.status_code == status, res.text


def test_with_a_token_a_malformed_host_is_refused_too(app: FastAPI) -> None:
    http = client(app)
    assert http.get("/api/status", headers={**RIGHT, "Host": "evil.com"}).status_code == 200
    for host in ("127.0.0.1:8000@evil.com", "127.0.0.1:80:80"):
        res = http.get("/api/status", headers={**RIGHT, "Host": host})
        assert res.status_code == 400 and "malformed Host" in res.text


def test_the_schema_needs_the_token(app: FastAPI) -> None:
    http = client(app)
    assert http.get("/openapi.json").status_code == 401
    assert http.get("/openapi.json", headers=RIGHT).status_code == 200
    assert http.get("/docs", headers=RIGHT).status_code == 404  # no CDN-loaded Swagger UI
