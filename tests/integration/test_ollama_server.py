"""The Ollama test double speaks Ollama's API as the official client expects, with the real model."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import ollama
import pytest

from ragapp.bundled import llm_gguf
from tests.servers.ollama import OllamaServer, running_ollama

MODEL = "smollm2:135m"
SHORT = {"num_predict": 16, "temperature": 0, "seed": 7}


@pytest.fixture(scope="module")
def server() -> Iterator[OllamaServer]:
    with running_ollama({MODEL: llm_gguf()}) as server:
        yield server


@pytest.fixture(scope="module")
def client(server: OllamaServer) -> ollama.Client:
    return ollama.Client(host=server.base_url)


def test_root_and_version_answer_like_ollama(server: OllamaServer) -> None:
    assert httpx.get(server.base_url).text == "Ollama is running"
    assert httpx.head(server.base_url).status_code == 200
    assert httpx.get(f"{server.base_url}/api/version").json()["version"]


def test_list_shows_the_model(client: ollama.Client) -> None:
    (model,) = client.list().models
    assert model.model == MODEL
    assert model.size == llm_gguf().stat().st_size
    assert model.details is not None
    assert (model.details.format, model.details.family) == ("gguf", "llama")
    assert (model.details.parameter_size, model.details.quantization_level) == ("134.52M", "Q4_1")


def test_show_returns_details_template_and_model_info(
    client: ollama.Client, server: OllamaServer
) -> None:
    shown = client.show(MODEL)
    assert shown.details is not None and shown.details.family == "llama"
    assert shown.template is not None and "<|im_start|>{{ .Role }}" in shown.template
    assert shown.modelinfo is not None
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.modelinfo["llama.context_length"] == 8192
    assert shown.modelinfo["general.parameter_count"] == 134515008
    assert "tokenizer.chat_template" not in shown.modelinfo
    assert shown.capabilities == ["completion"]
    legacy = httpx.post(f"{server.base_url}/api/show", json={"name": MODEL})  # deprecated field
    assert legacy.status_code == 200


def test_generate_without_streaming_returns_the_whole_answer(
    client: ollama.Client, server: OllamaServer
) -> None:
    answer = client.generate(MODEL, "What is the capital of France?", options=SHORT)
    assert answer.done is True
    assert answer.done_reason in ("stop", "length")
    assert answer.response and answer.response.strip()
    assert answer.eval_count is not None and 0 < answer.eval_count <= 16
    assert answer.prompt_eval_count is not None and answer.prompt_eval_count > 10
    assert answer.context  # templated prompts return the token context
    # no num_ctx sent: loaded with Ollama's default
    assert 2048 in [m.context_length for m in client.ps().models]


def test_generate_streams_chunks_ending_with_done(client: ollama.Client) -> None:
    chunks = list(client.generate(MODEL, "Name three colours.", stream=True, options=SHORT))
    assert len(chunks) >= 3
    assert all(chunk.done is False for chunk in chunks[:-1])
    final = chunks[-1]
    assert final.done is True and final.response == ""
    assert final.done_reason in ("stop", "length")
    assert final.eval_count is not None and final.eval_count >= len(chunks) - 1
    assert "".join(chunk.response or "" for chunk in chunks).strip()


def test_raw_prompt_skips_the_template(client: ollama.Client) -> None:
    templated = client.generate(MODEL, "Hello", options=SHORT)
    raw = client.generate(MODEL, "Hello", raw=True, options=SHORT)
    assert raw.done is True and raw.response
    assert raw.context is None  # Ollama returns no context in raw mode
    # the template adds the roles and SmolLM2's default system prompt around "Hello"
    assert raw.prompt_eval_count is not None and templated.prompt_eval_count is not None
    assert raw.prompt_eval_count < 5 < templated.prompt_eval_count


def test_chat_streams_message_chunks(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "Say hello to Ada."}]
    chunks = list(client.chat(MODEL, messages=messages, stream=True, options=SHORT))
    assert len(chunks) >= 3
    assert {chunk.message.role for chunk in chunks} == {"assistant"}
    assert chunks[-1].done is True and chunks[-1].done_reason in ("stop", "length")
    assert chunks[-1].eval_count is not None and chunks[-1].eval_count > 0
    assert "".join(chunk.message.content or "" for chunk in chunks[:-1]).strip()


@pytest.mark.parametrize("call", ["generate", "chat"])
def test_unknown_model_is_a_404_with_ollamas_message(client: ollama.Client, call: str) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        if call == "generate":
            client.generate("llama3:8b", "Hi")
        else:
            client.chat("llama3:8b", messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 404
    assert caught.value.error == 'model "llama3:8b" not found, try pulling it first'


def test_generate_streams_ndjson_and_the_server_records_num_ctx(server: OllamaServer) -> None:
    body = {"model": MODEL, "prompt": "Count to five.", "options": {**SHORT, "num_ctx": 1024}}
    with httpx.stream(
        "POST", f"{server.base_url}/api/generate", json=body, timeout=120
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert len(lines) >= 2
    assert all(set(line) >= {"model", "created_at", "response", "done"} for line in lines)
    assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]
    final = lines[-1]
    assert set(final) >= {"done_reason", "context", "total_duration", "load_duration"}
    assert set(final) >= {
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    }
    assert ("/api/generate", body) in server.requests
    loaded = httpx.get(f"{server.base_url}/api/ps").json()["models"]
    assert 1024 in [model["context_length"] for model in loaded]


def test_a_prompt_longer_than_num_ctx_is_truncated_silently(server: OllamaServer) -> None:
    long_prompt = "The harbour light is green. " * 45  # about 270 tokens
    url = f"{server.base_url}/api/generate"
    body = {"model": MODEL, "prompt": long_prompt, "raw": True, "stream": False}

    small = httpx.post(
        url, json=body | {"options": {"num_ctx": 256, "num_predict": 4}}, timeout=120
    )
    small = small.json()
    assert small["done"] is True and "error" not in small  # no error: the loss is silent
    assert small["prompt_eval_count"] == 256
    assert server.truncations[-1].limit == 256 and server.truncations[-1].prompt > 256

    before = len(server.truncations)
    big = httpx.post(url, json=body | {"options": {"num_ctx": 512, "num_predict": 4}}, timeout=120)
    big = big.json()
    assert big["prompt_eval_count"] == server.truncations[-1].prompt
    assert len(server.truncations) == before


def test_errors_have_ollamas_status_and_body(server: OllamaServer) -> None:
    url = server.base_url
    bad_json = httpx.post(f"{url}/api/generate", content=b"{not json")
    assert bad_json.status_code == 400 and bad_json.json()["error"]
    no_model = httpx.post(f"{url}/api/chat", json={"messages": []})
    assert (no_model.status_code, no_model.json()) == (400, {"error": "model is required"})
    unknown_show = httpx.post(f"{url}/api/show", json={"model": "nope"})
    assert (unknown_show.status_code, unknown_show.json()) == (
        404,
        {"error": "model 'nope' not found"},
    )
    pull = httpx.post(f"{url}/api/pull", json={"model": MODEL})
    assert pull.status_code == 501 and "not implemented" in pull.json()["error"]
    keep_alive = httpx.post(f"{url}/api/generate", json={"model": MODEL, "keep_alive": "soon"})
    assert keep_alive.status_code == 400 and "invalid duration" in keep_alive.json()["error"]
