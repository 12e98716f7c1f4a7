"""What every ChunkStore must do, as checks over a store factory: the unit tier runs them on
MemoryStore, the integration tier on real Chroma, so the fake is proven to behave like it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ragapp.backends.fake import HashEmbeddings
from ragapp.errors import EmbeddingMismatchError
from ragapp.store import ChunkStore
from ragapp.types import Chunk

MakeStore = Callable[..., ChunkStore]  # (model="hash-64", dim=64) -> a store named "default"
EMBED = HashEmbeddings()


def chunks(source: str, *texts: str) -> list[Chunk]:
    return [
        Chunk(
            id=f"{source}#{i}",
            text=t,
            source=source,
            page=i + 1,
            file_hash="h",
            file_type=source.rsplit(".", 1)[-1],
            index=i,
        )
        for i, t in enumerate(texts)
    ]


def write(store: ChunkStore, source: str, *texts: str) -> None:
    found = chunks(source, *texts)
    store.write_file(source, found, EMBED.embed_documents([c.text for c in found]))


def check_write_replaces_a_file_exactly(make_store: MakeStore) -> None:
    store = make_store()
    assert not store.exists() and store.count() == 0 and store.generation() == ""
    write(store, "/d/a.md", "apples are red", "pears are green", "plums are blue")
    write(store, "/d/b.md", "the board meets on tuesdays")
    assert store.count() == 4
    write(store, "/d/a.md", "apples are red")  # fewer chunks: the stale ones go
    assert sorted(store.ids()) == ["/d/a.md#0", "/d/b.md#0"]
    copied, vectors = store.file_chunks("/d/a.md")
    assert [(c.text, c.page, c.index, c.file_type) for c in copied] == [
        ("apples are red", 1, 0, "md")
    ]
    assert len(vectors) == 1 and len(vectors[0]) == 64
    assert store.remove_file("/d/a.md") == 1 and store.remove_file("/d/a.md") == 0
    assert store.ids() == ["/d/b.md#0"]
    assert store.drop() and not store.exists() and not store.drop()


def check_every_write_moves_the_generation(make_store: MakeStore) -> None:
    store = make_store()
    write(store, "/d/a.md", "one")
    first = store.generation()
    assert first
    write(store, "/d/a.md", "two")  # same number of chunks, new text
    second = store.generation()
    assert second != first
    assert store.remove_file("/d/missing.md") == 0
    assert store.generation() == second  # nothing removed, nothing changed
    store.remove_file("/d/a.md")
    assert store.generation() != second


def check_query_ranks_by_cosine_and_filters(make_store: MakeStore) -> None:
    store = make_store()
    write(store, "/d/a.md", "solar panel fee paid yearly", "the kernel boots from grub")
    write(store, "/d/b.pdf", "solar panel brochure")
    hits, _ = store.query(EMBED.embed_query("solar panel fee"), 3)
    assert [doc.page_content for doc, _ in hits][0] == "solar panel fee paid yearly"
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1.0001 for s in scores)
    assert (
        abs(
            scores[0]
            - float(
                sum(
                    a * b
                    for a, b in zip(
                        EMBED.embed_query("solar panel fee"),
                        EMBED.embed_query("solar panel fee paid yearly"),
                        strict=True,
                    )
                )
            )
        )
        < 1e-4
    )
    only_b, vectors = store.query(
        EMBED.embed_query("solar"), 5, {"source": {"$in": ["/d/b.pdf"]}}, vectors=True
    )
    assert [d.metadata["source"] for d, _ in only_b] == ["/d/b.pdf"] and len(vectors[0]) == 64
    both = {"$and": [{"source": {"$in": ["/d/a.md", "/d/b.pdf"]}}, {"file_type": {"$in": ["md"]}}]}
    assert {
        d.metadata["source"] for d, _ in store.query(EMBED.embed_query("solar"), 5, both)[0]
    } == {"/d/a.md"}
    got = store.get(ids=["/d/a.md#1", "nope"], vectors=True)
    assert [(d.id, d.metadata["page"]) for d, _ in got] == [("/d/a.md#1", 2)]
    assert got[0][1] is not None and len(got[0][1]) == 64


def check_refuses_another_embedding_model(make_store: MakeStore) -> None:
    write(make_store(), "/d/a.md", "one")
    with pytest.raises(EmbeddingMismatchError, match="was built with hash-64 \\(64-d\\)"):
        make_store(model="other-32", dim=32).count()


def check_side_tables_follow_their_file(make_store: MakeStore) -> None:
    """Window vectors are written with a file's chunks and go with them; file records are
    their own table, and writing one moves the generation; drop takes everything."""
    store = make_store()
    found = chunks("/d/a.md", "a long chunk", "short")
    vectors = EMBED.embed_documents([c.text for c in found])
    windows = [EMBED.embed_documents(["a long", "chunk"]), []]
    store.write_file("/d/a.md", found, vectors, windows)
    by_chunk = store.file_windows("/d/a.md")
    assert list(by_chunk) == ["/d/a.md#0"] and by_chunk["/d/a.md#0"] == [
        pytest.approx(v, abs=2e-3)
        for v in windows[0]  # kept as float16
    ]
    docs = [doc for doc, _ in store.get()]
    assert {d.id: d.metadata.get("windows") for d in docs} == {"/d/a.md#0": 2, "/d/a.md#1": None}
    best = store.best_windows(docs, EMBED.embed_query("chunk"))
    assert list(best) == ["/d/a.md#0"] and best["/d/a.md#0"] == pytest.approx(1.0, abs=2e-3)
    store.write_file("/d/a.md", found[:1], vectors[:1], [windows[0][:1]])  # one window now
    assert [len(v) for v in store.file_windows("/d/a.md").values()] == [1]

    generation = store.generation()
    store.put_records([{"path": "/d/a.md", "size": 3, "mtime_ns": 2**62, "chunks": 1}])
    assert store.generation() != generation
    assert store.records(["/d/a.md", "/d/none.md"]) == [
        {"path": "/d/a.md", "size": 3, "mtime_ns": 2**62, "chunks": 1}
    ]
    store.delete_records(["/d/a.md"])
    assert store.records() == []
    assert store.remove_file("/d/a.md") == 1 and store.file_windows("/d/a.md") == {}
    write(store, "/d/b.md", "kept")
    store.put_records([{"path": "/d/b.md", "chunks": 1}])
    assert [page for page in store.walk(page=1)] == [[("/d/b.md#0", store.get()[0][0].metadata)]]
    assert store.drop() and store.records() == [] and store.file_windows("/d/b.md") == {}


CHECKS = [
    check_write_replaces_a_file_exactly,
    check_side_tables_follow_their_file,
    check_every_write_moves_the_generation,
    check_query_ranks_by_cosine_and_filters,
    check_refuses_another_embedding_model,
]
