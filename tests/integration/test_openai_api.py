"""`ragapp serve`'s /v1 API through the official `openai` client, against a real uvicorn
server on loopback with the real bundled models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AuthenticationError, NotFoundError, OpenAI

from ragapp.server import create_app
from ragapp.server.testing import running_server
from tests.server_helpers import IN_SCOPE, LIGHTHOUSE, OUT_OF_SCOPE, server_settings, wait_for_job

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = create_app(server_settings(tmp_path_factory.mktemp("openai") / "data"))
    with running_server(app) as url:
        with httpx.Client(base_url=url, timeout=120) as client:
            res = client.post(
                "/api/documents", files=[("files", ("lighthouse.txt", LIGHTHOUSE.encode()))]
            )
            assert res.status_code == 202, res.text
            assert wait_for_job(client, res.json()["job_id"])["state"] == "done"
        yield url


@pytest.fixture(scope="module")
def client(base_url: str) -> OpenAI:
    return OpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0, timeout=180)


def extra(obj: Any, name: str) -> Any:
    """An extra (non-OpenAI) top-level field of a response object."""
    return (obj.model_extra or {})[name]


def test_models_list(client: OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "ragapp" and "ragapp:default" in ids
    assert all(m.owned_by == "ragapp" for m in client.models.list())


def test_chat_completion_with_sources(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="ragapp",
        messages=[
            {"role": "system", "content": "You are a pirate."},  # ignored: ragapp grounds
            {"role": "user", "content": IN_SCOPE},
        ],
    )
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    assert "Solberg" in (choice.message.content or "")
    sources = extra(completion, "sources")
    assert sources and sources[0]["n"] == 1
    assert Path(sources[0]["source"]).name == "lighthouse.txt"
    assert set(sources[0]) == {"n", "source", "page", "score", "text"}
    assert extra(completion, "refused") is False
    assert extra(completion, "timings")["completion_tokens"] > 0


def test_chat_completion_streaming(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="ragapp:default",
        messages=[{"role": "user", "content": "When was the lamp of the lighthouse first lit?"}],
        stream=True,
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.strip() and len(chunks) > 3
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    sources = extra(last, "sources")
    assert sources and Path(sources[0]["source"]).name == "lighthouse.txt"
    assert "1887" in sources[0]["text"]
    assert all("sources" not in (c.model_extra or {}) for c in chunks[:-1])


def test_refusal_and_unknown_model(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="ragapp", messages=[{"role": "user", "content": OUT_OF_SCOPE}]
    )
    assert "couldn't find" in (completion.choices[0].message.content or "")
    assert extra(completion, "refused") is True and extra(completion, "sources") == []
    with pytest.raises(NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def test_token_is_the_api_key(tmp_path: Path) -> None:
    app = create_app(server_settings(tmp_path / "data"), token="k3y-for-tests")
    with running_server(app) as url:
        good = OpenAI(base_url=f"{url}/v1", api_key="k3y-for-tests", max_retries=0)
        assert [m.id for m in good.models.list()][0] == "ragapp"
        bad = OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(AuthenticationError):
            bad.models.list()
