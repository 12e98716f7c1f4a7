"""The backend registry: one entry per RAGAPP_LLM_BACKEND value, lazily loaded, with clear
errors; the fake backend answers through the real chain."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import get_args

import pytest

from ragapp.backends import BACKENDS, get_backend, load_llm
from ragapp.backends.base import missing_package
from ragapp.errors import BackendError
from ragapp.settings import LLMBackend, load_settings


def test_the_registry_and_the_settings_name_the_same_backends() -> None:
    assert set(BACKENDS) == set(get_args(LLMBackend))
    assert {b.kind for b in BACKENDS.values()} == {"gguf", "server", "test"}
    assert [n for n, b in BACKENDS.items() if b.uses_server] == ["ollama", "openai"]
    assert BACKENDS["ollama"].default_url == "http://127.0.0.1:11434"
    for backend in BACKENDS.values():
        assert backend.implementation().load  # every module has its loader


def test_unknown_backend_is_a_one_line_error() -> None:
    with pytest.raises(BackendError, match="unknown LLM backend 'hal9000' \\(one of: llamacpp, "):
        get_backend("hal9000")


def test_missing_runtime_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    assert str(missing_package("langchain-ollama")) == (
        "the langchain-ollama package is missing: pip install langchain-ollama"
    )
    monkeypatch.setitem(sys.modules, "langchain_ollama", None)  # import -> ImportError
    settings = load_settings(llm_backend="ollama", llm_model="x")
    with pytest.raises(BackendError, match="pip install langchain-ollama"):
        load_llm(settings)


def test_server_urls() -> None:
    openai = get_backend("openai")
    assert openai.server_url(load_settings(llm_base_url="http://127.0.0.1:8080")) == (
        "http://127.0.0.1:8080/v1"
    )
    with pytest.raises(BackendError, match="RAGAPP_LLM_BASE_URL must name the server"):
        openai.server_url(load_settings())
    assert get_backend("ollama").server_url(load_settings()) == "http://127.0.0.1:11434"
    assert get_backend("llamacpp").server_url(load_settings()) is None


def test_fake_backend_answers_through_the_chain(docs: Path) -> None:
    from ingest.pipeline import ingest_paths
    from ragapp.app import RagApp

    app = RagApp(load_settings())
    ingest_paths([docs], app.collection)
    tokens: list[str] = []
    answer = app.ask("Who is the harbour master?", on_token=tokens.append)
    assert answer.text == "The harbour master is called Ole Brekke. [1]"
    assert "".join(tokens) == answer.text and not answer.refused
    assert Path(answer.sources[0].source).name == "notes.txt"
    assert app.llm_label == "fake:cite"
    echo = RagApp(load_settings(llm_model="echo")).ask("Who is the harbour master?")
    assert echo.text.startswith("Who is the harbour master?")  # ragapp may add the [n]


def test_fake_llm_scripted_and_stopped() -> None:
    from ragapp.backends.fake import EchoLLM

    llm = EchoLLM(responses=["one<|im_end|>ignored", "two"])
    assert llm.invoke("x", stop=["<|im_end|>"]) == "one"
    assert llm.invoke("x") == "two" and llm.calls == 2


def test_an_in_process_model_never_runs_two_generations_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The guard of a GGUF runtime: a second generation waits (and says so in the log)
    until the first one has finished or been closed; invoke goes through it too. A server
    backend has no guard: its slots run in parallel."""
    import threading

    from langchain_core.prompt_values import StringPromptValue

    from ragapp.backends.base import LoadedLLM
    from ragapp.backends.fake import EchoLLM
    from ragapp.backends.formats import FORMATS

    loaded = LoadedLLM(
        llm=EchoLLM(responses=["a b c d"]), prompt_format=FORMATS["chatml"], label="t",
        metadata={}, guard=threading.Lock(),
    )  # fmt: skip
    prompt = StringPromptValue(text="q")
    first = loaded.generate(stop=[]).stream(prompt)
    assert next(first) == "a "  # the first generation holds the context, mid-answer
    second: list[str] = []
    other = threading.Thread(target=lambda: second.extend(loaded.generate(stop=[]).stream(prompt)))
    with caplog.at_level("WARNING", logger="ragapp.backends.base"):
        other.start()
        other.join(0.5)
        assert other.is_alive() and second == []  # waiting, not decoding
        first.close()  # the first one stops (its client went away): the second goes on
        other.join(5)
    assert "".join(second) == "a b c d"
    assert "waited for another" in caplog.text
    assert loaded.generate(stop=[]).invoke(prompt) == "a b c d" and not loaded.guard.locked()
    from ragapp.backends import Backend

    def loaded_by(kind: str) -> LoadedLLM:
        backend = Backend(name="x", summary="", module="fake", requires="", install="", kind=kind)
        return backend.load(load_settings())

    assert loaded_by("gguf").guard is not None and loaded_by("server").guard is None
    assert [n for n, b in BACKENDS.items() if b.runs_gguf] == ["llamacpp", "gpt4all"]
