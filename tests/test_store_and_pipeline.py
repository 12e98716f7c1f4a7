"""The sync logic over real Chroma and real files, with a fast hash embedder."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.pipeline import ingest_paths
from ragapp.embeddings import EmbeddingSpec
from ragapp.errors import EmbeddingMismatchError
from ragapp.settings import load_settings
from ragapp.store import ChunkStore, make_client
from ragapp.types import Chunk
from tests.fakes import HashEmbeddings


def make_store(data_dir: Path, model: str = "hash-64", dim: int = 64) -> ChunkStore:
    settings = load_settings(data_dir=data_dir)
    return ChunkStore(
        make_client(settings),
        "default",
        EmbeddingSpec(model, data_dir),
        dim,
        lambda: HashEmbeddings(dim),
    )


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "a.md").write_text("# Fees\n\nThe yearly fee is forty-two pounds.\n")
    (root / "sub" / "b.txt").write_text("The board meets every first Tuesday.\n")
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return root


def test_ingest_twice_adds_nothing_then_tracks_changes(docs: Path, clean_environ: Path) -> None:
    store = make_store(clean_environ)
    settings = load_settings()
    first = ingest_paths([docs], store, settings)
    assert (first.added, first.updated, first.removed, first.unchanged) == (2, 0, 0, 0)
    assert first.failed == [] and [Path(p).name for p, _ in first.skipped] == ["image.png"]
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


def test_keep_deleted(docs: Path, clean_environ: Path) -> None:
    store = make_store(clean_environ)
    ingest_paths([docs], store, load_settings())
    (docs / "a.md").unlink()
    report = ingest_paths([docs], store, load_settings(), keep_deleted=True)
    assert report.removed == 0 and len(store.files()) == 2


def test_interrupted_write_is_detected_and_redone(docs: Path, clean_environ: Path) -> None:
    store = make_store(clean_environ)
    ingest_paths([docs], store, load_settings())
    source = str((docs / "a.md").resolve())
    ids = store.collection.get(where={"source": source})["ids"]
    # simulate a crash half-way through a multi-chunk write: one chunk of two is missing
    store.collection.update(
        ids=ids,
        metadatas=[
            {
                "source": source,
                "file_hash": store.files()[source].file_hash,
                "file_chunks": len(ids) + 1,
            }
        ]
        * len(ids),
    )
    assert not store.files()[source].complete
    report = ingest_paths([docs], store, load_settings())
    assert report.updated == 1 and store.files()[source].complete


def test_failures_are_reported_and_the_rest_ingested(docs: Path, clean_environ: Path) -> None:
    (docs / "empty.txt").write_text("")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    store = make_store(clean_environ)
    report = ingest_paths([docs, docs / "missing.md"], store, load_settings())
    reasons = {Path(p).name: r for p, r in report.failed}
    assert set(reasons) == {"empty.txt", "broken.pdf", "missing.md"}
    assert reasons["empty.txt"] == "empty file"
    assert reasons["broken.pdf"].startswith(("cannot parse", "no text found"))
    assert report.added == 2


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
