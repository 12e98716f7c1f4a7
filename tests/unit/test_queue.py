"""The LLM queue: first come, first served, `slots` at a time, positions told while
waiting, an exclusive turn for search-index upkeep, and leaving the line on cancel."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import pytest

from ragapp.errors import BusyError
from ragapp.server.queue import AnswerQueue, Cancelled
from ragapp.server.state import answer_slots
from ragapp.settings import load_settings


def wait_for(condition: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def start(
    queue: AnswerQueue, release: threading.Event, **kw: object
) -> tuple[threading.Thread, list[int], list[str]]:
    """A request that takes its turn and holds it until ``release`` is set."""
    positions: list[int] = []
    state: list[str] = []

    def run() -> None:
        with queue.turn(positions.append, **kw):  # type: ignore[arg-type]
            state.append("running")
            release.wait(5)
        state.append("done")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, positions, state


def test_one_slot_serves_one_at_a_time_in_order() -> None:
    queue, release = AnswerQueue(1), threading.Event()
    first = start(queue, release)
    wait_for(lambda: first[2] == ["running"])
    second = start(queue, release)
    wait_for(lambda: second[1] == [1])
    assert queue.pending == 2 and second[2] == []
    release.set()
    for thread, _, _ in (first, second):
        thread.join(5)
    assert second[2] == ["running", "done"] and queue.pending == 0


def test_slots_run_together_and_the_rest_wait_with_positions() -> None:
    queue, release = AnswerQueue(3), threading.Event()
    running = [start(queue, release) for _ in range(3)]
    wait_for(lambda: all(r[2] == ["running"] for r in running))
    fourth, fifth = start(queue, release), None
    wait_for(lambda: fourth[1] == [1])
    fifth = start(queue, release)
    wait_for(lambda: fifth[1] == [2])
    assert queue.pending == 5
    release.set()
    for thread, _, _ in [*running, fourth, fifth]:
        thread.join(5)
    assert queue.pending == 0 and fifth[2] == ["running", "done"]


def test_an_exclusive_turn_waits_for_all_and_holds_every_slot() -> None:
    queue = AnswerQueue(2)
    hold_first, hold_index = threading.Event(), threading.Event()
    first = start(queue, hold_first)
    wait_for(lambda: first[2] == ["running"])
    index = start(queue, hold_index, exclusive=True)
    wait_for(lambda: index[1] == [1])  # waits for the running question, though a slot is free
    later_release = threading.Event()
    later = start(queue, later_release)
    wait_for(lambda: bool(later[1]))  # behind the exclusive turn, not beside it
    assert later[2] == [] and index[2] == []
    hold_first.set()
    wait_for(lambda: index[2] == ["running"])
    time.sleep(0.1)
    assert later[2] == []  # nothing runs beside an exclusive turn
    hold_index.set()
    wait_for(lambda: later[2] == ["running"])
    later_release.set()
    for thread, _, _ in (first, index, later):
        thread.join(5)
    assert queue.pending == 0


def test_a_cancelled_waiter_leaves_the_line() -> None:
    queue, release = AnswerQueue(1), threading.Event()
    first = start(queue, release)
    wait_for(lambda: first[2] == ["running"])
    gone = threading.Event()
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            with queue.turn(cancelled=gone.is_set):
                pass
        except Cancelled as exc:
            errors.append(exc)

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    wait_for(lambda: queue.pending == 2)
    gone.set()
    thread.join(5)
    assert len(errors) == 1 and queue.pending == 1
    release.set()
    first[0].join(5)


@pytest.mark.parametrize(
    ("backend", "parallel", "slots"),
    [("llamacpp", 4, 1), ("gpt4all", 4, 1), ("openai", 4, 4), ("ollama", 2, 2), ("fake", 3, 3)],
)
def test_slots_follow_the_backend(backend: str, parallel: int, slots: int) -> None:
    assert answer_slots(load_settings(llm_backend=backend, llm_parallel=parallel)) == slots


def test_the_server_answers_beside_a_busy_slot(tmp_path: object, docs: object) -> None:
    """llm_parallel=2 on a backend that can take it: with one slot held by someone else, a
    question is answered at once, and /api/status counts both."""
    from pathlib import Path

    from fastapi.testclient import TestClient

    from ingest.pipeline import ingest_paths
    from ragapp.server import create_app

    app = create_app(load_settings(llm_parallel=2))
    state = app.state.server
    ingest_paths([Path(str(docs))], state.app().collection)
    answers: list[dict[str, object]] = []
    with TestClient(app, base_url="http://127.0.0.1") as client, state.queue.turn():
        assert client.get("/api/status").json()["queue"] == 1

        def ask() -> None:
            answers.append(
                client.post("/api/ask", json={"question": "Who is the harbour master"}).json()
            )

        asker = threading.Thread(target=ask, daemon=True)
        asker.start()
        asker.join(10)
        assert not asker.is_alive(), "the question waited for the busy slot"
    assert "Ole Brekke" in str(answers[0]["answer"])


def test_a_full_line_refuses_at_once_with_retry_after() -> None:
    queue, release = AnswerQueue(1, max_waiting=1), threading.Event()
    first = start(queue, release)
    wait_for(lambda: first[2] == ["running"])
    second = start(queue, release)
    wait_for(lambda: second[1] == [1])
    with pytest.raises(BusyError) as refused:
        queue.check_room()
    with pytest.raises(BusyError), queue.turn():
        pass  # pragma: no cover - refused before the turn
    assert "max_queue 1" in str(refused.value) and refused.value.retry_after >= 1
    assert queue.pending == 2  # the refused ones never joined
    release.set()
    for thread, _, _ in (first, second):
        thread.join(5)
    queue.check_room()  # room again


def test_a_waiter_gives_up_at_its_deadline() -> None:
    queue, release = AnswerQueue(1), threading.Event()
    first = start(queue, release)
    wait_for(lambda: first[2] == ["running"])
    with pytest.raises(BusyError) as late, queue.turn(deadline=time.monotonic() + 0.3):
        pass  # pragma: no cover - never started
    assert "request_timeout_s" in str(late.value) and queue.pending == 1
    release.set()
    first[0].join(5)


def test_retry_after_follows_how_long_turns_take() -> None:
    queue = AnswerQueue(2)
    for _ in range(30):
        with queue.turn():
            time.sleep(0.01)
    assert queue.turn_s < 0.1  # the first guess (5 s) has decayed to what turns take
    assert queue.retry_after(40) == max(1, math.ceil(queue.turn_s * 40 / 2))


def test_the_server_answers_503_with_retry_after_when_the_line_is_full(docs: object) -> None:
    """max_queue=1 with one question running and one waiting: the next gets 503 and a
    Retry-After, as JSON and before any SSE stream starts, on /api and /v1."""
    from pathlib import Path

    from fastapi.testclient import TestClient

    from ingest.pipeline import ingest_paths
    from ragapp.server import create_app

    app = create_app(load_settings(max_queue=1))
    state = app.state.server
    ingest_paths([Path(str(docs))], state.app().collection)
    release = threading.Event()
    holder = start(state.queue, release)
    wait_for(lambda: holder[2] == ["running"])
    waiter = start(state.queue, release)
    wait_for(lambda: waiter[1] == [1])
    question = {"question": "Who is the harbour master"}
    chat = {"model": "ragapp", "messages": [{"role": "user", "content": question["question"]}]}
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for path, body, headers in (
            ("/api/ask", question, {}),
            ("/api/ask", question, {"Accept": "text/event-stream"}),
            ("/v1/chat/completions", chat, {}),
            ("/v1/chat/completions", {**chat, "stream": True}, {}),
        ):
            response = client.post(path, json=body, headers=headers)
            assert response.status_code == 503, (path, headers, response.text)
            assert int(response.headers["Retry-After"]) >= 1
            assert "busy" in response.text
        release.set()
        for thread, _, _ in (holder, waiter):
            thread.join(5)
        assert client.post("/api/ask", json=question).status_code == 200


def test_an_answer_past_its_time_budget_ends_with_503(docs: object) -> None:
    """request_timeout_s covers the generation too: it stops at the next token."""
    from pathlib import Path

    from fastapi.testclient import TestClient

    from ingest.pipeline import ingest_paths
    from ragapp.server import create_app

    app = create_app(load_settings(request_timeout_s=0.001))
    state = app.state.server
    ingest_paths([Path(str(docs))], state.app().collection)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = client.post("/api/ask", json={"question": "Who is the harbour master"})
    assert response.status_code == 503 and "request_timeout_s" in response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert state.queue.pending == 0
