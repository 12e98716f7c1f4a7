"""The composition root: builds every component from the settings, once, on first use.

``Models`` holds what is expensive and shared (the store client, the embedder, the LLM);
``RagApp`` is one collection with the LLM that answers from it. Front ends build these
and nothing else: a ``Collection`` for reading and writing, ``RagApp.ask`` for answers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable

from ragapp.backends import load_llm
from ragapp.backends.base import LoadedLLM, llm_label
from ragapp.collection import Collection
from ragapp.embeddings import (
    embedding_dimension,
    load_embeddings,
    resolve_embedding_model,
)
from ragapp.query.chain import build_chain, run_answer
from ragapp.settings import Settings
from ragapp.store import (
    ChromaStore,
    ChunkStore,
    MemoryStore,
    is_memory_url,
    is_side_name,
    make_client,
    memory_space,
    release_client,
)
from ragapp.types import Answer, EmbeddingSpec, Source


class Models:
    """The embedder, the LLM and the Chroma client, each created once on first use and safe
    to share between threads: one per process, used by every collection (the server's)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # RAGAPP_CHROMA_URL=memory://NAME (unit tests): collections in this process's memory
        self.memory = (
            memory_space(settings.chroma_url) if is_memory_url(settings.chroma_url) else None
        )
        # one lock each: loading the LLM (seconds) must not hold up the store or the embedder
        self._locks = {name: threading.Lock() for name in ("client", "embeddings", "llm")}
        self._client: Any = None
        self._embeddings: Any = None
        self._llm: LoadedLLM | None = None

    @cached_property
    def embedding_spec(self) -> EmbeddingSpec:
        return resolve_embedding_model(self.settings.embedding_model)

    @cached_property
    def embedding_dim(self) -> int:
        return embedding_dimension(self.embedding_spec)

    def client(self) -> Any:
        with self._locks["client"]:
            if self._client is None:
                self._client = make_client(self.settings)
            return self._client

    def reopen_client(self) -> None:
        """Another process wrote to the embedded store: the next call gets a new client,
        whose vector indexes include it."""
        with self._locks["client"]:
            if self._client is not None:
                release_client(self._client)
                self._client = None

    def embeddings(self) -> Any:
        with self._locks["embeddings"]:
            if self._embeddings is None:
                s = self.settings
                self._embeddings = load_embeddings(
                    self.embedding_spec, s.embedding_batch_size, s.embedding_runtime,
                    s.cache_dir / "onnx",
                )  # fmt: skip
            return self._embeddings

    def llm(self) -> LoadedLLM:
        with self._locks["llm"]:
            if self._llm is None:
                self._llm = load_llm(self.settings)
            return self._llm

    @property
    def llm_loaded(self) -> LoadedLLM | None:
        return self._llm

    def store(self, name: str) -> ChunkStore:
        if self.memory is not None:
            return MemoryStore(
                name, self.embedding_spec, self.embedding_dim, self.embeddings, self.memory
            )
        return ChromaStore(
            self.client, name, self.embedding_spec, self.embedding_dim, self.embeddings,
            reopen=None if self.settings.chroma_url else self.reopen_client,
        )  # fmt: skip

    def collection(self, settings: Settings) -> Collection:
        """The collection ``settings`` names, on these models."""
        return Collection(settings, self.store(settings.collection))

    def collection_names(self) -> list[str]:
        """Every collection the store holds."""
        if self.memory is not None:
            return sorted(self.memory)
        names = (c if isinstance(c, str) else c.name for c in self.client().list_collections())
        return sorted(n for n in names if not is_side_name(n))


class RagApp:
    """One collection and the LLM that answers from it. Models load lazily: `status` never
    loads the LLM. ``models`` are shared when given (the server's)."""

    def __init__(self, settings: Settings, models: Models | None = None) -> None:
        self.settings = settings
        self.models = models or Models(settings)

    @property
    def embedding_spec(self) -> EmbeddingSpec:
        return self.models.embedding_spec

    @cached_property
    def collection(self) -> Collection:
        return self.models.collection(self.settings)

    @property
    def llm(self) -> LoadedLLM:
        return self.models.llm()

    @property
    def llm_label(self) -> str:
        """The loaded model's name (a server's model, once asked), else the configured one."""
        loaded = self.models.llm_loaded
        return loaded.label if loaded is not None else llm_label(self.settings)

    def status(self) -> dict[str, Any]:
        """`ragapp status --json`'s fields."""
        status = self.collection.status()
        return {
            "documents": status["documents"],
            "chunks": status["chunks"],
            "embedding_model": status["embedding_model"],
            "llm": self.llm_label,
            "store": status["store"],
            "missing": status["missing"],
        }

    def sources(self) -> list[dict[str, Any]]:
        """`ragapp sources --json`'s rows: each ingested file, its chunks, when ingested."""
        return [
            {
                "path": e.path,
                "chunks": e.chunks,
                "bytes": e.size,
                "ingested_at": datetime.fromtimestamp(e.ingested_at, UTC).isoformat(
                    timespec="seconds"
                ),
            }
            for e in self.collection.files().values()
        ]

    def retrieve(
        self, question: str, k: int | None = None, where: dict[str, Any] | None = None
    ) -> list[Source]:
        return self.collection.retrieve(question, k, where)

    def chain(
        self, k: int | None = None, where: dict[str, Any] | None = None
    ) -> Runnable[dict[str, Any], Any]:
        return build_chain(self.collection.retriever(k, where=where), self.llm)

    def ask(
        self,
        question: str,
        k: int | None = None,
        history: list[BaseMessage] | None = None,
        on_token: Any = None,
        where: dict[str, Any] | None = None,
    ) -> Answer:
        return self.answer(self.chain(k, where), question, history, on_token)

    def answer(
        self,
        chain: Runnable[dict[str, Any], Any],
        question: str,
        history: list[BaseMessage] | None = None,
        on_token: Any = None,
    ) -> Answer:
        """Run an answer chain; what a server backend's client raised (connection lost,
        model gone) becomes the backend's one-line error."""
        try:
            return run_answer(chain, question, history, on_token)
        except Exception as exc:
            loaded = self.models.llm_loaded
            describe = loaded.describe_error if loaded is not None else None
            translated = describe(exc) if describe is not None else None
            if translated is None:
                raise
            raise translated from exc
