"""Writers at once, as real processes on one embedded data dir (the real bundled embedder,
real Chroma): two `ragapp ingest` runs of overlapping folders end exactly as one clean
ingest, and `ragapp serve` answers from what a `ragapp ingest` beside it wrote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RAGAPP, SAMPLE_DOCS, free_port, run_cli, server_process

pytestmark = pytest.mark.e2e


def contents(data_dir: Path, **where: str) -> dict[str, Any]:
    """Everything a collection holds, comparable across data dirs: chunk ids, file records
    (without their times and generations) and window vectors per chunk."""
    from ragapp.app import Models
    from ragapp.settings import load_settings

    settings = load_settings(data_dir=data_dir, **where)
    collection = Models(settings).collection(settings)
    files = collection.files()
    return {
        "ids": sorted(collection.store.ids()),
        "files": {p: (e.sha256, e.chunks, e.windows) for p, e in files.items()},
        "windows": {p: len(collection.store.file_windows(p)) for p in files},
    }


def start_ingest(data_dir: Path, *paths: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*RAGAPP, "ingest", *map(str, paths), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RAGAPP_DATA_DIR": str(data_dir), **env},
    )


def overlapping_folders(tmp_path: Path) -> tuple[Path, Path]:
    """sample_docs plus a subfolder of two more files: (the whole tree, the subfolder)."""
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLE_DOCS, docs)
    more = docs / "more"
    more.mkdir()
    (more / "ferry.txt").write_text("The ferry to Lindholm leaves at 07:40 on weekdays.\n")
    (more / "boat.md").write_text("# Boats\n\nThe club's rowing boat is kept in shed 3.\n")
    return docs, more


def test_two_concurrent_ingests_of_overlapping_folders_equal_one_clean_ingest(
    tmp_path: Path,
) -> None:
    docs, more = overlapping_folders(tmp_path)
    shared = tmp_path / "shared"
    both = [start_ingest(shared, docs), start_ingest(shared, more, docs / "faq.txt")]
    results = [p.communicate(timeout=600) for p in both]
    assert [p.returncode for p in both] == [0, 0], [err for _, err in results]
    reports = [json.loads(out) for out, _ in results]
    # each file was written once: whichever ran second found the overlap already done
    assert sum(r["added"] for r in reports) == 7 and sum(r["unchanged"] for r in reports) == 3
    assert all(r["failed"] == [] and r["updated"] == 0 for r in reports)

    clean = tmp_path / "clean"
    assert run_cli("ingest", str(docs), env={"RAGAPP_DATA_DIR": str(clean)}).code == 0
    expected = contents(clean)
    assert len(expected["files"]) == 7 and sum(expected["windows"].values()) > 0
    assert contents(shared) == expected


def test_two_hosts_ingesting_overlapping_folders_at_once_on_a_chroma_server(
    chroma_server: str, tmp_path: Path
) -> None:
    """Two hosts (separate data dirs, so no shared lock) ingest overlapping folders into one
    Chroma server at the same time: both may write the overlap, and writes of the same
    content converge (deterministic ids, same vectors), so the collection ends exactly as
    one clean ingest."""
    docs, more = overlapping_folders(tmp_path)
    server = {"RAGAPP_CHROMA_URL": chroma_server}
    hosts = [
        start_ingest(tmp_path / "host-a", docs, RAGAPP_COLLECTION="hosts-shared", **server),
        start_ingest(tmp_path / "host-b", more, docs / "faq.txt",
                     RAGAPP_COLLECTION="hosts-shared", **server),
    ]  # fmt: skip
    results = [p.communicate(timeout=600) for p in hosts]
    assert [p.returncode for p in hosts] == [0, 0], [err for _, err in results]
    clean = {"RAGAPP_CHROMA_URL": chroma_server, "RAGAPP_COLLECTION": "hosts-clean"}
    assert run_cli("ingest", str(docs), env=clean).code == 0
    expected = contents(tmp_path / "c", chroma_url=chroma_server, collection="hosts-clean")
    got = contents(tmp_path / "d", chroma_url=chroma_server, collection="hosts-shared")
    assert len(expected["files"]) == 7
    # chunk ids are a hash of path and text: the clean run's paths are the same files
    assert got == expected
    for name in ("hosts-shared", "hosts-clean"):
        assert run_cli("reset", "--yes", env={**server, "RAGAPP_COLLECTION": name}).code == 0


def wait_for_job(url: str, job_id: str) -> dict[str, Any]:
    for _ in range(600):
        job: dict[str, Any] = httpx.get(f"{url}/api/jobs/{job_id}", timeout=30).json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def ask(url: str, question: str) -> dict[str, Any]:
    reply = httpx.post(f"{url}/api/ask", json={"question": question, "k": 3}, timeout=120)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_serve_answers_from_what_an_ingest_beside_it_wrote(tmp_path: Path) -> None:
    """The server keeps its embedded Chroma open; a CLI ingest on the same data dir adds a
    file; the server's next question finds it (its vector index follows the generation)
    and its document list shows it. The server's own upload waits for the CLI's lock."""
    data = tmp_path / "data"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "fees.txt").write_text("The yearly membership fee is forty-two pounds.\n")
    env = {**os.environ, "RAGAPP_DATA_DIR": str(data), "RAGAPP_LLM_BACKEND": "fake"}
    assert run_cli("ingest", str(docs), env=env).code == 0
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [*RAGAPP, "serve", "--port", str(port)]
    with server_process(command, f"{url}/healthz", env=env):
        before = ask(url, "When does the ferry to Lindholm leave?")
        assert {Path(s["source"]).name for s in before["sources"]} <= {"fees.txt"}

        (docs / "ferry.txt").write_text("The ferry to Lindholm leaves at 07:40 on weekdays.\n")
        ingest = start_ingest(data, docs)
        upload = httpx.post(
            f"{url}/api/documents",
            files={"files": ("boat.md", b"# Boats\n\nThe rowing boat is kept in shed 3.\n")},
            timeout=120,
        )
        out, err = ingest.communicate(timeout=600)
        assert ingest.returncode == 0, err
        assert json.loads(out)["added"] == 1
        assert upload.status_code == 202, upload.text
        job = wait_for_job(url, upload.json()["job_id"])
        assert (job["state"], job["files_done"], job["failures"]) == ("done", 1, []), job

        after = ask(url, "When does the ferry to Lindholm leave?")
        assert Path(after["sources"][0]["source"]).name == "ferry.txt"
        listed = httpx.get(f"{url}/api/documents", timeout=30).json()
        names = {Path(d["path"]).name for d in listed["documents"]}
        assert names == {"fees.txt", "ferry.txt", "boat.md"}
    # what the server and the CLI wrote is all there, once
    assert run_cli("ingest", str(docs), "--json", env=env).json()["unchanged"] == 2
