"""Answering from a request: wait for the LLM's turn in a worker thread, stream what the
chain produces back to the event loop as (event, data) pairs.

Events, in order: ``queued`` {position} while other questions run (repeated as it moves),
``sources`` {sources}, ``token`` {text} for each piece of the answer, then ``done``
{answer: Answer} or ``error`` {status, error, detail}.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableGenerator
from sse_starlette import EventSourceResponse

from ragapp.app import RagApp
from ragapp.errors import BusyError, RagappError
from ragapp.query.citations import cited_numbers
from ragapp.server.queue import Cancelled
from ragapp.server.state import ServerState, chunk_anchor, document_id
from ragapp.types import Answer, Source

log = logging.getLogger(__name__)

# On SIGTERM an answer under way may finish for this long before it is cut (ragapp serve)
ANSWER_GRACE_S = 60


def answer_stream(events: AsyncIterator[dict[str, str]]) -> EventSourceResponse:
    """An answer's SSE stream: a ping every 15 s; on shutdown it runs to its end (up to
    ANSWER_GRACE_S) rather than being cut at once, sse-starlette's default."""
    return EventSourceResponse(events, ping=15, shutdown_grace_period=ANSWER_GRACE_S)


@dataclass
class Question:
    text: str
    k: int | None = None
    history: list[BaseMessage] | None = None
    where: dict[str, Any] | None = None


def as_list(value: str | list[str] | None) -> list[str] | None:
    if value is None:
        return None
    values = [value] if isinstance(value, str) else value
    return [v for v in values if v.strip()] or None


def chat_history(messages: Sequence[tuple[str, str]], turns: int) -> list[BaseMessage]:
    """(role, content) pairs before the question, as LangChain messages: the last ``turns``
    user/assistant exchanges; system messages are left out."""
    kept: list[BaseMessage] = []
    for role, content in messages:
        if role == "user":
            kept.append(HumanMessage(content))
        elif role == "assistant":
            kept.append(AIMessage(content))
    return kept[-2 * turns :] if turns else []


def source_json(n: int, src: Source) -> dict[str, Any]:
    """A source as the UI and the SSE stream show it: `ragapp ask --json`'s fields plus
    the file's name, section, document id and the chunk's anchor in the viewer."""
    return {
        "n": n,
        **src.to_json(),
        "name": Path(src.source).name,
        "section": src.section,
        "document_id": document_id(src.source),
        "chunk": chunk_anchor(src.text),
    }


def done_json(answer: Answer) -> dict[str, Any]:
    data = answer.to_json()
    return {
        "answer": data["answer"],
        "refused": data["refused"],
        "not_found": not answer.sources,
        "citations": cited_numbers(answer.text, len(answer.sources)),
        "citations_added": data["citations_added"],
        "timings": data["timings"],
    }


def _tap_sources(on_sources: Callable[[list[Source]], None]) -> RunnableGenerator:
    def tap(chunks: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for chunk in chunks:
            if "sources" in chunk:
                on_sources(chunk["sources"])
            yield chunk

    return RunnableGenerator(tap, name="tap_sources")


def answer_blocking(
    state: ServerState,
    app: RagApp,
    question: Question,
    emit: Callable[[str, dict[str, Any]], None],
    cancelled: Callable[[], bool],
) -> Answer:
    """In a worker thread: wait for the LLM, then retrieve and generate, emitting events.
    Past ``request_timeout_s`` (waiting or generating) the request ends with BusyError."""
    budget = app.settings.request_timeout_s
    deadline = time.monotonic() + budget if budget else None

    def on_token(token: str) -> None:
        if cancelled():
            raise Cancelled
        if deadline is not None and time.monotonic() >= deadline:
            raise BusyError(
                f"the answer took longer than request_timeout_s ({budget:g} s); "
                "ask for fewer tokens or retry later",
                state.queue.retry_after(),
            )
        emit("token", {"text": token})

    def on_sources(sources: list[Source]) -> None:
        emit("sources", {"sources": [source_json(n, s) for n, s in enumerate(sources, 1)]})

    with state.queue.turn(lambda p: emit("queued", {"position": p}), cancelled, deadline=deadline):
        emit("started", {})
        app.collection.refresh_search_index()
        chain = app.chain(question.k, question.where) | _tap_sources(on_sources)
        return app.answer(chain, question.text, question.history, on_token)


async def answer_events(
    state: ServerState, app: RagApp, question: Question
) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
    """The events of one answer. Closing the iterator (the client went away) stops the
    generation at the next token, or takes the request out of the queue."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue()
    stop = threading.Event()

    def emit(name: str, data: dict[str, Any] | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone (server shutting down)
            loop.call_soon_threadsafe(events.put_nowait, None if data is None else (name, data))

    def work() -> None:
        try:
            answer = answer_blocking(state, app, question, emit, stop.is_set)
            emit("done", {"answer": answer})
        except Cancelled:
            pass
        except RagappError as exc:
            emit("error", exc.to_json())
        except Exception as exc:  # noqa: BLE001 - reported as an event, logged here
            log.exception("answering failed")
            emit("error", {"status": 500, "error": type(exc).__name__, "detail": str(exc)})
        finally:
            emit("end", None)

    threading.Thread(target=work, name="ragapp-answer", daemon=True).start()
    try:
        while (item := await events.get()) is not None:
            yield item
    finally:
        stop.set()


async def answer_once(state: ServerState, app: RagApp, question: Question) -> Answer:
    """The whole answer (JSON responses): the same path as streaming, without the events."""
    async with contextlib.aclosing(answer_events(state, app, question)) as events:
        async for name, data in events:
            if name == "done":
                return data["answer"]
            if name == "error":
                raise AnswerFailed(data)
    raise AnswerFailed({"status": 500, "error": "Cancelled", "detail": "the answer was cancelled"})


class AnswerFailed(Exception):
    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data.get("detail", ""))
        self.data = data
