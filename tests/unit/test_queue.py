"""The LLM queue: first come, first served, `slots` at a time, positions told while
waiting, an exclusive turn for search-index upkeep, and leaving the line on cancel."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

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
