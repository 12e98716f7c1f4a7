"""The ingest verbs through the real CLI: --dry-run, sources, remove, --watch."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import RAGAPP, SAMPLE_DOCS, run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    for name in ("faq.txt", "handbook.md", "history.html"):
        shutil.copy(SAMPLE_DOCS / name, root / name)
    return root


def test_dry_run_sources_and_remove(docs: Path) -> None:
    plan = run_cli("ingest", str(docs), "--dry-run", "--json").json()
    assert (plan["added"], plan["dry_run"]) == (3, True)
    assert sorted(Path(c["path"]).name for c in plan["changes"]) == [
        "faq.txt",
        "handbook.md",
        "history.html",
    ]
    assert run_cli("status", "--json").json()["chunks"] == 0

    assert run_cli("ingest", str(docs)).code == 0
    listed = run_cli("sources", "--json").json()["sources"]
    assert sorted(Path(s["path"]).name for s in listed) == [
        "faq.txt",
        "handbook.md",
        "history.html",
    ]
    assert all(s["chunks"] > 0 and s["ingested_at"].endswith("+00:00") for s in listed)
    total = run_cli("status", "--json").json()["chunks"]
    assert total == sum(s["chunks"] for s in listed)

    gone = run_cli("remove", str(docs / "faq.txt"), "--json").json()
    assert [Path(p).name for p in gone["removed"]] == ["faq.txt"]
    assert run_cli("status", "--json").json()["chunks"] == total - gone["chunks"]
    res = run_cli("remove", str(docs / "faq.txt"))
    assert res.code == 1 and "nothing ingested under" in res.stderr


def _next_report(proc: subprocess.Popen[str], timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        line = proc.stdout.readline() if ready else ""
        if line.strip():
            return json.loads(line)
        if proc.poll() is not None:
            raise AssertionError(f"watch exited with {proc.returncode}")
    raise AssertionError("no sync report within the timeout")


def test_watch_syncs_changes(docs: Path) -> None:
    proc = subprocess.Popen(
        [*RAGAPP, "ingest", str(docs), "--watch", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert _next_report(proc)["added"] == 3
        (docs / "note.md").write_text("# Note\n\nThe spare key is under the blue pot.\n")
        report = _next_report(proc)
        assert (report["added"], report["unchanged"]) == (1, 3)
        (docs / "faq.txt").unlink()
        assert _next_report(proc)["removed"] == 1
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    hits = run_cli("retrieve", "where is the spare key", "--json").json()["results"]
    assert Path(hits[0]["source"]).name == "note.md"


def _without_root_file_access() -> list[str]:
    """A prefix that makes permission bits bite: root reads everything unless the process
    loses CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH (setpriv, util-linux)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permission bits can't be enforced")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}", "--"]


def test_unreadable_files_are_reported_and_nothing_is_lost(docs: Path) -> None:
    private = docs / "private"
    private.mkdir()
    (private / "inside.txt").write_text("The archive key hangs in the boathouse.\n")
    assert run_cli("ingest", str(docs)).code == 0
    locked = docs / "locked.md"
    locked.write_text("# Locked\n\nThe vault code is 4417.\n")
    locked.chmod(0)
    private.chmod(0)
    try:
        proc = subprocess.run(
            [*_without_root_file_access(), *RAGAPP, "ingest", str(docs), "--json"],
            capture_output=True,
            text=True,
            timeout=300,
            env=os.environ,
        )
    finally:
        locked.chmod(0o644)
        private.chmod(0o755)
    assert proc.returncode == 3, proc.stderr
    report = json.loads(proc.stdout)
    reasons = {Path(f["path"]).name: f["reason"] for f in report["failed"]}
    assert reasons == {
        "locked.md": "cannot read: Permission denied",
        "private": "cannot read: Permission denied",
    }
    # A folder that can't be listed is not a deleted folder: what was ingested from it stays.
    assert (report["added"], report["removed"], report["unchanged"]) == (0, 0, 3)
    names = sorted(Path(s["path"]).name for s in run_cli("sources", "--json").json()["sources"])
    assert names == ["faq.txt", "handbook.md", "history.html", "inside.txt"]


def test_broken_files_are_remembered_not_parsed_again(docs: Path, clean_environ: Path) -> None:
    (docs / "truncated.pdf").write_bytes(
        (SAMPLE_DOCS / "annual-report-2025.pdf").read_bytes()[:3000]
    )
    (docs / "garbage.txt").write_bytes(bytes(range(256)) * 20)
    (docs / "README").write_text("This folder holds the cooperative's public documents.\n")
    log = clean_environ / "logs" / "ingest.log"

    first = run_cli("ingest", str(docs), "--json")
    assert first.code == 3, first.stderr
    report = first.json()
    problems = {Path(f["path"]).name: f for f in [*report["failed"], *report["skipped"]]}
    assert set(problems) == {"truncated.pdf", "garbage.txt"}
    assert not any("attempted_at" in f for f in problems.values())
    assert report["added"] == 4  # the three documents and README, read as text
    assert {"scan", "parse", "embed", "write", "index"} <= set(report["phases"])
    logged = log.read_text()

    again = run_cli("ingest", str(docs), "--json")
    assert again.code == 3
    report = again.json()
    problems = {Path(f["path"]).name: f for f in [*report["failed"], *report["skipped"]]}
    assert set(problems) == {"truncated.pdf", "garbage.txt"}
    assert all(f["attempted_at"] and "unchanged since" in f["reason"] for f in problems.values())
    assert (report["unchanged"], report["chunks"], report["phases"].get("parse", 0.0)) == (
        4,
        0,
        0.0,
    )
    assert log.read_text() == logged  # nothing was attempted, so nothing new was logged
    human = run_cli("ingest", str(docs))
    assert "unchanged since they failed" in human.stdout

    retried = run_cli("ingest", str(docs), "--retry-failed", "--json").json()
    assert not any("attempted_at" in f for f in [*retried["failed"], *retried["skipped"]])
    assert len(log.read_text()) > len(logged)


def test_odd_links_and_names_are_report_lines_and_nothing_outside_is_read(
    docs: Path, clean_environ: Path
) -> None:
    outside = docs.parent / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("The vault combination is 31-7-22.\n")
    os.symlink(outside / "secret.txt", docs / "looks-innocent.txt")
    os.symlink(outside, docs / "linked-folder")
    os.symlink(docs / "b.txt", docs / "a.txt")
    os.symlink(docs / "a.txt", docs / "b.txt")
    os.symlink(docs / "gone.txt", docs / "dangling.txt")
    latin1 = os.fsencode(docs) + b"/caf\xe9-latin1.txt"
    with open(latin1, "wb") as fh:
        fh.write(b"The Latin-1 file says the boiler was serviced in March.\n")
    (docs / "two\nlines.txt").write_text("The newline file says the roof was fixed in May.\n")
    (docs / "[red]empty\n.txt").write_bytes(b"")

    first = run_cli("ingest", str(docs), "--json")
    assert first.code == 3, first.stderr
    report = first.json()
    assert report["added"] == 5  # the three good files, the Latin-1 and the newline name
    failed = {Path(f["path"]).name: f["reason"] for f in report["failed"]}
    assert failed == {
        "a.txt": "symbolic link loop",
        "b.txt": "symbolic link loop",
        "dangling.txt": f"dangling symbolic link (to {docs / 'gone.txt'})",
        "[red]empty\n.txt": "empty file",
    }
    skipped = {Path(f["path"]).name for f in report["skipped"]}
    assert skipped == {"looks-innocent.txt", "linked-folder"}
    human = run_cli("ingest", str(docs))  # the same lines, printed for a person
    assert human.code == 3 and "symbolic link loop" in human.stderr, human.stderr
    # the newline shown as \n, the brackets not read as markup (Rich wraps long lines)
    assert "[red]empty\\n.txt" in human.stderr.replace("\n", "")
    sources = [s["path"] for s in run_cli("sources", "--json").json()["sources"]]
    assert not any(str(outside) in s for s in sources)
    assert "31-7-22" not in run_cli("retrieve", "vault combination", "--json").stdout
    # the odd names are stored losslessly: bytes that are not UTF-8 as \xNN, as `ls -b` shows
    shown = f"{docs}/caf\\xe9-latin1.txt"
    assert {shown, str(docs / "two\nlines.txt")} <= set(sources)
    results = run_cli("retrieve", "when was the boiler serviced", "--json").json()["results"]
    assert [r["source"] for r in results if "boiler" in r["text"]] == [shown]
    os.unlink(latin1)
    assert run_cli("ingest", str(docs), "--json").json()["removed"] == 1  # found gone again

    followed = run_cli("ingest", str(docs), "--follow-symlinks", "--json")
    assert followed.code == 3  # the loops and the odd name are still there
    assert [Path(p["path"]).name for p in followed.json()["skipped"]] == []
    sources = [s["path"] for s in run_cli("sources", "--json").json()["sources"]]
    assert str(docs / "looks-innocent.txt") in sources  # the path the user sees
    assert not any(str(outside) in s for s in sources)
    for link in ("looks-innocent.txt", "linked-folder"):
        (docs / link).unlink()  # the links go: so does the entry
    gone = run_cli("ingest", str(docs), "--follow-symlinks", "--json").json()
    assert gone["removed"] == 1
    assert "31-7-22" not in run_cli("retrieve", "vault combination", "--json").stdout
