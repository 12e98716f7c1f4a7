"""`ragapp serve`'s HTTP API against a real uvicorn server on loopback, with the real
bundled models: answers (JSON and SSE), refusals, chat, the queue, GPU facts. The
endpoints and security rules run in-process on the fake stack in tests/unit/test_server.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragapp.server import create_app
from ragapp.server.testing import running_server
from tests.server_helpers import (
    ASK_KEYS,
    IN_SCOPE,
    LIGHTHOUSE,
    OUT_OF_SCOPE,
    PDF_QUESTION,
    SOURCE_KEYS,
    TIMING_KEYS,
    Served,
    harbour_pdf,
    server_settings,
    sse_events,
    upload,
    wait_for_job,
)

pytestmark = pytest.mark.e2e


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


def test_status_reports_models_store_and_gpu(served: Served) -> None:
    from ragapp.doctor import llama_build

    status = served.client.get("/api/status").json()
    assert status["collection"] == "default"
    assert status["documents"] == 2 and status["chunks"] == served.first_job["chunks"] > 0
    assert status["embedding_model"] == "all-MiniLM-L6-v2"
    assert "SmolLM2" in status["llm"] and status["backend"] == "llamacpp"
    assert status["llm_note"] == "demo model — answers are unreliable; see README to use a real one"
    assert status["store"] == str(served.settings.store_path)
    build = llama_build()
    assert status["gpu"]["supported"] is build["gpu_offload"]
    assert status["gpu_offload"] is (build["gpu_offload"] and served.settings.n_gpu_layers != 0)
    assert status["auth_required"] is False and status["max_upload_mb"] == 0.05


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
