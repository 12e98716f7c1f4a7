"""Post-hoc citations: an answer without [n] markers gets the passages its sentences
draw on; nothing is cited that the answer does not match."""

from __future__ import annotations

from ragapp.query.citations import attribute, cited_numbers, missing_citations
from ragapp.types import Source

PASSAGES = [
    Source("/d/a.pdf", 1, 0.6, "The cooperative's 2025 report: total members and the 2025 AGM."),
    Source("/d/a.pdf", 2, 0.5, "Total income was £1,284,600, up on the year before."),
    Source("/d/b.md", None, 0.4, "Desmond Okafor-Lund is the Health and Safety Lead."),
]


def test_existing_valid_markers_are_kept_as_they_are() -> None:
    assert cited_numbers("It was £1,284,600 [2] as [9] and [2] say.", 3) == [2]
    assert missing_citations("It was £1,284,600 [2].", PASSAGES) == ""


def test_each_sentence_cites_the_passage_it_draws_on() -> None:
    text = (
        "The cooperative's total income for 2025 was £1,284,600. "
        "Desmond Okafor-Lund is the Health and Safety Lead."
    )
    # the figure decides between the two "2025 / total" passages
    assert attribute(text, PASSAGES) == [2, 3]
    assert missing_citations(text, PASSAGES) == " [2][3]"


def test_an_answer_that_matches_no_passage_gets_no_citation() -> None:
    text = "The board will need an additional 24 hours notice. It depends on various factors."
    assert missing_citations(text, PASSAGES) == ""
    assert missing_citations("Anything.", []) == ""
