"""Facts in sample_docs/, each stated in exactly one file (and one PDF page).

(question, answer substring, file, page). Questions are worded unlike the documents.
"""

FACTS: list[tuple[str, str, str, int | None]] = [
    (
        "How much does a Harbourlight member pay each year in membership fees?",
        "£37",
        "handbook.md",
        None,
    ),
    (
        "What is the minimum attendance required for a vote at a general meeting to count?",
        "48 members",
        "handbook.md",
        None,
    ),
    (
        "Who should I contact about fee waivers or changing my details?",
        "Tamsin Achterberg",
        "handbook.md",
        None,
    ),
    (
        "How far in advance must a member give notice before withdrawing their share money?",
        "eight months",
        "faq.txt",
        None,
    ),
    (
        "What number should I ring to report a damaged panel or loose cable?",
        "01632 960418",
        "faq.txt",
        None,
    ),
    (
        "On what date was the cooperative officially registered?",
        "9 October 2012",
        "history.html",
        None,
    ),
    ("Who was Harbourlight's first chair?", "Ines Valcourt", "history.html", None),
    (
        "Which building hosted the cooperative's very first solar array?",
        "Gullmoor Primary School",
        "history.html",
        None,
    ),
    (
        "How much electricity did the arrays produce in total during 2025?",
        "3,418 MWh",
        "annual-report-2025.pdf",
        1,
    ),
    (
        "What was the cooperative's total income for 2025?",
        "£1,284,600",
        "annual-report-2025.pdf",
        2,
    ),
    (
        "What interest rate will members receive on their shares for 2025?",
        "3.15%",
        "annual-report-2025.pdf",
        2,
    ),
    (
        "How much money went into the community fund from the 2025 surplus?",
        "£41,750",
        "annual-report-2025.pdf",
        2,
    ),
    (
        "Next to which substation will the planned battery be built?",
        "Ferrow Quay",
        "annual-report-2025.pdf",
        3,
    ),
    (
        "How much does the board aim to raise in its next share offer?",
        "£650,000",
        "annual-report-2025.pdf",
        3,
    ),
    ("Above what wind speed must rooftop work stop?", "23 mph", "safety-procedures.docx", None),
    (
        "Who is the cooperative's Health and Safety Lead?",
        "Desmond Okafor-Lund",
        "safety-procedures.docx",
        None,
    ),
]
