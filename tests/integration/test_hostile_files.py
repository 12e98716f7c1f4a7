"""Hostile and broken files through the real `ragapp ingest`: each fails (or is skipped) with
its one-line reason, in bounded memory and time, and the good files beside them are
ingested and searchable.

The generated corpus: a zip bomb docx (600 MiB of XML in 3 MB), billion laughs in a docx
and in HTML, a docx whose one text node is 11 MB, HTML nested 100,000 levels deep, a
Markdown file that parses for longer than the run's time limit, an encrypted PDF, an empty
file of every format ragapp reads, truncated zip containers, images, RTF and CSV, and an
email whose attachment is cut short; beside them, a real docx, xlsx, pptx, odt and epub.
Apart: a 2 MB text file on a single line, in bounded time and memory. (A binary file named .txt and a truncated PDF are in test_ingest_cli.py; the
zip and entity checks, and workers that crash or overrun, in tests/unit/test_limits.py.)
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ingest.loaders import PARTITIONERS
from tests.conftest import RAGAPP, run_cli
from tests.format_samples import (
    SAMPLES,
    write_docx,
    write_epub,
    write_html,
    write_odt,
    write_pptx,
    write_xlsx,
)
from tests.unit.test_limits import (
    PARAGRAPH,
    document_xml,
    write_laughs_docx,
    write_laughs_html,
    write_zip_bomb_docx,
)
from tests.unit.test_limits import write_docx as write_raw_docx

pytestmark = pytest.mark.e2e

GOOD = [write_docx, write_xlsx, write_pptx, write_odt, write_epub]
TIMEOUT_S = 10  # the run's parse time limit: slow.md needs about 40 s
EMPTY = [f"empty{ext}" for ext in PARTITIONERS]  # every format ragapp reads
# cut in half: the first line of each parser's reason
TRUNCATED = {
    "png": "cannot parse: image file is truncated",
    "jpg": "cannot parse: image file is truncated",
    "tiff": "cannot parse: image file is truncated",
    "rtf": 'cannot parse: Pandoc died with exitcode "65"',
    "csv": "cannot parse: Error tokenizing data",
}
NOT_A_ZIP = "damaged or truncated (not a zip archive, as a .{} file is)"
WORDS = [
    "harbour",
    "ferry",
    "lantern",
    "member",
    "fee",
    "board",
    "meeting",
    "tide",
    "pier",
    "rope",
    "anchor",
    "sail",
]


def random_words(count: int, seed: int = 0) -> str:
    return " ".join(random.Random(seed).choices(WORDS, k=count))


def write_corpus(docs: Path) -> dict[str, str]:
    """The hostile and broken files, and the good ones; the reason expected for each bad one
    (None: skipped, with this reason)."""
    docs.mkdir()
    good = {write(docs).name: write for write in GOOD}
    expected = {name: "empty file" for name in EMPTY}
    for name in EMPTY:
        (docs / name).touch()
    for name, write in good.items():
        data = write(docs.parent).read_bytes()  # written again beside docs, then cut short
        suffix = name.rsplit(".", 1)[1]
        (docs / f"truncated.{suffix}").write_bytes(data[: len(data) // 2])
        expected[f"truncated.{suffix}"] = NOT_A_ZIP.format(suffix)
    for suffix, reason in TRUNCATED.items():
        data = write_other(docs.parent, suffix)
        (docs / f"truncated.{suffix}").write_bytes(data[: len(data) // 2])
        expected[f"truncated.{suffix}"] = reason
    # an email whose attachment is cut short: the message is still ingested
    pdf = base64.b64encode(write_pdf(docs.parent / "attached.pdf").read_bytes()).decode()
    (docs / "attachment-truncated.eml").write_text(
        "From: a@example.org\nTo: b@example.org\nSubject: Ferry times\n"
        "Content-Type: multipart/mixed; boundary=XYZ\n\n--XYZ\nContent-Type: text/plain\n\n"
        "The winter ferry leaves the pier at nine.\n--XYZ\nContent-Type: application/pdf\n"
        f"Content-Transfer-Encoding: base64\n\n{pdf[: len(pdf) // 2]}\n--XYZ--\n"
    )
    write_encrypted_pdf(write_pdf(docs.parent / "plain.pdf"), docs / "encrypted.pdf")
    expected["encrypted.pdf"] = "encrypted (password-protected)"

    write_zip_bomb_docx(docs / "bomb.docx", inflated_mb=600)
    expected["bomb.docx"] = "exceeds the 512 MiB unzipped limit (zip bomb?)"
    write_laughs_docx(docs / "laughs.docx")
    expected["laughs.docx"] = "declares XML entities in word/document.xml (entity expansion bomb?)"
    write_laughs_html(docs / "laughs.html")
    expected["laughs.html"] = "declares XML entities (entity expansion bomb?)"
    # one text node past libxml2's 10 MB limit (words: compresses 4:1, under the ratio limit)
    node = f"<w:p><w:r><w:t>{random_words(1_800_000)}</w:t></w:r></w:p>"
    write_raw_docx(docs / "huge-node.docx", document_xml(PARAGRAPH + node))
    expected["huge-node.docx"] = "cannot parse: Resource limit exceeded: Text node too long"
    (docs / "deep.html").write_text(
        "<html><body>" + "<div>" * 100_000 + "deep" + "</div>" * 100_000 + "</body></html>"
    )
    expected["deep.html"] = "too deeply nested (over 256 levels)"  # libxml2 stops there
    (docs / "slow.md").write_text(
        "\n\n".join(f"## Part {n}\n\n{random_words(60, n)}." for n in range(2500))
    )
    expected["slow.md"] = f"exceeds the {TIMEOUT_S} s parse time limit"

    truncated_html = write_html(docs.parent)
    html = truncated_html.read_text()
    (docs / "truncated.html").write_text(html[: len(html) * 2 // 3])  # parsed as far as it goes
    return expected


def write_other(folder: Path, suffix: str) -> bytes:
    """A small good file of a format beyond GOOD's: an image with a line of text, RTF, CSV."""
    if suffix in ("png", "jpg", "tiff"):
        from PIL import Image, ImageDraw

        image = Image.new("RGB", (600, 120), "white")
        ImageDraw.Draw(image).text((10, 40), "The ferry leaves at nine", fill="black")
        out = io.BytesIO()
        image.save(out, {"jpg": "JPEG"}.get(suffix, suffix.upper()))
        return out.getvalue()
    if suffix == "rtf":
        return rb"{\rtf1\ansi{\fonttbl\f0\fswiss Helvetica;}\f0\pard The ferry leaves at nine.\par Second paragraph.\par}"
    return b'pier,notes\nnorth,"leaves at nine, and again\nat noon on Sundays"\n'


def write_pdf(path: Path) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    page = canvas.Canvas(str(path), pagesize=A4)
    page.drawString(72, 770, "The Pellworth lock keeper starts her shift at a quarter past five.")
    page.save()
    return path


def write_encrypted_pdf(source: Path, path: Path) -> None:
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=source)
    writer.encrypt("opening-hours", algorithm="AES-256")
    writer.write(path)


class TreeMemory:
    """The peak of the summed resident memory of a process and all its descendants (the
    forkserver and the parser workers), polled from /proc every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak

    def _poll(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, sum(_rss(p) for p in _tree(self.pid)))


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _rss(pid: int) -> int:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Run:
    code: int
    report: dict[str, Any]
    stderr: str
    seconds: float
    peak_rss: int


def ingest(data: Path, target: Path, env: dict[str, str]) -> Run:
    started = time.monotonic()
    proc = subprocess.Popen(
        [*RAGAPP, "--data-dir", str(data), "ingest", str(target), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    memory = TreeMemory(proc.pid)
    try:
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        peak = memory.stop()
    report = json.loads(stdout) if stdout.strip() else {}
    return Run(proc.returncode, report, stderr, time.monotonic() - started, peak)


class Hostile:
    def __init__(self, root: Path) -> None:
        self.docs = root / "docs"
        self.data = root / "data"
        self.expected = write_corpus(self.docs)
        self.run = ingest(self.data, self.docs, {"RAGAPP_PARSE_TIMEOUT_S": str(TIMEOUT_S)})


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    return Hostile(tmp_path_factory.mktemp("hostile"))


def test_every_bad_file_fails_with_its_one_line_reason(hostile: Hostile) -> None:
    run = hostile.run
    assert run.code == 3, run.stderr
    reasons = {
        Path(p["path"]).name: p["reason"] for p in [*run.report["failed"], *run.report["skipped"]]
    }
    assert set(reasons) == set(hostile.expected), run.report
    for name, expected in hostile.expected.items():
        assert reasons[name].startswith(expected), (name, reasons[name])
        assert "\n" not in reasons[name]
    assert run.report["skipped"] == []  # none holds no text: each is a failure


def test_the_good_files_are_ingested_and_searchable(hostile: Hostile) -> None:
    run = hostile.run
    good = {write(hostile.docs.parent).name for write in GOOD}
    # and the truncated HTML, as far as it goes, and the email without its cut attachment
    assert run.report["added"] == len(good) + 2
    samples = [s for s in SAMPLES if s.name in good]
    batch = hostile.docs.parent / "questions.jsonl"
    batch.write_text("".join(json.dumps({"question": s.question}) + "\n" for s in samples))
    res = run_cli("--data-dir", str(hostile.data), "retrieve", "--batch", str(batch), "-k", "3")
    assert res.code == 0, res.stderr
    for sample, line in zip(samples, res.jsonl(), strict=True):
        found = [Path(r["source"]).name for r in line["results"] if sample.answer in r["text"]]
        assert sample.name in found, (sample, line["results"])


def test_memory_and_time_stay_bounded(hostile: Hostile) -> None:
    run = hostile.run
    print(f"hostile corpus: {run.seconds:.1f} s, peak RSS {run.peak_rss / 1024**2:.0f} MiB")
    # The bomb alone would inflate to 600 MiB of XML and a DOM several times that.
    assert run.peak_rss < 2.5 * 1024**3, f"{run.peak_rss / 1024**2:.0f} MiB"
    # time is bounded by the parse time limit (slow.md's reason), not asserted in seconds


def test_the_memory_limit_stops_a_bomb_the_zip_checks_let_through(tmp_path: Path) -> None:
    """Zip checks off, one file (no in-process shortcut for a docx): the parser's own memory
    limit ends it, and the process tree stays near that limit."""
    bomb = write_zip_bomb_docx(tmp_path / "bomb.docx", inflated_mb=600)
    env = {
        "RAGAPP_MAX_UNZIPPED_MB": "100000",
        "RAGAPP_MAX_ZIP_RATIO": "100000",
        "RAGAPP_PARSE_MEMORY_MB": "1024",
    }
    run = ingest(tmp_path / "data", bomb, env)
    assert run.code == 3, run.stderr
    print(f"memory-limited bomb: {run.seconds:.1f} s, peak RSS {run.peak_rss / 1024**2:.0f} MiB")
    assert [f["reason"] for f in run.report["failed"]] == [
        "exceeds the 1,024 MiB parse memory limit"
    ]
    assert run.peak_rss < 2.5 * 1024**3, f"{run.peak_rss / 1024**2:.0f} MiB"


def test_a_single_line_text_file_parses_in_bounded_time_and_memory(tmp_path: Path) -> None:
    """2 MB of sentences and not one line break, beside an ordinary file: unstructured's NLP
    read the first million characters of it at once (about 40 s and 3.5 GB here) and its
    chunker was quadratic in the line's length; now it is cut into pieces before either.
    (Big chunks, no windows: what is measured is the parse, not the embedder.)"""
    docs = tmp_path / "docs"
    docs.mkdir()
    line = " ".join(f"{random_words(12, n).capitalize()}." for n in range(27_000))
    (docs / "one-line.txt").write_text(line + "\n")
    (docs / "notes.txt").write_text("The winter ferry leaves the pier at nine.\n")
    chunk_size = 10_000
    env = {
        "RAGAPP_PARSE_TIMEOUT_S": "20",
        "RAGAPP_CHUNK_SIZE": str(chunk_size),
        "RAGAPP_WINDOW_CHARS": "0",
    }
    run = ingest(tmp_path / "data", docs, env)
    print(
        f"2 MB single line: {run.seconds:.1f} s, peak RSS {run.peak_rss / 1024**2:.0f} MiB, "
        f"phases {run.report.get('phases')}"
    )
    assert len(line) > 2_000_000
    assert run.code == 0, (run.report, run.stderr)  # nothing failed: no parse time limit hit
    assert run.report["added"] == 2
    pieces = len(line) / chunk_size
    assert pieces <= run.report["chunks"] - 1 <= 2 * pieces, run.report
    assert run.peak_rss < 2.5 * 1024**3, f"{run.peak_rss / 1024**2:.0f} MiB"
    question = "When does the winter ferry leave?"
    res = run_cli("--data-dir", str(tmp_path / "data"), "retrieve", question, "-k", "3", "--json")
    assert res.code == 0, res.stderr
    assert "notes.txt" in {Path(r["source"]).name for r in res.json()["results"]}
