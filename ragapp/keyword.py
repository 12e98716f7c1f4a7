"""The keyword side of hybrid search: a BM25 index (bm25s) over a collection's chunks.

It is derived data: built from the Chroma collection, saved under the data dir, and rebuilt
whenever the collection's set of chunk ids differs from the one it was built from, so it
can never answer from chunks that are gone (after an ingest, a removal, a reset, or a
crash between a store write and the rebuild).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

_PAGE = 5000  # chunks read from Chroma per request while building


def _bm25s() -> Any:
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets DEBUG on import
    return bm25s


def ids_fingerprint(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


class KeywordIndex:
    """BM25 over one collection; ``search`` returns chunk ids, best first."""

    def __init__(self, folder: Path, collection: Any) -> None:
        self.folder = folder
        self.collection = collection
        self._bm25: Any = None
        self._ids: list[str] = []

    def refresh(self) -> None:
        """Load the saved index if it matches the collection, else rebuild and save it."""
        bm25s = _bm25s()

        ids = self.collection.get(include=[])["ids"]
        fingerprint = ids_fingerprint(ids)
        meta = self.folder / "index.json"
        if meta.is_file():
            saved = json.loads(meta.read_text())
            if saved.get("fingerprint") == fingerprint:
                self._bm25 = bm25s.BM25.load(str(self.folder / "bm25"))
                self._ids = saved["ids"]
                return
        self._build(ids, fingerprint)

    def _build(self, ids: list[str], fingerprint: str) -> None:
        bm25s = _bm25s()

        texts: list[str] = []
        ordered: list[str] = []
        for start in range(0, len(ids), _PAGE):
            page = self.collection.get(ids=ids[start : start + _PAGE], include=["documents"])
            ordered += page["ids"]
            texts += [t or "" for t in page["documents"]]
        self._ids = ordered
        self._bm25 = None
        if not texts:
            return
        self._bm25 = bm25s.BM25()
        self._bm25.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
        # Written beside, then swapped in: a reader never sees half an index.
        tmp = self.folder.with_name(self.folder.name + f".{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self._bm25.save(str(tmp / "bm25"))
        (tmp / "index.json").write_text(json.dumps({"fingerprint": fingerprint, "ids": ordered}))
        old = self.folder.with_name(self.folder.name + f".{os.getpid()}.old")
        if self.folder.exists():
            os.replace(self.folder, old)
        os.replace(tmp, self.folder)
        shutil.rmtree(old, ignore_errors=True)

    def search(self, query: str, k: int) -> list[str]:
        bm25s = _bm25s()

        if self._bm25 is None:
            self.refresh()
        if self._bm25 is None or not self._ids:
            return []
        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
        if not tokens.vocab:
            return []
        results, scores = self._bm25.retrieve(tokens, k=min(k, len(self._ids)), show_progress=False)
        return [self._ids[int(i)] for i, s in zip(results[0], scores[0], strict=True) if s > 0]
