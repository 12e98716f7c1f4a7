"""The BM25 index (ragapp.query.keyword) on the in-memory store: scores as bm25s computes
them, the same whatever the segments, and updates that touch only the changed files."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from ragapp.app import Models
from ragapp.collection import Collection
from ragapp.query.keyword import KeywordIndex, Segment, tokens
from ragapp.settings import load_settings
from ragapp.types import Chunk

WORDS = [
    "apt",
    "dpkg",
    "kernel",
    "grub",
    "boot",
    "package",
    "mirror",
    "security",
    "update",
    "release",
    "stable",
    "testing",
]


def texts(n: int, seed: int = 1) -> list[str]:
    pick = random.Random(seed)
    return [" ".join(pick.choices(WORDS + [f"rare{i}"], k=pick.randint(3, 30))) for i in range(n)]


def collection_of(files: dict[str, list[str]]) -> Collection:
    settings = load_settings(window_chars=0)
    collection = Models(settings).collection(settings)
    for path, chunk_texts in files.items():
        write(collection, path, chunk_texts)
    return collection


def write(collection: Collection, path: str, chunk_texts: list[str]) -> None:
    chunks = [
        Chunk(id=f"{path}#{i}", text=t, source=path, file_hash="h", index=i)
        for i, t in enumerate(chunk_texts)
    ]
    vectors, _ = collection.embed(chunks, [c.text for c in chunks])
    collection.write_file(path, chunks, vectors, 1, 1, "h")


def bm25s_ranking(corpus: dict[str, str], query: str, k: int) -> list[tuple[str, float]]:
    import bm25s

    ids = list(corpus)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(list(corpus.values()), stopwords="en", show_progress=False),
                    show_progress=False)  # fmt: skip
    docs, scores = retriever.retrieve(
        bm25s.tokenize([query], stopwords="en", show_progress=False), k=k, show_progress=False
    )
    return [(ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]


def test_scores_are_bm25s_scores_whatever_the_segments(tmp_path: Path) -> None:
    corpus = {f"/d/{i}.txt": t for i, t in enumerate(texts(120))}
    collection = collection_of({p: [t] for p, t in list(corpus.items())[:60]})
    index = collection.search_index()
    assert index is not None
    for path, text in list(corpus.items())[60:]:  # one file at a time: many small segments
        write(collection, path, [text])
        collection.search_index()
    assert index.stats()["segments"] > 1 and index.stats()["chunks"] == 120
    for query in ("grub boot kernel", "security update rare7", "mirror"):
        expected = bm25s_ranking({f"{p}#0": t for p, t in corpus.items()}, query, 10)
        got = index.search(query, 10)
        # same chunks with the same scores (ties may come in another order)
        scores = dict(expected)
        assert sorted(scores[g] for g in got) == pytest.approx(
            sorted(s for _, s in expected), rel=1e-4
        )


def test_an_update_reads_only_the_changed_files_and_merging_keeps_the_results() -> None:
    collection = collection_of({f"/d/{i}.txt": texts(5, seed=i) for i in range(40)})
    index = collection.search_index()
    assert index is not None
    before = {q: index.search(q, 20) for q in ("apt dpkg", "rare3 release", "grub")}
    write(collection, "/d/7.txt", ["the grub kernel boots"])
    collection.remove_files(["/d/8.txt"])
    reads: list[object] = []
    get = collection.store.get
    collection.store.get = lambda *a, **kw: reads.append(kw.get("where")) or get(*a, **kw)  # type: ignore[method-assign]
    assert collection.search_index() is index
    assert reads == [{"source": {"$in": ["/d/7.txt"]}}]
    assert "/d/7.txt#0" in index.search("grub kernel boots", 3)
    assert not any(
        i.startswith(("/d/8.txt", "/d/7.txt#1")) for q in before for i in index.search(q, 200)
    )
    # a merge of every segment gives the same ranking as the segments
    merged = Segment.merge("all", index._segments)
    assert len(merged.ids) == index.stats()["chunks"] == 38 * 5 + 1
    alone = KeywordIndex.__new__(KeywordIndex)
    alone._segments, alone._meta, alone._stats = [merged], index._meta, None
    for q in before:
        assert sorted(alone.search(q, 500)) == sorted(index.search(q, 500))  # all hits: no ties cut


def test_tokens_drop_stop_words_and_single_characters() -> None:
    assert tokens("How do I pin a package, e.g. apt's?") == ["how", "do", "pin", "package", "apt"]
    assert np.array(tokens("")).size == 0
