"""The sync logic over real Chroma and real files, with a fast hash embedder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest.pipeline import IngestReport
from ingest.pipeline import ingest_paths as sync
from ragapp.backends.fake import HashEmbeddings
from ragapp.collection import Collection
from ragapp.errors import EmbeddingMismatchError
from ragapp.ledger import Ledger
from ragapp.settings import Settings, load_settings
from ragapp.store import ChromaStore, ChunkStore, make_client
from ragapp.types import Chunk, EmbeddingSpec


def make_store(data_dir: Path, model: str = "hash-64", dim: int = 64) -> ChunkStore:
    settings = load_settings(data_dir=data_dir)
    return ChromaStore(
        make_client(settings),
        "default",
        EmbeddingSpec(model, data_dir),
        dim,
        lambda: HashEmbeddings(dim),
    )


def ingest_paths(
    paths: list[Path], store: ChunkStore, settings: Settings, **kw: bool
) -> IngestReport:
    """Sync through the collection that owns ``store``, as every front end does."""
    return sync(paths, Collection(settings, store), **kw)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "a.md").write_text("# Fees\n\nThe yearly fee is forty-two pounds.\n")
    (root / "sub" / "b.txt").write_text("The board meets every first Tuesday.\n")
    (root / "data.bin").write_bytes(b"\x00\x01binary")
    return root


def test_ingest_twice_adds_nothing_then_tracks_changes(docs: Path, clean_environ: Path) -> None:
    store = make_store(clean_environ)
    settings = load_settings()
    first = ingest_paths([docs], store, settings)
    assert (first.added, first.updated, first.removed, first.unchanged) == (2, 0, 0, 0)
    assert first.failed == [] and [Path(p).name for p, _ in first.skipped] == ["data.bin"]
    count = store.count()
    assert count == first.chunks > 0

    again = ingest_paths([docs], store, settings)
    assert (again.added, again.updated, again.unchanged, again.chunks) == (0, 0, 2, 0)
    assert store.count() == count

    (docs / "a.md").write_text("# Fees\n\nThe yearly fee is fifty pounds.\n")
    (docs / "sub" / "b.txt").unlink()
    (docs / "c.txt").write_text("A new file.\n")
    changed = ingest_paths([docs], store, settings)
    assert (changed.added, changed.updated, changed.removed, changed.unchanged) == (1, 1, 1, 0)
    texts = " ".join(store.collection.get()["documents"])
    assert "fifty" in texts and "forty-two" not in texts and "board" not in texts


def ledger_paths(store: ChunkStore) -> list[str]:
    return sorted(Path(p).name for p in Ledger(store).entries())


def test_keep_deleted(docs: Path, clean_environ: Path) -> None:
    store = make_store(clean_environ)
    ingest_paths([docs], store, load_settings())
    (docs / "a.md").unlink()
    report = ingest_paths([docs], store, load_settings(), keep_deleted=True)
    assert report.removed == 0 and ledger_paths(store) == ["a.md", "b.txt"]


def test_moved_file_reuses_its_vectors(docs: Path, clean_environ: Path) -> None:
    store = make_store(clean_environ)
    ingest_paths([docs], store, load_settings())
    before = store.collection.get(include=["embeddings", "documents"])
    (docs / "sub" / "b.txt").rename(docs / "renamed.txt")
    report = ingest_paths([docs], store, load_settings())
    assert (report.added, report.removed, report.reused, report.unchanged) == (1, 1, 1, 1)
    after = store.collection.get(include=["embeddings", "documents"])
    assert sorted(after["documents"]) == sorted(before["documents"])
    assert ledger_paths(store) == ["a.md", "renamed.txt"]
    moved = store.collection.get(where={"source": str((docs / "renamed.txt").resolve())})
    assert len(moved["ids"]) == 1


def test_touched_file_is_not_reparsed(docs: Path, clean_environ: Path) -> None:
    store = make_store(clean_environ)
    ingest_paths([docs], store, load_settings())
    os.utime(docs / "a.md", (1, 1))
    assert ingest_paths([docs], store, load_settings()).unchanged == 2


def test_dry_run_changes_nothing(docs: Path, clean_environ: Path) -> None:
    store = make_store(clean_environ)
    ingest_paths([docs], store, load_settings())
    (docs / "a.md").write_text("# Fees\n\nNow fifty pounds.\n")
    (docs / "sub" / "b.txt").unlink()
    (docs / "new.md").write_text("Brand new.\n")
    count = store.count()
    report = ingest_paths([docs], store, load_settings(), dry_run=True)
    names = sorted((s, Path(p).name) for s, p in report.changes)
    assert names == [("added", "new.md"), ("removed", "b.txt"), ("updated", "a.md")]
    assert (report.added, report.updated, report.removed) == (1, 1, 1)
    assert store.count() == count and ledger_paths(store) == ["a.md", "b.txt"]


def test_interrupted_writes_converge(docs: Path, clean_environ: Path) -> None:
    """A crash after the store write but before the ledger row, or half-way through a
    file's chunks: the next run redoes the file and ends with exactly a clean result."""
    clean = make_store(clean_environ / "clean")
    ingest_paths([docs], clean, load_settings(data_dir=clean_environ / "clean"))
    expected = sorted(clean.collection.get()["ids"])

    store = make_store(clean_environ)
    ingest_paths([docs], store, load_settings())
    ledger = Ledger(store)
    a_md = str((docs / "a.md").resolve())
    ledger.forget(a_md)  # crash before the ledger row
    store.collection.delete(
        ids=store.collection.get(where={"source": a_md})["ids"][:1]
    )  # mid-write
    report = ingest_paths([docs], store, load_settings())
    assert report.updated + report.added == 1
    assert sorted(store.collection.get()["ids"]) == expected


def test_failures_are_reported_logged_and_the_rest_ingested(
    docs: Path, clean_environ: Path
) -> None:
    from pypdf import PdfReader, PdfWriter

    from tests.conftest import SAMPLE_DOCS

    pdf = PdfWriter()
    for page in PdfReader(SAMPLE_DOCS / "annual-report-2025.pdf").pages:
        pdf.add_page(page)
    pdf.encrypt("secret")
    pdf.write(docs / "locked.pdf")
    (docs / "empty.txt").write_text("")
    (docs / "garbage.txt").write_bytes(bytes(range(256)) * 20)
    (docs / "truncated.pdf").write_bytes(
        (SAMPLE_DOCS / "annual-report-2025.pdf").read_bytes()[:3000]
    )
    (docs / "huge.md").write_text("word " * 300_000)
    os.symlink(docs, docs / "sub" / "loop")
    store = make_store(clean_environ)
    settings = load_settings(max_file_mb=1)
    report = ingest_paths([docs, docs / "missing.md"], store, settings)
    # a truncated PDF either fails to parse or parses to nothing (skipped: no text found)
    no_text = [(p, r) for p, r in report.skipped if r == "no text found"]
    reasons = {Path(p).name: r for p, r in [*report.failed, *no_text]}
    assert reasons == {
        "locked.pdf": "encrypted (password-protected)",
        "empty.txt": "empty file",
        "garbage.txt": "cannot decode the text (not UTF-8 or a known encoding)",
        "truncated.pdf": reasons["truncated.pdf"],
        "huge.md": "larger than the 1 MiB limit",
        "missing.md": "no such file or directory",
    }
    assert reasons["truncated.pdf"].startswith(("cannot parse", "no text found"))
    assert report.added == 2
    log = (clean_environ / "logs" / "ingest.log").read_text().splitlines()
    assert sorted(
        line.split("\t")[2].rsplit("/", 1)[-1] for line in log if "\tfailed\t" in line
    ) == sorted(Path(p).name for p, _ in report.failed)


def test_write_file_replaces_exactly(clean_environ: Path) -> None:
    store = make_store(clean_environ)
    vec = HashEmbeddings().embed_documents
    old = [Chunk(id=f"o{i}", text=f"old {i}", source="/f", file_hash="1") for i in range(3)]
    store.write_file("/f", old, vec([c.text for c in old]))
    new = [old[0], Chunk(id="n1", text="new", source="/f", file_hash="2")]
    store.write_file("/f", new, vec([c.text for c in new]))
    assert sorted(store.collection.get(where={"source": "/f"})["ids"]) == ["n1", "o0"]


def test_collection_refuses_another_embedding_model(clean_environ: Path) -> None:
    make_store(clean_environ).collection  # noqa: B018
    with pytest.raises(EmbeddingMismatchError, match="built with hash-64 \\(64-d\\)"):
        make_store(clean_environ, model="other", dim=32).collection  # noqa: B018


def test_chroma_never_gets_a_default_embedding_function(clean_environ: Path) -> None:
    coll = make_store(clean_environ).collection
    # with no embedding function, Chroma cannot embed text itself (its default would download)
    with pytest.raises(Exception, match="(?i)embedding function"):
        coll.query(query_texts=["anything"], n_results=1)
