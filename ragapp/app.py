"""The composition root: builds every component from the settings, once, on first use."""

from __future__ import annotations

import shutil
import threading
from functools import cached_property
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable

from ragapp.chain import build_chain, run_answer
from ragapp.embeddings import (
    EmbeddingSpec,
    embedding_dimension,
    load_embeddings,
    resolve_embedding_model,
)
from ragapp.errors import EmptyCollectionError
from ragapp.keyword import KeywordIndex
from ragapp.llms import LoadedLLM, llm_label, load_llm
from ragapp.retriever import ScoredRetriever, to_source
from ragapp.settings import Settings
from ragapp.store import ChunkStore, make_client
from ragapp.types import Answer, Source


class Models:
    """The embedder, the LLM and the Chroma client, each created once on first use and safe
    to share between threads: one per process, used by every collection (the server's)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
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


class RagApp:
    """Everything a command or request needs, for one collection. Models load lazily:
    `status` never loads the LLM. ``models`` are shared when given (the server's)."""

    def __init__(self, settings: Settings, models: Models | None = None) -> None:
        self.settings = settings
        self.models = models or Models(settings)

    @property
    def embedding_spec(self) -> EmbeddingSpec:
        return self.models.embedding_spec

    @cached_property
    def store(self) -> ChunkStore:
        return ChunkStore(
            self.models.client,
            self.settings.collection,
            self.models.embedding_spec,
            self.models.embedding_dim,
            self.models.embeddings,
        )

    @property
    def llm(self) -> LoadedLLM:
        return self.models.llm()

    @property
    def llm_label(self) -> str:
        """The loaded model's name (a server's model, once asked), else the configured one."""
        loaded = self.models.llm_loaded
        return loaded.label if loaded is not None else llm_label(self.settings)

    def retriever(
        self,
        k: int | None = None,
        min_score: float | None = None,
        where: dict[str, Any] | None = None,
    ) -> ScoredRetriever:
        self._require_chunks()
        return ScoredRetriever(
            vectorstore=self.store.vectorstore(),
            k=k or self.settings.top_k,
            min_score=self.settings.min_score if min_score is None else min_score,
            filter=where,
            mmr_lambda=self.settings.mmr_lambda if self.settings.search == "mmr" else None,
            keyword=self.keyword_index if self.settings.search == "hybrid" else None,
        )

    @property
    def _keyword_dir(self) -> Path:
        return self.settings.data_dir / "keyword" / self.settings.collection

    @cached_property
    def keyword_index(self) -> KeywordIndex:
        """The derived side of hybrid search (BM25, and window vectors unless window_chars is
        0), loaded (or rebuilt, if the collection changed; windows only for new chunks)."""
        index = KeywordIndex(
            self._keyword_dir,
            self.store.collection,
            embeddings=self.models.embeddings,
            window_chars=self.settings.window_chars,
        )
        index.refresh()
        return index

    def refresh_keyword_index(self) -> None:
        """Bring the BM25 index up to date now (after an ingest), not at the next question."""
        if self.settings.search != "hybrid" or not self.store.count():
            return
        if "keyword_index" in self.__dict__:
            self.keyword_index.refresh()
        else:
            self.keyword_index  # noqa: B018  (the first access loads or rebuilds it)

    def drop_keyword_index(self) -> None:
        shutil.rmtree(self._keyword_dir, ignore_errors=True)

    def _require_chunks(self) -> None:
        if self.store.count() == 0:
            raise EmptyCollectionError(
                f"collection {self.settings.collection!r} is empty: run `ragapp ingest PATH` first"
            )

    def retrieve(
        self, question: str, k: int | None = None, where: dict[str, Any] | None = None
    ) -> list[Source]:
        """Top-k chunks, best first, whatever their score (retrieval is not a judgement)."""
        return [to_source(d) for d in self.retriever(k, -1.0, where).invoke(question)]

    def chain(
        self, k: int | None = None, where: dict[str, Any] | None = None
    ) -> Runnable[dict[str, Any], Any]:
        return build_chain(self.retriever(k, where=where), self.llm)

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
