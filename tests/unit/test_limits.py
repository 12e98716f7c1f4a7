"""Hostile files are refused before a parser sees them: zip bombs (by the central directory
and by the bytes really inflated), too many members, entity declarations (billion laughs)
in zip containers and HTML. The writers here make those files in milliseconds; the
integration tier (test_hostile_files.py) feeds them to the real CLI."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

import pytest

from ingest.limits import MIB, ParseLimits, ParsePool, archive_problem, heartbeat, markup_problem
from ingest.loaders import LoadError, load_elements

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.wordprocessingml.document.main+xml"/></Types>'
)
RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
)
W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
PARAGRAPH = "<w:p><w:r><w:t>All work and no play makes Jack a dull boy.</w:t></w:r></w:p>"
# Nine levels of ten: "&lol9;" would expand to 10^9 "lol"s (3 GB).
LAUGHS = (
    '<!DOCTYPE lolz [<!ENTITY lol0 "lol">'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    + "]>"
)


def document_xml(body: str, prolog: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>{prolog}'
        f'<w:document xmlns:w="{W}"><w:body>{body}</w:body></w:document>'
    )


def write_docx(path: Path, document: str) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", CONTENT_TYPES)
        zf.writestr("_rels/.rels", RELS)
        zf.writestr("word/document.xml", document)
    return path


def write_laughs_docx(path: Path) -> Path:
    """A docx whose document.xml declares the billion laughs and uses the top entity."""
    return write_docx(path, document_xml("<w:p><w:r><w:t>&lol9;</w:t></w:r></w:p>", LAUGHS))


def write_laughs_html(path: Path) -> Path:
    path.write_text(
        f'<?xml version="1.0"?>{LAUGHS.replace("lolz", "html")}'
        "<html><body><p>Hello &lol9; world</p></body></html>"
    )
    return path


def write_zip_bomb_docx(path: Path, inflated_mb: int, declared_mb: int | None = None) -> Path:
    """A docx whose document.xml inflates to ``inflated_mb`` MiB of paragraphs from a few MB
    on disk. The deflate stream is one compressed block repeated (each ends byte-aligned,
    with a full flush), so making it costs a CRC pass, not a compression of the whole.
    ``declared_mb``: the size the zip's directory claims instead (a lying bomb)."""
    block = (PARAGRAPH * 1000).encode()
    squeezer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    piece = squeezer.compress(block) + squeezer.flush(zlib.Z_FULL_FLUSH)
    head = document_xml("").split("</w:body>")[0].encode()
    tail = b"</w:body></w:document>"
    repeats = inflated_mb * MIB // len(block) + 1
    crc = zlib.crc32(head)
    for _ in range(repeats):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(tail, crc)
    size = len(head) + repeats * len(block) + len(tail)
    stream = _deflate(head, zlib.Z_FULL_FLUSH) + piece * repeats + _deflate(tail, zlib.Z_FINISH)
    declared = size if declared_mb is None else declared_mb * MIB
    members = [
        ("[Content_Types].xml", CONTENT_TYPES.encode()),
        ("_rels/.rels", RELS.encode()),
    ]
    with path.open("wb") as fh:
        directory = []
        for name, data in members:
            directory.append(_write_member(fh, name, _deflate(data), zlib.crc32(data), len(data)))
        directory.append(_write_member(fh, "word/document.xml", stream, crc, declared))
        start = fh.tell()
        for entry in directory:
            fh.write(entry)
        fh.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(directory), len(directory),
                             fh.tell() - start, start, 0))  # fmt: skip
    return path


def _deflate(data: bytes, mode: int = zlib.Z_FINISH) -> bytes:
    squeezer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return squeezer.compress(data) + squeezer.flush(mode)


def _write_member(fh: BinaryIO, name: str, data: bytes, crc: int, size: int) -> bytes:
    """Write one deflated member's local header and data; return its directory entry."""
    offset = fh.tell()
    raw = name.encode()
    # version needed, flags, method, time, date, CRC, sizes, name and extra lengths
    common = struct.pack("<5H3L2H", 20, 0, zipfile.ZIP_DEFLATED, 0, 0x21, crc, len(data), size,
                         len(raw), 0)  # fmt: skip
    fh.write(b"PK\x03\x04" + common + raw + data)
    # made by, then the same fields, comment length, disk, attributes, header offset
    return (
        b"PK\x01\x02"
        + struct.pack("<H", 20)
        + common
        + struct.pack("<3HLL", 0, 0, 0, 0, offset)
        + raw
    )


# --- zip containers -----------------------------------------------------------------------


def test_a_real_docx_passes(tmp_path: Path) -> None:
    docx = write_docx(tmp_path / "fine.docx", document_xml(PARAGRAPH * 2000))
    assert archive_problem(docx, ParseLimits()) is None  # and it parses: test_hostile_files


def test_a_bomb_is_refused_by_its_declared_size(tmp_path: Path) -> None:
    bomb = write_zip_bomb_docx(tmp_path / "bomb.docx", inflated_mb=40)
    assert bomb.stat().st_size < MIB
    with zipfile.ZipFile(bomb) as zf:  # a well-formed zip: zipfile reads it back
        assert zf.testzip() is None
    reason = archive_problem(bomb, ParseLimits(max_unzipped_mb=32))
    assert reason == "exceeds the 32 MiB unzipped limit (zip bomb?)"
    with pytest.raises(LoadError, match=r"^exceeds the 32 MiB unzipped limit \(zip bomb\?\)$"):
        load_elements(bomb, ParseLimits(max_unzipped_mb=32))


def test_a_bomb_that_lies_about_its_size_is_refused_by_what_it_inflates_to(
    tmp_path: Path,
) -> None:
    bomb = write_zip_bomb_docx(tmp_path / "liar.docx", inflated_mb=40, declared_mb=1)
    limits = ParseLimits(max_unzipped_mb=32, max_zip_ratio=10_000)
    assert archive_problem(bomb, limits) == "exceeds the 32 MiB unzipped limit (zip bomb?)"


def test_the_ratio_limit_catches_a_bomb_under_the_size_limit(tmp_path: Path) -> None:
    bomb = write_zip_bomb_docx(tmp_path / "dense.docx", inflated_mb=20)
    reason = archive_problem(bomb, ParseLimits())
    assert reason is not None
    assert reason.startswith("word/document.xml compresses ") and "100:1 zip ratio" in reason
    # a lying directory: the ratio of what really comes out
    liar = write_zip_bomb_docx(tmp_path / "liar.docx", inflated_mb=20, declared_mb=1)
    assert "100:1 zip ratio limit (zip bomb?)" in (archive_problem(liar, ParseLimits()) or "")
    # the same part at a ratio the limit allows
    assert archive_problem(bomb, ParseLimits(max_zip_ratio=1000)) is None


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "many.xlsx"
    with zipfile.ZipFile(path, "w") as zf:
        for n in range(30):
            zf.writestr(f"xl/media/{n}.xml", "<a/>")
    assert archive_problem(path, ParseLimits(max_zip_entries=20)) == (
        "exceeds the 20-entry zip limit (30 entries)"
    )
    assert archive_problem(path, ParseLimits()) is None


def test_entity_declarations_in_any_member_are_refused(tmp_path: Path) -> None:
    docx = write_laughs_docx(tmp_path / "laughs.docx")
    assert archive_problem(docx, ParseLimits()) == (
        "declares XML entities in word/document.xml (entity expansion bomb?)"
    )
    # UTF-16, and a declaration split across the check's 4 MiB reads
    odt = tmp_path / "laughs.odt"
    with zipfile.ZipFile(odt, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("content.xml", LAUGHS.encode("utf-16-le"))
        split = b" " * (4 * MIB - 3) + LAUGHS.encode()
        zf.writestr("styles.xml", split)
    assert "declares XML entities in content.xml" in (archive_problem(odt, ParseLimits()) or "")
    with zipfile.ZipFile(odt, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("styles.xml", split)
    assert "declares XML entities in styles.xml" in (archive_problem(odt, ParseLimits()) or "")


def test_an_epub_doctype_without_entities_is_fine(tmp_path: Path) -> None:
    epub = tmp_path / "book.epub"
    with zipfile.ZipFile(epub, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("mimetype", "application/epub+zip")
        zf.writestr(
            "OEBPS/ch1.xhtml",
            '<?xml version="1.0"?><!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" '
            '"http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd"><html><body>Hi</body></html>',
        )
    assert archive_problem(epub, ParseLimits()) is None


def test_damaged_zips_are_named_and_ole_files_left_to_the_parser(tmp_path: Path) -> None:
    docx = write_docx(tmp_path / "fine.docx", document_xml(PARAGRAPH * 200))
    data = docx.read_bytes()
    not_zip = tmp_path / "encrypted.docx"  # an encrypted OOXML file is an OLE container
    not_zip.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500))
    assert archive_problem(not_zip, ParseLimits()) is None
    truncated = tmp_path / "truncated.docx"  # the directory is gone: not a zip any more
    truncated.write_bytes(data[: len(data) // 2])
    assert archive_problem(truncated, ParseLimits()) == (
        "damaged or truncated (not a zip archive, as a .docx file is)"
    )
    # a member's data corrupted under an intact directory
    with zipfile.ZipFile(docx) as zf:
        info = zf.getinfo("word/document.xml")
    start = info.header_offset + 30 + len(info.filename)
    corrupt = tmp_path / "corrupt.docx"
    corrupt.write_bytes(data[:start] + b"\xff" * 64 + data[start + 64 :])
    assert (archive_problem(corrupt, ParseLimits()) or "").startswith(
        "damaged zip archive (word/document.xml: "
    )


def test_other_formats_are_not_zip_checked(tmp_path: Path) -> None:
    bomb = write_zip_bomb_docx(tmp_path / "bomb.docx", inflated_mb=40)
    renamed = tmp_path / "bomb.pdf"
    bomb.rename(renamed)
    assert archive_problem(renamed, ParseLimits(max_unzipped_mb=1)) is None


# --- markup -------------------------------------------------------------------------------


def test_html_declaring_entities_is_refused(tmp_path: Path) -> None:
    laughs = write_laughs_html(tmp_path / "laughs.html")
    assert markup_problem(laughs) == "declares XML entities (entity expansion bomb?)"
    with pytest.raises(LoadError, match="entity expansion bomb"):
        load_elements(laughs)


def test_ordinary_html_doctypes_pass(tmp_path: Path) -> None:
    page = tmp_path / "page.htm"
    page.write_text(
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
        '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">'
        "<html><body><pre>&lt;!ENTITY x 'quoted in text'&gt;</pre></body></html>"
    )
    assert markup_problem(page) is None
    (tmp_path / "plain.html").write_text("<!doctype html><p>Hello</p>")
    assert markup_problem(tmp_path / "plain.html") is None


# --- worker processes ----------------------------------------------------------------------


def no_setup() -> None:
    pass


def misbehave(task: str) -> str:
    """A parser that does as it is told (module-level: workers import it)."""
    if task == "hog":
        return str(len(bytearray(4 << 30)))  # 4 GiB: over the cap
    if task == "crash":
        os.abort()
    if task == "stuck":
        time.sleep(60)  # in C, where no Python-level alarm could reach it
    if task == "slow-but-alive":
        for _ in range(3):
            time.sleep(0.4)
            heartbeat()  # a page done: the clock starts again
    return f"parsed {task}"


def test_a_killed_or_crashed_worker_fails_only_its_own_file() -> None:
    tasks = ["a", "hog", "b", "crash", "c", "stuck", "d", "slow-but-alive", "e"]
    limits = ParseLimits(memory_mb=1024, timeout_s=1)
    results: dict[int, str] = {}
    started = time.monotonic()
    with ParsePool(1, limits, misbehave, no_setup) as pool:
        for key, task in enumerate(tasks):
            while pool.room <= 0:
                results.update(pool.collect(timeout=None))
            pool.submit(key, task)
        while len(pool):
            results.update(pool.collect(timeout=None))
        workers = list(pool.workers)
    assert time.monotonic() - started < 20
    assert {tasks[k]: r for k, r in results.items()} == {
        "a": "parsed a",
        "hog": "exceeds the 1,024 MiB parse memory limit",
        "b": "parsed b",
        "crash": "the parser crashed on this file",
        "c": "parsed c",
        "stuck": "exceeds the 1 s parse time limit",
        "d": "parsed d",
        "slow-but-alive": "parsed slow-but-alive",
        "e": "parsed e",
    }
    assert all(not w.process.is_alive() for w in workers)


def test_collect_waits_no_longer_than_asked() -> None:
    with ParsePool(1, ParseLimits(timeout_s=30), misbehave, no_setup) as pool:
        pool.submit(0, "stuck")
        started = time.monotonic()
        assert pool.collect(timeout=0.3) == []
        assert time.monotonic() - started < 2


def test_no_parse_outlives_its_ingest() -> None:
    """The main process killed with SIGKILL: its workers go too, even mid-parse."""
    script = (
        "import time\n"
        "from ingest.limits import ParseLimits, ParsePool\n"
        "from tests.unit.test_limits import misbehave, no_setup\n"
        "pool = ParsePool(1, ParseLimits(), misbehave, no_setup)\n"
        "pool.submit(0, 'stuck')\n"
        "while not pool.workers or pool.workers[0].started is None:\n"
        "    pool.collect(timeout=0.1)\n"
        "print(pool.workers[0].process.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    root = Path(__file__).resolve().parents[2]
    main = subprocess.Popen(
        [sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE, text=True
    )
    try:
        assert main.stdout is not None
        worker = int(main.stdout.readline())
        assert _alive(worker)
    finally:
        main.kill()
        main.wait()
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status
