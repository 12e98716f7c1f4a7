"""Faults a user meets in real life (issue 17), each reproduced with the real CLI, the
bundled models and real Chroma: an ingest stopped by SIGTERM (docker stop, systemd) or
Ctrl-C; a disk that fills up."""

from __future__ import annotations

import functools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RAGAPP, Corpus, free_port, run_cli, wait_until_serving
from tests.integration.test_hostile_files import WORDS

pytestmark = pytest.mark.e2e

FILES = 48


def write_corpus(docs: Path) -> None:
    """Enough text that an ingest runs for a while: 48 files of about 24 KB."""
    docs.mkdir()
    rng = random.Random(17)
    for n in range(FILES):
        paragraphs = (" ".join(rng.choices(WORDS, k=60)) + "." for _ in range(60))
        (docs / f"notes-{n:02d}.txt").write_text(f"Notes {n}\n\n" + "\n\n".join(paragraphs))


def processes_marked(mark: str) -> list[int]:
    """The live processes whose environment holds ``mark`` (the ingest and its children:
    the forkserver, the resource tracker, the parse workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if mark.encode() in (entry / "environ").read_bytes():
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_ingest_reaps_its_workers_says_so_and_a_rerun_finishes(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    docs, data = tmp_path / "docs", tmp_path / "data"
    write_corpus(docs)
    mark = f"RAGAPP_TEST_MARK={uuid.uuid4().hex}"
    env = {**os.environ, mark.split("=")[0]: mark.split("=")[1], "RAGAPP_INGEST_WORKERS": "2"}
    proc = subprocess.Popen(
        [*RAGAPP, "--data-dir", str(data), "ingest", str(docs)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # until the first files are written
            listed = run_cli("--data-dir", str(data), "sources", "--json")
            if listed.code == 0 and len(listed.json()["sources"]) >= 2:
                break
            assert proc.poll() is None, "the ingest ended before it could be stopped"
            time.sleep(1)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted: ") and last.endswith(
        f"of {FILES} files done; rerun to finish"
    )
    assert "Traceback" not in err
    for _ in range(50):  # the kernel reaps the children within moments
        if not processes_marked(mark):
            break
        time.sleep(0.1)
    assert processes_marked(mark) == []  # nothing left running: no parser, no forkserver

    rerun = run_cli("--data-dir", str(data), "ingest", str(docs), "--json")
    assert rerun.code == 0, rerun.stderr
    report = rerun.json()
    assert report["added"] + report["unchanged"] == FILES and report["unchanged"] >= 2
    sources = run_cli("--data-dir", str(data), "sources", "--json").json()["sources"]
    status = run_cli("--data-dir", str(data), "status", "--json").json()
    # every file once, no chunk twice: the interrupted write left nothing behind
    assert len(sources) == FILES
    assert status["chunks"] == sum(s["chunks"] for s in sources)
    assert json.dumps(status["missing"]) == json.dumps(
        {"unrecorded_chunks": 0, "files_without_windows": 0, "chunks_without_windows": 0}
    )


# --- a disk that fills up --------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MiB tmpfs: a real disk that really fills (root only; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave_mb: float) -> Path:
    """A file that takes the disk's space but ``leave_mb`` MiB."""
    filler = disk / "filler"
    free = shutil.disk_usage(disk).free + (filler.stat().st_size if filler.exists() else 0)
    filler.unlink(missing_ok=True)
    with filler.open("wb") as fh:
        os.posix_fallocate(fh.fileno(), 0, max(0, free - int(leave_mb * 2**20)))
    return filler


def test_a_full_disk_is_one_line_before_writing_and_the_store_recovers(
    tmp_path: Path, small_disk: Path
) -> None:
    docs, data = tmp_path / "docs", small_disk / "data"
    write_corpus(docs)
    env = {"RAGAPP_MIN_FREE_MB": "16"}
    cli = functools.partial(run_cli, "--data-dir", str(data), env=env)
    filler = fill(small_disk, leave_mb=10)  # under the margin already: refused at once
    refused = cli("ingest", str(docs))
    assert refused.code == 1
    (line,) = refused.stderr.strip().splitlines()
    assert re.fullmatch(
        rf"error: not enough disk space: \d+ MiB free on the disk holding {re.escape(str(data))} "
        r"\(ragapp keeps min_free_mb = 16 MiB free\); free some space and rerun: what was "
        r"written is kept",
        line,
    ), line

    filler.unlink()
    seed = tmp_path / "seed.txt"  # the store made, so its own size is counted below
    seed.write_text("The harbour office opens at nine.\n")
    assert cli("ingest", str(seed)).code == 0
    filler = fill(small_disk, leave_mb=26)  # room for a few files, not for all of them
    stopped = cli("ingest", str(docs))
    assert stopped.code == 1, stopped.stderr
    line = stopped.stderr.strip().splitlines()[-1]
    assert line.startswith("error: not enough disk space before writing "), line
    assert f"on the disk holding {data}" in line and "Traceback" not in stopped.stderr
    written = cli("sources", "--json")
    assert written.code == 0, written.stderr  # the store opens and reads on the full disk
    kept = len(written.json()["sources"]) - 1  # the seed aside
    assert 0 < kept < FILES

    filler.unlink()  # space freed: the same store takes the rest
    rerun = cli("ingest", str(docs), "--json")
    assert rerun.code == 0, rerun.stderr
    assert (rerun.json()["unchanged"], rerun.json()["added"]) == (kept, FILES - kept)
    sources = cli("sources", "--json").json()["sources"]
    status = cli("status", "--json").json()
    assert len(sources) == FILES + 1 and status["chunks"] == sum(s["chunks"] for s in sources)
    hits = cli("retrieve", "harbour ferry lantern", "--json").json()["results"]
    assert hits and Path(hits[0]["source"]).name.startswith("notes-")


# --- ragapp serve stopped by SIGTERM -------------------------------------------------------------


def test_serve_drains_on_sigterm_and_exits_0(asked_corpus: Corpus, tmp_path: Path) -> None:
    """docker stop: the server stops taking connections, finishes the answer it is
    writing, and exits 0."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGAPP_")}
    env.update(
        RAGAPP_CACHE_DIR=os.environ["RAGAPP_CACHE_DIR"],
        RAGAPP_DATA_DIR=str(asked_corpus.data),
        RAGAPP_MAX_TOKENS="48",
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*RAGAPP, "serve", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    events: list[str] = []
    try:
        wait_until_serving(f"{url}/healthz", timeout=120)
        started = threading.Event()

        def ask() -> None:
            body = {"question": "What was the cooperative's total income for 2025?"}
            with (
                httpx.Client(base_url=url, timeout=120) as http,
                http.stream(
                    "POST", "/api/ask", json=body, headers={"Accept": "text/event-stream"}
                ) as response,
            ):
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        events.append(line[6:].strip())
                        if events[-1] == "token":
                            started.set()

        reader = threading.Thread(target=ask)
        reader.start()
        assert started.wait(timeout=120), events
        proc.send_signal(signal.SIGTERM)
        time.sleep(1)
        with pytest.raises(httpx.ConnectError):  # no new connection is taken
            httpx.get(f"{url}/healthz", timeout=5)
        reader.join(timeout=120)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        proc.kill()
    assert events[-1] == "done", events  # the answer under way was finished, not cut
    text = log.read_text()
    assert "Traceback" not in text and "stopping" in text, text


# --- uploads a killed server saved but never ingested -------------------------------------------


def test_uploads_left_by_a_killed_server_are_ingested_when_it_starts(tmp_path: Path) -> None:
    """kill -9 between saving an upload and ingesting it leaves the file in the uploads
    folder with no record (and, mid-save, a partial file): the next start ingests the one
    and deletes the other."""
    data = tmp_path / "data"
    uploads = data / "uploads" / "default"
    uploads.mkdir(parents=True)
    (uploads / "ferry-times.txt").write_text("The winter ferry leaves Pellworth pier at 07:40.\n")
    (uploads / ".upload-x1y2.part").write_bytes(b"half an upl")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGAPP_")}
    env.update(RAGAPP_CACHE_DIR=os.environ["RAGAPP_CACHE_DIR"], RAGAPP_DATA_DIR=str(data))
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*RAGAPP, "serve", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        wait_until_serving(f"{url}/healthz", timeout=120)
        deadline, names = time.monotonic() + 120, set()
        while time.monotonic() < deadline and "ferry-times.txt" not in names:
            listing = httpx.get(f"{url}/api/documents", timeout=30).json()
            names = {d["name"] for d in listing["documents"]}
            time.sleep(0.5)
        assert names == {"ferry-times.txt"}, log.read_text()
        assert not (uploads / ".upload-x1y2.part").exists()
        answer = httpx.post(
            f"{url}/api/ask", json={"question": "When does the winter ferry leave?"}, timeout=120
        ).json()
        assert [Path(s["source"]).name for s in answer["sources"]][:1] == ["ferry-times.txt"]
    finally:
        proc.terminate()
        proc.wait(timeout=60)
