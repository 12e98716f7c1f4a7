from __future__ import annotations

import os
from pathlib import Path

from ingest.discover import discover
from ragapp.ledger import is_under


def test_walks_recursively_skips_hidden_and_survives_symlink_loops(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one.md").write_text("1")
    (tmp_path / "a" / "b" / "two.txt").write_text("2")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("x")
    (tmp_path / "a" / ".hidden.md").write_text("h")
    os.symlink(tmp_path / "a", tmp_path / "a" / "b" / "loop")
    found = [d.path.relative_to(tmp_path).as_posix() for d in discover([tmp_path])]
    assert found == ["a/one.md", "a/b/two.txt"]


def test_explicit_file_and_duplicates(tmp_path: Path) -> None:
    f = tmp_path / ".hidden.txt"
    f.write_text("x")
    found = list(discover([f, tmp_path, f]))
    assert [d.path for d in found] == [f.resolve()]


def test_is_under() -> None:
    assert is_under("/docs/a/b.md", Path("/docs"))
    assert is_under("/docs/a.md", Path("/docs/a.md"))
    assert not is_under("/docs2/a.md", Path("/docs"))
