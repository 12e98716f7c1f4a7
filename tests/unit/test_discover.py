from __future__ import annotations

import os
from pathlib import Path

from ingest.discover import discover
from ragapp.ledger import is_under, one_line, source_key, source_path


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


def _odd_folder(tmp_path: Path) -> Path:
    """A folder with a good file, links out of it, a link loop, a dangling link, a file
    name that is not UTF-8 and one with a newline."""
    docs, outside = tmp_path / "docs", tmp_path / "outside"
    docs.mkdir()
    outside.mkdir()
    (docs / "good.txt").write_text("good")
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside / "secret.txt", docs / "looks-innocent.txt")
    os.symlink(outside, docs / "linked-folder")
    os.symlink(docs / "good.txt", docs / "alias.txt")  # inside: the same file, once
    os.symlink(docs / "b.txt", docs / "a.txt")
    os.symlink(docs / "a.txt", docs / "b.txt")
    os.symlink(docs / "gone.txt", docs / "dangling.txt")
    with open(os.fsencode(docs) + b"/caf\xe9-latin1.txt", "wb") as fh:
        fh.write(b"latin-1 name")
    (docs / "two\nlines.txt").write_text("a newline in the name")
    return docs


def test_links_out_of_the_folder_loops_and_odd_names_are_report_lines(tmp_path: Path) -> None:
    docs = _odd_folder(tmp_path)
    found = {d.path.name: (d.error, d.skipped) for d in discover([docs])}
    assert found.pop("good.txt") == (None, False)
    assert found.pop("a.txt") == ("symbolic link loop", False)
    assert found.pop("b.txt") == ("symbolic link loop", False)
    assert found.pop("dangling.txt")[0] == f"dangling symbolic link (to {docs / 'gone.txt'})"
    assert found.pop("caf\udce9-latin1.txt") == (None, False)  # read like any other
    assert found.pop("two\nlines.txt") == (None, False)
    for name in ("looks-innocent.txt", "linked-folder"):
        reason, skipped = found.pop(name)
        assert skipped and "outside" in reason and "--follow-symlinks" in reason
    assert found == {}  # nothing under outside/ was listed


def test_follow_symlinks_reads_what_links_point_to(tmp_path: Path) -> None:
    docs = _odd_folder(tmp_path)
    read = {d.path for d in discover([docs], follow_symlinks=True) if d.error is None}
    # the file outside is read once, under the path the user sees
    assert read == {
        docs / "good.txt",
        docs / "looks-innocent.txt",
        Path(os.fsdecode(os.fsencode(docs) + b"/caf\xe9-latin1.txt")),
        docs / "two\nlines.txt",
    }


def test_a_name_that_is_not_utf8_is_stored_losslessly_and_found_again(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9 \xff.txt"
    with open(raw, "wb") as fh:
        fh.write(b"text")
    (found,) = discover([tmp_path])
    assert found.source == f"{tmp_path}/caf\\xe9 \\xff.txt"  # as `ls -b` shows it
    found.source.encode("utf-8")  # storable: no surrogates left
    assert os.fsencode(source_path(found.source)) == raw
    assert source_key("/docs/café.txt") == "/docs/café.txt"  # UTF-8 names are unchanged
    assert source_path("/docs/café.txt") == Path("/docs/café.txt")
    literal = tmp_path / "a\\xe9.txt"  # a real backslash in a UTF-8 name
    literal.write_text("text")
    assert source_path(str(literal)) == literal


def test_one_line_escapes_control_characters_only() -> None:
    assert one_line("/docs/two\nlines\t.txt") == "/docs/two\\nlines\\t.txt"
    assert one_line("/docs/café [draft].txt") == "/docs/café [draft].txt"
