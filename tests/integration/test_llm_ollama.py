"""The ollama backend, end to end: the real CLI against a protocol-faithful Ollama server on
loopback (tests/servers/ollama.py) that generates with the real bundled model."""

from __future__ import annotations

import pytest

from tests.conftest import OLLAMA_MODEL as MODEL
from tests.conftest import Corpus, free_port
from tests.integration.test_llm_openai import QUESTION, assert_grounded
from tests.servers.ollama import OllamaServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def corpus(asked_corpus: Corpus) -> Corpus:
    return asked_corpus


def env(server: OllamaServer, **more: str) -> dict[str, str]:
    return {"RAGAPP_LLM_BASE_URL": server.base_url, "RAGAPP_MAX_TOKENS": "64", **more}


def test_answers_with_sources_in_ragapps_own_prompt_format(
    corpus: Corpus, ollama: OllamaServer
) -> None:
    ollama.requests.clear()
    res = corpus.cli(
        "ask", QUESTION, "--json", "--llm", "ollama", "--model", MODEL, env=env(ollama)
    )
    assert res.code == 0, res.stderr
    assert_grounded(res.json())
    generate = [body for path, body in ollama.requests if path == "/api/generate"]
    assert len(generate) == 1
    body = generate[0]
    # ChatML was read from /api/show; ragapp rendered it and sent it raw, with its stops
    assert body["raw"] is True
    assert body["prompt"].startswith("<|im_start|>system\n")
    assert "<|im_end|>" in body["options"]["stop"]
    # num_ctx is always sent, so Ollama never cuts the passages silently
    assert body["options"]["num_ctx"] == 4096
    assert body["options"]["num_predict"] == 64
    assert body["keep_alive"] == "5m"
    assert not ollama.truncations


def test_template_format_lets_ollama_apply_the_models_template(
    corpus: Corpus, ollama: OllamaServer
) -> None:
    ollama.requests.clear()
    res = corpus.cli(
        "ask", QUESTION, "--json", "--llm", "ollama", "--model", MODEL,
        env=env(ollama, RAGAPP_PROMPT_FORMAT="template"),
    )  # fmt: skip
    assert res.code == 0, res.stderr
    assert_grounded(res.json())
    chats = [body for path, body in ollama.requests if path == "/api/chat"]
    assert len(chats) == 1
    assert [m["role"] for m in chats[0]["messages"]] == ["system", "user"]
    assert chats[0]["options"]["num_ctx"] == 4096


def test_a_model_that_is_not_pulled_says_how_to_pull_it(
    corpus: Corpus, ollama: OllamaServer
) -> None:
    res = corpus.cli("ask", QUESTION, "--llm", "ollama", "--model", "llama3:8b", env=env(ollama))
    assert res.code == 1
    assert res.stderr.strip().splitlines() == [
        f"error: Ollama at {ollama.base_url} has no model 'llama3:8b': run `ollama pull llama3:8b`"
    ]


def test_an_unreachable_server_is_one_clear_line(corpus: Corpus) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    res = corpus.cli(
        "ask", QUESTION, "--llm", "ollama", "--model", MODEL, env={"RAGAPP_LLM_BASE_URL": url}
    )
    assert res.code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: cannot reach Ollama at {url}")
    assert "ollama serve" in lines[0]


def test_doctor_and_models_read_the_server(corpus: Corpus, ollama: OllamaServer) -> None:
    more = {"RAGAPP_LLM_BACKEND": "ollama", "RAGAPP_LLM_MODEL": MODEL}
    report = corpus.cli("doctor", "--json", env=env(ollama, **more)).json()
    assert report["model"]["prompt_format"] == "chatml"
    assert report["model"]["server_template"] is False
    assert report["backends"]["ollama"] == {"url": ollama.base_url, "reachable": True}
    listed = corpus.cli("models", "--json", env=env(ollama, **more)).json()["models"]
    served = [m for m in listed if m["origin"] == "ollama"]
    assert [(m["name"], m["selected"]) for m in served] == [(MODEL, True)]


def test_client_errors_become_one_line_backend_errors() -> None:
    import ollama as client

    from ragapp.backends.ollama import ollama_error
    from ragapp.errors import BackendError

    url = "http://127.0.0.1:11434"
    down = ollama_error(ConnectionError("Failed to connect"), url, MODEL)
    assert isinstance(down, BackendError) and "cannot reach Ollama at" in str(down)
    gone = ollama_error(client.ResponseError("model not found", 404), url, MODEL)
    assert str(gone) == f"Ollama at {url} has no model '{MODEL}': run `ollama pull {MODEL}`"
    assert ollama_error(ValueError("ours"), url, MODEL) is None  # not the client's: re-raised
