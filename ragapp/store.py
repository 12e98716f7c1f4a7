"""The vector store seam: Chroma, embedded in the data dir or (RAGAPP_CHROMA_URL) a server.

The collection records which embedding model built it, and refuses to be read or written
with another one. Writes are per file: a file's new chunks land before its stale ones are
removed, and every chunk carries its file's hash and chunk count, so an interrupted write
is detected and redone on the next ingest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlparse

from langchain_core.embeddings import Embeddings

from ragapp.embeddings import EmbeddingSpec
from ragapp.errors import EmbeddingMismatchError, StoreError
from ragapp.settings import Settings
from ragapp.types import Chunk

# Bump when chunk boundaries or ids change: old collections then need a re-ingest.
CHUNKER_VERSION = "1"
_WRITE_BATCH = 1000


@dataclass(frozen=True)
class FileRecord:
    """What the store holds for one ingested file."""

    source: str
    file_hash: str
    chunks: int
    expected_chunks: int

    @property
    def complete(self) -> bool:
        return self.file_hash != "" and self.chunks == self.expected_chunks


def make_client(settings: Settings) -> Any:
    """A Chroma client: embedded (persistent, in the data dir) or HTTP, never with telemetry."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    try:
        if settings.chroma_url:
            url = urlparse(settings.chroma_url)
            return chromadb.HttpClient(
                host=url.hostname or "localhost",
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
        settings.store_path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(settings.store_path), settings=chroma_settings)
    except Exception as exc:  # chromadb raises bare Exceptions for unreachable servers
        where = settings.chroma_url or settings.store_path
        raise StoreError(f"cannot open the Chroma store at {where}: {exc}") from exc


class ChunkStore:
    """One collection of chunks, with the embedding model that built it pinned."""

    def __init__(
        self,
        client: Any,
        name: str,
        spec: EmbeddingSpec,
        dim: int,
        embeddings: Callable[[], Embeddings],
    ) -> None:
        self.client = client
        self.name = name
        self.spec = spec
        self.dim = dim
        self._embeddings_factory = embeddings
        self._collection: Any = None

    @cached_property
    def embeddings(self) -> Embeddings:
        """Loaded on first use: reading the store's status needs no model in memory."""
        return self._embeddings_factory()

    # --- opening ---------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.name in {
            c if isinstance(c, str) else c.name for c in self.client.list_collections()
        }

    @property
    def collection(self) -> Any:
        """The Chroma collection, created on first use and checked against our model."""
        if self._collection is None:
            self._collection = self.client.get_or_create_collection(
                name=self.name,
                embedding_function=None,  # never Chroma's default (downloading) embedder
                metadata={
                    "embedding_model": self.spec.name,
                    "embedding_dim": self.dim,
                    "chunker": CHUNKER_VERSION,
                },
                configuration={"hnsw": {"space": "cosine"}},
            )
            self._check_model(self._collection.metadata or {})
        return self._collection

    def _check_model(self, meta: dict[str, Any]) -> None:
        built_with = (meta.get("embedding_model"), meta.get("embedding_dim"))
        if built_with != (self.spec.name, self.dim):
            raise EmbeddingMismatchError(
                f"collection {self.name!r} was built with {built_with[0]} ({built_with[1]}-d) but "
                f"the embedding model is {self.spec.name} ({self.dim}-d); use that model, another "
                f"--collection, or `ragapp reset` and re-ingest"
            )
        if meta.get("chunker") != CHUNKER_VERSION:
            raise EmbeddingMismatchError(
                f"collection {self.name!r} was chunked by an older ragapp; "
                f"run `ragapp reset` and ingest again"
            )

    def vectorstore(self) -> Any:
        """The same collection as a LangChain VectorStore, for retrievers."""
        from langchain_chroma import Chroma

        self.collection  # noqa: B018  (create + check before LangChain touches it)
        return Chroma(
            client=self.client,
            collection_name=self.name,
            embedding_function=self.embeddings,
            create_collection_if_not_exists=False,
        )

    # --- reading ----------------------------------------------------------------------------------
    def count(self) -> int:
        return int(self.collection.count()) if self.exists() else 0

    def files(self) -> dict[str, FileRecord]:
        """Every ingested file with its hash and chunk counts (an incomplete write shows)."""
        if not self.exists():
            return {}
        got = self.collection.get(include=["metadatas"])
        seen: dict[str, dict[str, Any]] = {}
        for meta in got["metadatas"] or []:
            rec = seen.setdefault(
                meta["source"],
                {"hashes": set(), "chunks": 0, "expected": meta.get("file_chunks", -1)},
            )
            rec["hashes"].add(meta.get("file_hash", ""))
            rec["chunks"] += 1
        return {
            src: FileRecord(
                src,
                next(iter(r["hashes"])) if len(r["hashes"]) == 1 else "",
                r["chunks"],
                int(r["expected"]),
            )
            for src, r in seen.items()
        }

    # --- writing ----------------------------------------------------------------------------------
    def write_file(
        self, source: str, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]
    ) -> None:
        """Make the store hold exactly ``chunks`` for ``source``: add new, then drop stale."""
        if len(chunks) != len(vectors):
            raise StoreError(f"internal error: {len(chunks)} chunks but {len(vectors)} vectors")
        ids = [c.id for c in chunks]
        metas = [{**c.metadata(), "file_chunks": len(chunks)} for c in chunks]
        for i in range(0, len(chunks), _WRITE_BATCH):
            sl = slice(i, i + _WRITE_BATCH)
            self.collection.upsert(
                ids=ids[sl],
                embeddings=[list(v) for v in vectors[sl]],
                documents=[c.text for c in chunks[sl]],
                metadatas=metas[sl],
            )
        old = set(self.collection.get(where={"source": source}, include=[])["ids"])
        stale = sorted(old - set(ids))
        if stale:
            self.delete_ids(stale)

    def delete_ids(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        for i in range(0, len(ids), _WRITE_BATCH):
            self.collection.delete(ids=ids[i : i + _WRITE_BATCH])

    def remove_file(self, source: str) -> int:
        ids = self.collection.get(where={"source": source}, include=[])["ids"]
        self.delete_ids(ids)
        return len(ids)

    def drop(self) -> bool:
        """Delete the whole collection. Returns whether there was one."""
        if not self.exists():
            return False
        self.client.delete_collection(self.name)
        self._collection = None
        return True
