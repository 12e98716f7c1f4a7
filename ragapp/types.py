"""The values that flow through the pipeline: chunks in, sources and answers out."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EmbeddingSpec:
    """What an index records about the embedding model that built it."""

    name: str  # stable label written into the collection (not a machine-specific path)
    path: Path
    fake: bool = False  # the hash embedder of the fake backend (unit tests)


@dataclass(frozen=True)
class Chunk:
    """A piece of one file, ready to embed: its text and where it came from."""

    id: str
    text: str
    source: str  # absolute path of the file as ingested
    page: int | None = None
    section: str | None = None
    file_hash: str = ""
    file_type: str = ""
    index: int = 0  # position in its file

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "source": self.source,
            "file_hash": self.file_hash,
            "file_type": self.file_type,
            "index": self.index,
        }
        # Chroma metadata values cannot be None: leave missing ones out.
        if self.page is not None:
            meta["page"] = self.page
        if self.section:
            meta["section"] = self.section
        return meta


@dataclass(frozen=True)
class Source:
    """A retrieved chunk, as cited in an answer."""

    source: str
    page: int | None
    score: float
    text: str
    section: str | None = None
    keyword_rank: int | None = None  # its rank in BM25's list (hybrid search), 1 = first

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "page": self.page, "score": self.score, "text": self.text}


@dataclass
class Timings:
    retrieve_ms: float = 0.0
    ttft_ms: float = 0.0
    total_ms: float = 0.0
    completion_tokens: int = 0
    tokens_per_s: float = 0.0


@dataclass
class Answer:
    """What `ask` returns: the text, whether it is a refusal, and the numbered sources."""

    text: str
    sources: list[Source]
    refused: bool = False
    timings: Timings = field(default_factory=Timings)
    citations_added: bool = False  # the [n] markers at the end were attributed by ragapp

    def to_json(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "refused": self.refused,
            "sources": [{"n": n, **s.to_json()} for n, s in enumerate(self.sources, start=1)],
            "timings": asdict(self.timings),
            "citations_added": self.citations_added,
        }
