"""The openai backend against real OpenAI-compatible servers on loopback: llama-cpp-python's
server (`python -m llama_cpp.server`) and llama.cpp's own server (the `xllamacpp` wheel,
the native server llamafile embeds), both serving the bundled model."""

from __future__ import annotations

import pytest

from tests.conftest import Corpus, free_port

pytestmark = pytest.mark.e2e

QUESTION = "What was the cooperative's total income for 2025?"


@pytest.fixture
def corpus(asked_corpus: Corpus) -> Corpus:
    return asked_corpus


def ask(corpus: Corpus, base_url: str, *extra: str, **env: str) -> dict:
    res = corpus.cli(
        "ask", QUESTION, "--json", "--llm", "openai",
        env={"RAGAPP_LLM_BASE_URL": base_url, "RAGAPP_MAX_TOKENS": "64", **env},
    )  # fmt: skip
    assert res.code == 0, res.stderr
    return res.json()


def assert_grounded(answer: dict) -> None:
    assert not answer["refused"]
    assert answer["answer"].strip()
    assert any(s["source"].endswith("annual-report-2025.pdf") for s in answer["sources"])
    assert answer["timings"]["completion_tokens"] > 0
    assert answer["timings"]["ttft_ms"] > 0


def test_llama_cpp_python_server_answers_with_sources(
    corpus: Corpus, llama_cpp_python_server: str
) -> None:
    assert_grounded(ask(corpus, llama_cpp_python_server))


def test_native_llama_cpp_server_chat_and_completions(
    corpus: Corpus, llama_cpp_native_server: str
) -> None:
    # the server applies the model's own template (chat), or ragapp renders it (completions)
    assert_grounded(ask(corpus, llama_cpp_native_server))
    assert_grounded(ask(corpus, llama_cpp_native_server, RAGAPP_PROMPT_FORMAT="chatml"))


def test_the_server_context_bounds_the_prompt(corpus: Corpus, llama_cpp_native_server: str) -> None:
    res = corpus.cli(
        "--debug", "ask", QUESTION, "-k", "8", "--llm", "openai",
        env={"RAGAPP_LLM_BASE_URL": llama_cpp_native_server, "RAGAPP_MAX_TOKENS": "16",
             "RAGAPP_N_CTX": "8192"},
    )  # fmt: skip
    assert res.code == 0, res.stderr
    assert "the server's context is 2048 tokens (n_ctx is 8192)" in res.stderr


def test_unreachable_server_is_one_clear_line(corpus: Corpus) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    res = corpus.cli("ask", QUESTION, "--llm", "openai", env={"RAGAPP_LLM_BASE_URL": url})
    assert res.code == 1
    assert res.stderr.strip().splitlines() == [
        f"error: cannot reach the OpenAI-compatible server at {url}: is it running? "
        "(RAGAPP_LLM_BASE_URL sets the address)"
    ]


def test_unknown_model_names_the_served_ones(corpus: Corpus, llama_cpp_python_server: str) -> None:
    res = corpus.cli(
        "ask", QUESTION, "--llm", "openai", "--model", "no-such-model",
        env={"RAGAPP_LLM_BASE_URL": llama_cpp_python_server},
    )  # fmt: skip
    assert res.code == 1
    assert "has no model 'no-such-model'; it serves:" in res.stderr
    assert "Traceback" not in res.stderr


def test_missing_base_url_says_which_setting(corpus: Corpus) -> None:
    res = corpus.cli("ask", QUESTION, "--llm", "openai")
    assert res.code == 1
    assert "RAGAPP_LLM_BASE_URL must name the server" in res.stderr


def test_doctor_and_models_ask_the_server(corpus: Corpus, llama_cpp_native_server: str) -> None:
    env = {"RAGAPP_LLM_BACKEND": "openai", "RAGAPP_LLM_BASE_URL": llama_cpp_native_server}
    res = corpus.cli("doctor", "--json", env=env)
    assert res.code == 0, res.stderr
    report = res.json()
    assert report["model"]["server_template"] is True
    assert report["model"]["exact_token_counts"] is True  # llama.cpp's /tokenize
    assert report["context"]["n_ctx"] == 2048
    assert report["backends"]["openai"]["reachable"] is True
    assert any(c["name"] == "context" and c["status"] == "warn" for c in report["checks"])
    listed = corpus.cli("models", "--json", env=env).json()["models"]
    served = [m for m in listed if m["origin"] == "openai"]
    assert [m["name"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf") for m in served] == [True]
    assert served[0]["selected"]


def test_doctor_fails_when_the_configured_server_is_down(corpus: Corpus) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    res = corpus.cli(
        "doctor", "--json", env={"RAGAPP_LLM_BACKEND": "openai", "RAGAPP_LLM_BASE_URL": url}
    )
    assert res.code == 1
    checks = {c["name"]: c for c in res.json()["checks"]}
    assert checks["llm server"]["status"] == "error"
    assert "cannot reach" in checks["llm server"]["detail"]
