"""Collection keeps its pieces in step: chunks, file records, the derived search index and
uploads, through ingest, remove and reset (fake embedder, in-memory store)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ingest.pipeline import ingest_paths
from ragapp.app import Models
from ragapp.collection import Collection
from ragapp.errors import EmptyCollectionError, NoMatchingFileError
from ragapp.settings import load_settings


def open_collection(**overrides: object) -> Collection:
    settings = load_settings(**overrides)
    return Models(settings).collection(settings)


def test_sync_writes_chunks_and_records_together(docs: Path) -> None:
    collection = open_collection()
    report = ingest_paths([docs], collection)
    assert (report.added, report.failed) == (3, [])
    assert sorted(Path(p).name for p in collection.files()) == ["board.txt", "fees.md", "notes.txt"]
    assert collection.count() == sum(e.chunks for e in collection.files().values()) == report.chunks
    assert collection.status() == {
        "documents": 3,
        "chunks": report.chunks,
        "embedding_model": "fake-hash-64",
        "store": "memory://unit",
        "missing": {
            "unrecorded_chunks": 0,
            "files_without_windows": 0,
            "chunks_without_windows": 0,
        },
    }
    fees = str((docs / "fees.md").resolve())
    assert [c.text for c in collection.chunks_of(fees)] == [
        "Fees\n\nThe yearly membership fee is forty-two pounds."
    ]
    assert collection.retrieve("membership fee", k=1)[0].source == fees


def test_generation_moves_with_every_write_and_the_index_follows(docs: Path) -> None:
    """The server's old freshness check counted chunks: an edit that keeps the count left a
    stale BM25 index. The generation changes on every write, so the index follows."""
    collection = open_collection()
    ingest_paths([docs], collection)
    before = collection.generation()
    index = collection.search_index()
    assert index is not None and index.search("harbour master", 3)
    (docs / "notes.txt").write_text("The lighthouse keeper is called Ada Lind.\n")  # same count
    count = collection.count()
    ingest_paths([docs], collection)
    assert collection.count() == count and collection.generation() != before
    index = collection.search_index()
    assert index is not None
    assert not index.search("harbour master", 3) and index.search("lighthouse keeper", 3)
    unchanged = collection.generation()
    ingest_paths([docs], collection)  # nothing changed: no write, same generation
    assert collection.generation() == unchanged


def test_another_process_sees_the_change(docs: Path) -> None:
    """Two Collection objects over one store (two processes on one Chroma): a write by one
    makes the other's search index stale, and it rebuilds."""
    reader, writer = open_collection(), open_collection()
    ingest_paths([docs], writer)
    index = reader.search_index()
    assert index is not None and index.search("Tuesday board", 2)
    writer.remove_files(writer.files_under([docs / "sub"]))
    index = reader.search_index()
    assert index is not None and not index.search("Tuesday board", 2)


def test_remove_and_reset(docs: Path) -> None:
    collection = open_collection()
    ingest_paths([docs], collection)
    gone = collection.files_under([docs / "sub"])
    assert [Path(p).name for p in gone] == ["board.txt"]
    assert collection.remove_files(gone) == 1
    assert "board.txt" not in {Path(p).name for p in collection.files()}
    collection.search_index()
    assert collection.search_dir.is_dir()
    assert collection.reset() is True
    assert collection.files() == {} and collection.count() == 0
    assert not collection.search_dir.exists()
    assert collection.reset() is False
    with pytest.raises(EmptyCollectionError, match="'default' is empty: run `ragapp ingest PATH`"):
        collection.retriever()


def test_search_filter_needs_a_matching_file(docs: Path) -> None:
    collection = open_collection()
    ingest_paths([docs], collection)
    where = collection.search_filter(["*.md"], ["md"])
    assert where == {
        "$and": [
            {"source": {"$in": [str((docs / "fees.md").resolve())]}},
            {"file_type": {"$in": ["md"]}},
        ]
    }
    assert [s.source for s in collection.retrieve("board", 5, where)] == [
        str((docs / "fees.md").resolve())
    ]
    with pytest.raises(NoMatchingFileError, match="no ingested file matches --path \\*.pdf"):
        collection.search_filter(["*.pdf"], None)


def test_uploads_are_written_atomically_inside_the_folder() -> None:
    collection = open_collection()
    saved = collection.save_upload("a.txt", io.BytesIO(b"first"))
    assert saved.parent == collection.uploads_dir.resolve() and collection.is_upload(str(saved))
    assert collection.save_upload("a.txt", io.BytesIO(b"second")).read_bytes() == b"second"
    assert [p.name for p in collection.uploads_dir.iterdir()] == ["a.txt"]  # no partial left
    for bad in ("../x.txt", "", ".."):
        with pytest.raises(ValueError, match="unsafe file name"):
            collection.save_upload(bad, io.BytesIO(b"x"))
    assert not collection.is_upload("/elsewhere/a.txt")


def test_a_write_that_meets_a_full_disk_is_one_line(
    docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from ragapp.errors import DiskFullError

    collection = open_collection()

    def full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(collection.store, "write_file", full)
    with pytest.raises(DiskFullError) as raised:
        ingest_paths([docs], collection)
    message = str(raised.value)
    assert message.startswith("not enough disk space before writing ") and "\n" not in message
    assert "free some space and rerun: what was written is kept" in message
    assert raised.value.exit_code == 1 and raised.value.http_status == 507
