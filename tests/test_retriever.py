"""Metadata filters: which ingested files a --path glob selects, and the Chroma `where`."""

from __future__ import annotations

from pathlib import Path

from ragapp.retriever import metadata_filter, select_sources

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
    from ragapp.retriever import ScoredRetriever
    from ragapp.types import Chunk
    from tests.fakes import HashEmbeddings
    from tests.test_store_and_pipeline import make_store

    store = make_store(clean_environ)
    texts = [
        "solar panel fee paid yearly by members",
        "solar panel fee paid yearly by every member",
        "solar panel fee paid yearly by all members",
        "fee waivers are handled by the membership secretary",
    ]
    chunks = [Chunk(id=f"c{i}", text=t, source=f"/d/{i}.md", file_hash="h") for i, t in enumerate(texts)]
    for chunk in chunks:
        store.write_file(chunk.source, [chunk], HashEmbeddings().embed_documents([chunk.text]))
    vs = store.vectorstore()
    plain = ScoredRetriever(vectorstore=vs, k=2).invoke("solar panel fee")
    diverse = ScoredRetriever(vectorstore=vs, k=2, mmr_lambda=0.3).invoke("solar panel fee")
    assert {d.metadata["source"] for d in plain} <= {"/d/0.md", "/d/1.md", "/d/2.md"}
    assert diverse[0].page_content == plain[0].page_content
    assert diverse[1].metadata["source"] == "/d/3.md"
    assert all(0 < d.metadata["score"] <= 1 for d in diverse)


def _store_with(clean_environ: Path, texts: dict[str, str]) -> object:
    from ragapp.types import Chunk
    from tests.fakes import HashEmbeddings
    from tests.test_store_and_pipeline import make_store

    store = make_store(clean_environ)
    for name, text in texts.items():
        chunk = Chunk(id=name, text=text, source=f"/d/{name}.md", file_hash="h", file_type="md")
        store.write_file(chunk.source, [chunk], HashEmbeddings().embed_documents([text]))
    return store


def test_keyword_index_follows_the_collection(clean_environ: Path) -> None:
    from ragapp.keyword import KeywordIndex

    store = _store_with(
        clean_environ,
        {"a": "apt pinning priorities explained", "b": "the kernel boots from grub", "c": "x"},
    )
    folder = clean_environ / "keyword" / "default"
    index = KeywordIndex(folder, store.collection)  # type: ignore[attr-defined]
    assert index.search("apt pinning", 5) == ["a"]
    assert (folder / "index.json").is_file()
    # a fresh process loads the saved index; a changed collection is rebuilt, never stale
    store.remove_file("/d/a.md")  # type: ignore[attr-defined]
    again = KeywordIndex(folder, store.collection)  # type: ignore[attr-defined]
    assert again.search("apt pinning", 5) == []
    assert again.search("grub kernel", 5) == ["b"]
    assert again.search("the and of", 5) == []  # stop words only


def test_hybrid_fuses_keyword_hits_with_cosine_scores_and_filters(clean_environ: Path) -> None:
    from ragapp.keyword import KeywordIndex
    from ragapp.retriever import ScoredRetriever, metadata_filter

    store = _store_with(
        clean_environ,
        {
            "dense": "configure the network interface file for a static address",
            "rare": "zeroconf avahi mdns",
            "other": "printing with cups",
        },
    )
    keyword = KeywordIndex(clean_environ / "kw", store.collection)  # type: ignore[attr-defined]
    vs = store.vectorstore()  # type: ignore[attr-defined]
    hits = ScoredRetriever(vectorstore=vs, k=3, keyword=keyword).invoke("avahi network address")
    by_id = {d.id: d.metadata["score"] for d in hits}
    assert set(by_id) == {"dense", "rare", "other"}
    assert hits[0].id in {"dense", "rare"}
    # scores are cosine relevance for every hit (the hash embedder's, here)
    assert all(-1 <= s <= 1 for s in by_id.values())
    only = metadata_filter(["/d/other.md"])
    filtered = ScoredRetriever(vectorstore=vs, k=3, keyword=keyword, filter=only).invoke("avahi")
    assert [d.id for d in filtered] == ["other"]
