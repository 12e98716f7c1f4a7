"""kill -9 at random moments of an ingest; the next ingest must leave the store exactly as a
clean ingest would: the same chunk ids with the same texts, no duplicates, nothing missing."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import RAGAPP, SAMPLE_DOCS, SHARED, run_cli

pytestmark = pytest.mark.e2e

SEED = int(os.environ.get("RAGAPP_CRASH_SEED", "0")) or random.randrange(1 << 30)


def make_corpus(root: Path) -> Path:
    docs = root / "docs"
    shutil.copytree(SAMPLE_DOCS, docs)
    faq = SHARED / "eval" / "debian-faq" / "docs"
    for html in sorted(faq.glob("*.html"))[:4]:
        shutil.copy(html, docs / html.name)
    return docs


def snapshot(data_dir: Path) -> list[tuple[str, str, str]]:
    """Every chunk as (id, source, text), sorted: equal snapshots mean equal stores."""
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(
        str(data_dir / "chroma"), Settings(anonymized_telemetry=False)
    )
    got = client.get_collection("default").get(include=["documents", "metadatas"])
    rows = sorted(
        zip(got["ids"], (m["source"] for m in got["metadatas"]), got["documents"], strict=True)
    )
    assert len({r[0] for r in rows}) == len(rows)
    return rows


def ingest_killed_after(docs: Path, data_dir: Path, seconds: float) -> bool:
    """Start an ingest and SIGKILL its whole process group after ``seconds``.
    Returns whether it was still running (i.e. really killed)."""
    proc = subprocess.Popen(
        [*RAGAPP, "--data-dir", str(data_dir), "ingest", str(docs), "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def test_kill_9_during_ingest_then_rerun_equals_a_clean_ingest(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    docs = make_corpus(tmp_path)
    clean_dir = tmp_path / "clean"
    started = time.perf_counter()
    assert run_cli("--data-dir", str(clean_dir), "ingest", str(docs)).code == 0
    clean_seconds = time.perf_counter() - started
    clean = snapshot(clean_dir)

    killed = 0
    for trial in range(2):
        delay = rng.uniform(0.3, 0.9) * clean_seconds
        for attempt in range(5):
            data = tmp_path / f"trial{trial}-{attempt}"
            # kill early (models loading, first files), then again later in the re-run
            hits = sum(
                ingest_killed_after(docs, data, delay * (k + 1) / 2) for k in range(trial + 1)
            )
            if hits:
                break
            delay /= 2  # this machine ran faster than the clean run: kill sooner
        killed += hits
        res = run_cli("--data-dir", str(data), "ingest", str(docs), "--json")
        assert res.code == 0, f"seed {SEED}: {res.stderr}"
        assert snapshot(data) == clean, f"seed {SEED}, trial {trial}"
    assert killed >= 2, f"seed {SEED}: the ingests finished before they could be killed"


def test_kill_9_during_an_update_then_rerun_equals_a_clean_ingest(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    docs = make_corpus(tmp_path)
    data = tmp_path / "data"
    assert run_cli("--data-dir", str(data), "ingest", str(docs)).code == 0
    # change half the files, delete one, add one: then crash half-way through the sync
    for i, path in enumerate(sorted(p for p in docs.iterdir() if p.suffix in (".html", ".md"))):
        if i % 2 == 0:
            path.write_text(path.read_text().replace("the", "THE", 5))
    (docs / "faq.txt").unlink()
    (docs / "new-note.md").write_text("# Note\n\nThe spare key is under the blue pot.\n")
    started = time.perf_counter()
    ingest_killed_after(docs, data, rng.uniform(2.0, 6.0))
    assert run_cli("--data-dir", str(data), "ingest", str(docs)).code == 0
    rerun_seconds = time.perf_counter() - started

    clean_dir = tmp_path / "clean"
    assert run_cli("--data-dir", str(clean_dir), "ingest", str(docs)).code == 0
    assert snapshot(data) == snapshot(clean_dir), f"seed {SEED} (rerun took {rerun_seconds:.1f}s)"
