"""The keyword side of hybrid search: BM25 over a collection's chunk texts.

It is a per-host cache (DATA_DIR/search/NAME/), derived from the store and kept up to date
file by file: every file record carries a generation that changes when the file's chunks
do, so bringing the index up to date reads the records (no texts, no chunk ids) and then
the chunks of the files whose generation moved, and nothing else. Chunks without a file
record (written by another tool) are not in it: the dense search still finds them, and
``ragapp backfill`` records them.

The index is a few immutable segments, as in Lucene: term -> postings (chunk, term
frequency) arrays, memory-mapped, so a process opens it in milliseconds. An update writes
a small segment with the changed files' chunks and marks their old chunks dead; small
segments are merged together, and into the large one only once they hold a quarter as
many chunks, so an update costs what changed (amortised), not the collection. Scores are
BM25 (Lucene's idf, k1 1.5, b 0.75, bm25s's tokens and English stop words) computed at
query time from the live chunks' statistics, so they are the same whatever the segments.

The window vectors, the other derived part of hybrid search, are in the store itself
(ragapp.store's ``windows`` table), cut and embedded when a file is written
(ragapp.windows).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ragapp.ledger import FileEntry
from ragapp.store import ChunkStore

_FILES_PER_READ = 64  # files whose chunks are read from the store per request
_MAX_SMALL = 4  # small segments before they are merged into one
_MERGE_INTO_BASE = 0.25  # ... and into the base once they (or its dead chunks) are this big
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
K1, B = 1.5, 0.75
_ARRAYS = ("terms", "indptr", "docs", "tfs", "lengths", "ids", "paths")


@cache
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def tokens(text: str) -> list[str]:
    stop = _stopwords()
    return [t for t in _TOKEN.findall(text.lower()) if t not in stop]


@dataclass
class Segment:
    """Postings of some chunks: ``terms`` sorted, term j's postings are
    ``docs[indptr[j]:indptr[j+1]]`` (positions in ``ids``) with their term frequencies."""

    name: str
    terms: np.ndarray
    indptr: np.ndarray
    docs: np.ndarray
    tfs: np.ndarray
    lengths: np.ndarray
    ids: np.ndarray
    paths: np.ndarray
    alive: np.ndarray

    @classmethod
    def build(cls, name: str, rows: Sequence[tuple[str, str, list[str]]]) -> Segment:
        """From (chunk id, path, tokens) rows."""
        vocab = sorted({t for _, _, toks in rows for t in toks})
        index = {t: j for j, t in enumerate(vocab)}
        term_of, doc_of, tf_of = [], [], []
        for d, (_, _, toks) in enumerate(rows):
            for term, tf in Counter(toks).items():
                term_of.append(index[term])
                doc_of.append(d)
                tf_of.append(tf)
        return cls.from_postings(
            name,
            np.array(vocab, dtype=str),
            np.array(term_of, dtype=np.int64),
            np.array(doc_of, dtype=np.int32),
            np.array(tf_of, dtype=np.float32),
            np.array([len(toks) for _, _, toks in rows], dtype=np.float32),
            np.array([r[0] for r in rows], dtype=str),
            np.array([r[1] for r in rows], dtype=str),
        )

    @classmethod
    def from_postings(
        cls,
        name: str,
        vocab: np.ndarray,
        term_of: np.ndarray,
        doc_of: np.ndarray,
        tf_of: np.ndarray,
        lengths: np.ndarray,
        ids: np.ndarray,
        paths: np.ndarray,
    ) -> Segment:
        order = np.argsort(term_of, kind="stable")
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(term_of, minlength=len(vocab)), out=indptr[1:])
        return cls(
            name, vocab, indptr, doc_of[order], tf_of[order], lengths, ids, paths,
            np.ones(len(ids), dtype=bool),
        )  # fmt: skip

    @classmethod
    def merge(cls, name: str, parts: Sequence[Segment]) -> Segment:
        """The live chunks of ``parts`` in one segment, from their postings (no texts)."""
        vocab = np.unique(np.concatenate([p.terms for p in parts])) if parts else np.array([])
        terms, docs, tfs, lengths, ids, paths = [], [], [], [], [], []
        offset = 0
        for part in parts:
            new_pos = np.cumsum(part.alive) - 1 + offset  # old doc position -> merged one
            term_of = np.repeat(np.arange(len(part.terms)), np.diff(part.indptr))
            keep = part.alive[part.docs]
            terms.append(np.searchsorted(vocab, part.terms)[term_of[keep]])
            docs.append(new_pos[part.docs[keep]].astype(np.int32))
            tfs.append(np.asarray(part.tfs)[keep])
            lengths.append(np.asarray(part.lengths)[part.alive])
            ids.append(np.asarray(part.ids)[part.alive])
            paths.append(np.asarray(part.paths)[part.alive])
            offset += int(part.alive.sum())

        def join(arrays: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(arrays) if arrays else np.array([], dtype=dtype)

        return cls.from_postings(
            name, vocab.astype(str), join(terms, np.int64), join(docs, np.int32),
            join(tfs, np.float32), join(lengths, np.float32), join(ids, str), join(paths, str),
        )  # fmt: skip

    def save(self, folder: Path) -> None:
        target = folder / self.name
        target.mkdir(parents=True)
        for key in _ARRAYS:
            np.save(target / f"{key}.npy", getattr(self, key))

    @classmethod
    def load(cls, folder: Path, name: str, alive: np.ndarray) -> Segment:
        arrays = {k: np.load(folder / name / f"{k}.npy", mmap_mode="r") for k in _ARRAYS}
        return cls(name=name, alive=alive, **arrays)

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        j = int(np.searchsorted(self.terms, term))
        if j == len(self.terms) or self.terms[j] != term:
            return np.empty(0, np.int32), np.empty(0, np.float32)
        a, b = int(self.indptr[j]), int(self.indptr[j + 1])
        return np.asarray(self.docs[a:b]), np.asarray(self.tfs[a:b])


class KeywordIndex:
    """BM25 over one collection's recorded files (``search`` returns chunk ids, best first)."""

    def __init__(self, folder: Path, store: ChunkStore) -> None:
        self.folder = folder
        self.store = store
        self._meta: dict[str, Any] = {}
        self._segments: list[Segment] = []
        self._stats: tuple[int, list[tuple[Segment, np.ndarray, bool]]] | None = None
        self._load()

    # --- the saved state --------------------------------------------------------------------
    def _meta_path(self) -> Path:
        return self.folder / "index.json"

    def _load(self) -> None:
        try:
            meta = json.loads(self._meta_path().read_text())
            segments = [
                Segment.load(self.folder, s["name"], np.load(self.folder / s["alive"]))
                for s in meta["segments"]
            ]
        except (OSError, ValueError, KeyError):
            meta, segments = {"generation": "", "files": {}, "segments": []}, []
        self._meta, self._segments = meta, segments
        self._stats = None

    def _save(self, segments: list[Segment], files: dict[str, str], generation: str) -> None:
        """Write the alive masks and the new meta beside the old, then swap the meta in (a
        reader holding the old one keeps its files until it reloads), then sweep."""
        listed = []
        for segment in segments:
            if not (self.folder / segment.name).exists():
                segment.save(self.folder)
            alive = f"{segment.name}.alive-{uuid.uuid4().hex[:8]}.npy"
            np.save(self.folder / alive, segment.alive)
            listed.append({"name": segment.name, "alive": alive})
        meta = {"generation": generation, "files": files, "segments": listed}
        tmp = self.folder / f"index.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, self._meta_path())
        keep = {s["name"] for s in listed} | {s["alive"] for s in listed} | {"index.json", ".lock"}
        for path in self.folder.iterdir():
            if path.name not in keep:
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        self._meta, self._segments = meta, segments
        self._stats = None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One refresher at a time on this host (the server and a CLI share the cache)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / ".lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def generation(self) -> str:
        """The store generation this index was last brought up to date with."""
        return str(self._meta.get("generation", ""))

    # --- keeping up -------------------------------------------------------------------------
    def refresh(
        self,
        records: Mapping[str, FileEntry],
        generation: str,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Re-index the files whose record generation differs from the indexed one, drop the
        ones without a record, and remember ``generation``. Returns the files re-indexed."""
        with self._locked():
            self._load()  # another process on this host may have done it already
            indexed: dict[str, str] = self._meta["files"]
            changed = sorted(p for p, e in records.items() if indexed.get(p) != e.generation)
            gone = [p for p in indexed if p not in records]
            if not changed and not gone:
                if generation != self.generation():
                    self._save(self._segments, indexed, generation)
                return 0
            stale = np.array([*changed, *gone], dtype=str)
            segments = []
            for segment in self._segments:
                dead = np.isin(np.asarray(segment.paths), stale)
                if dead.any():
                    segment.alive = segment.alive & ~dead
                if segment.alive.any():
                    segments.append(segment)
            rows: list[tuple[str, str, list[str]]] = []
            for start in range(0, len(changed), _FILES_PER_READ):
                batch = changed[start : start + _FILES_PER_READ]
                for doc, _ in self.store.get(where={"source": {"$in": batch}}):
                    source = str(doc.metadata.get("source", ""))
                    rows.append((str(doc.id), source, tokens(doc.page_content)))
                if progress is not None:
                    progress(min(start + _FILES_PER_READ, len(changed)), len(changed))
            if rows:
                segments.append(Segment.build(f"seg-{uuid.uuid4().hex[:12]}", rows))
            removed = set(gone)
            files = {p: g for p, g in indexed.items() if p not in removed}
            files.update({p: records[p].generation for p in changed})
            self._save(self._merged(segments), files, generation)
        return len(changed)

    @staticmethod
    def _merged(segments: list[Segment]) -> list[Segment]:
        if not segments:
            return segments
        base, small = segments[0], segments[1:]
        if len(small) > _MAX_SMALL:
            small = [Segment.merge(f"seg-{uuid.uuid4().hex[:12]}", small)]
        small_docs = sum(int(s.alive.sum()) for s in small)
        dead = len(base.alive) - int(base.alive.sum())
        if small and max(small_docs, dead) > _MERGE_INTO_BASE * len(base.alive):
            return [Segment.merge(f"seg-{uuid.uuid4().hex[:12]}", [base, *small])]
        return [base, *small]

    # --- searching --------------------------------------------------------------------------
    def _live(self) -> tuple[int, list[tuple[Segment, np.ndarray, bool]]]:
        """The live chunk count and, per segment with live chunks, each chunk's length
        normaliser and whether all its chunks live: fixed until the next update."""
        if self._stats is None:
            live = [s for s in self._segments if s.alive.any()]
            n = sum(int(s.alive.sum()) for s in live)
            avgdl = sum(float(np.asarray(s.lengths)[s.alive].sum()) for s in live) / max(n, 1)
            self._stats = (
                n,
                [
                    (
                        s,
                        K1 * (1 - B + B * np.asarray(s.lengths) / max(avgdl, 1e-9)),
                        bool(s.alive.all()),
                    )
                    for s in live
                ],
            )
        return self._stats

    def search(self, query: str, k: int) -> list[str]:
        terms = list(dict.fromkeys(tokens(query)))
        if not terms or not self._segments:
            return []
        n, live = self._live()
        postings = {t: [s.postings(t) for s, _, _ in live] for t in terms}
        idf = {}
        for term, found in postings.items():
            df = sum(
                len(d) if full else int(s.alive[d].sum())
                for (s, _, full), (d, _) in zip(live, found, strict=True)
            )
            idf[term] = math.log(1 + (n - df + 0.5) / (df + 0.5))
        best: list[tuple[float, str]] = []
        for i, (segment, norm, full) in enumerate(live):
            scores = np.zeros(len(segment.ids), dtype=np.float32)
            for term in terms:
                docs, tfs = postings[term][i]
                if len(docs):
                    scores[docs] += idf[term] * tfs * (K1 + 1) / (tfs + norm[docs])
            if not full:
                scores[~segment.alive] = 0
            top = np.argpartition(-scores, min(k, len(scores) - 1))[:k]
            best += [(float(scores[j]), str(segment.ids[j])) for j in top if scores[j] > 0]
        return [id_ for _, id_ in sorted(best, key=lambda x: -x[0])[:k]]

    def stats(self) -> dict[str, Any]:
        return {
            "files": len(self._meta.get("files", {})),
            "chunks": sum(int(s.alive.sum()) for s in self._segments),
            "segments": len(self._segments),
        }
