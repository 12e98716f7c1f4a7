"""ingest.pdf on PDFs drawn with reportlab and read back by the real pdfium: pages,
paragraphs, titles from the outline or the font, running heads and footers dropped, scanned
pages found for OCR."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("reportlab")
pytest.importorskip("pypdfium2")

from reportlab.lib.pagesizes import A4  # noqa: E402
from reportlab.pdfgen import canvas  # noqa: E402

from ingest.pdf import _join, partition_pdf_text  # noqa: E402

TOP = A4[1]


def draw_lines(pdf: canvas.Canvas, y: float, lines: list[str], size: float = 11) -> float:
    pdf.setFont("Helvetica", size)
    for line in lines:
        pdf.drawString(72, y, line)
        y -= size * 1.2
    return y


def manual(path: Path, outline: bool) -> Path:
    """Four pages with a running head and page-number footer; section headings in 16 pt."""
    pdf = canvas.Canvas(str(path), pagesize=A4)
    sections = [
        (
            "1.1 Boarding the harbour ferry",
            [
                "Tickets are sold at the depot kiosk from six",
                "in the morning until the last crossing.",
            ],
        ),
        ("1.2 Paying the mooring tariff", ["The tariff is paid monthly to the harbour office."]),
        (
            "2 Volunteers",
            ["Volunteers meet on the first Monday.", "", "The council pays for the annual audit."],
        ),
        ("3 Solar roof", ["The inverter sits in the cable room behind the roof access."]),
    ]
    for number, (title, body) in enumerate(sections, 1):
        pdf.setFont("Helvetica", 9)
        pdf.drawString(72, TOP - 40, "HARBOUR MANUAL")
        pdf.drawString(290, 30, str(number))
        pdf.setFont("Helvetica-Bold", 16)
        pdf.drawString(72, TOP - 120, title)
        if outline:
            key = f"s{number}"
            pdf.bookmarkPage(key)
            pdf.addOutlineEntry(title.split(" ", 1)[1], key, level=0)
        y = TOP - 150
        for line in body:
            if line:
                y = draw_lines(pdf, y, [line])
            else:
                y -= 30  # a paragraph gap
        pdf.showPage()
    pdf.save()
    return path


@pytest.mark.parametrize("outline", [True, False], ids=["outline", "font-size"])
def test_pages_titles_and_paragraphs(tmp_path: Path, outline: bool) -> None:
    elements, scanned = partition_pdf_text(str(manual(tmp_path / "m.pdf", outline)))
    assert scanned == []
    got = [(e.metadata.page_number, e.category, e.text) for e in elements]
    assert got == [
        (1, "Title", "1.1 Boarding the harbour ferry"),
        (
            1,
            "NarrativeText",
            "Tickets are sold at the depot kiosk from six in the morning until the last crossing.",
        ),
        (2, "Title", "1.2 Paying the mooring tariff"),
        (2, "NarrativeText", "The tariff is paid monthly to the harbour office."),
        (3, "Title", "2 Volunteers"),
        (3, "NarrativeText", "Volunteers meet on the first Monday."),
        (3, "NarrativeText", "The council pays for the annual audit."),
        (4, "Title", "3 Solar roof"),
        (4, "NarrativeText", "The inverter sits in the cable room behind the roof access."),
    ]  # the running head and the page numbers are gone
    assert {e.metadata.filename for e in elements} == {"m.pdf"}


def test_a_page_with_only_an_image_is_a_scan(tmp_path: Path) -> None:
    from PIL import Image
    from reportlab.lib.utils import ImageReader

    path = tmp_path / "mixed.pdf"
    pdf = canvas.Canvas(str(path), pagesize=A4)
    draw_lines(pdf, TOP - 100, ["The survey covered the outer channel."])
    pdf.showPage()
    pdf.drawImage(ImageReader(Image.new("RGB", (60, 40), "white")), 0, 0, 200, 100)
    pdf.showPage()
    pdf.showPage()  # blank: neither text nor a scan
    pdf.save()
    elements, scanned = partition_pdf_text(str(path))
    assert [(e.metadata.page_number, e.text) for e in elements] == [
        (1, "The survey covered the outer channel.")
    ]
    assert scanned == [2]


def test_words_broken_at_a_line_end_are_joined() -> None:
    assert _join(["the docu-", "mentation is", "self-", "Contained"]) == (
        "the documentation is self-Contained"
    )
