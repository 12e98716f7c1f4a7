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
