"""Metadata filters: which ingested files a --path glob selects, and the Chroma `where`."""

from __future__ import annotations

from pathlib import Path

from ragapp.query.retriever import metadata_filter, select_sources

SOURCES = [
    "/home/ann/docs/reports/q1.pdf",
    "/home/ann/docs/reports/2025/annual.pdf",
    "/home/ann/docs/notes.md",
    "/srv/shared/handbook.md",
]


def test_a_glob_without_a_slash_matches_file_names() -> None:
    assert select_sources(SOURCES, ["*.md"], Path("/")) == [SOURCES[2], SOURCES[3]]
    assert select_sources(SOURCES, ["q?.pdf", "hand*"], Path("/")) == [SOURCES[0], SOURCES[3]]


def test_a_glob_with_a_slash_matches_paths_relative_to_cwd() -> None:
    cwd = Path("/home/ann/docs")
    assert select_sources(SOURCES, ["reports/*"], cwd) == SOURCES[:2]  # * crosses folders
    assert select_sources(SOURCES, ["/srv/*"], cwd) == [SOURCES[3]]
    assert select_sources(SOURCES, ["other/*"], cwd) == []


def test_metadata_filter() -> None:
    assert metadata_filter() is None
    assert metadata_filter(["/a"]) == {"source": {"$in": ["/a"]}}
    assert metadata_filter(None, [".PDF", "md"]) == {"file_type": {"$in": ["pdf", "md"]}}
    assert metadata_filter(["/a"], ["pdf"]) == {
        "$and": [{"source": {"$in": ["/a"]}}, {"file_type": {"$in": ["pdf"]}}]
    }


def test_mmr_trades_repetition_for_coverage(clean_environ: Path) -> None:
    """Real embedded Chroma, hash embeddings: three near-copies outrank a different passage
    by similarity; MMR keeps one copy and brings the different one in, scores intact."""
    from ragapp.backends.fake import HashEmbeddings
    from ragapp.query.retriever import ScoredRetriever
    from ragapp.types import Chunk
    from tests.integration.test_store_and_pipeline import make_store

    store = make_store(clean_environ)
    texts = [
        "solar panel fee paid yearly by members",
        "solar panel fee paid yearly by every member",
        "solar panel fee paid yearly by all members",
        "fee waivers are handled by the membership secretary",
    ]
    chunks = [
        Chunk(id=f"c{i}", text=t, source=f"/d/{i}.md", file_hash="h") for i, t in enumerate(texts)
    ]
    for chunk in chunks:
        store.write_file(chunk.source, [chunk], HashEmbeddings().embed_documents([chunk.text]))
    plain = ScoredRetriever(store=store, k=2).invoke("solar panel fee")
    diverse = ScoredRetriever(store=store, k=2, mmr_lambda=0.3).invoke("solar panel fee")
    assert {d.metadata["source"] for d in plain} <= {"/d/0.md", "/d/1.md", "/d/2.md"}
    assert diverse[0].page_content == plain[0].page_content
    assert diverse[1].metadata["source"] == "/d/3.md"
    assert all(0 < d.metadata["score"] <= 1 for d in diverse)


def _store_with(clean_environ: Path, texts: dict[str, str]) -> object:
    from ragapp.backends.fake import HashEmbeddings
    from ragapp.types import Chunk
    from tests.integration.test_store_and_pipeline import make_store

    store = make_store(clean_environ)
    for name, text in texts.items():
        chunk = Chunk(id=name, text=text, source=f"/d/{name}.md", file_hash="h", file_type="md")
        store.write_file(chunk.source, [chunk], HashEmbeddings().embed_documents([text]))
    return store


def test_keyword_index_follows_the_collection(clean_environ: Path) -> None:
    from ragapp.query.keyword import KeywordIndex

    store = _store_with(
        clean_environ,
        {"a": "apt pinning priorities explained", "b": "the kernel boots from grub", "c": "x"},
    )
    folder = clean_environ / "keyword" / "default"
    index = KeywordIndex(folder, store)  # type: ignore[arg-type]
    assert index.search("apt pinning", 5) == ["a"]
    assert (folder / "index.json").is_file()
    # a fresh process loads the saved index; a changed collection is rebuilt, never stale
    store.remove_file("/d/a.md")  # type: ignore[attr-defined]
    again = KeywordIndex(folder, store)  # type: ignore[arg-type]
    assert again.search("apt pinning", 5) == []
    assert again.search("grub kernel", 5) == ["b"]
    assert again.search("the and of", 5) == []  # stop words only


def test_hybrid_fuses_keyword_hits_with_cosine_scores_and_filters(clean_environ: Path) -> None:
    from ragapp.query.keyword import KeywordIndex
    from ragapp.query.retriever import ScoredRetriever, metadata_filter

    store = _store_with(
        clean_environ,
        {
            "dense": "configure the network interface file for a static address",
            "rare": "zeroconf avahi mdns",
            "other": "printing with cups",
        },
    )
    keyword = KeywordIndex(clean_environ / "kw", store)  # type: ignore[arg-type]
    hits = ScoredRetriever(store=store, k=3, keyword=keyword).invoke("avahi network address")
    by_id = {d.id: d.metadata["score"] for d in hits}
    assert set(by_id) == {"dense", "rare", "other"}
    assert hits[0].id in {"dense", "rare"}
    # scores are cosine relevance for every hit (the hash embedder's, here)
    assert all(-1 <= s <= 1 for s in by_id.values())
    only = metadata_filter(["/d/other.md"])
    filtered = ScoredRetriever(store=store, k=3, keyword=keyword, filter=only).invoke("avahi")
    assert [d.id for d in filtered] == ["other"]


def test_chunk_windows_cut_a_chunk_once_without_overlap() -> None:
    from ragapp.query.keyword import chunk_windows

    text = " ".join(f"word{i:02d}" for i in range(40))  # 40 words of 6 chars: 279 characters
    windows = chunk_windows(text, None, 100)
    assert len(windows) == 3
    assert all(len(w) <= 100 for w in windows)
    assert " ".join(windows) == text  # every word once, in order: no overlap, nothing lost
    titled = chunk_windows(text, "3.1. Fees", 100)
    assert [w.split("\n", 1) for w in titled] == [["3.1. Fees", w] for w in windows]
    # a short last piece joins the window before it rather than standing alone
    assert chunk_windows("a" * 90 + " bb", None, 100) == []
    assert chunk_windows("a" * 90 + " " + "b" * 20, None, 100) == []
    assert len(chunk_windows("a" * 90 + " " + "b" * 60, None, 100)) == 2
    # a chunk that fits in one window gets none (its own vector already covers it); 0 is off
    assert chunk_windows("short text", "Title", 100) == []
    assert chunk_windows(text, None, 0) == []


class _CountingEmbeddings:
    """HashEmbeddings that remember how many texts they embedded."""

    def __init__(self) -> None:
        from ragapp.backends.fake import HashEmbeddings

        self.inner = HashEmbeddings()
        self.embedded = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.embedded += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


_FILLER = " ".join(f"filler{i}" for i in range(60))  # ~500 chars sharing no word with queries


def test_window_vectors_follow_the_collection_and_are_embedded_once(clean_environ: Path) -> None:
    import numpy as np

    from ragapp.backends.fake import HashEmbeddings
    from ragapp.query.keyword import KeywordIndex, chunk_windows

    long_text = f"{_FILLER} solar panel fee paid yearly {_FILLER}"
    store = _store_with(clean_environ, {"long": long_text, "short": "solar panels"})
    folder = clean_environ / "keyword" / "default"
    counting = _CountingEmbeddings()
    index = KeywordIndex(folder, store, lambda: counting, window_chars=200)  # type: ignore[attr-defined]
    query = np.array(HashEmbeddings().embed_query("solar panel fee paid yearly"))
    best = index.best_windows(["long", "short", "gone"], query)
    assert set(best) == {"long"}  # the short chunk has no windows, an unknown id is skipped
    assert best["long"] > 0.5  # the window holding the phrase, not the diluted whole chunk
    first = counting.embedded
    assert first == len(chunk_windows(long_text, None, 200)) >= 5  # ~1,040 chars, 200 a window
    assert (folder / "windows.npy").is_file()

    # a new chunk: only its windows are embedded; the saved ones are reused
    from ragapp.types import Chunk

    extra = Chunk(id="new", text=f"{_FILLER} battery", source="/d/new.md", file_hash="h")
    store.write_file(extra.source, [extra], HashEmbeddings().embed_documents([extra.text]))  # type: ignore[attr-defined]
    again = KeywordIndex(folder, store, lambda: counting, window_chars=200)  # type: ignore[attr-defined]
    assert set(again.best_windows(["long", "new"], query)) == {"long", "new"}
    assert counting.embedded == first + len(chunk_windows(extra.text, None, 200))
    assert again.best_windows(["long"], query) == best

    # a removed chunk loses its windows; another window size rebuilds them all
    store.remove_file("/d/long.md")  # type: ignore[attr-defined]
    gone = KeywordIndex(folder, store, lambda: counting, window_chars=200)  # type: ignore[attr-defined]
    assert set(gone.best_windows(["long", "new"], query)) == {"new"}
    resized = KeywordIndex(folder, store, lambda: counting, window_chars=300)  # type: ignore[attr-defined]
    before = counting.embedded
    assert set(resized.best_windows(["new"], query)) == {"new"}
    assert counting.embedded == before + len(chunk_windows(extra.text, None, 300))
    # without an embedder (or at 0) there are no windows, and BM25 still works
    plain = KeywordIndex(folder, store)  # type: ignore[arg-type]
    assert plain.best_windows(["new"], query) == {}
    assert plain.search("battery", 5) == ["new"]


def test_hybrid_ranks_a_long_chunk_by_its_best_window(clean_environ: Path) -> None:
    """The query's words sit in one window of a long chunk: diluted over the whole chunk it
    loses to a short chunk with fewer of them (hash cosines 0.50 vs 0.57); with windows
    (best window 0.71, mean 0.60) it comes first, and every hit still reports its own
    chunk's cosine."""
    from ragapp.backends.fake import HashEmbeddings
    from ragapp.query.keyword import KeywordIndex
    from ragapp.query.retriever import ScoredRetriever

    store = _store_with(
        clean_environ,
        {
            "long": f"{_FILLER} solar panel fee paid yearly by members {_FILLER}",
            "short": "solar panel brochure leaflet notes",
        },
    )
    query = "solar panel fee paid yearly"

    def ranked(window_chars: int) -> list[tuple[str, float]]:
        index = KeywordIndex(
            clean_environ / f"kw{window_chars}",
            store,  # type: ignore[arg-type]
            lambda: HashEmbeddings(),
            window_chars=window_chars,
        )
        retriever = ScoredRetriever(store=store, k=2, keyword=index, keyword_weight=0.0)
        return [(d.id, d.metadata["score"]) for d in retriever.invoke(query)]

    without, with_windows = ranked(0), ranked(100)
    assert [i for i, _ in without] == ["short", "long"]
    assert [i for i, _ in with_windows] == ["long", "short"]
    assert dict(without) == dict(with_windows)  # scores are chunk cosines either way
