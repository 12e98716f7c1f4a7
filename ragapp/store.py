"""The vector store seam: Chroma, embedded in the data dir or (RAGAPP_CHROMA_URL) a server.

The collection records which embedding model built it, and refuses to be read or written
with another one. Writes are per file and idempotent: a file's new chunks are upserted
(deterministic ids) before its stale ones are removed, so redoing an interrupted write
converges on the same contents. Which files are complete is the ingest ledger's business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from typing import Any
from urllib.parse import urlparse

from langchain_core.embeddings import Embeddings

from ragapp.embeddings import EmbeddingSpec
from ragapp.errors import EmbeddingMismatchError, StoreError
from ragapp.settings import Settings
from ragapp.types import Chunk

# Bump when chunk boundaries or ids change: old collections then need a re-ingest.
# 2: HTML chunks follow section boundaries; the section title is embedded with each chunk.
CHUNKER_VERSION = "2"
_WRITE_BATCH = 1000


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
        client: Any,  # a Chroma client, or a function that makes one
        name: str,
        spec: EmbeddingSpec,
        dim: int,
        embeddings: Callable[[], Embeddings],
    ) -> None:
        self._client = client
        self.name = name
        self.spec = spec
        self.dim = dim
        self._embeddings_factory = embeddings
        self._collection: Any = None

    @cached_property
    def client(self) -> Any:
        """Connected on first use: an ingest that changes nothing never imports chromadb."""
        return self._client() if callable(self._client) else self._client

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

    def file_chunks(self, source: str) -> tuple[list[Chunk], list[list[float]]]:
        """A file's chunks and their vectors, in file order (to copy them to a new path)."""
        got = self.collection.get(
            where={"source": source}, include=["documents", "metadatas", "embeddings"]
        )
        rows = sorted(
            zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"], strict=True),
            key=lambda row: row[2].get("index", 0),
        )
        chunks = [
            Chunk(
                id=cid,
                text=text,
                source=source,
                page=meta.get("page"),
                section=meta.get("section"),
                file_hash=meta.get("file_hash", ""),
                file_type=meta.get("file_type", ""),
                index=meta.get("index", 0),
            )
            for cid, text, meta, _ in rows
        ]
        return chunks, [list(map(float, vec)) for *_, vec in rows]

    # --- writing ----------------------------------------------------------------------------------
    def write_file(
        self, source: str, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]
    ) -> None:
        """Make the store hold exactly ``chunks`` for ``source``: add new, then drop stale."""
        if len(chunks) != len(vectors):
            raise StoreError(f"internal error: {len(chunks)} chunks but {len(vectors)} vectors")
        ids = [c.id for c in chunks]
        metas = [c.metadata() for c in chunks]
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
