"""Retrieval: top-k chunks by cosine relevance, as LangChain documents carrying their score."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from ragapp.errors import NoMatchingFileError
from ragapp.types import Source


class ScoredRetriever(BaseRetriever):
    """Like ``VectorStore.as_retriever`` but keeps each hit's relevance in ``metadata['score']``
    (1 - cosine distance), since answers cite it. Hits below ``min_score`` are dropped."""

    store: Any  # a ChunkStore
    k: int = 4
    min_score: float = -1.0
    min_score_margin: float = 0.0  # see admitted()
    filter: dict[str, Any] | None = None  # a Chroma `where` (see metadata_filter)
    mmr_lambda: float | None = None  # set: maximal marginal relevance over 4k candidates
    keyword: Any = None  # a KeywordIndex: hybrid search, fused by reciprocal rank
    windows: bool = False  # hybrid: order dense candidates by their best window too
    keyword_weight: float = 0.3
    rrf_k: int = 10

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        k = int(kwargs.get("k", self.k))
        if self.mmr_lambda is not None:
            hits = self._mmr(query, k, self.mmr_lambda)
        elif self.keyword is not None:
            hits = self._hybrid(query, k)
        else:
            hits, _ = self.store.query(self._embed(query), k, self.filter)
        for doc, score in hits:
            doc.metadata = {**doc.metadata, "score": round(float(score), 4)}
        keep = admitted(
            [(d.metadata["score"], d.metadata.get("keyword_rank")) for d, _ in hits],
            self.min_score,
            self.min_score_margin,
        )
        return [hits[i][0] for i in keep]

    def _embed(self, query: str) -> np.ndarray:
        return np.array(self.store.embeddings.embed_query(query))

    def _hybrid(self, query: str, k: int, candidates: int = 50) -> list[tuple[Document, float]]:
        """Dense and BM25 rankings of up to 50 candidates each, fused by reciprocal rank
        (1/(rrf_k + rank), BM25's share weighted by keyword_weight). When the keyword index
        holds window vectors, the dense candidates are re-ordered by the mean of their own
        cosine and their best window's (a passage deep in a long chunk then counts; chunks
        too short for windows, or written without them, count their own cosine twice). The
        window vectors of the candidates are one read from the store. Every hit keeps its
        chunk's cosine relevance as its score, BM25-only hits included, so min_score means
        the same."""
        query_vector = self._embed(query)
        dense, _ = self.store.query(query_vector, max(k, candidates), self.filter)
        windows = (
            self.store.best_windows([doc for doc, _ in dense], query_vector) if self.windows else {}
        )
        if windows:
            dense.sort(key=lambda hit: -(hit[1] + windows.get(str(hit[0].id), hit[1])) / 2)
        docs = {doc.id: (doc, score) for doc, score in dense}
        keyword_ids = self.keyword.search(query, max(k, candidates))
        missing = [i for i in keyword_ids if i not in docs]
        if missing:
            for doc, vector in self.store.get(ids=missing, where=self.filter, vectors=True):
                docs[doc.id] = (doc, float(np.dot(query_vector, np.asarray(vector))))
        for rank, id_ in enumerate(keyword_ids, start=1):
            if id_ in docs:
                doc = docs[id_][0]
                doc.metadata = {**doc.metadata, "keyword_rank": rank}
        fused: dict[str, float] = {}
        for rank, (doc, _) in enumerate(dense):
            fused[str(doc.id)] = 1 / (self.rrf_k + rank + 1)
        for rank, id_ in enumerate(i for i in keyword_ids if i in docs):
            fused[id_] = fused.get(id_, 0.0) + self.keyword_weight / (self.rrf_k + rank + 1)
        best = sorted(fused, key=lambda i: -fused[i])[:k]
        return [docs[i] for i in best]

    def _mmr(self, query: str, k: int, lambda_mult: float) -> list[tuple[Document, float]]:
        """Diverse top-k: candidates by relevance, then LangChain's MMR selection over their
        stored vectors; each hit keeps its own relevance score."""
        from langchain_core.vectorstores.utils import maximal_marginal_relevance

        query_vector = self._embed(query)
        candidates, vectors = self.store.query(query_vector, 4 * k, self.filter, vectors=True)
        if len(candidates) <= 1:
            return candidates
        chosen = maximal_marginal_relevance(query_vector, vectors, lambda_mult=lambda_mult, k=k)
        return [candidates[i] for i in chosen]


def admitted(
    hits: Sequence[tuple[float, int | None]], min_score: float, margin: float = 0.0
) -> list[int]:
    """Which hits (cosine score, BM25 rank or None) the LLM sees, by index: those reaching
    ``min_score``. When none does, a near miss still gets in: the best hit, if it lies
    within ``margin`` of the threshold and BM25 ranks it first as well (the two retrievers
    agree on it). Otherwise none: the answer is a refusal, decided before the LLM runs."""
    keep = [i for i, (score, _) in enumerate(hits) if score >= min_score]
    if keep or margin <= 0 or not hits:
        return keep
    best = max(range(len(hits)), key=lambda i: hits[i][0])
    score, keyword_rank = hits[best]
    return [best] if score >= min_score - margin and keyword_rank == 1 else []


def to_source(doc: Document) -> Source:
    meta = doc.metadata
    return Source(
        source=str(meta.get("source", "")),
        page=int(meta["page"]) if meta.get("page") is not None else None,
        score=float(meta.get("score", 0.0)),
        text=doc.page_content,
        section=meta.get("section"),
        keyword_rank=meta.get("keyword_rank"),
    )


def select_sources(sources: Iterable[str], patterns: Sequence[str], cwd: Path) -> list[str]:
    """The ingested paths matching any glob: a pattern without a slash matches file names
    (``*.pdf``, ``report-202?.docx``); one with a slash matches whole paths, relative ones
    taken from ``cwd`` (``reports/*``, ``~/notes/**``; ``*`` also crosses folders)."""
    full = []
    for pattern in patterns:
        if "/" in pattern:
            expanded = os.path.expanduser(pattern)
            full.append((True, expanded if os.path.isabs(expanded) else str(cwd / expanded)))
        else:
            full.append((False, pattern))
    return [
        s
        for s in sources
        if any(fnmatch.fnmatchcase(s if whole else Path(s).name, p) for whole, p in full)
    ]


def metadata_filter(
    sources: Sequence[str] | None = None, file_types: Sequence[str] | None = None
) -> dict[str, Any] | None:
    """A Chroma `where` limiting retrieval to some files and/or file types."""
    clauses: list[dict[str, Any]] = []
    if sources is not None:
        clauses.append({"source": {"$in": list(sources)}})
    if file_types:
        clauses.append({"file_type": {"$in": [t.lower().lstrip(".") for t in file_types]}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def file_filter(
    ingested: Iterable[str],
    paths: Sequence[str] | None,
    file_types: Sequence[str] | None,
    cwd: Path,
    option: str = "--path",
) -> dict[str, Any] | None:
    """The `where` for path globs and file types (`--path`/`--type`, the API's path/type);
    NoMatchingFileError when globs are given and no ingested file matches them."""
    sources = None
    if paths:
        sources = select_sources(ingested, paths, cwd)
        if not sources:
            raise NoMatchingFileError(f"no ingested file matches {option} {' '.join(paths)}")
    return metadata_filter(sources, file_types)
