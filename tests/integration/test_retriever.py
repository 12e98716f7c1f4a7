"""Metadata filters: which ingested files a --path glob selects, and the Chroma `where`."""

from __future__ import annotations

from pathlib import Path

from ragapp.collection import Collection
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


def _collection_with(
    clean_environ: Path, texts: dict[str, str], window_chars: int = 0, embeddings: object = None
) -> Collection:
    """A collection on real embedded Chroma (hash embeddings), one file per text, written as
    ingest writes them: chunks, window vectors cut at ``window_chars``, then the record."""
    from ragapp.backends.fake import HashEmbeddings
    from ragapp.settings import load_settings
    from ragapp.store import ChromaStore, make_client
    from ragapp.types import EmbeddingSpec

    settings = load_settings(data_dir=clean_environ, window_chars=window_chars)
    embedder = embeddings or HashEmbeddings()
    store = ChromaStore(
        make_client(settings), "default", EmbeddingSpec("hash-64", clean_environ), 64,
        lambda: embedder,
    )  # fmt: skip
    collection = Collection(settings, store)
    for name, text in texts.items():
        write(collection, name, text)
    return collection


def write(collection: Collection, name: str, text: str) -> None:
    from ragapp.types import Chunk

    chunk = Chunk(id=name, text=text, source=f"/d/{name}.md", file_hash="h", file_type="md")
    vectors, windows = collection.embed([chunk], [text])
    collection.write_file(
        chunk.source, [chunk], vectors, len(text), 1, "h", windows, collection.settings.window_chars
    )


def test_keyword_index_follows_the_collection(clean_environ: Path) -> None:
    collection = _collection_with(
        clean_environ,
        {"a": "apt pinning priorities explained", "b": "the kernel boots from grub", "c": "x"},
    )
    index = collection.search_index()
    assert index is not None and index.search("apt pinning", 5) == ["a"]
    assert collection.search_dir.is_dir()
    # another process (a new Collection) uses the saved cache; a change re-indexes that file
    collection.remove_files(["/d/a.md"])
    again = Collection(collection.settings, collection.store).search_index()
    assert again is not None
    assert again.search("apt pinning", 5) == []
    assert again.search("grub kernel", 5) == ["b"]
    assert again.search("the and of", 5) == []  # stop words only
    assert again.search('"grub" OR NOT (', 5) == ["b"]  # FTS5 syntax is just words
    write(collection, "b", "the kernel boots from lilo")  # same file, new text
    assert collection.search_index().search("grub", 5) == []  # type: ignore[union-attr]
    assert collection.search_index().search("lilo", 5) == ["b"]  # type: ignore[union-attr]


def test_keyword_index_reindexes_only_changed_files(clean_environ: Path) -> None:
    """Bringing BM25 up to date reads the file records and the chunks of changed files only."""
    collection = _collection_with(clean_environ, {f"f{i}": f"text number {i}" for i in range(20)})
    index = collection.search_index()
    assert index is not None and index.stats() == {"files": 20, "chunks": 20, "segments": 1}
    write(collection, "f3", "text number three, edited")
    write(collection, "new", "another file")
    reads: list[object] = []
    get = collection.store.get

    def counting_get(*args: object, **kwargs: object) -> object:
        reads.append(kwargs.get("where"))
        return get(*args, **kwargs)  # type: ignore[arg-type]

    collection.store.get = counting_get  # type: ignore[method-assign]
    assert index.refresh(collection.files(), collection.generation()) == 2
    assert reads == [{"source": {"$in": ["/d/f3.md", "/d/new.md"]}}]
    assert index.search("edited", 5) == ["f3"] and index.stats()["files"] == 21


def test_hybrid_fuses_keyword_hits_with_cosine_scores_and_filters(clean_environ: Path) -> None:
    from ragapp.query.retriever import ScoredRetriever, metadata_filter

    collection = _collection_with(
        clean_environ,
        {
            "dense": "configure the network interface file for a static address",
            "rare": "zeroconf avahi mdns",
            "other": "printing with cups",
        },
    )
    store, keyword = collection.store, collection.search_index()
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
    from ragapp.windows import chunk_windows

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


def test_window_vectors_live_in_the_store_and_are_embedded_once(clean_environ: Path) -> None:
    """Windows are embedded with their chunk when the file is written, kept in the store,
    read for a question's candidates (never embedded then), and go with their file;
    ``backfill`` makes them for files written without, and nothing else."""
    import numpy as np

    from ragapp.backends.fake import HashEmbeddings
    from ragapp.windows import chunk_windows

    long_text = f"{_FILLER} solar panel fee paid yearly {_FILLER}"
    counting = _CountingEmbeddings()
    collection = _collection_with(
        clean_environ, {"long": long_text, "short": "solar panels"}, 200, counting
    )
    store = collection.store
    n_windows = len(chunk_windows(long_text, None, 200))
    assert counting.embedded == 2 + n_windows >= 7  # both chunks, the long one's windows
    query = np.array(HashEmbeddings().embed_query("solar panel fee paid yearly"))
    docs = [doc for doc, _ in store.get()]
    best = store.best_windows(docs, query)
    assert set(best) == {"long"}  # the short chunk has no windows
    assert best["long"] > 0.5  # the window holding the phrase, not the diluted whole chunk
    assert counting.embedded == 2 + n_windows  # reading them embeds nothing
    assert collection.missing()["files_without_windows"] == 0

    # a file written without windows (window_chars 0, another tool): searched without,
    # reported, and backfilled alone
    plain = Collection(collection.settings.model_copy(update={"window_chars": 0}), store)
    write(plain, "new", f"{_FILLER} battery")
    assert set(store.best_windows([d for d, _ in store.get()], query)) == {"long"}
    missing = collection.missing()
    assert (missing["files_without_windows"], missing["fix"]) == (1, "run `ragapp backfill`")
    before = counting.embedded
    made = collection.backfill()
    new_windows = len(chunk_windows(f"{_FILLER} battery", None, 200))
    assert made == {"recorded_files": 0, "windowed_files": 1, "windows": new_windows}
    assert counting.embedded == before + new_windows  # the new file's windows, not its chunk
    assert set(store.best_windows([d for d, _ in store.get()], query)) == {"long", "new"}
    assert "fix" not in collection.missing()

    # removing a file removes its windows
    collection.remove_files(["/d/long.md"])
    assert store.file_windows("/d/long.md") == {}
    assert set(store.file_windows("/d/new.md")) == {"new"}


def test_backfill_records_chunks_written_without_a_record(clean_environ: Path) -> None:
    from ragapp.backends.fake import HashEmbeddings
    from ragapp.types import Chunk

    collection = _collection_with(clean_environ, {"a": "grub boots kernels"})
    chunk = Chunk(id="x", text="unrecorded file about lilo", source="/d/x.md", file_hash="hx")
    collection.store.write_file(
        chunk.source, [chunk], HashEmbeddings().embed_documents([chunk.text])
    )
    assert collection.missing()["unrecorded_chunks"] == 1
    index = collection.search_index()
    assert index is not None and index.search("lilo", 5) == []  # dense search still finds it
    assert [s.source for s in collection.retrieve("unrecorded file about lilo", 1)] == ["/d/x.md"]
    assert collection.backfill()["recorded_files"] == 1
    assert collection.files()["/d/x.md"].sha256 == "hx"
    assert collection.missing()["unrecorded_chunks"] == 0
    assert collection.search_index().search("lilo", 5) == ["x"]  # type: ignore[union-attr]


def test_hybrid_ranks_a_long_chunk_by_its_best_window(clean_environ: Path) -> None:
    """The query's words sit in one window of a long chunk: diluted over the whole chunk it
    loses to a short chunk with fewer of them (hash cosines 0.50 vs 0.57); with windows
    (best window 0.71, mean 0.60) it comes first, and every hit still reports its own
    chunk's cosine."""
    from ragapp.query.retriever import ScoredRetriever

    texts = {
        "long": f"{_FILLER} solar panel fee paid yearly by members {_FILLER}",
        "short": "solar panel brochure leaflet notes",
    }
    query = "solar panel fee paid yearly"

    def ranked(window_chars: int) -> list[tuple[str, float]]:
        collection = _collection_with(clean_environ / f"w{window_chars}", texts, window_chars)
        retriever = ScoredRetriever(
            store=collection.store, k=2, keyword=collection.search_index(),
            keyword_weight=0.0, windows=window_chars > 0,
        )  # fmt: skip
        return [(d.id, d.metadata["score"]) for d in retriever.invoke(query)]

    without, with_windows = ranked(0), ranked(100)
    assert [i for i, _ in without] == ["short", "long"]
    assert [i for i, _ in with_windows] == ["long", "short"]
    assert dict(without) == dict(with_windows)  # scores are chunk cosines either way
