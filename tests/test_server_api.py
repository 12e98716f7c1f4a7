"""`ragapp serve`'s HTTP API against a real uvicorn server on loopback, with the real
bundled models: every endpoint, the SSE shapes, the queue, and the security rules."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from ragapp.server import create_app
from ragapp.server.security import is_loopback, safe_filename
from ragapp.server.testing import running_server
from ragapp.settings import Settings
from tests.conftest import run_cli

pytestmark = pytest.mark.e2e

ASK_KEYS = {"answer", "refused", "sources", "timings", "citations_added"}
TIMING_KEYS = {"retrieve_ms", "ttft_ms", "total_ms", "completion_tokens", "tokens_per_s"}
SOURCE_KEYS = {"n", "source", "page", "score", "text"}

LIGHTHOUSE = (
    "Kestrel Point lighthouse\n\n"
    "The keeper of the Kestrel Point lighthouse is Ingrid Solberg. She has kept the light "
    "since 2019 and lives in the cottage beside the tower.\n\n"
    "The lamp of the lighthouse was lit for the first time on 14 March 1887.\n\n"
    'Notes copied from a web page: <script>window.__xss = 1; alert("pwned")</script> '
    "<b>bold</b> & more.\n"
)
IN_SCOPE = "Who is the keeper of the Kestrel Point lighthouse?"
OUT_OF_SCOPE = "What is the boiling point of liquid nitrogen in kelvin?"
PDF_QUESTION = "What is the harbour dredging budget for 2026?"


def harbour_pdf() -> bytes:
    """Two pages; the dredging budget is stated on page 2 only."""
    import io

    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    pdf = canvas.Canvas(buf, pagesize=A4)
    pdf.setTitle("Harbour report")
    for lines in (
        [
            "Harbour report 2026",
            "The harbour has forty moorings for fishing boats and twelve for visitors.",
            "The harbour office opens at seven in the morning.",
        ],
        [
            "Dredging",
            "The harbour dredging budget for 2026 is 48,300 crowns.",
            "Dredging takes place every second autumn.",
        ],
    ):
        y = 780
        for line in lines:
            pdf.drawString(72, y, line)
            y -= 24
        pdf.showPage()
    pdf.save()
    return buf.getvalue()


def server_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Fast settings for the bundled models; RAGAPP_* from the shell do not leak in."""
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("RAGAPP_") and key != "RAGAPP_CACHE_DIR":
                mp.delenv(key)
        values: dict[str, Any] = {
            "data_dir": data_dir,
            "max_tokens": 24,
            "top_k": 2,
            "n_ctx": 2048,
            "ingest_workers": 1,
        }
        return Settings(**{**values, **overrides})


def sse_events(response: httpx.Response) -> list[tuple[str, Any]]:
    """(event, data) pairs of a server-sent-event stream, data parsed as JSON when it is."""
    events: list[tuple[str, Any]] = []
    name, data = "message", []
    for line in response.iter_lines():
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    events.append((name, json.loads(text)))
                except json.JSONDecodeError:
                    events.append((name, text))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
    return events


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def upload(
    client: httpx.Client, files: list[tuple[str, bytes]], collection: str | None = None
) -> httpx.Response:
    params = {"collection": collection} if collection else None
    return client.post(
        "/api/documents",
        params=params,
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
    )


@dataclass
class Served:
    url: str
    app: Any
    settings: Settings
    client: httpx.Client
    first_upload: dict[str, Any]
    first_job: dict[str, Any]

    @property
    def state(self) -> Any:
        return self.app.state.server

    @property
    def uploads(self) -> Path:
        return self.settings.data_dir / "uploads" / self.settings.collection

    def document(self, name: str) -> dict[str, Any]:
        docs = self.client.get("/api/documents").json()["documents"]
        return next(d for d in docs if d["name"] == name)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    settings = server_settings(tmp_path_factory.mktemp("served") / "data", max_file_mb=0.05)
    app = create_app(settings)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=180) as client:
        res = upload(
            client, [("lighthouse.txt", LIGHTHOUSE.encode()), ("harbour.pdf", harbour_pdf())]
        )
        assert res.status_code == 202, res.text
        job = wait_for_job(client, res.json()["job_id"])
        yield Served(url, app, settings, client, res.json(), job)


# --- basics ---------------------------------------------------------------------------------------


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


def test_status_reports_models_store_and_gpu(served: Served) -> None:
    from ragapp.doctor import llama_build

    status = served.client.get("/api/status").json()
    assert status["collection"] == "default"
    assert status["documents"] == 2 and status["chunks"] == served.first_job["chunks"] > 0
    assert status["embedding_model"] == "all-MiniLM-L6-v2"
    assert "SmolLM2" in status["llm"] and status["backend"] == "llamacpp"
    assert status["store"] == str(served.settings.store_path)
    build = llama_build()
    assert status["gpu"]["supported"] is build["gpu_offload"]
    assert status["gpu_offload"] is (build["gpu_offload"] and served.settings.n_gpu_layers != 0)
    assert status["auth_required"] is False and status["max_upload_mb"] == 0.05


# --- upload, jobs, documents ----------------------------------------------------------------------


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


# --- answers ----------------------------------------------------------------------------------------


def test_ask_json_is_the_cli_shape(served: Served) -> None:
    res = served.client.post("/api/ask", json={"question": IN_SCOPE})
    assert res.status_code == 200, res.text
    data = res.json()
    assert set(data) == ASK_KEYS and set(data["timings"]) == TIMING_KEYS
    assert data["refused"] is False and "Solberg" in data["answer"]
    assert data["sources"] and all(set(s) == SOURCE_KEYS for s in data["sources"])
    assert [s["n"] for s in data["sources"]] == list(range(1, len(data["sources"]) + 1))
    assert Path(data["sources"][0]["source"]).name == "lighthouse.txt"
    assert data["timings"]["completion_tokens"] > 0


def test_ask_streams_sources_tokens_done(served: Served) -> None:
    with served.client.stream(
        "POST",
        "/api/ask",
        json={"question": PDF_QUESTION, "type": "pdf"},
        headers={"Accept": "text/event-stream"},
    ) as res:
        assert res.headers["content-type"].startswith("text/event-stream")
        events = sse_events(res)
    names = [name for name, _ in events]
    assert names[0] == "started" and names[1] == "sources" and names[-1] == "done"
    assert set(names[2:-1]) == {"token"} and len(names) > 4
    sources = events[1][1]["sources"]
    assert sources and all(Path(s["source"]).suffix == ".pdf" for s in sources)  # type filter
    top = sources[0]
    assert (top["name"], top["page"]) == ("harbour.pdf", 2)
    assert "48,300" in top["text"] and top["document_id"] == served.document("harbour.pdf")["id"]
    done = events[-1][1]
    assert done["answer"] == "".join(d["text"] for n, d in events if n == "token").strip()
    assert done["refused"] is False and done["not_found"] is False
    assert set(done["timings"]) == TIMING_KEYS
    assert all(1 <= n <= len(sources) for n in done["citations"])
    # the chunk anchor names a passage of the viewer page
    viewer = served.client.get(f"/documents/{top['document_id']}").text
    assert f'id="{top["chunk"]}"' in viewer


def test_refusal_is_a_normal_answer(served: Served) -> None:
    data = served.client.post("/api/ask", json={"question": OUT_OF_SCOPE}).json()
    assert data["refused"] is True and data["sources"] == []
    assert "couldn't find" in data["answer"]
    with served.client.stream(
        "POST", "/api/ask", json={"question": OUT_OF_SCOPE}, headers={"Accept": "text/event-stream"}
    ) as res:
        events = sse_events(res)
    assert [n for n, _ in events] == ["started", "sources", "token", "done"]
    assert events[1][1] == {"sources": []}
    assert events[-1][1]["refused"] is True and events[-1][1]["not_found"] is True


def test_chat_answers_follow_ups_with_history(served: Served) -> None:
    messages = [
        {"role": "user", "content": IN_SCOPE},
        {"role": "assistant", "content": "The keeper is Ingrid Solberg. [1]"},
        {"role": "user", "content": "Since when has she kept it?"},
    ]
    res = served.client.post("/api/chat", json={"messages": messages})
    assert res.status_code == 200, res.text
    data = res.json()
    assert set(data) == ASK_KEYS and data["refused"] is False
    # the follow-up alone names nothing; with the history it finds the lighthouse file
    assert Path(data["sources"][0]["source"]).name == "lighthouse.txt"
    bad = served.client.post("/api/chat", json={"messages": messages[:2]})
    assert bad.status_code == 422


def test_questions_wait_in_line_and_are_told_their_position(served: Served) -> None:
    events: list[tuple[str, Any]] = []

    def ask() -> None:
        with (
            httpx.Client(base_url=served.url, timeout=60) as client,
            client.stream(
                "POST",
                "/api/ask",
                json={"question": OUT_OF_SCOPE},
                headers={"Accept": "text/event-stream"},
            ) as res,
        ):
            events.extend(sse_events(res))

    with served.state.queue.turn():  # someone else is using the LLM
        asker = threading.Thread(target=ask)
        asker.start()
        deadline = time.monotonic() + 10
        while served.state.queue.pending < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert served.state.queue.pending == 2
        assert served.client.get("/api/status").json()["queue"] == 2
    asker.join(30)
    assert events[0] == ("queued", {"position": 1})
    assert [n for n, _ in events[1:]] == ["started", "sources", "token", "done"]


def test_a_client_that_leaves_gives_up_its_place(served: Served) -> None:
    with served.state.queue.turn():
        with (
            httpx.Client(base_url=served.url, timeout=30) as client,
            client.stream(
                "POST",
                "/api/ask",
                json={"question": IN_SCOPE},
                headers={"Accept": "text/event-stream"},
            ) as res,
        ):
            first = next(line for line in res.iter_lines() if line.startswith("data:"))
            assert json.loads(first[5:]) == {"position": 1}
            assert served.state.queue.pending == 2
        # the connection is closed: the waiting request leaves the line
        deadline = time.monotonic() + 10
        while served.state.queue.pending > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert served.state.queue.pending == 1
    assert served.state.queue.pending == 0


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


# --- security of uploads ------------------------------------------------------------------------------


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


def test_sync_rechecks_known_files_and_mirrors_uploads(served: Served, tmp_path: Path) -> None:
    from ingest.pipeline import ingest_paths

    app = served.state.app()
    notes = tmp_path / "notes.txt"
    notes.write_text("The harbour master is called Ole Brekke.\n")
    ingest_paths([notes], app.store, app.settings, ledger=app.ledger())  # as `ragapp ingest`
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


# --- access rules ----------------------------------------------------------------------------------


def test_serve_refuses_non_loopback_without_token() -> None:
    res = run_cli("serve", "--host", "0.0.0.0", timeout=60)
    assert res.code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "without a token" in lines[0]
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("::")


def test_token_guards_api_v1_and_ui(tmp_path: Path) -> None:
    app = create_app(server_settings(tmp_path / "data"), token="s3cret-token")
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
