"""A sync remembers the files it could not use: unchanged, they are reported again without
being parsed; changed or with --retry-failed, parsed again. Files with no text are skipped,
not failed; text files without an extension are read as text; every phase is timed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import ingest.pipeline
from ingest.pipeline import ingest_paths
from ragapp.app import Models
from ragapp.cli import cli
from ragapp.collection import Collection
from ragapp.settings import load_settings

GARBAGE = bytes(range(256)) * 20  # not text in any encoding the text loader accepts


def open_collection() -> Collection:
    settings = load_settings()
    return Models(settings).collection(settings)


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files the pipeline really parses, in order."""
    calls: list[str] = []
    real = ingest.pipeline.parse_file

    def counting(path: str, *args: Any) -> Any:
        calls.append(Path(path).name)
        return real(path, *args)

    monkeypatch.setattr(ingest.pipeline, "parse_file", counting)
    return calls


def test_a_failed_file_is_not_parsed_again_while_unchanged(docs: Path, parsed: list[str]) -> None:
    (docs / "broken.txt").write_bytes(GARBAGE)
    collection = open_collection()
    first = ingest_paths([docs], collection)
    assert [Path(p).name for p, _ in first.failed] == ["broken.txt"]
    assert "broken.txt" in parsed and first.remembered == {}

    parsed.clear()
    again = ingest_paths([docs], collection)
    assert parsed == []  # nothing parsed: the good files by stat, the broken one remembered
    ((path, reason),) = again.failed
    assert Path(path).name == "broken.txt"
    assert reason.startswith("cannot decode the text") and "unchanged since the attempt" in reason
    problem = again.to_json()["failed"][0]
    assert problem["attempted_at"] == again.remembered[path]

    # touched, same bytes: still not parsed (the hash says it is the same file)
    os.utime(docs / "broken.txt", ns=(1, 1))
    assert ingest_paths([docs], collection).remembered.keys() == {path} and parsed == []

    # --retry-failed parses it again
    assert ingest_paths([docs], collection, retry_failed=True).remembered == {}
    assert parsed == ["broken.txt"]

    # fixed: parsed, ingested, and its failure forgotten
    parsed.clear()
    (docs / "broken.txt").write_text("The broken file now says the pier opens at six.\n")
    fixed = ingest_paths([docs], collection)
    assert (fixed.added, fixed.failed, parsed) == (1, [], ["broken.txt"])
    assert collection.ledger.failures() == {}


def test_a_vanished_failed_file_is_forgotten(docs: Path) -> None:
    (docs / "broken.txt").write_bytes(GARBAGE)
    collection = open_collection()
    ingest_paths([docs], collection)
    assert [Path(p).name for p in collection.ledger.failures()] == ["broken.txt"]
    (docs / "broken.txt").unlink()
    assert ingest_paths([docs], collection).failed == []
    assert collection.ledger.failures() == {}


def test_a_file_with_no_text_is_skipped_and_remembered(docs: Path, parsed: list[str]) -> None:
    (docs / "blank.md").write_text("\n\n   \n")
    collection = open_collection()
    report = ingest_paths([docs], collection)
    assert report.failed == [] and [(Path(p).name, r) for p, r in report.skipped] == [
        ("blank.md", "no text found")
    ]
    parsed.clear()
    again = ingest_paths([docs], collection)
    assert parsed == [] and [Path(p).name for p, _ in again.skipped] == ["blank.md"]

    res = CliRunner().invoke(cli, ["ingest", str(docs), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output  # skipped is not failed


def test_a_text_file_without_an_extension_is_read_as_text(docs: Path) -> None:
    (docs / "README").write_text("This archive belongs to the harbour cooperative.\n")
    (docs / "CHANGES").write_bytes(b"\x00\x01binary")
    collection = open_collection()
    report = ingest_paths([docs], collection)
    names = {Path(p).name: e for p, e in collection.files().items()}
    assert "README" in names and report.added == 4
    assert [Path(p).name for p, _ in report.skipped] == ["CHANGES"]
    assert collection.retrieve("who owns the archive", k=1)[0].source.endswith("README")


def test_json_reports_every_phase_and_the_index_shows_progress(docs: Path) -> None:
    res = CliRunner().invoke(cli, ["ingest", str(docs), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert {"scan", "parse", "embed", "write", "index"} <= set(data["phases"])
    assert sum(data["phases"].values()) <= data["seconds"] + 0.01

    phases: list[tuple[str, int, int]] = []

    class Recorder:
        def start(self, total_files: int) -> None: ...
        def file_done(self, path: str, status: str, chunks: int) -> None: ...
        def phase(self, name: str, done: int, total: int) -> None:
            phases.append((name, done, total))

    (docs / "more.md").write_text("# More\n\nThe ferry leaves at nine on Sundays.\n")
    ingest_paths([docs], open_collection(), Recorder())
    assert phases and phases[-1] == ("index", 1, 1)  # only the changed file is re-indexed
