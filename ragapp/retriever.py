"""Retrieval: top-k chunks by cosine relevance, as LangChain documents carrying their score."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from ragapp.types import Source


class ScoredRetriever(BaseRetriever):
    """Like ``VectorStore.as_retriever`` but keeps each hit's relevance in ``metadata['score']``
    (1 - cosine distance), since answers cite it. Hits below ``min_score`` are dropped."""

    vectorstore: Any
    k: int = 4
    min_score: float = -1.0

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        k = int(kwargs.get("k", self.k))
        hits = self.vectorstore.similarity_search_with_relevance_scores(query, k=k)
        docs = []
        for doc, score in hits:
            if score < self.min_score:
                continue
            doc.metadata = {**doc.metadata, "score": round(float(score), 4)}
            docs.append(doc)
        return docs


def to_source(doc: Document) -> Source:
    meta = doc.metadata
    return Source(
        source=str(meta.get("source", "")),
        page=int(meta["page"]) if meta.get("page") is not None else None,
        score=float(meta.get("score", 0.0)),
        text=doc.page_content,
        section=meta.get("section"),
    )
