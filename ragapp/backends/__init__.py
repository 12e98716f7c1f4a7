"""LLM backends: one module per runtime, one registry that settings, doctor, `ragapp
models` and the server consult.

    base.py           LoadedLLM (the LLM, its prompt format, token counter, context)
    formats.py        the chat format each model family expects
    llamacpp.py       llama-cpp-python in-process (the default; GPU offload)
    ollama.py         an Ollama server
    openai_compat.py  any OpenAI-compatible server (llamafile, llama.cpp, LM Studio, vLLM)
    gpt4all.py        GPT4All's own runtime, in-process
    fake.py           an echo LLM and a hash embedder, for fast unit tests

A backend's module is imported only when it is used, so a missing optional runtime costs
nothing until it is asked for, and then fails with the exact install command.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from dataclasses import dataclass
from typing import Any

from ragapp.backends.base import LoadedLLM
from ragapp.errors import BackendError
from ragapp.settings import Settings


@dataclass(frozen=True)
class Backend:
    """A runtime ragapp can answer with: the value of RAGAPP_LLM_BACKEND."""

    name: str
    summary: str
    module: str  # ragapp.backends.<module>: load(settings) -> LoadedLLM
    requires: str  # the importable package the runtime needs
    install: str  # how to get it
    kind: str  # "gguf": a local GGUF in-process; "server": a local server; "test"
    default_url: str | None = None
    gpu_offload: bool = False  # offloads layers to a GPU through llama-cpp-python (n_gpu_layers)

    @property
    def installed(self) -> bool:
        return importlib.util.find_spec(self.requires) is not None

    @property
    def uses_server(self) -> bool:
        return self.kind == "server"

    @property
    def runs_gguf(self) -> bool:
        return self.kind == "gguf"

    def implementation(self) -> Any:
        return importlib.import_module(f"ragapp.backends.{self.module}")

    def load(self, settings: Settings) -> LoadedLLM:
        loaded: LoadedLLM = self.implementation().load(settings)
        if self.runs_gguf:
            loaded.guard = threading.Lock()  # one context in this process: one decode at a time
        return loaded

    def server_url(self, settings: Settings) -> str | None:
        """The server a server backend talks to (its default when none is set)."""
        finder = getattr(self.implementation(), "server_url", None)
        return finder(settings) if finder is not None else None

    def list_models(self, settings: Settings) -> list[dict[str, Any]]:
        """The models a server backend serves (name, size_mb, family); [] for the others."""
        lister = getattr(self.implementation(), "list_models", None)
        return list(lister(settings)) if lister is not None else []


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("llamacpp", "llama-cpp-python in-process", "llamacpp", "llama_cpp",
                "pip install llama-cpp-python", "gguf", gpu_offload=True),
        Backend("ollama", "an Ollama server", "ollama", "langchain_ollama",
                "pip install langchain-ollama", "server", "http://127.0.0.1:11434"),
        Backend("openai", "an OpenAI-compatible server", "openai_compat", "langchain_openai",
                "pip install langchain-openai", "server"),
        Backend("gpt4all", "GPT4All's runtime in-process", "gpt4all", "gpt4all",
                "pip install 'ragapp[gpt4all]'", "gguf"),
        Backend("fake", "an echo LLM for tests (no model)", "fake", "langchain_core",
                "(part of ragapp)", "test"),
    )
}  # fmt: skip


def get_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise BackendError(
            f"unknown LLM backend {name!r} (one of: {', '.join(BACKENDS)})"
        ) from None


def configured(settings: Settings) -> Backend:
    """The backend the settings choose."""
    return get_backend(settings.llm_backend)


def load_llm(settings: Settings) -> LoadedLLM:
    """The configured backend's LLM, ready to answer."""
    return get_backend(settings.llm_backend).load(settings)


__all__ = ["BACKENDS", "Backend", "LoadedLLM", "configured", "get_backend", "load_llm"]
