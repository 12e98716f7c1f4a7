"""OpenAI-compatible chat completions over the collection (RAG), for existing clients.

The last user message is the question, the earlier user/assistant messages the history;
system messages and sampling parameters are ignored (ragapp's grounding prompt and the
server's settings apply). Model ``ragapp`` is the server's collection, ``ragapp:NAME``
another one. The numbered sources travel in the extra top-level field ``sources`` of the
completion (and of the last chunk when streaming), with ``refused`` and ``timings``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends, HTTPException, Request

from ragapp.app import RagApp
from ragapp.errors import ConfigError
from ragapp.server.answers import (
    Question,
    answer_events,
    answer_once,
    answer_stream,
    chat_history,
)
from ragapp.server.api import server_state
from ragapp.server.schemas import ChatCompletionRequest, OpenAIModelList
from ragapp.server.security import require_token
from ragapp.server.state import EMPTY_HINT, ServerState
from ragapp.types import Answer

MODEL = "ragapp"
router = APIRouter(prefix="/v1", dependencies=[Depends(require_token)], tags=["openai"])


def _app_for_model(state: ServerState, model: str) -> RagApp:
    name, _, collection = model.partition(":")
    if name != MODEL:
        raise HTTPException(
            404,
            f"model {model!r} not found: use {MODEL!r} or '{MODEL}:COLLECTION' (GET /v1/models)",
        )
    try:
        return state.app(collection or None)
    except ConfigError as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/models", response_model=OpenAIModelList)
async def list_models(request: Request) -> Any:
    """`ragapp` (the server's collection) and `ragapp:NAME` for every collection."""
    state = server_state(request)
    names = await to_thread.run_sync(state.collection_names)
    created = int(state.started_at)
    ids = [MODEL] + [f"{MODEL}:{n}" for n in names]
    return {
        "object": "list",
        "data": [{"id": i, "object": "model", "created": created} for i in ids],
    }


def _extras(answer: Answer) -> dict[str, Any]:
    data = answer.to_json()
    return {"sources": data["sources"], "refused": data["refused"], "timings": data["timings"]}


@router.post(
    "/chat/completions",
    responses={
        200: {
            "description": "chat.completion, or with stream=true SSE chunks "
            "(chat.completion.chunk) ending with `data: [DONE]`; extra fields `sources`, "
            "`refused`, `timings` on the completion and on the last chunk."
        }
    },
)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
    state = server_state(request)
    app = _app_for_model(state, body.model)
    turns = [(m.role, m.text()) for m in body.messages]
    if turns[-1][0] != "user" or not turns[-1][1].strip():
        raise HTTPException(422, "the last message must be the user's question")
    history = chat_history(turns[:-1], app.settings.history_turns)
    question = Question(turns[-1][1], None, history, None)
    await to_thread.run_sync(app.collection.require_chunks, EMPTY_HINT)
    state.queue.check_room()  # a full line: 503 + Retry-After, before any stream starts
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    if not body.stream:
        answer = await answer_once(state, app, question)  # AnswerFailed: the app's handler
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text},
                    "finish_reason": "stop",
                }
            ],
            **_extras(answer),
        }

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, str]:
        data = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return {"data": json.dumps(data, ensure_ascii=False)}

    async def events() -> AsyncIterator[dict[str, str]]:
        yield chunk({"role": "assistant", "content": ""})
        async with aclosing(answer_events(state, app, question)) as answer:
            async for name, data in answer:
                if name == "queued":
                    yield {"comment": f"queued, position {data['position']}"}
                elif name == "token":
                    yield chunk({"content": data["text"]})
                elif name == "done":
                    yield chunk({}, "stop", **_extras(data["answer"]))
                elif name == "error":
                    error = {"message": data["detail"], "type": data["error"],
                             "code": data.get("status")}  # fmt: skip
                    if data.get("retry_after"):
                        error["retry_after"] = data["retry_after"]
                    yield {"data": json.dumps({"error": error})}
        yield {"data": "[DONE]"}

    return answer_stream(events())
