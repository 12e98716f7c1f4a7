"""Element-aware chunking keeps file, page and section; ids are stable."""

from __future__ import annotations

from unstructured.documents.elements import ElementMetadata, NarrativeText, Title

from ingest.chunking import chunk_elements, chunk_id, merge_small


def _el(cls: type, text: str, page: int | None = None) -> object:
    return cls(text=text, metadata=ElementMetadata(page_number=page))


def _chunks(elements: list[object], size: int = 300) -> list:
    return chunk_elements(
        elements,
        source="/docs/a.pdf",
        file_hash="h",
        file_type="pdf",
        chunk_size=size,
        chunk_overlap=0,
    )


def test_ids_are_stable_and_depend_on_source_and_text() -> None:
    assert chunk_id("/a", "text") == chunk_id("/a", "text")
    assert len({chunk_id("/a", "text"), chunk_id("/b", "text"), chunk_id("/a", "other")}) == 3
    assert chunk_id("/a", "text", 1) != chunk_id("/a", "text")


def test_chunks_keep_page_and_section_and_never_span_pages() -> None:
    elements = [
        _el(Title, "Membership", 1),
        _el(NarrativeText, "Members pay a yearly fee of forty-two pounds.", 1),
        _el(NarrativeText, "The fee is due every March.", 2),
        _el(Title, "Governance", 2),
        _el(NarrativeText, "The board meets on the first Tuesday of each month.", 2),
    ]
    chunks = _chunks(elements)
    by_text = {c.text: c for c in chunks}
    fee = next(c for c in chunks if "forty-two" in c.text)
    assert (fee.page, fee.section) == (1, "Membership")
    march = next(c for c in chunks if "March" in c.text)
    assert (march.page, march.section) == (2, "Membership")
    assert "forty-two" not in march.text  # page 2 content is its own chunk
    board = next(c for c in chunks if "board" in c.text)
    assert (board.page, board.section) == (2, "Governance")
    assert all(c.source == "/docs/a.pdf" and c.file_hash == "h" for c in by_text.values())


def test_long_sections_are_cut_at_the_size_cap() -> None:
    text = " ".join(f"Sentence number {i} says something." for i in range(200))
    chunks = _chunks([_el(Title, "Long"), _el(NarrativeText, text)], size=400)
    assert len(chunks) > 5
    assert all(len(c.text) <= 400 for c in chunks)
    assert all(c.section == "Long" for c in chunks)


def test_repeated_text_in_one_file_keeps_distinct_ids() -> None:
    elements = [
        _el(Title, "A"),
        _el(NarrativeText, "Same words."),
        _el(Title, "B"),
        _el(NarrativeText, "Same words."),
    ]
    chunks = _chunks(elements, size=100)
    ids = [c.id for c in chunks]
    assert len(ids) == len(set(ids))
    assert chunk_elements is not None and ids == [c.id for c in _chunks(elements, size=100)]


def test_short_pieces_join_a_neighbour_on_their_page() -> None:
    long_1 = "The harbour office opens at eight and closes at six on weekdays."
    long_2 = "Moorings are let by the season; the waiting list is kept by the clerk."
    cut = [
        ("Opening hours", 1, None),  # a lone heading: heads the piece after it
        (long_1, 1, "Opening hours"),
        ("dent.", 1, "Opening hours"),  # a fragment: ends the piece before it
        ("Moorings", 1, "Opening hours"),  # a heading whose next piece is on page 2
        (long_2, 2, "Moorings"),
        ("Short note.", 3, "Moorings"),  # alone on its page: kept
    ]
    assert merge_small(cut, max_chars=300) == [
        (f"Opening hours\n\n{long_1}\ndent.\nMoorings", 1, "Opening hours"),
        (long_2, 2, "Moorings"),
        ("Short note.", 3, "Moorings"),
    ]
    # never past the size cap
    assert merge_small([(long_1, 1, None), ("end.", 1, None)], max_chars=len(long_1) + 2) == [
        (long_1, 1, None),
        ("end.", 1, None),
    ]


def test_no_chunk_is_a_lone_title() -> None:
    elements = [
        _el(Title, "Fees", 1),
        _el(NarrativeText, "The yearly membership fee is forty-two pounds, due in March.", 1),
    ]
    (chunk,) = _chunks(elements)
    assert chunk.text.startswith("Fees") and "forty-two" in chunk.text
