"""`ragapp serve`'s HTTP API in-process (FastAPI's TestClient) over the fake stack (echo LLM,
hash embedder, in-memory store): the endpoints, job events, documents, and the security
rules. What needs the real models (answers, the queue, GPU facts) is in
tests/integration/test_server_api.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ragapp.cli import main
from ragapp.server import create_app
from ragapp.server.security import is_loopback, safe_filename
from ragapp.store import forget_memory_spaces
from tests.server_helpers import (
    IN_SCOPE,
    LIGHTHOUSE,
    Served,
    harbour_pdf,
    server_settings,
    sse_events,
    upload,
    wait_for_job,
)

FAKE = {"chroma_url": "memory://server", "embedding_model": "fake", "llm_backend": "fake"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("served") / "data"
    settings = server_settings(data, max_file_mb=0.05, **FAKE)
    app = create_app(settings)
    url = "http://127.0.0.1"
    with TestClient(app, base_url=url) as client:
        res = upload(
            client, [("lighthouse.txt", LIGHTHOUSE.encode()), ("harbour.pdf", harbour_pdf())]
        )
        assert res.status_code == 202, res.text
        job = wait_for_job(client, res.json()["job_id"])
        yield Served(url, app, settings, client, res.json(), job)
    forget_memory_spaces(FAKE["chroma_url"])


def test_healthz_openapi_and_no_cdn_docs(served: Served) -> None:
    assert served.client.get("/healthz").json() == {"status": "ok"}
    schema = served.client.get("/openapi.json").json()
    for path in (
        "/api/ask",
        "/api/chat",
        "/api/documents",
        "/api/documents/{doc_id}",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/events",
        "/api/sync",
        "/api/status",
        "/api/collections",
        "/v1/chat/completions",
        "/v1/models",
    ):
        assert path in schema["paths"], path
    assert "AnswerOut" in schema["components"]["schemas"]
    # Swagger UI / ReDoc would load scripts from a CDN: they are off
    assert served.client.get("/docs").status_code == 404


def test_upload_is_ingested_in_the_background(served: Served) -> None:
    accepted = served.first_upload
    assert [f["name"] for f in accepted["files"]] == ["lighthouse.txt", "harbour.pdf"]
    assert all(Path(f["path"]).parent == served.uploads.resolve() for f in accepted["files"])
    job = served.first_job
    assert (job["state"], job["kind"], job["files_total"], job["files_done"]) == (
        "done",
        "upload",
        2,
        2,
    )
    assert job["failures"] == [] and job["error"] is None
    assert {f["status"] for f in job["files"]} == {"added"}
    assert job["chunks"] == sum(f["chunks"] for f in job["files"]) == job["report"]["chunks"]
    # a finished job's event stream: one `done` event with the same job
    with served.client.stream("GET", accepted["events_url"]) as res:
        assert res.headers["content-type"].startswith("text/event-stream")
        events = sse_events(res)
    assert [name for name, _ in events] == ["done"]
    assert events[0][1]["id"] == job["id"] and events[0][1]["state"] == "done"
    assert served.client.get("/api/jobs/nope").status_code == 404


def test_job_events_stream_progress_then_done(served: Served) -> None:
    res = upload(
        served.client, [("tides.md", b"# Tides\n\nHigh tide at Kestrel Point is at noon.\n")]
    )
    assert res.status_code == 202
    with served.client.stream("GET", res.json()["events_url"]) as stream:
        events = sse_events(stream)
    names = [name for name, _ in events]
    assert names[-1] == "done" and set(names[:-1]) <= {"progress"}
    final = events[-1][1]
    assert (final["state"], final["files_done"], final["files"][0]["status"]) == (
        "done",
        1,
        "added",
    )
    doc = served.document("tides.md")
    assert served.client.delete(f"/api/documents/{doc['id']}").status_code == 200


def test_documents_list_files_with_chunk_counts(served: Served) -> None:
    listing = served.client.get("/api/documents").json()
    docs = {d["name"]: d for d in listing["documents"]}
    assert set(docs) == {"lighthouse.txt", "harbour.pdf"}
    by_file = {Path(f["path"]).name: f["chunks"] for f in served.first_job["files"]}
    for name, doc in docs.items():
        assert doc["chunks"] == by_file[name] > 0
        assert doc["uploaded"] is True and doc["type"] == name.rsplit(".", 1)[1]
        assert served.client.get(f"/api/documents/{doc['id']}").json() == doc
    assert listing["chunks"] == sum(by_file.values())
    assert served.client.get("/api/documents/0000000000000000").status_code == 404


def test_file_endpoint_serves_only_collection_files(served: Served) -> None:
    txt, pdf = served.document("lighthouse.txt"), served.document("harbour.pdf")
    res = served.client.get(txt["file_url"])
    assert res.status_code == 200 and res.text == LIGHTHOUSE
    assert res.headers["content-type"].startswith("text/plain")  # never rendered as HTML
    assert "sandbox" in res.headers["content-security-policy"]
    assert res.headers["x-content-type-options"] == "nosniff"
    res = served.client.get(pdf["file_url"])
    assert res.headers["content-type"] == "application/pdf" and res.content.startswith(b"%PDF")
    assert res.headers["content-disposition"].startswith("inline")
    assert served.client.get("/api/documents/ffffffffffffffff/file").status_code == 404


def test_file_endpoint_serves_only_the_ingested_bytes(served: Served, tmp_path: Path) -> None:
    from ingest.pipeline import ingest_paths

    folder, outside = tmp_path / "folder", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    keeper = folder / "keeper.txt"
    ingested = b"The keeper of Kestrel Point lights the lamp at dusk.\n"
    keeper.write_bytes(ingested)
    secret = outside / "secret.txt"
    secret.write_bytes(b"root:x:0:0:the secret next door, not in the collection\n")
    (outside / "linked.txt").write_bytes(b"A note that lives outside the folder, linked in.\n")
    (folder / "linked.txt").symlink_to(outside / "linked.txt")
    ingest_paths([folder], served.state.app().collection, follow_symlinks=True)
    doc, linked = served.document("keeper.txt"), served.document("linked.txt")
    changed = {"detail": "the file changed since it was ingested; re-sync", "error": "http_error"}
    try:
        res = served.client.get(doc["file_url"])  # unchanged: the bytes
        assert res.status_code == 200 and res.content == ingested
        part = served.client.get(doc["file_url"], headers={"Range": "bytes=4-9"})
        assert part.status_code == 206 and part.content == ingested[4:10]
        # a link ingested as one (--follow-symlinks), still to the same bytes, is served
        assert linked["path"] == str(folder / "linked.txt")
        assert served.client.get(linked["file_url"]).content.startswith(b"A note that lives")

        st = keeper.stat()
        keeper.unlink()
        keeper.symlink_to(secret)  # swapped for a link to another file
        res = served.client.get(doc["file_url"])
        assert (res.status_code, res.json()) == (409, changed) and b"root:x" not in res.content
        keeper.unlink()
        keeper.write_bytes(ingested.upper())  # other bytes, same size and mtime
        os.utime(keeper, ns=(st.st_atime_ns, st.st_mtime_ns))
        res = served.client.get(doc["file_url"])
        assert (res.status_code, res.json()) == (409, changed)
        keeper.unlink()
        os.mkfifo(keeper)  # a FIFO: refused, and does not hang
        assert served.client.get(doc["file_url"]).status_code == 409
        keeper.unlink()
        res = served.client.get(doc["file_url"])
        assert res.status_code == 410 and "no longer on disk" in res.json()["detail"]
    finally:
        for d in (doc, linked):
            assert served.client.delete(f"/api/documents/{d['id']}").status_code == 200


def test_an_upload_replaced_by_a_link_is_not_served(served: Served, tmp_path: Path) -> None:
    body = b"The tide table for Kestrel Point, as uploaded.\n"
    res = upload(served.client, [("tide-table.txt", body)])
    wait_for_job(served.client, res.json()["job_id"])
    doc = served.document("tide-table.txt")
    path = Path(doc["path"])
    copy = tmp_path / "copy.txt"
    copy.write_bytes(body)
    try:
        path.unlink()
        path.symlink_to(copy)  # the same bytes, but an upload is never a link
        res = served.client.get(doc["file_url"])
        assert res.status_code == 409 and "changed since it was ingested" in res.json()["detail"]
    finally:
        assert served.client.delete(f"/api/documents/{doc['id']}").status_code == 200
    assert copy.read_bytes() == body  # deleting the upload removed the link, not its target


def test_viewer_and_page_escape_document_content(served: Served) -> None:
    doc = served.document("lighthouse.txt")
    res = served.client.get(doc["view_url"])
    assert res.status_code == 200
    html = res.text
    assert "&lt;script&gt;window.__xss = 1;" in html
    assert "<script>window.__xss" not in html and "<b>bold</b>" not in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more." in html
    csp = res.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    index = served.client.get("/")
    assert index.status_code == 200 and 'id="file-input"' in index.text
    # no inline script, nothing from another origin, no HTML built from strings
    assert "<script>" not in index.text
    assert "https://" not in index.text and "http://" not in index.text
    for asset in ("/static/app.js", "/static/app.css"):
        body = served.client.get(asset).text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in body and "http://" not in body
        assert ".innerHTML" not in body and "insertAdjacentHTML" not in body
    # the Markdown parser is served from here, and only parses: no DOM, no eval
    assert '<script src="/static/vendor/markdown-it.min.js' in index.text
    vendor = served.client.get("/static/vendor/markdown-it.min.js")
    assert vendor.status_code == 200 and "markdownit" in vendor.text
    for needle in ("innerHTML", "document.", "eval(", "new Function", "fetch(", "XMLHttpRequest"):
        assert needle not in vendor.text, needle


def test_errors_are_json(served: Served) -> None:
    empty = served.client.post(
        "/api/ask", params={"collection": "empty-one"}, json={"question": "x?"}
    )
    assert empty.status_code == 409 and "empty" in empty.json()["detail"]
    assert served.client.post("/api/ask", json={"question": ""}).status_code == 422
    bad_name = served.client.get("/api/status", params={"collection": "../x"})
    assert bad_name.status_code == 422
    nothing = served.client.post("/api/ask", json={"question": IN_SCOPE, "path": "nope-*.pdf"})
    assert nothing.status_code == 404


def test_upload_limits_size_and_type(served: Served) -> None:
    before = sorted(served.uploads.iterdir())
    too_big = upload(served.client, [("big.txt", b"x" * 60_000)])  # limit 0.05 MiB
    assert too_big.status_code == 413 and "limit" in too_big.json()["detail"]
    wrong = upload(served.client, [("tool.exe", b"MZ\x90\x00"), ("ok.txt", b"fine")])
    assert wrong.status_code == 415 and "tool.exe" in wrong.json()["detail"]
    no_ext = upload(served.client, [("../../etc/passwd", b"root:x:0:0")])
    assert no_ext.status_code == 415
    # a body over the whole-request limit (20 files' worth): refused from its length, and
    # when sent chunked (no length), as soon as it goes over while being read
    head = (
        b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
    )
    body = head + b"x" * 2_200_000 + b"\r\n--b--\r\n"
    multipart = {"content-type": "multipart/form-data; boundary=b"}
    huge = served.client.post("/api/documents", content=body, headers=multipart)
    assert huge.status_code == 413

    def chunked() -> Iterator[bytes]:
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    streamed = served.client.post("/api/documents", content=chunked(), headers=multipart)
    assert streamed.status_code == 413
    assert sorted(served.uploads.iterdir()) == before  # nothing saved


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("/etc/evil.txt", "evil.txt"),
        ("..\\..\\x.txt", "x.txt"),
        ("C:\\Windows\\system.ini.md", "system.ini.md"),
        ("....//.hidden.txt", "hidden.txt"),
        ("..", "upload"),
        ("a\x00b<script>.txt", "ab_script.txt"),
        ("con.txt", "_con.txt"),
        ("Jahresbericht ü 2025.pdf", "Jahresbericht ü 2025.pdf"),
    ],
)
def test_safe_filename(raw: str, expected: str) -> None:
    assert safe_filename(raw) == expected


def test_traversal_names_stay_inside_uploads(served: Served) -> None:
    data_dir = served.settings.data_dir
    outside_before = sorted(p for p in data_dir.parent.rglob("*") if data_dir not in p.parents)
    absolute_before = Path("/tmp/abs-evil.txt").exists()
    names = [
        "../../etc/passwd.txt",
        "/tmp/abs-evil.txt",
        "..\\..\\win.txt",
        "../uploads/../../x.md",
    ]
    res = upload(served.client, [(n, f"note {i}: safe\n".encode()) for i, n in enumerate(names)])
    assert res.status_code == 202, res.text
    saved = [Path(f["path"]) for f in res.json()["files"]]
    assert [p.name for p in saved] == ["passwd.txt", "abs-evil.txt", "win.txt", "x.md"]
    assert all(p.parent == served.uploads.resolve() and p.is_file() for p in saved)
    job = wait_for_job(served.client, res.json()["job_id"])
    assert job["state"] == "done" and job["files_done"] == 4
    outside_after = sorted(p for p in data_dir.parent.rglob("*") if data_dir not in p.parents)
    assert outside_after == outside_before
    assert Path("/tmp/abs-evil.txt").exists() == absolute_before
    for name in ("passwd.txt", "abs-evil.txt", "win.txt", "x.md"):
        served.client.delete(f"/api/documents/{served.document(name)['id']}")


def test_delete_removes_chunks_ledger_row_and_upload(served: Served) -> None:
    res = upload(
        served.client, [("ferry.txt", b"The ferry to Kestrel Point leaves at 9:15 every day.\n")]
    )
    job = wait_for_job(served.client, res.json()["job_id"])
    before = served.client.get("/api/status").json()
    doc = served.document("ferry.txt")
    path = Path(doc["path"])
    assert path.is_file()
    gone = served.client.delete(f"/api/documents/{doc['id']}")
    assert gone.status_code == 200
    assert gone.json() == {
        "id": doc["id"],
        "path": str(path),
        "chunks": job["chunks"],
        "upload_deleted": True,
    }
    after = served.client.get("/api/status").json()
    assert after["chunks"] == before["chunks"] - job["chunks"]
    assert after["documents"] == before["documents"] - 1
    assert not path.exists()
    assert served.client.delete(f"/api/documents/{doc['id']}").status_code == 404


def test_failed_files_are_listed_with_their_reason_and_deletable(
    served: Served, tmp_path: Path
) -> None:
    from ingest.pipeline import ingest_paths

    res = upload(served.client, [("broken.docx", b"not a zip at all")])
    job = wait_for_job(served.client, res.json()["job_id"])
    reason = job["files"][0]["reason"]
    assert job["files"][0]["status"] == "failed" and "not a zip" in reason
    mine = tmp_path / "mine.docx"  # a failed file of the user's own, from the command line
    mine.write_bytes(b"not a zip either")
    ingest_paths([tmp_path], served.state.app().collection)

    listing = served.client.get("/api/documents").json()
    assert not {"broken.docx", "mine.docx"} & {d["name"] for d in listing["documents"]}
    failed = {f["name"]: f for f in listing["failed"]}
    upload_failed, own_failed = failed["broken.docx"], failed["mine.docx"]
    assert upload_failed["reason"] == reason and upload_failed["uploaded"] is True
    assert upload_failed["skipped"] is False and upload_failed["type"] == "docx"
    assert upload_failed["bytes"] == len(b"not a zip at all")
    assert own_failed["uploaded"] is False and own_failed["path"] == str(mine)
    assert served.client.get(f"/api/documents/{upload_failed['id']}").status_code == 404

    # DELETE with a failed file's id: the uploaded copy goes; a file of the user's stays
    copy = Path(upload_failed["path"])
    assert copy.is_file()
    gone = served.client.delete(f"/api/documents/{upload_failed['id']}")
    assert gone.status_code == 200
    assert gone.json() == {
        "id": upload_failed["id"],
        "path": upload_failed["path"],
        "chunks": 0,
        "upload_deleted": True,
    }
    assert not copy.exists()
    forgot = served.client.delete(f"/api/documents/{own_failed['id']}")
    assert forgot.status_code == 200 and forgot.json()["upload_deleted"] is False
    assert mine.is_file()
    assert served.client.get("/api/documents").json()["failed"] == []
    assert served.client.delete(f"/api/documents/{upload_failed['id']}").status_code == 404


def test_sync_rechecks_known_files_and_mirrors_uploads(served: Served, tmp_path: Path) -> None:
    from ingest.pipeline import ingest_paths

    app = served.state.app()
    notes = tmp_path / "notes.txt"
    notes.write_text("The harbour master is called Ole Brekke.\n")
    ingest_paths([notes], app.collection)  # as `ragapp ingest`
    notes.write_text("The harbour master is called Ole Brekke. He started in 2021.\n")
    (served.uploads / "dropped.txt").write_text("A file put straight into the uploads folder.\n")

    res = served.client.post("/api/sync")
    assert res.status_code == 202
    report = wait_for_job(served.client, res.json()["job_id"])["report"]
    assert (report["added"], report["updated"], report["removed"]) == (1, 1, 0)
    assert report["unchanged"] == 2  # lighthouse.txt and harbour.pdf
    names = {d["name"] for d in served.client.get("/api/documents").json()["documents"]}
    assert {"notes.txt", "dropped.txt"} <= names

    notes.unlink()
    (served.uploads / "dropped.txt").unlink()
    report = wait_for_job(served.client, served.client.post("/api/sync").json()["job_id"])["report"]
    assert (report["added"], report["updated"], report["removed"]) == (0, 0, 2)
    names = {d["name"] for d in served.client.get("/api/documents").json()["documents"]}
    assert names == {"lighthouse.txt", "harbour.pdf"}


def test_a_name_that_is_not_utf8_is_listed_served_and_synced(
    served: Served, tmp_path: Path
) -> None:
    from ingest.pipeline import ingest_paths

    raw = os.fsencode(tmp_path) + b"/caf\xe9.txt"
    with open(raw, "wb") as fh:
        fh.write(b"The Latin-1 named file is about the cafe's opening hours.\n")
    report = ingest_paths([tmp_path], served.state.app().collection)
    assert (report.added, report.failed) == (1, [])
    doc = served.document("caf\\xe9.txt")  # shown as `ls -b` does: nothing lost
    assert doc["path"] == f"{tmp_path}/caf\\xe9.txt"
    res = served.client.get(doc["file_url"])
    assert res.status_code == 200 and "opening hours" in res.text
    again = wait_for_job(served.client, served.client.post("/api/sync").json()["job_id"])
    assert again["report"]["removed"] == 0 and again["report"]["failed"] == []
    assert served.client.delete(f"/api/documents/{doc['id']}").status_code == 200


def test_collections_are_separate(served: Served) -> None:
    res = upload(
        served.client, [("moon.txt", b"The moon base is called Tranquil One.\n")], "second"
    )
    assert res.status_code == 202 and res.json()["collection"] == "second"
    assert Path(res.json()["files"][0]["path"]).parent.name == "second"
    wait_for_job(served.client, res.json()["job_id"])
    listing = served.client.get("/api/collections").json()
    rows = {c["name"]: c for c in listing["collections"]}
    assert listing["default"] == "default" and rows["default"]["default"] is True
    assert rows["second"]["documents"] == 1 and rows["second"]["chunks"] > 0
    second = served.client.get("/api/documents", params={"collection": "second"}).json()
    assert [d["name"] for d in second["documents"]] == ["moon.txt"]
    assert "moon.txt" not in {
        d["name"] for d in served.client.get("/api/documents").json()["documents"]
    }
    models = served.client.get("/v1/models").json()
    assert {"ragapp", "ragapp:default", "ragapp:second"} <= {m["id"] for m in models["data"]}


def test_serve_refuses_non_loopback_without_token(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--host", "0.0.0.0"])
    assert exited.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "without a token" in lines[0]
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("::")


def test_token_guards_api_v1_and_ui(tmp_path: Path) -> None:
    app = create_app(server_settings(tmp_path / "data", **FAKE), token="s3cret-token")
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/healthz").status_code == 200
        for path in ("/api/status", "/api/documents", "/api/collections", "/v1/models"):
            res = client.get(path)
            assert res.status_code == 401, path
            assert res.headers["www-authenticate"] == "Bearer"
        assert client.post("/api/ask", json={"question": "x?"}).status_code == 401
        assert client.post("/v1/chat/completions", json={"messages": []}).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert client.get("/api/status", headers=wrong).status_code == 401
        right = {"Authorization": "Bearer s3cret-token"}
        assert client.get("/api/status", headers=right).json()["auth_required"] is True
        assert client.get("/v1/models", headers=right).status_code == 200
        # the UI: a login page, then a session cookie that is not the token
        page = client.get("/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login"
        assert client.post("/login", data={"token": "nope"}).status_code == 401
        ok = client.post("/login", data={"token": "s3cret-token"}, follow_redirects=False)
        assert ok.status_code == 303
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "s3cret-token" not in cookie
        assert client.get("/api/status").status_code == 200  # with the cookie now
        assert client.get("/").status_code == 200
        client.post("/logout")
        assert client.get("/api/status").status_code == 401


def test_loopback_host_names_and_same_origin_writes(served: Served) -> None:
    # DNS rebinding: a foreign Host name is refused when the server has no token
    assert served.client.get("/api/status", headers={"Host": "evil.example"}).status_code == 400
    # a browser write from another origin is refused (CORS is off as well)
    host = served.url.removeprefix("http://")
    foreign = served.client.post(
        "/api/sync", headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    )
    assert foreign.status_code == 403
    other_port = served.client.post("/api/sync", headers={"Origin": "http://127.0.0.1:1"})
    assert other_port.status_code == 403
    same = served.client.post("/api/sync", headers={"Origin": f"http://{host}"})
    assert same.status_code == 202
    wait_for_job(served.client, same.json()["job_id"])
    preflight = served.client.options(
        "/api/ask",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
