"""The vector store seam: where a collection's chunks and their vectors live.

``ChunkStore`` is the interface the rest of ragapp uses; nothing else imports chromadb.
Two stores implement it:

- ``ChromaStore``: Chroma, embedded in the data dir or (RAGAPP_CHROMA_URL) a server;
- ``MemoryStore``: a dict in this process, for unit tests.

The collection records which embedding model built it, and refuses to be read or written
with another one. Writes are per file and idempotent: a file's new chunks are upserted
(deterministic ids) before its stale ones are removed, so redoing an interrupted write
converges on the same contents. Every write also gives the collection a new
``generation``, so any process can tell cheaply whether data it derived is stale.

Beside the chunks, each store keeps three side tables (sibling Chroma collections named
``NAME__files``, ``NAME__windows`` and ``NAME__failed``), so everything the query side needs
is in the store and a host with an empty data dir pointed at the same server answers exactly as the one
that ingested:

- ``files``: one record per file (ragapp.ledger reads and writes them);
- ``windows``: each long chunk's window vectors, one row per chunk (its id), the vectors
  in the row's metadata as float16 (never searched by vector, so no index to hold in
  memory: a question reads its few candidates' rows by id);
- ``failed``: one record per file that could not be parsed or held no text, with its stat,
  hash and reason, so a sync skips it while it is unchanged (ragapp.ledger).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from typing import Any
from urllib.parse import urlparse

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from ragapp.errors import EmbeddingMismatchError, StoreError
from ragapp.settings import Settings
from ragapp.types import Chunk, EmbeddingSpec

# Bump when chunk boundaries or ids change: old collections then need a re-ingest.
# 2: HTML chunks follow section boundaries; the section title is embedded with each chunk.
CHUNKER_VERSION = "2"
_WRITE_BATCH = 1000
_PAGE = 5000  # rows read per request when walking a whole table
SIDE_TABLES = ("files", "windows", "failed")


def side_name(name: str, table: str) -> str:
    """The Chroma collection holding a collection's side table."""
    return f"{name}__{table}"


def is_side_name(name: str) -> bool:
    return any(name.endswith(f"__{t}") for t in SIDE_TABLES)


def encode_vectors(vectors: Sequence[Sequence[float]]) -> str:
    """Vectors as one metadata string (float16, base64): 2 bytes a dimension."""
    return base64.b64encode(np.asarray(vectors, dtype="<f2").tobytes()).decode()


def decode_vectors(text: str, dim: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f2").reshape(-1, dim).astype(np.float32)


Where = dict[str, Any]  # a Chroma-style metadata filter: {"source": {"$in": [...]}}, "$and"
Hit = tuple[Document, float]  # a chunk as a LangChain Document (id set), and its relevance
Row = tuple[str, dict[str, Any], Any]  # a side-table row: id, metadata, vector (or None)


def chunk_from(id_: str, text: str | None, meta: dict[str, Any] | None) -> Chunk:
    meta = meta or {}
    return Chunk(
        id=id_,
        text=text or "",
        source=str(meta.get("source", "")),
        page=meta.get("page"),
        section=meta.get("section"),
        file_hash=meta.get("file_hash", ""),
        file_type=meta.get("file_type", ""),
        index=meta.get("index", 0),
    )


class ChunkStore:
    """One collection of chunks, with the embedding model that built it pinned.

    Subclasses provide the primitives (``_upsert``, ``_delete``, ``get``, ``query``,
    ``count``, ``exists``, ``drop``, ``generation``, and ``_side_*`` for the side tables);
    the per-file operations are built on them here, so every store writes the same way."""

    def __init__(
        self, name: str, spec: EmbeddingSpec, dim: int, embeddings: Callable[[], Embeddings]
    ) -> None:
        self.name = name
        self.spec = spec
        self.dim = dim
        self._embeddings_factory = embeddings

    @cached_property
    def embeddings(self) -> Embeddings:
        """Loaded on first use: reading the store's status needs no model in memory."""
        return self._embeddings_factory()

    def expected_metadata(self) -> dict[str, Any]:
        return {
            "embedding_model": self.spec.name,
            "embedding_dim": self.dim,
            "chunker": CHUNKER_VERSION,
        }

    def check_model(self, meta: dict[str, Any]) -> None:
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

    # --- primitives (per store) -------------------------------------------------------------
    def exists(self) -> bool:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def generation(self) -> str:
        """Changes on every write; "" for a collection that does not exist."""
        raise NotImplementedError

    def follow(self) -> str:
        """The generation, with reads made to see what other processes wrote since the last
        call (an embedded Chroma process keeps its vector index in memory)."""
        return self.generation()

    def get(
        self, ids: Sequence[str] | None = None, where: Where | None = None, vectors: bool = False
    ) -> list[tuple[Document, list[float] | None]]:
        """Chunks by id and/or filter (all of them with neither), with their vectors if asked."""
        raise NotImplementedError

    def query(
        self, vector: Sequence[float], n: int, where: Where | None = None, vectors: bool = False
    ) -> tuple[list[Hit], list[list[float]]]:
        """The n nearest chunks by cosine relevance (1 - distance), best first, and their
        stored vectors if asked."""
        raise NotImplementedError

    def drop(self) -> bool:
        """Delete the whole collection. Returns whether there was one."""
        raise NotImplementedError

    def _upsert(
        self,
        ids: list[str],
        vectors: list[list[float]],
        texts: list[str],
        metas: list[dict[str, Any]],
    ) -> None:
        raise NotImplementedError

    def _delete(self, ids: list[str]) -> None:
        raise NotImplementedError

    def _new_generation(self) -> None:
        raise NotImplementedError

    def _side_upsert(
        self, table: str, ids: list[str], vectors: list[list[float]], metas: list[dict[str, Any]]
    ) -> None:
        raise NotImplementedError

    def _side_get(
        self,
        table: str,
        ids: Sequence[str] | None = None,
        where: Where | None = None,
        vectors: bool = False,
    ) -> list[Row]:
        raise NotImplementedError

    def _side_delete(self, table: str, ids: list[str]) -> None:
        raise NotImplementedError

    def walk(self, page: int = _PAGE) -> Iterable[list[tuple[str, dict[str, Any]]]]:
        """Every chunk's id and metadata (no text, no vector), a page at a time: only for
        explicit whole-collection work (``ragapp backfill``), never on a question's path."""
        rows = [(str(doc.id), doc.metadata) for doc, _ in self.get()] if self.exists() else []
        for start in range(0, len(rows), page):
            yield rows[start : start + page]

    # --- reading ------------------------------------------------------------------------------
    def ids(self, where: Where | None = None) -> list[str]:
        """The ids of the chunks passing ``where`` (all of them without), and nothing else."""
        return [str(doc.id) for doc, _ in self.get(where=where)] if self.exists() else []

    def file_chunks(self, source: str) -> tuple[list[Chunk], list[list[float]]]:
        """A file's chunks and their vectors, in file order (to copy them to a new path)."""
        rows = sorted(
            self.get(where={"source": source}, vectors=True),
            key=lambda r: r[0].metadata.get("index", 0),
        )
        chunks = [chunk_from(str(doc.id), doc.page_content, doc.metadata) for doc, _ in rows]
        return chunks, [list(map(float, vec or [])) for _, vec in rows]

    # --- writing ------------------------------------------------------------------------------
    def file_windows(self, source: str) -> dict[str, list[list[float]]]:
        """A file's window vectors, by chunk id, in window order."""
        return {
            id_: decode_vectors(meta["vectors"], self.dim).tolist()
            for id_, meta, _ in self._side_get("windows", where={"source": source})
        }

    def best_windows(self, docs: Sequence[Document], query: Sequence[float]) -> dict[str, float]:
        """Each chunk's best window cosine for a query vector (one read for all of them);
        chunks without windows (short ones, or written without) are left out."""
        ids = [str(doc.id) for doc in docs if doc.metadata.get("windows")]
        rows = self._side_get("windows", ids=ids) if ids else []
        if not rows:
            return {}
        q = np.asarray(query, dtype=np.float32)
        q = q / (np.linalg.norm(q) or 1.0)
        best: dict[str, float] = {}
        for id_, meta, _ in rows:
            matrix = decode_vectors(meta["vectors"], self.dim)
            norms = np.linalg.norm(matrix, axis=1)
            best[id_] = float((matrix @ q / np.where(norms == 0, 1.0, norms)).max())
        return best

    # --- writing ------------------------------------------------------------------------------
    def write_file(
        self,
        source: str,
        chunks: Sequence[Chunk],
        vectors: Sequence[Sequence[float]],
        windows: Sequence[Sequence[Sequence[float]]] | None = None,
    ) -> None:
        """Make the store hold exactly ``chunks`` for ``source`` (and, if given, each chunk's
        window vectors): add new, then drop stale. Windows go first, so a chunk's metadata
        never counts windows the store lacks."""
        if len(chunks) != len(vectors) or (windows is not None and len(windows) != len(chunks)):
            raise StoreError(f"internal error: {len(chunks)} chunks but {len(vectors)} vectors")
        w_ids = [c.id for c, w in zip(chunks, windows or [], strict=False) if w]
        w_metas = [
            {"source": source, "n": len(w), "vectors": encode_vectors(w)}
            for w in (windows or [])
            if w
        ]
        for i in range(0, len(w_ids), _WRITE_BATCH):
            end = i + _WRITE_BATCH
            self._side_upsert("windows", w_ids[i:end], [[1.0]] * len(w_ids[i:end]), w_metas[i:end])
        ids = [c.id for c in chunks]
        metas = [
            {**c.metadata(), "windows": len(w)} if w else c.metadata()
            for c, w in zip(chunks, windows or [[] for _ in chunks], strict=True)
        ]
        for i in range(0, len(chunks), _WRITE_BATCH):
            self._upsert(
                ids[i : i + _WRITE_BATCH],
                [list(map(float, v)) for v in vectors[i : i + _WRITE_BATCH]],
                [c.text for c in chunks[i : i + _WRITE_BATCH]],
                metas[i : i + _WRITE_BATCH],
            )
        old = set(self.ids({"source": source}))
        self.delete_ids(sorted(old - set(ids)))
        stale_windows = {r[0] for r in self._side_get("windows", where={"source": source})}
        self._delete_side("windows", sorted(stale_windows - set(w_ids)))
        self._new_generation()

    def delete_ids(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        for i in range(0, len(ids), _WRITE_BATCH):
            self._delete(ids[i : i + _WRITE_BATCH])

    def _delete_side(self, table: str, ids: list[str]) -> None:
        for i in range(0, len(ids), _WRITE_BATCH):
            self._side_delete(table, ids[i : i + _WRITE_BATCH])

    def remove_file(self, source: str) -> int:
        ids = self.ids({"source": source})
        self.delete_ids(ids)
        self._delete_side(
            "windows", [r[0] for r in self._side_get("windows", where={"source": source})]
        )
        if ids:
            self._new_generation()
        return len(ids)

    # --- file records (the side table ragapp.ledger keeps) -------------------------------------
    def records(
        self, paths: Sequence[str] | None = None, where: Where | None = None
    ) -> list[dict[str, Any]]:
        return [meta for _, meta, _ in self._side_get("files", ids=paths, where=where)]

    def put_records(self, records: Sequence[dict[str, Any]]) -> None:
        """Write file records and move the generation: a reader that sees the new generation
        also sees the record (written last, after the file's chunks)."""
        for i in range(0, len(records), _WRITE_BATCH):
            part = records[i : i + _WRITE_BATCH]
            self._side_upsert("files", [r["path"] for r in part], [[1.0]] * len(part), list(part))
        self._new_generation()

    def delete_records(self, paths: Sequence[str]) -> None:
        self._delete_side("files", list(paths))
        self._new_generation()

    # --- files that failed to parse (the side table ragapp.ledger keeps) -------------------
    # Questions never read them, so writing them leaves the generation alone.
    def failures(
        self, paths: Sequence[str] | None = None, where: Where | None = None
    ) -> list[dict[str, Any]]:
        return [meta for _, meta, _ in self._side_get("failed", ids=paths, where=where)]

    def put_failures(self, records: Sequence[dict[str, Any]]) -> None:
        for i in range(0, len(records), _WRITE_BATCH):
            part = records[i : i + _WRITE_BATCH]
            self._side_upsert("failed", [r["path"] for r in part], [[1.0]] * len(part), list(part))

    def delete_failures(self, paths: Sequence[str]) -> None:
        self._delete_side("failed", list(paths))


# --- Chroma ---------------------------------------------------------------------------------------


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
                headers=settings.chroma_headers or None,
                settings=chroma_settings,
                tenant=settings.chroma_tenant,
                database=settings.chroma_database,
            )
        settings.store_path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(settings.store_path), settings=chroma_settings)
    except Exception as exc:  # chromadb raises bare Exceptions for unreachable servers
        where = settings.chroma_url or settings.store_path
        raise StoreError(f"cannot open the Chroma store at {where}: {exc}") from exc


def release_client(client: Any) -> None:
    """Make the next embedded client on this path a new one that reads the files afresh.
    Chroma shares one System per path within a process; this takes ``client``'s out of that
    cache without stopping it, so calls already made with it finish."""
    from chromadb.api.shared_system_client import SharedSystemClient

    identifier = getattr(client, "_identifier", None)
    SharedSystemClient._identifier_to_system.pop(identifier, None)  # type: ignore[arg-type]
    SharedSystemClient._identifier_to_refcount.pop(identifier, None)  # type: ignore[arg-type]


class ChromaStore(ChunkStore):
    """A Chroma collection (cosine space, no Chroma embedding function: ours only)."""

    def __init__(
        self,
        client: Any,  # a Chroma client, or a function that makes one
        name: str,
        spec: EmbeddingSpec,
        dim: int,
        embeddings: Callable[[], Embeddings],
        reopen: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name, spec, dim, embeddings)
        self._client = client
        self._reopen = reopen
        self._handles_of: Any = None  # the client the collection handles below came from
        self._collection: Any = None
        self._sides: dict[str, Any] = {}
        self._seen: str | None = None  # the generation reads last followed

    @property
    def client(self) -> Any:
        """Connected on first use: an ingest that changes nothing never imports chromadb."""
        client = self._client() if callable(self._client) else self._client
        if client is not self._handles_of:  # reopened: handles of the old client are stale
            self._collection, self._sides, self._handles_of = None, {}, client
        return client

    def follow(self) -> str:
        """Embedded Chroma keeps each collection's vector index in this process's memory:
        a write by another process reaches its files but not our index. When the generation
        moved and not by our hand, the client is reopened (tens of ms), which reads them."""
        generation = self.generation()
        if self._reopen is not None and self._seen is not None and generation != self._seen:
            self._reopen()
        self._seen = generation
        return generation

    @property
    def collection(self) -> Any:
        """The Chroma collection, created on first use and checked against our model."""
        self.client  # noqa: B018  (drops handles of a reopened client)
        if self._collection is None:
            self._collection = self.client.get_or_create_collection(
                name=self.name,
                embedding_function=None,  # never Chroma's default (downloading) embedder
                metadata={**self.expected_metadata(), "generation": uuid.uuid4().hex},
                configuration={"hnsw": {"space": "cosine"}},
            )
            self.check_model(self._collection.metadata or {})
        return self._collection

    def vectorstore(self) -> Any:
        """The same collection as a LangChain VectorStore (for LangChain users of ragapp)."""
        from langchain_chroma import Chroma

        self.collection  # noqa: B018  (create + check before LangChain touches it)
        return Chroma(
            client=self.client,
            collection_name=self.name,
            embedding_function=self.embeddings,
            create_collection_if_not_exists=False,
        )

    def exists(self) -> bool:
        return self.name in {
            c if isinstance(c, str) else c.name for c in self.client.list_collections()
        }

    def count(self) -> int:
        from chromadb.errors import NotFoundError

        if self._collection is None or self._handles_of is not self.client:
            return int(self.collection.count()) if self.exists() else 0
        try:  # one request, not two, on every question
            return int(self._collection.count())
        except NotFoundError:  # dropped by another process
            self._collection = None
            return 0

    def generation(self) -> str:
        """Read afresh, in one request (another process may have written since)."""
        from chromadb.errors import NotFoundError

        try:
            meta = self.client.get_collection(self.name).metadata or {}
        except NotFoundError:
            return ""
        return str(meta.get("generation", ""))

    def _new_generation(self) -> None:
        generation = uuid.uuid4().hex
        self.collection.modify(metadata={**self.expected_metadata(), "generation": generation})
        self._seen = generation  # our own write: our index has it

    def get(
        self, ids: Sequence[str] | None = None, where: Where | None = None, vectors: bool = False
    ) -> list[tuple[Document, list[float] | None]]:
        include = ["documents", "metadatas"] + (["embeddings"] if vectors else [])
        got = self.collection.get(
            ids=list(ids) if ids is not None else None, where=where, include=include
        )
        embeddings = got["embeddings"] if vectors else [None] * len(got["ids"])
        return [
            (Document(text or "", metadata=meta or {}, id=id_), None if vec is None else list(vec))
            for id_, text, meta, vec in zip(
                got["ids"], got["documents"], got["metadatas"], embeddings, strict=True
            )
        ]

    def ids(self, where: Where | None = None) -> list[str]:
        if not self.exists():
            return []
        return list(self.collection.get(where=where, include=[])["ids"])

    def query(
        self, vector: Sequence[float], n: int, where: Where | None = None, vectors: bool = False
    ) -> tuple[list[Hit], list[list[float]]]:
        include = ["documents", "metadatas", "distances"] + (["embeddings"] if vectors else [])
        found = self.collection.query(
            query_embeddings=[list(map(float, vector))], n_results=n, where=where, include=include
        )
        hits = [
            (Document(text or "", metadata=meta or {}, id=id_), 1.0 - float(distance))
            for id_, text, meta, distance in zip(
                found["ids"][0], found["documents"][0], found["metadatas"][0], found["distances"][0],
                strict=True,
            )
        ]  # fmt: skip
        return hits, [list(v) for v in found["embeddings"][0]] if vectors else []

    def _upsert(
        self,
        ids: list[str],
        vectors: list[list[float]],
        texts: list[str],
        metas: list[dict[str, Any]],
    ) -> None:
        self.collection.upsert(ids=ids, embeddings=vectors, documents=texts, metadatas=metas)

    def _delete(self, ids: list[str]) -> None:
        self.collection.delete(ids=ids)

    def walk(self, page: int = _PAGE) -> Iterable[list[tuple[str, dict[str, Any]]]]:
        if not self.exists():
            return
        for offset in range(0, self.count(), page):
            got = self.collection.get(include=["metadatas"], limit=page, offset=offset)
            yield [(str(i), m or {}) for i, m in zip(got["ids"], got["metadatas"], strict=True)]

    def _side(self, table: str, create: bool = True) -> Any:
        """A side table's Chroma collection, created on first write (None for a read before
        it exists). Its rows carry a constant 1-d vector: Chroma wants one, nothing
        searches them by vector, and so their index costs nothing."""
        from chromadb.errors import NotFoundError

        if table not in self._sides and not create:
            try:
                self._sides[table] = self.client.get_collection(side_name(self.name, table))
            except NotFoundError:
                return None
        if table not in self._sides:
            self._sides[table] = self.client.get_or_create_collection(
                name=side_name(self.name, table),
                embedding_function=None,
                metadata={"ragapp_side_table": table, "of": self.name},
                configuration={"hnsw": {"space": "l2"}},
            )
        return self._sides[table]

    def _side_upsert(
        self, table: str, ids: list[str], vectors: list[list[float]], metas: list[dict[str, Any]]
    ) -> None:
        if ids:
            self._side(table).upsert(ids=ids, embeddings=vectors, metadatas=metas)

    def _side_get(
        self,
        table: str,
        ids: Sequence[str] | None = None,
        where: Where | None = None,
        vectors: bool = False,
    ) -> list[Row]:
        side = self._side(table, create=False)
        if side is None or (ids is not None and not ids):
            return []
        got = side.get(
            ids=list(ids) if ids is not None else None,
            where=where,
            include=["metadatas"] + (["embeddings"] if vectors else []),
        )
        embeddings = got["embeddings"] if vectors else [None] * len(got["ids"])
        return [
            (str(i), m or {}, v)
            for i, m, v in zip(got["ids"], got["metadatas"], embeddings, strict=True)
        ]

    def _side_delete(self, table: str, ids: list[str]) -> None:
        if ids and (side := self._side(table, create=False)) is not None:
            side.delete(ids=ids)

    def drop(self) -> bool:
        names = {c if isinstance(c, str) else c.name for c in self.client.list_collections()}
        for table in SIDE_TABLES:
            if side_name(self.name, table) in names:
                self.client.delete_collection(side_name(self.name, table))
        self._sides.clear()
        if self.name not in names:
            return False
        self.client.delete_collection(self.name)
        self._collection = None
        return True


# --- in memory (unit tests) -----------------------------------------------------------------------


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": lambda got, value: got == value,
    "$ne": lambda got, value: got != value,
    "$in": lambda got, value: got in value,
    "$nin": lambda got, value: got not in value,
}


def matches(meta: dict[str, Any], where: Where | None) -> bool:
    """Whether chunk metadata passes a Chroma-style filter (the operators ragapp uses)."""
    for key, cond in (where or {}).items():
        if key == "$and":
            ok = all(matches(meta, c) for c in cond)
        elif key == "$or":
            ok = any(matches(meta, c) for c in cond)
        elif isinstance(cond, dict):
            ((op, value),) = cond.items()
            if op not in _OPERATORS:
                raise StoreError(f"unsupported filter operator {op!r}")
            ok = _OPERATORS[op](meta.get(key), value)
        else:
            ok = meta.get(key) == cond
        if not ok:
            return False
    return True


_MEMORY_SPACES: dict[str, dict[str, dict[str, Any]]] = {}


def is_memory_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith("memory://")


def memory_space(url: str) -> dict[str, dict[str, Any]]:
    """The collections of one ``memory://NAME`` store, shared by everything in this
    process that names it (as an embedded Chroma path is); gone when the process ends."""
    return _MEMORY_SPACES.setdefault(url, {})


def forget_memory_spaces(*urls: str) -> None:
    """Drop the named memory stores (all of them when none is named)."""
    for url in urls or list(_MEMORY_SPACES):
        _MEMORY_SPACES.pop(url, None)


class MemoryStore(ChunkStore):
    """Chunks in a dict, searched by brute force: the same behaviour as ChromaStore for
    everything ragapp does, in microseconds. ``shared`` lets several stores (e.g. the
    server's and a test's) see one set of collections."""

    def __init__(
        self,
        name: str,
        spec: EmbeddingSpec,
        dim: int,
        embeddings: Callable[[], Embeddings],
        shared: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(name, spec, dim, embeddings)
        self._all = shared if shared is not None else {}

    @property
    def _data(self) -> dict[str, Any]:
        if self.name not in self._all:
            self._all[self.name] = {
                "meta": {**self.expected_metadata(), "generation": uuid.uuid4().hex},
                "rows": {},
                **{table: {} for table in SIDE_TABLES},
            }
        data = self._all[self.name]
        self.check_model(data["meta"])
        return data

    def exists(self) -> bool:
        return self.name in self._all

    def count(self) -> int:
        return len(self._data["rows"]) if self.exists() else 0

    def generation(self) -> str:
        return str(self._all[self.name]["meta"]["generation"]) if self.exists() else ""

    def _new_generation(self) -> None:
        self._data["meta"]["generation"] = uuid.uuid4().hex

    def get(
        self, ids: Sequence[str] | None = None, where: Where | None = None, vectors: bool = False
    ) -> list[tuple[Document, list[float] | None]]:
        rows = self._data["rows"]
        keys = [i for i in ids if i in rows] if ids is not None else list(rows)
        return [
            (
                Document(rows[i][1], metadata=dict(rows[i][2]), id=i),
                list(rows[i][0]) if vectors else None,
            )
            for i in keys
            if matches(rows[i][2], where)
        ]

    def query(
        self, vector: Sequence[float], n: int, where: Where | None = None, vectors: bool = False
    ) -> tuple[list[Hit], list[list[float]]]:
        rows = [(i, r) for i, r in self._data["rows"].items() if matches(r[2], where)]
        if not rows:
            return [], []
        q = np.asarray(vector, dtype=np.float64)
        matrix = np.asarray([r[0] for _, r in rows], dtype=np.float64)
        norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(q) or 1.0)
        scores = matrix @ q / np.where(norms == 0, 1.0, norms)
        best = np.argsort(-scores, kind="stable")[:n]
        hits = [
            (Document(rows[j][1][1], metadata=dict(rows[j][1][2]), id=rows[j][0]), float(scores[j]))
            for j in best
        ]
        return hits, [list(rows[j][1][0]) for j in best] if vectors else []

    def _upsert(
        self,
        ids: list[str],
        vectors: list[list[float]],
        texts: list[str],
        metas: list[dict[str, Any]],
    ) -> None:
        rows = self._data["rows"]
        for id_, vec, text, meta in zip(ids, vectors, texts, metas, strict=True):
            if len(vec) != self.dim:
                raise StoreError(f"vector of {len(vec)} dimensions in a {self.dim}-d collection")
            rows[id_] = (list(vec), text, dict(meta))

    def _delete(self, ids: list[str]) -> None:
        rows = self._data["rows"]
        for id_ in ids:
            rows.pop(id_, None)

    def _side_upsert(
        self, table: str, ids: list[str], vectors: list[list[float]], metas: list[dict[str, Any]]
    ) -> None:
        rows = self._data[table]
        for id_, vec, meta in zip(ids, vectors, metas, strict=True):
            rows[id_] = (dict(meta), list(vec))

    def _side_get(
        self,
        table: str,
        ids: Sequence[str] | None = None,
        where: Where | None = None,
        vectors: bool = False,
    ) -> list[Row]:
        rows = self._data[table] if self.exists() else {}
        keys = [i for i in ids if i in rows] if ids is not None else sorted(rows)
        return [
            (i, dict(rows[i][0]), list(rows[i][1]) if vectors else None)
            for i in keys
            if matches(rows[i][0], where)
        ]

    def _side_delete(self, table: str, ids: list[str]) -> None:
        rows = self._data[table]
        for id_ in ids:
            rows.pop(id_, None)

    def drop(self) -> bool:
        return self._all.pop(self.name, None) is not None
