"""The CLI on a real Chroma server (`chroma run` on loopback, RAGAPP_CHROMA_URL) with the
real bundled models: ingest, re-ingest, retrieve, status, and the generation that tells
another process its search index is stale."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_DOCS, run_cli
from tests.facts import FACTS

pytestmark = pytest.mark.e2e


def test_cli_on_a_chroma_server(chroma_server: str, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLE_DOCS, docs)
    env = {"RAGAPP_CHROMA_URL": chroma_server, "RAGAPP_COLLECTION": "server-cli"}
    first = run_cli("ingest", str(docs), "--json", env=env)
    assert first.code == 0, first.stderr
    assert (first.json()["added"], first.json()["failed"]) == (5, [])
    again = run_cli("ingest", str(docs), "--json", env=env).json()
    assert (again["added"], again["updated"], again["unchanged"]) == (0, 0, 5)
    status = run_cli("status", "--json", env=env).json()
    assert status["store"] == chroma_server and status["chunks"] == first.json()["chunks"]
    question, answer, file, page = FACTS[0]
    results = run_cli("retrieve", question, "-k", "8", "--json", env=env).json()["results"]
    hits = [r for r in results if answer in r["text"]]
    assert hits and Path(hits[0]["source"]).name == file and hits[0]["page"] == page
    # the data lives on the server, not in the data dir
    assert not (tmp_path / "data" / "chroma").exists()
    reset = run_cli("reset", "--yes", env=env)
    assert reset.code == 0 and "deleted" in reset.stderr
    assert run_cli("status", "--json", env=env).json()["chunks"] == 0


def test_a_write_by_one_process_refreshes_anothers_index(
    chroma_server: str, tmp_path: Path
) -> None:
    """Two Collections on one Chroma server (two hosts): the reader's BM25 index follows the
    writer's change through the store's generation, with no message between them."""
    from ingest.pipeline import ingest_paths
    from ragapp.app import Models
    from ragapp.settings import load_settings

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The harbour master is called Ole Brekke.\n")
    common = {"chroma_url": chroma_server, "collection": "two-hosts", "embedding_model": "fake"}
    host_a = load_settings(data_dir=tmp_path / "host-a", **common)
    host_b = load_settings(data_dir=tmp_path / "host-b", **common)  # its own, empty data dir
    writer = Models(host_a).collection(host_a)
    reader = Models(host_b).collection(host_b)
    ingest_paths([docs], writer)
    index = reader.search_index()
    assert index is not None and index.search("harbour master", 3)
    (docs / "a.txt").write_text("The lighthouse keeper is called Ada Lind.\n")  # same count
    ingest_paths([docs], writer)
    index = reader.search_index()
    assert index is not None
    assert not index.search("harbour master", 3) and index.search("lighthouse keeper", 3)
    writer.reset()
