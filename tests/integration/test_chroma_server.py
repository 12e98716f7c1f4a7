"""The CLI on a real Chroma server (`chroma run` on loopback, RAGAPP_CHROMA_URL) with the
real bundled models: ingest, re-ingest, retrieve, status, and the generation that tells
another process its search index is stale."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


def test_a_second_host_with_an_empty_data_dir_sees_the_same_collection(
    chroma_server: str, tmp_path: Path
) -> None:
    """Everything the query side needs is in the server: a host that never ingested lists
    the same sources and returns the same rankings (window vectors and all), embedding
    only the questions."""
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLE_DOCS, docs)
    common = {"RAGAPP_CHROMA_URL": chroma_server, "RAGAPP_COLLECTION": "shared-state"}
    writer = {**common, "RAGAPP_DATA_DIR": str(tmp_path / "host-a")}
    reader = {**common, "RAGAPP_DATA_DIR": str(tmp_path / "host-b")}
    assert run_cli("ingest", str(docs), "--json", env=writer).code == 0
    listed = [run_cli("sources", "--json", env=env).json()["sources"] for env in (writer, reader)]
    assert listed[0] == listed[1] and len(listed[0]) == 5
    for question, *_ in FACTS[:4]:
        ranked = [
            run_cli("retrieve", question, "-k", "8", "--json", env=env).json()["results"]
            for env in (writer, reader)
        ]
        assert [(r["source"], r["page"], r["text"]) for r in ranked[0]] == [
            (r["source"], r["page"], r["text"]) for r in ranked[1]
        ]
        assert [r["score"] for r in ranked[0]] == pytest.approx([r["score"] for r in ranked[1]])
    # the reader's data dir holds a cache only: its BM25 file, nothing else of the collection
    kept = sorted(
        str(p.relative_to(tmp_path / "host-b"))
        for p in (tmp_path / "host-b").rglob("*")
        if p.is_file()
    )
    assert all(p.startswith(("search/", "logs/", "locks/", "cache/")) for p in kept), kept

    # in process: the reader embeds each question and no document
    from ragapp.app import Models
    from ragapp.settings import load_settings

    settings = load_settings(
        data_dir=tmp_path / "host-c", chroma_url=chroma_server, collection="shared-state"
    )
    models = Models(settings)
    embedder = models.embeddings()
    calls: list[str] = []
    embed_documents = embedder.embed_documents
    embedder.embed_documents = lambda texts: calls.append("documents") or embed_documents(texts)  # type: ignore[method-assign]
    found = models.collection(settings).retrieve(FACTS[0][0], 8)
    assert found and calls == []
    assert run_cli("reset", "--yes", env=writer).code == 0


@contextmanager
def token_proxy(upstream: str, token: str) -> Iterator[str]:
    """A loopback reverse proxy in front of the Chroma server that wants a bearer token,
    as a team would put one (Chroma 1.x has no auth of its own). Yields its URL."""
    import httpx

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            if self.headers.get("Authorization") != f"Bearer {token}":
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host",)}
            res = httpx.request(self.command, upstream + self.path, content=body, headers=headers)
            self.send_response(res.status_code)
            for key, value in res.headers.items():
                if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(res.content)))
            self.end_headers()
            self.wfile.write(res.content)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(10)


def test_headers_reach_a_proxy_in_front_of_the_server(chroma_server: str, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The harbour master is called Ole Brekke.\n")
    with token_proxy(chroma_server, "team-s3cret") as proxy:
        base = {"RAGAPP_CHROMA_URL": proxy, "RAGAPP_COLLECTION": "behind-proxy"}
        refused = run_cli("status", "--json", env=base)
        assert refused.code == 1 and "cannot open the Chroma store at" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        env = {**base, "RAGAPP_CHROMA_HEADERS": '{"Authorization": "Bearer team-s3cret"}'}
        ingested = run_cli("ingest", str(docs), "--json", env=env)
        assert ingested.code == 0, ingested.stderr
        status = run_cli("status", "--json", env=env).json()
        assert status["chunks"] == ingested.json()["chunks"] == 1
        assert run_cli("reset", "--yes", env=env).code == 0
