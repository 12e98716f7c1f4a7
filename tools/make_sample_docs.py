"""Generate the binary sample documents in sample_docs/.

Creates:
  sample_docs/annual-report-2025.pdf   (reportlab platypus, 3 pages)
  sample_docs/safety-procedures.docx   (python-docx)

The Markdown, text and HTML samples are hand-written files and are not
produced here.  Output is deterministic: the PDF is built with
``invariant=1`` and the DOCX has fixed core properties and fixed zip entry
timestamps, so re-running the script gives byte-identical files.

Usage:
    .venv/bin/python tools/make_sample_docs.py [output_dir]
"""

from __future__ import annotations

import datetime as _dt
import io
import sys
import zipfile
from pathlib import Path

from docx import Document
from docx.shared import Pt
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "sample_docs"

FIXED_DATETIME = _dt.datetime(2025, 11, 3, 9, 0, 0)
ZIP_DATE_TIME = (2025, 11, 3, 9, 0, 0)


# ---------------------------------------------------------------------------
# PDF: Annual Report 2025
# ---------------------------------------------------------------------------

PDF_PAGES: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Harbourlight Cooperative - Annual Report 2025",
        [
            ("h2", "1. Overview of the year"),
            (
                "p",
                "2025 was a steady and encouraging year for Harbourlight Cooperative. "
                "Our rooftop arrays across Kestrel Bay performed well through a sunny "
                "spring and a changeable summer, no serious safety incidents were "
                "recorded, and membership continued to grow as more households and "
                "local businesses joined the cooperative.",
            ),
            (
                "p",
                "Across all of our host sites the panels generated a total of 3,418 MWh "
                "of electricity during the calendar year. That is enough to meet the "
                "annual needs of roughly a thousand typical homes in the town, and it "
                "was the highest output in the cooperative's history, helped by two "
                "new warehouse roofs that came into service in the first quarter.",
            ),
            (
                "p",
                "About two thirds of the electricity was used directly by the schools, "
                "businesses and public buildings that host our panels, at the discounted "
                "prices set out in their leases. The remainder was exported to the grid "
                "under our power purchase agreement.",
            ),
            ("h3", "Members and volunteers"),
            (
                "p",
                "New members joined throughout the year, many of them after visiting our "
                "stall at the Saturday market or attending the open day in June. "
                "Volunteers gave their time to school visits, site surveys and the "
                "community fund panel, and the board thanks every one of them.",
            ),
            (
                "p",
                "The financial results for the year are set out on the next page, and "
                "the board's plans for the coming years follow on the final page of "
                "this report.",
            ),
        ],
    ),
    (
        "2. Finances",
        [
            (
                "p",
                "The cooperative's accounts for the year ended 31 December 2025 have been "
                "audited and will be presented to members for approval at the AGM. This "
                "page summarises the main figures.",
            ),
            ("h3", "Income and costs"),
            (
                "p",
                "Total income for the year was £1,284,600, made up of payments from host "
                "sites for the electricity they used, export sales to the grid and a "
                "small amount of bank interest. Operating costs, including maintenance, "
                "insurance, roof leases, staff salaries and depreciation of equipment, "
                "came to a little under three quarters of income, leaving a healthy "
                "operating surplus.",
            ),
            (
                "p",
                "The largest single cost after depreciation was planned maintenance, "
                "which rose during the year because several of the oldest inverters "
                "reached the end of their working lives and were replaced.",
            ),
            ("h3", "Returns to members"),
            (
                "p",
                "After reviewing the audited accounts, the board has agreed to pay "
                "interest on member shares at 3.15% for 2025. Members who asked to "
                "reinvest their interest will receive additional shares instead of a "
                "payment. Interest will be paid in the month following the AGM.",
            ),
            ("h3", "Community fund"),
            (
                "p",
                "The board allocated £41,750 of the surplus to the community fund. "
                "Grants were awarded to fourteen local projects, ranging from draught "
                "proofing for older residents to a repair cafe in the church hall.",
            ),
            ("h3", "Reserves"),
            (
                "p",
                "The remaining surplus has been added to reserves, which are held to "
                "cover unexpected repairs, share withdrawals and the eventual removal of "
                "panels at the end of their leases. The board considers the level of "
                "reserves to be prudent.",
            ),
        ],
    ),
    (
        "3. Outlook",
        [
            (
                "p",
                "Looking ahead, the board's main priority is to make better use of the "
                "electricity we already generate. On sunny afternoons our arrays often "
                "produce more than the host sites can use, and that surplus is exported "
                "at a low price.",
            ),
            ("h3", "Battery storage"),
            (
                "p",
                "We are therefore planning the cooperative's first battery storage "
                "project, to be built on a plot of land beside the Ferrow Quay "
                "substation. The battery will store surplus daytime power and release it "
                "in the early evening, when demand and prices are highest. Planning "
                "permission has been applied for, and if it is granted construction "
                "could begin in the following year.",
            ),
            (
                "p",
                "To pay for the project, the board intends to open a new community share "
                "offer with a target of £650,000. Existing members will be given the "
                "first opportunity to invest before the offer is opened to the wider "
                "public.",
            ),
            ("h3", "New roofs and training"),
            (
                "p",
                "We are also in early discussions with the owners of three further roofs "
                "in the town, and we will continue to invest in safety training for "
                "everyone who works on our installations.",
            ),
            (
                "p",
                "The board would like to thank all members for their continued support. "
                "We look forward to seeing many of you at the AGM.",
            ),
        ],
    ),
]


def build_pdf(path: Path) -> None:
    styles = getSampleStyleSheet()
    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        leftMargin=2.2 * cm,
        rightMargin=2.2 * cm,
        topMargin=2.2 * cm,
        bottomMargin=2.2 * cm,
        title="Harbourlight Cooperative Annual Report 2025",
        author="Harbourlight Cooperative",
        subject="Annual report for the year 2025",
        creator="make_sample_docs.py",
        invariant=1,
    )
    story = []
    for page_no, (title, blocks) in enumerate(PDF_PAGES):
        if page_no:
            story.append(PageBreak())
        story.append(Paragraph(title, styles["Title"] if page_no == 0 else styles["Heading1"]))
        for kind, text in blocks:
            if kind == "h2":
                story.append(Paragraph(text, styles["Heading2"]))
            elif kind == "h3":
                story.append(Paragraph(text, styles["Heading3"]))
            else:
                story.append(Paragraph(text, styles["BodyText"]))
                story.append(Spacer(1, 4))
    doc.build(story)


# ---------------------------------------------------------------------------
# DOCX: Safety procedures
# ---------------------------------------------------------------------------


def build_docx(path: Path) -> None:
    document = Document()
    normal = document.styles["Normal"]
    normal.font.name = "Calibri"
    normal.font.size = Pt(11)

    document.add_heading(
        "Harbourlight Cooperative - Rooftop and Installation Safety Procedures", level=1
    )
    document.add_paragraph(
        "These procedures apply to everyone who carries out work on Harbourlight "
        "installations, including our own staff, contractors and visiting engineers. "
        "They must be read alongside the contractor's own risk assessments and method "
        "statements. Nobody may go onto a roof where our panels are installed unless "
        "they have been briefed on this document."
    )

    document.add_heading("1. Responsibilities", level=1)
    document.add_paragraph(
        "Overall responsibility for safety rests with the board. Day-to-day "
        "responsibility is delegated to the cooperative's Health and Safety Lead, "
        "Desmond Okafor-Lund, who approves every work permit, keeps the training "
        "register and investigates any incident or near miss."
    )
    document.add_paragraph(
        "Each job has a named supervisor on site. The supervisor checks permits, "
        "equipment and weather conditions before work starts and has the authority to "
        "stop work at any time."
    )

    document.add_heading("2. Before work starts", level=1)
    document.add_heading("2.1 Permits and briefing", level=2)
    document.add_paragraph(
        "A written work permit is required for any task at height or on live "
        "equipment. The permit records the site, the task, the people involved, the "
        "isolation points and the rescue plan. The supervisor gives a short toolbox "
        "briefing at the start of every shift, and everyone present signs the permit."
    )
    document.add_heading("2.2 Weather limits", level=2)
    document.add_paragraph(
        "Work on roofs must not start, and must stop immediately, if the mean wind "
        "speed at roof level exceeds 23 mph or gusts make it difficult to handle "
        "panels safely. Work is also suspended during rain, ice, lightning within "
        "ten miles, or poor visibility. The supervisor checks a hand-held anemometer "
        "reading at the start of the shift and every hour thereafter."
    )

    document.add_heading("3. Working at height", level=1)
    document.add_paragraph(
        "Collective protection such as edge guardrails and scaffolding is always "
        "preferred over personal protection. Where edge protection cannot be fitted, "
        "workers must use a fall-arrest harness connected to a certified anchor. "
        "Nobody may ever work alone on a roof; at least two people must be present, "
        "and one person must remain at ground level with a means of raising the "
        "alarm."
    )
    document.add_paragraph(
        "Fragile surfaces such as roof lights and older cement sheets must be "
        "identified and covered or fenced off before work begins. Tools and panels "
        "must be secured against falling, and the area below must be cordoned off."
    )

    document.add_heading("4. Electrical safety", level=1)
    document.add_paragraph(
        "Solar panels generate voltage whenever light falls on them, so DC cabling "
        "must always be treated as live. Arrays are isolated at both the DC and AC "
        "isolators before any work on inverters or cabling, and the isolators are "
        "locked off with a personal padlock and tag. Only qualified electricians may "
        "open junction boxes or inverters."
    )

    document.add_heading("5. Personal protective equipment", level=1)
    document.add_paragraph("The minimum equipment for rooftop work is listed below.")
    table = document.add_table(rows=1, cols=2)
    table.style = "Table Grid"
    header = table.rows[0].cells
    header[0].text = "Item"
    header[1].text = "When required"
    for item, when in [
        ("Safety helmet with chin strap", "All work at height and in cordoned areas"),
        ("Fall-arrest harness and lanyard", "Any roof without full edge protection"),
        ("Insulated gloves", "Work on DC cabling or isolators"),
        ("Safety boots with non-slip soles", "At all times on site"),
        ("High-visibility vest", "At all times on site"),
    ]:
        row = table.add_row().cells
        row[0].text = item
        row[1].text = when

    document.add_heading("6. Incidents and emergencies", level=1)
    document.add_paragraph(
        "In an emergency, stop work, make the area safe if it can be done without "
        "risk, and call the emergency services. Every accident, injury or near miss "
        "must be reported to the Health and Safety Lead on the same day, and a "
        "written incident report completed within two working days. Lessons learned are "
        "shared with all contractors at the next safety review."
    )

    cp = document.core_properties
    cp.title = "Rooftop and Installation Safety Procedures"
    cp.author = "Harbourlight Cooperative"
    cp.last_modified_by = "Harbourlight Cooperative"
    cp.subject = "Safety procedures"
    cp.keywords = "safety, rooftop, solar"
    cp.comments = ""
    cp.category = ""
    cp.revision = 1
    cp.created = FIXED_DATETIME
    cp.modified = FIXED_DATETIME
    cp.last_printed = FIXED_DATETIME

    buf = io.BytesIO()
    document.save(buf)
    _write_normalised_zip(buf.getvalue(), path)


def _write_normalised_zip(data: bytes, path: Path) -> None:
    """Rewrite a zip with fixed entry timestamps so output is reproducible."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            new = zipfile.ZipInfo(info.filename, date_time=ZIP_DATE_TIME)
            new.compress_type = zipfile.ZIP_DEFLATED
            new.external_attr = 0o644 << 16
            dst.writestr(new, src.read(info.filename))
    path.write_bytes(out.getvalue())


def main(argv: list[str]) -> int:
    out_dir = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    out_dir.mkdir(parents=True, exist_ok=True)
    build_pdf(out_dir / "annual-report-2025.pdf")
    build_docx(out_dir / "safety-procedures.docx")
    print(f"wrote {out_dir / 'annual-report-2025.pdf'}")
    print(f"wrote {out_dir / 'safety-procedures.docx'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
