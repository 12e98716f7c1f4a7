"""Small, realistic files in every format ragapp ingests, generated at test time.

Each ``write_*`` function writes one file into a folder and returns its path. Every file
states its own invented fact, found in no other file, so retrieval can be checked per
format. ``SAMPLES`` lists (file name, question, answer substring, expected page) for each
fact; the .eml has two (one in the body, one in its attachment). Images and scanned PDFs
are rendered with Pillow and have no text layer, so only OCR can read them.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from PIL.Image import Image


class Sample(NamedTuple):
    name: str  # file name in the generated folder
    question: str
    answer: str  # substring of the text a correct hit contains
    page: int | None  # page the hit must carry (slide, sheet, PDF page), None if unpaged


SAMPLES: list[Sample] = [
    Sample("depots.pptx", "At what time does the Quillon depot open?", "06:40", 2),
    Sample("stock.xlsx", "How many brass valves are stored in the Tesk warehouse?", "4127", 2),
    Sample("routes.csv", "Who drives the Ferncastle to Yarrowby route?", "Perpetua Odlum", None),
    Sample("minutes.odt", "Which colour was chosen for the new Wendrith ferry?", "saffron", None),
    Sample(
        "glossary.rtf",
        "What does the term glimmerstop mean at the Brackenhold mill?",
        "ten-minute pause",
        None,
    ),
    Sample(
        "guidebook.epub",
        "How tall is the Sorrelmoor clock tower?",
        "83 metres",
        None,
    ),
    Sample(
        "invitation.eml",
        "In which room is the Orvalle planning meeting held?",
        "Room 5B",
        None,
    ),
    Sample(
        "invitation.eml",
        "What is the budget for the Orvalle catering?",
        "2,960 euros",
        None,
    ),
    # an image is one page: unstructured reports page 1 for it
    Sample("whiteboard.png", "Who keeps the Marrowby lighthouse?", "Odile Fenwick", 1),
    Sample("receipt.jpg", "How many passengers does the Dunholm ferry carry?", "240 passengers", 1),
    Sample("fax.tiff", "How many beds does the Kestrel ward have?", "nineteen beds", 2),
    Sample(
        "scanned-letter.pdf",
        "How long is the Cindervale footbridge?",
        "412 metres",
        2,
    ),
    Sample(
        "survey.pdf",
        "How many buoys did the Tidewater survey count?",
        "58 buoys",
        2,
    ),
    Sample(
        "manual.rst",
        "What pressure should the Halvard pump run at?",
        "7.5 bar",
        None,
    ),
    Sample(
        "onboarding.docx",
        "Which badge colour do Lindqvist contractors wear?",
        "teal",
        None,
    ),
    Sample(
        "clubhouse.html",
        "When was the Pellworth rowing clubhouse rebuilt?",
        "1987",
        None,
    ),
    Sample(
        "recipes.md",
        "How much nutmeg goes into the Gorsedale pudding?",
        "half a teaspoon",
        None,
    ),
    Sample(
        "notes.txt",
        "What is the Amberlow library's late-return fine per day?",
        "35 pence",
        None,
    ),
]

FONT_DIRS = [Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts")]


# --- office formats ------------------------------------------------------------------------


def write_pptx(folder: Path) -> Path:
    """Three slides (title + bullets); the fact is on slide 2."""
    from pptx import Presentation

    slides = [
        ("Regional depots 2026", ["Overview of the northern depot network", "Prepared by ops"]),
        (
            "Opening hours",
            [
                "The Quillon depot opens at 06:40 on weekdays.",
                "Weekend opening is by appointment only.",
            ],
        ),
        ("Contacts", ["Depot managers rotate every quarter", "Escalations go to the duty desk"]),
    ]
    prs = Presentation()
    layout = prs.slide_layouts[1]  # title and content
    for title, bullets in slides:
        slide = prs.slides.add_slide(layout)
        slide.shapes.title.text = title
        body = slide.placeholders[1].text_frame
        body.text = bullets[0]
        for line in bullets[1:]:
            body.add_paragraph().text = line
    path = folder / "depots.pptx"
    prs.save(path)
    return path


def write_xlsx(folder: Path) -> Path:
    """Two sheets with header rows; the fact is a row of sheet 2."""
    from openpyxl import Workbook

    wb = Workbook()
    orders = wb.active
    orders.title = "Orders"
    orders.append(["Order", "Customer", "Total (EUR)"])
    orders.append(["A-1001", "Hollins & Daughters", 412.50])
    orders.append(["A-1002", "Marsh Lane Bakery", 88.00])
    stock = wb.create_sheet("Stock")
    stock.append(["Item", "Warehouse", "Quantity"])
    stock.append(["Copper pipe 15mm", "Dunmere", 320])
    stock.append(["Brass valves", "Tesk warehouse", 4127])
    stock.append(["Rubber washers", "Dunmere", 9000])
    path = folder / "stock.xlsx"
    wb.save(path)
    return path


def write_csv(folder: Path) -> Path:
    """A header row and a few rows of a route roster."""
    rows = [
        ["route", "driver", "departs"],
        ["Ashby to Colton", "Marek Ilves", "07:15"],
        ["Ferncastle to Yarrowby", "Perpetua Odlum", "08:05"],
        ["Colton to Ashby", "Rui Matsuda", "17:30"],
    ]
    path = folder / "routes.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return path


def write_docx(folder: Path) -> Path:
    """A heading and two paragraphs."""
    from docx import Document

    doc = Document()
    doc.add_heading("Contractor onboarding", level=1)
    doc.add_paragraph("Contractors sign in at reception and collect a visitor badge.")
    doc.add_paragraph(
        "Lindqvist contractors wear teal badges so site staff can recognise them at a glance."
    )
    path = folder / "onboarding.docx"
    doc.save(path)
    return path


# --- pandoc formats ------------------------------------------------------------------------


def _pandoc(markdown: str, path: Path, *extra: str) -> Path:
    """Convert markdown text to ``path`` (format from its extension) with the pandoc CLI."""
    pandoc = shutil.which("pandoc") or "/usr/bin/pandoc"
    subprocess.run(
        [pandoc, "--from", "markdown", "--output", str(path), *extra],
        input=markdown,
        text=True,
        check=True,
        capture_output=True,
    )
    return path


def write_odt(folder: Path) -> Path:
    """Meeting minutes as an OpenDocument text."""
    md = (
        "# Harbour committee minutes\n\n"
        "Present: seven members and the harbour master.\n\n"
        "## Ferry livery\n\n"
        "After a long debate the committee chose saffron as the colour for the new "
        "Wendrith ferry, with a navy stripe along the hull.\n\n"
        "## Any other business\n\nThe next meeting is in the spring.\n"
    )
    return _pandoc(md, folder / "minutes.odt")


def write_rtf(folder: Path) -> Path:
    """A short glossary as RTF."""
    md = (
        "# Mill glossary\n\n"
        "**Fulling** is the cleansing and thickening of woollen cloth.\n\n"
        "**Glimmerstop** is what workers at the Brackenhold mill call the ten-minute pause "
        "taken when the looms are oiled at noon.\n"
    )
    return _pandoc(md, folder / "glossary.rtf", "--standalone")


def write_epub(folder: Path) -> Path:
    """A two-chapter guidebook as EPUB."""
    md = (
        "---\ntitle: A Walker's Guide to Sorrelmoor\nlang: en\n---\n\n"
        "# Arriving\n\nThe town is reached by the valley road or the old railway path.\n\n"
        "# Landmarks\n\nThe Sorrelmoor clock tower is 83 metres tall and was finished in 1894; "
        "its bell can be heard across the whole valley.\n"
    )
    return _pandoc(md, folder / "guidebook.epub")


# --- email -------------------------------------------------------------------------------


def write_eml(folder: Path) -> Path:
    """A plain-text email with a text/plain attachment; each carries a fact."""
    msg = EmailMessage()
    msg["From"] = "Hester Quayle <hester@example.org>"
    msg["To"] = "planning@example.org"
    msg["Subject"] = "Orvalle planning meeting"
    msg["Date"] = "Tue, 03 Mar 2026 09:12:00 +0000"
    msg.set_content(
        "Hello all,\n\n"
        "The Orvalle planning meeting will be held in Room 5B on the second floor, "
        "starting at ten.\n\n"
        "Regards,\nHester\n"
    )
    msg.add_attachment(
        "Catering notes\n\nThe budget for the Orvalle catering is 2,960 euros, "
        "including drinks and service.\n",
        subtype="plain",
        filename="catering.txt",
    )
    path = folder / "invitation.eml"
    path.write_bytes(bytes(msg))
    return path


# --- images and scans ----------------------------------------------------------------------


def font_path() -> Path:
    """A TrueType font for rendering text: DejaVuSans if present, else any fc-list finds."""
    for d in FONT_DIRS:
        found = sorted(d.rglob("DejaVuSans.ttf")) if d.is_dir() else []
        if found:
            return found[0]
    out = subprocess.run(
        ["fc-list", "--format", "%{file}\n", ":style=Regular"], capture_output=True, text=True
    ).stdout
    for line in out.splitlines():
        if line.endswith(".ttf"):
            return Path(line)
    raise FileNotFoundError("no TrueType font found for rendering sample images")


def render_text(lines: list[str], size: tuple[int, int], font_px: int = 36) -> Image:
    """A white image with black text lines, as a scanner would see a printed page."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(font_path()), font_px)
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    y = 60
    for line in lines:
        draw.text((60, y), line, fill="black", font=font)
        y += int(font_px * 1.6)
    return img


def write_png(folder: Path) -> Path:
    """A photo-like note with rendered text (needs OCR)."""
    img = render_text(
        [
            "Lighthouse duty roster",
            "The Marrowby lighthouse is kept",
            "by Odile Fenwick since 2019.",
        ],
        (1000, 360),
    )
    path = folder / "whiteboard.png"
    img.save(path)
    return path


def write_jpg(folder: Path) -> Path:
    """A JPEG photo of a printed notice (needs OCR)."""
    img = render_text(
        ["Dunholm ferry notice", "The Dunholm ferry carries", "240 passengers per crossing."],
        (1000, 360),
    )
    path = folder / "receipt.jpg"
    img.save(path, quality=90)
    return path


def write_tiff(folder: Path) -> Path:
    """A two-page TIFF, as a fax or document scanner writes; the fact is on page 2."""
    page1 = render_text(["Kestrel ward rota", "Nurses rotate weekly."], (1000, 360))
    page2 = render_text(["Ward capacity", "The Kestrel ward has", "nineteen beds."], (1000, 360))
    path = folder / "fax.tiff"
    page1.save(path, save_all=True, append_images=[page2], compression="tiff_deflate")
    return path


def write_scanned_pdf(folder: Path) -> Path:
    """A two-page PDF of page images only (no text layer); the fact is on page 2."""
    size = (1240, 1754)  # A4 at 150 dpi
    page1 = render_text(
        [
            "Cindervale Town Council",
            "Public works letter",
            "",
            "Dear residents,",
            "This letter summarises the works",
            "planned for the river crossing.",
        ],
        size,
    )
    page2 = render_text(
        [
            "Footbridge details",
            "",
            "The new Cindervale footbridge is",
            "412 metres long and opens in May.",
        ],
        size,
    )
    path = folder / "scanned-letter.pdf"
    page1.save(path, "PDF", resolution=150, save_all=True, append_images=[page2])
    return path


def write_mixed_pdf(folder: Path) -> Path:
    """A PDF whose page 1 has a text layer and whose page 2 is only a scanned image
    (a typed report with a scanned appendix); the fact is on the scanned page."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    path = folder / "survey.pdf"
    pdf = canvas.Canvas(str(path), pagesize=A4)
    pdf.setFont("Helvetica", 12)
    pdf.drawString(72, 760, "Tidewater harbour survey")
    pdf.drawString(72, 740, "The survey covered the outer channel and both breakwaters.")
    pdf.showPage()
    scan = render_text(
        ["Appendix: buoy count", "", "The Tidewater survey counted", "58 buoys in the channel."],
        (1240, 1754),
    )
    pdf.drawImage(ImageReader(scan), 0, 0, width=A4[0], height=A4[1])
    pdf.showPage()
    pdf.save()
    return path


# --- plain text formats --------------------------------------------------------------------


def write_rst(folder: Path) -> Path:
    """reStructuredText with a title and two sections."""
    text = (
        "Halvard Pump Manual\n"
        "===================\n\n"
        "Installation\n"
        "------------\n\n"
        "Mount the pump on a level concrete base and connect the inlet first.\n\n"
        "Operation\n"
        "---------\n\n"
        "The Halvard pump should run at 7.5 bar; above 9 bar the relief valve opens.\n"
    )
    path = folder / "manual.rst"
    path.write_text(text, encoding="utf-8")
    return path


def write_html(folder: Path) -> Path:
    """A small HTML page."""
    html = (
        "<!DOCTYPE html>\n<html><head><title>Pellworth Rowing Club</title></head><body>\n"
        "<h1>Our clubhouse</h1>\n"
        "<p>The Pellworth rowing clubhouse was rebuilt in 1987 after the winter flood.</p>\n"
        "<p>Members may use the boat bay from dawn to dusk.</p>\n"
        "</body></html>\n"
    )
    path = folder / "clubhouse.html"
    path.write_text(html, encoding="utf-8")
    return path


def write_md(folder: Path) -> Path:
    """A markdown recipe."""
    text = (
        "# Gorsedale pudding\n\n"
        "## Ingredients\n\n"
        "- 500 ml milk\n- 80 g rice\n- half a teaspoon of nutmeg for the Gorsedale pudding\n\n"
        "## Method\n\nBake slowly for two hours.\n"
    )
    path = folder / "recipes.md"
    path.write_text(text, encoding="utf-8")
    return path


def write_txt(folder: Path) -> Path:
    """Plain text notes."""
    text = (
        "Amberlow library notes\n\n"
        "Opening hours are 9 to 5 on weekdays.\n\n"
        "The Amberlow library charges a late-return fine of 35 pence per day per book.\n"
    )
    path = folder / "notes.txt"
    path.write_text(text, encoding="utf-8")
    return path


WRITERS: list[Callable[[Path], Path]] = [
    write_pptx,
    write_xlsx,
    write_csv,
    write_odt,
    write_rtf,
    write_epub,
    write_eml,
    write_png,
    write_jpg,
    write_tiff,
    write_scanned_pdf,
    write_mixed_pdf,
    write_rst,
    write_docx,
    write_html,
    write_md,
    write_txt,
]


def write_all(folder: Path) -> list[Path]:
    """Write every sample into ``folder`` (created if needed); their paths, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    return [write(folder) for write in WRITERS]
