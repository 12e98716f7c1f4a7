"""Indexes derived from a collection for hybrid search: BM25 (bm25s) over the chunks' texts
and, optionally, vectors of each chunk's small windows.

They are derived data: built from the collection's store, saved under the data dir, and
rebuilt whenever the collection's set of chunk ids differs from the one they were built
from, so they can never answer from chunks that are gone (after an ingest, a removal, a
reset, or a crash between a store write and the rebuild). Window vectors already computed
for a chunk are kept across rebuilds: only new chunks are embedded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragapp.store import ChunkStore

_PAGE = 5000  # chunks read from Chroma per request while building
_EMBED_PAGE = 256  # windows embedded per call


def _bm25s() -> Any:
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets DEBUG on import
    return bm25s


def ids_fingerprint(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def chunk_windows(text: str, section: str | None, size: int) -> list[str]:
    """A chunk's text cut at white space into consecutive, non-overlapping windows of at
    most ``size`` characters (a last piece under half that joins the one before), each
    headed by the chunk's section title as the chunk itself is embedded. None for a chunk
    that fits in one window (its own vector already says everything) or when size is 0."""
    if size <= 0:
        return []
    pieces: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > size:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        if pieces and len(current) < size / 2:
            pieces[-1] += " " + current
        else:
            pieces.append(current)
    if len(pieces) <= 1:
        return []
    return [f"{section}\n{p}" if section and not p.startswith(section) else p for p in pieces]


class KeywordIndex:
    """BM25 over one collection (``search`` returns chunk ids, best first) and, when given an
    embedder and ``window_chars`` > 0, each chunk's window vectors (``best_windows``)."""

    def __init__(
        self,
        folder: Path,
        store: ChunkStore,
        embeddings: Callable[[], Any] | None = None,
        window_chars: int = 0,
    ) -> None:
        self.folder = folder
        self.store = store
        self._embeddings = embeddings  # a function returning a LangChain Embeddings
        self.window_chars = window_chars if embeddings is not None else 0
        self._bm25: Any = None
        self._ids: list[str] = []
        self._windows: np.ndarray | None = None  # float16, one row per window
        self._rows: dict[str, tuple[int, int]] = {}  # chunk id -> its windows' rows
        self._loaded = False

    def _window_config(self) -> dict[str, Any] | None:
        if not self.window_chars:
            return None
        return {"chars": self.window_chars, "model": self.store.spec.name}

    def refresh(self) -> None:
        """Load the saved index if it matches the collection, else rebuild and save it."""
        bm25s = _bm25s()

        ids = self.store.ids()
        fingerprint = ids_fingerprint(ids)
        meta = self.folder / "index.json"
        if meta.is_file():
            saved = json.loads(meta.read_text())
            if (
                saved.get("fingerprint") == fingerprint
                and saved.get("windows") == self._window_config()
            ):
                self._bm25 = bm25s.BM25.load(str(self.folder / "bm25")) if saved["ids"] else None
                self._ids = saved["ids"]
                self._load_windows(self.folder, saved)
                self._loaded = True
                return
        self._build(ids, fingerprint)
        self._loaded = True

    def _load_windows(self, folder: Path, saved: dict[str, Any]) -> None:
        self._windows, self._rows = None, {}
        if saved.get("windows") and (folder / "windows.npy").is_file():
            self._windows = np.load(folder / "windows.npy", mmap_mode="r")
            self._rows = {i: (int(a), int(b)) for i, a, b in saved["window_rows"]}

    def _previous_windows(self) -> tuple[np.ndarray | None, dict[str, tuple[int, int]]]:
        """The saved window vectors, if made with the same settings: reused by id."""
        meta = self.folder / "index.json"
        if not self.window_chars or not meta.is_file():
            return None, {}
        try:
            saved = json.loads(meta.read_text())
            if saved.get("windows") != self._window_config():
                return None, {}
            self._load_windows(self.folder, saved)
            return self._windows, self._rows
        except (OSError, ValueError, KeyError, TypeError):
            return None, {}  # unreadable: rebuilt from scratch

    def _build(self, ids: list[str], fingerprint: str) -> None:
        bm25s = _bm25s()

        texts: list[str] = []
        sections: list[str | None] = []
        ordered: list[str] = []
        for start in range(0, len(ids), _PAGE):
            for doc, _ in self.store.get(ids=ids[start : start + _PAGE]):
                ordered.append(str(doc.id))
                texts.append(doc.page_content)
                sections.append(doc.metadata.get("section"))
        old_vectors, old_rows = self._previous_windows()
        self._ids = ordered
        self._bm25 = None
        if texts:
            self._bm25 = bm25s.BM25()
            self._bm25.index(
                bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False
            )
        windows, rows = self._embed_windows(ordered, texts, sections, old_vectors, old_rows)
        # Written beside, then swapped in: a reader never sees half an index.
        tmp = self.folder.with_name(self.folder.name + f".{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self._bm25 is not None:
            self._bm25.save(str(tmp / "bm25"))
        saved: dict[str, Any] = {"fingerprint": fingerprint, "ids": ordered}
        saved["windows"] = self._window_config()
        if windows is not None:
            np.save(tmp / "windows.npy", windows)
            saved["window_rows"] = [[i, a, b] for i, (a, b) in rows.items()]
        (tmp / "index.json").write_text(json.dumps(saved))
        old = self.folder.with_name(self.folder.name + f".{os.getpid()}.old")
        if self.folder.exists():
            os.replace(self.folder, old)
        os.replace(tmp, self.folder)
        shutil.rmtree(old, ignore_errors=True)
        self._windows, self._rows = windows, rows

    def _embed_windows(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        sections: Sequence[str | None],
        old_vectors: np.ndarray | None,
        old_rows: dict[str, tuple[int, int]],
    ) -> tuple[np.ndarray | None, dict[str, tuple[int, int]]]:
        """Every chunk's window vectors: reused when the chunk had them, else embedded."""
        if not self.window_chars or self._embeddings is None:
            return None, {}
        parts: list[np.ndarray] = []
        rows: dict[str, tuple[int, int]] = {}
        pending: list[tuple[str, list[str]]] = []
        used = 0
        for id_, text, section in zip(ids, texts, sections, strict=True):
            if old_vectors is not None and id_ in old_rows:
                a, b = old_rows[id_]
                parts.append(np.asarray(old_vectors[a:b], dtype=np.float16))
                rows[id_] = (used, used + b - a)
                used += b - a
            elif windows := chunk_windows(text, section, self.window_chars):
                pending.append((id_, windows))
        if pending:
            embeddings = self._embeddings()
            flat = [w for _, windows in pending for w in windows]
            vectors = np.concatenate(
                [
                    np.asarray(embeddings.embed_documents(flat[i : i + _EMBED_PAGE]), np.float32)
                    for i in range(0, len(flat), _EMBED_PAGE)
                ]
            )
            parts.append(vectors.astype(np.float16))
            for id_, windows in pending:
                rows[id_] = (used, used + len(windows))
                used += len(windows)
        if not parts:
            return np.zeros((0, 0), np.float16), rows
        return np.concatenate(parts), rows

    def search(self, query: str, k: int) -> list[str]:
        bm25s = _bm25s()

        if not self._loaded:
            self.refresh()
        if self._bm25 is None or not self._ids:
            return []
        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
        if not tokens.vocab:
            return []
        results, scores = self._bm25.retrieve(tokens, k=min(k, len(self._ids)), show_progress=False)
        return [self._ids[int(i)] for i, s in zip(results[0], scores[0], strict=True) if s > 0]

    def best_windows(self, ids: Sequence[str], query_vector: np.ndarray) -> dict[str, float]:
        """Each chunk's best window cosine for a (normalised) query vector; chunks without
        windows (short ones, or windows off) are left out."""
        if not self._loaded:
            self.refresh()
        if self._windows is None or not self._rows:
            return {}
        query = np.asarray(query_vector, dtype=np.float32)
        best = {}
        for id_ in ids:
            if (span := self._rows.get(id_)) is not None:
                window_vectors = np.asarray(self._windows[span[0] : span[1]], dtype=np.float32)
                best[id_] = float((window_vectors @ query).max())
        return best
