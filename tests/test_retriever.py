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
