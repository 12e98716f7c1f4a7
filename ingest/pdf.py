"""PDF text layers through pdfium: elements with their page numbers, titles and paragraphs.

unstructured's "fast" PDF path spends about 10 s on a 52-page PDF (pdfminer's layout
analysis, then spaCy over every paragraph to tell titles from narrative text); pdfium
reads the same text layer in a fraction of a second. What chunking needs is rebuilt from
the page geometry pdfium reports:

- lines, in pdfium's reading order, with each line's position and font size;
- paragraphs: a new one where the vertical gap between lines opens up, or the font size
  changes;
- titles: the document's outline (bookmarks) where it has one, else lines set larger or
  bolder than the body text;
- running headers and footers (a line at the same place on many pages, page numbers
  folded) dropped, as they would otherwise open and close every page's chunks.

Pages without a text layer are left to the caller (OCR); page numbers are 1-based.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# pdfium's stand-ins for a hyphen it broke a word at, and other invisible marks
_SOFT = str.maketrans({"\ufffe": None, "\x02": None, "\ufeff": None, "\u00ad": None})
_SPACE = re.compile(r"\s+")
_DIGITS = re.compile(r"\d+")
_ROMAN = re.compile(r"^[ivxlc]+$")
_NOT_WORD = re.compile(r"[^a-z0-9]+")
_NUMBERED = re.compile(
    r"^(?:(?:chapter|appendix|section)\s+)?(?:\d+(?:\.\d+)*|[a-z](?:\.\d+)+)[.)]?\s+"
)


@dataclass
class Line:
    text: str
    page: int
    top: float  # distance of its first character from the page's top edge, in points
    end_top: float  # the same for its last character (a line pdfium joined at a hyphen)
    bottom: float
    size: float  # font size (median of its first, middle and last characters)
    bold: bool


def page_lines(pdf: Any, index: int) -> tuple[list[Line], float, bool]:
    """The text lines of one page, the page height, and whether it draws images."""
    import pypdfium2.raw as raw

    page = pdf[index]
    try:
        height = page.get_height()
        images = page.get_objects(filter=[raw.FPDF_PAGEOBJ_IMAGE], max_depth=2)
        has_images = next(iter(images), None) is not None
        textpage = page.get_textpage()
        try:
            lines: list[Line] = []
            at = 0  # index in the text page of the current line's first character
            # The string and the text page's character indices agree one to one, "\r\n"
            # (two characters) included; a word broken at a line end stays one line.
            for raw_line in textpage.get_text_range().split("\r\n"):
                start, at = at, at + len(raw_line) + 2
                text = _SPACE.sub(" ", raw_line.translate(_SOFT)).strip()
                if not text:
                    continue
                first = start + len(raw_line) - len(raw_line.lstrip())
                last = start + len(raw_line.rstrip()) - 1
                middle = (first + last) // 2
                top = textpage.get_charbox(first, loose=True)[3]
                _, bottom, _, end_top = textpage.get_charbox(last, loose=True)
                sizes = sorted(
                    raw.FPDFText_GetFontSize(textpage.raw, i) for i in (first, middle, last)
                )
                lines.append(
                    Line(
                        text=text,
                        page=index + 1,
                        top=height - top,
                        end_top=height - end_top,
                        bottom=height - bottom,
                        size=round(sizes[1], 1),
                        bold=raw.FPDFText_GetFontWeight(textpage.raw, middle) >= 600,
                    )
                )
        finally:
            textpage.close()
    finally:
        page.close()
    return lines, height, has_images


def outline_titles(pdf: Any) -> dict[int, list[str]]:
    """Bookmark titles by page number (normalised), the document's own headings."""
    titles: dict[int, list[str]] = {}
    try:
        for bookmark in pdf.get_toc(max_depth=8):
            dest, title = bookmark.get_dest(), bookmark.get_title()
            page = dest.get_index() if dest is not None else None
            if page is not None and title and title.strip():
                titles.setdefault(page + 1, []).append(_norm(title))
    except Exception:  # noqa: BLE001  (a broken outline is only a missing hint)
        return {}
    return titles


def _norm(text: str) -> str:
    """Lower-case words without punctuation, quotes or a leading section number ("2.1",
    "Chapter 3"): how a bookmark and the heading it points at are compared."""
    text = _NUMBERED.sub("", _SPACE.sub(" ", text.translate(_SOFT)).strip().lower())
    return _NOT_WORD.sub(" ", text).strip()


def running_lines(pages: list[tuple[list[Line], float]]) -> set[tuple[str, int]]:
    """(text with digits folded, rounded position) of lines in the top or bottom eighth of
    the page that recur on a tenth of the pages (three at least): heads, footers, page
    numbers."""
    if len(pages) < 3:
        return set()
    seen: Counter[tuple[str, int]] = Counter()
    for lines, height in pages:
        keys = {_margin_key(line, height) for line in lines}
        seen.update(k for k in keys if k is not None)
    return {key for key, n in seen.items() if n >= max(3, len(pages) / 10)}


def _margin_key(line: Line, height: float) -> tuple[str, int] | None:
    """How a line in the top or bottom eighth of a page looks, to find it on other pages:
    its text with numbers folded (an upper-case running head, whose text follows the
    section, as one shape), at its rounded position."""
    if line.top > height / 8 and line.bottom < height * 7 / 8:
        return None
    shape = "CAPS" if line.text.isupper() else _ROMAN.sub("#", _DIGITS.sub("#", line.text.lower()))
    return shape, round(line.top / 4)


def partition_pdf_text(path: str) -> tuple[list[Any], list[int]]:
    """The text-layer elements of a PDF and the page numbers that have no text but draw
    images (scans, for OCR)."""
    import pypdfium2 as pdfium
    from unstructured.documents.elements import ElementMetadata, NarrativeText, Title

    pdf = pdfium.PdfDocument(path)
    try:
        pages = [page_lines(pdf, i) for i in range(len(pdf))]
        outline = outline_titles(pdf)
    finally:
        pdf.close()
    scanned = [n for n, (lines, _, images) in enumerate(pages, 1) if not lines and images]
    running = running_lines([(lines, height) for lines, height, _ in pages])
    body = [
        line
        for lines, height, _ in pages
        for line in lines
        if _margin_key(line, height) not in running
    ]
    if not body:
        return [], scanned
    weights: Counter[float] = Counter()
    for line in body:
        weights[line.size] += len(line.text)
    body_size = weights.most_common(1)[0][0]
    spacing = _line_spacing(body)

    name = Path(path).name
    elements: list[Any] = []
    for page, text, is_title in _paragraphs(body, body_size, spacing, outline):
        meta = ElementMetadata(page_number=page, filename=name, filetype="application/pdf")
        cls = Title if is_title else NarrativeText
        elements.append(cls(text=text, metadata=meta))
    return elements, scanned


def _line_spacing(lines: list[Line]) -> float:
    """The usual distance from one line's top to the next's within a paragraph."""
    gaps = [
        b.top - a.end_top
        for a, b in zip(lines, lines[1:], strict=False)
        if a.page == b.page and b.top > a.end_top and abs(a.size - b.size) < 0.5
    ]
    return statistics.median(gaps) if gaps else 14.0


def _paragraphs(
    lines: list[Line], body_size: float, spacing: float, outline: dict[int, list[str]]
) -> list[tuple[int, str, bool]]:
    """(page, text, is a title) per paragraph, in reading order."""

    def heading(line: Line) -> bool:
        if outline:
            text = _norm(line.text)
            return bool(text) and any(
                text == t or (len(text) >= 8 and text in t) or t.endswith(f" {text}")
                for t in outline.get(line.page, [])
            )
        return len(line.text) <= 120 and (
            line.size >= body_size * 1.15 or (line.bold and line.size >= body_size)
        )

    out: list[tuple[int, str, bool]] = []
    current: list[Line] = []
    current_title = False
    for line in lines:
        title = heading(line)
        if current:
            prev = current[-1]
            gap = line.top - prev.end_top
            if (
                line.page != prev.page
                or gap > spacing * 1.45 * max(1.0, line.size / body_size)
                or gap < -spacing / 2  # a new column or a jump back up the page
                or abs(line.size - prev.size) >= 0.5
                or title != current_title
            ):
                out.append((current[0].page, _join(x.text for x in current), current_title))
                current = []
        current.append(line)
        current_title = title
    if current:
        out.append((current[0].page, _join(x.text for x in current), current_title))
    return out


def _join(texts: Any) -> str:
    """Lines of one paragraph as one string. pdfium already joins the words it knows were
    broken at a line end; a hyphen still ending a line joins the next line without a space,
    and is dropped when a lower-case letter follows (a word broken by hand)."""
    joined = ""
    for text in texts:
        if joined.endswith("-") and joined[-2:-1].isalpha():
            joined = (joined[:-1] if text[:1].islower() else joined) + text
        else:
            joined = f"{joined} {text}" if joined else text
    return joined
