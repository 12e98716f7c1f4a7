"""Loaders bound what one element may cost: text that never breaks is cut into pieces at
sentence ends before chunking, unstructured's NLP reads at most MAX_ELEMENT_CHARS of an
element, and HTML past libxml2's depth limit fails with that reason. Ordinary files come
out exactly as unstructured makes them."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from unstructured.documents.elements import (
    ElementMetadata,
    NarrativeText,
    Table,
    Text,
    Title,
)
from unstructured.nlp import tokenize
from unstructured.partition.md import partition_md
from unstructured.partition.text import partition_text

from ingest import loaders
from ingest.loaders import MAX_ELEMENT_CHARS, LoadError, bounded, load_elements, split_text
from tests.format_samples import write_md, write_txt

WORDS = ["harbour", "ferry", "lantern", "member", "fee", "board", "tide", "pier", "rope"]


def sentences(chars: int, seed: int = 0) -> str:
    """Sentences of 8-20 words on one line, about ``chars`` characters."""
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < chars:
        out.append(" ".join(rng.choices(WORDS, k=rng.randint(8, 20))).capitalize() + ".")
        size += len(out[-1]) + 1
    return " ".join(out)


def squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_short_text_is_one_piece() -> None:
    assert split_text("The ferry leaves at nine.", 100) == ["The ferry leaves at nine."]


def test_long_text_is_cut_after_sentence_ends_and_loses_only_white_space() -> None:
    text = sentences(50_000)
    pieces = split_text(text, 2_000)
    assert len(pieces) >= 25
    assert all(1_000 <= len(p) <= 2_000 for p in pieces[:-1])
    assert all(p.endswith(".") and p == p.strip() for p in pieces)
    assert " ".join(pieces) == text


def test_text_without_sentences_is_cut_at_white_space() -> None:
    text = " ".join(random.Random(1).choices(WORDS, k=5_000))
    pieces = split_text(text, 1_000)
    assert all(len(p) <= 1_000 and p == p.strip() for p in pieces)
    assert " ".join(pieces) == text


def test_a_run_without_white_space_is_cut_hard() -> None:
    assert split_text("x" * 2_500, 1_000) == ["x" * 1_000, "x" * 1_000, "x" * 500]


def test_random_text_never_exceeds_the_limit_or_loses_a_character() -> None:
    for seed in range(300):
        rng = random.Random(seed)
        text = "".join(rng.choice("ab .\n!x") for _ in range(rng.randint(0, 400)))
        limit = rng.randint(1, 50)
        pieces = split_text(text, limit)
        assert all(0 < len(p) <= limit for p in pieces), (text, limit, pieces)
        assert squeezed("".join(pieces)) == squeezed(text)


def test_long_elements_become_pieces_of_the_same_kind_and_metadata() -> None:
    metadata = ElementMetadata(page_number=3, filename="a.txt")
    metadata.section_group = 2  # what the HTML loader tags
    long = NarrativeText(text=sentences(3_000), metadata=metadata)
    short = NarrativeText(text="The fee is due in March.")
    pieces = bounded([short, long], limit=1_000)
    assert pieces[0] is short
    assert len(pieces) >= 4
    assert all(type(p) is NarrativeText and len(p.text) <= 1_000 for p in pieces)
    assert {(p.metadata.page_number, p.metadata.section_group) for p in pieces[1:]} == {(3, 2)}
    assert len({p.id for p in pieces}) == len(pieces)
    assert long.text == " ".join(p.text for p in pieces[1:])  # the original is untouched


def test_a_title_that_long_is_text_and_tables_stay_whole() -> None:
    blob = Title(text="x" * 2_500)
    table = Table(text="cell " * 500, metadata=ElementMetadata(text_as_html="<table/>"))
    out = bounded([blob, table], limit=1_000)
    assert [type(e) for e in out] == [Text, Text, Text, Table]


def test_a_single_line_text_file_is_read_in_bounded_pieces(tmp_path: Path) -> None:
    text = sentences(5 * MAX_ELEMENT_CHARS)
    path = tmp_path / "one-line.txt"
    path.write_text(text + "\n")
    elements = load_elements(path)
    assert len(elements) >= 5
    assert all(len(e.text) <= MAX_ELEMENT_CHARS for e in elements)
    assert " ".join(e.text for e in elements) == text
    assert tokenize._get_nlp().max_length == MAX_ELEMENT_CHARS  # what spaCy may read at once


def test_a_long_markdown_line_is_cut_into_paragraphs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loaders, "MARKUP_LINE_CHARS", 30_000)  # 1 MB in real life
    text = sentences(100_000)
    path = tmp_path / "one-line.md"
    path.write_text(f"# Tides\n\n{text}\n")
    loaders.use_local_spacy()
    elements = loaders.PARTITIONERS[".md"](str(path))  # before bounded() cuts them again
    assert [type(e) for e in elements[:1]] == [Title]
    assert len(elements) >= 4
    assert all(len(e.text) <= 30_000 for e in elements)
    assert squeezed("".join(e.text for e in elements[1:])) == squeezed(text)


@pytest.mark.parametrize("write", [write_txt, write_md])
def test_ordinary_files_come_out_as_unstructured_makes_them(
    tmp_path: Path, write: Callable[[Path], Path]
) -> None:
    path = write(tmp_path)
    partition = partition_md if path.suffix == ".md" else partition_text
    expected = [(type(e), e.text, e.metadata.to_dict()) for e in partition(filename=str(path))]
    got = [(type(e), e.text, e.metadata.to_dict()) for e in load_elements(path)]
    assert got == expected


def test_html_past_the_parser_depth_limit_fails_with_that_reason(tmp_path: Path) -> None:
    deep = tmp_path / "deep.html"
    deep.write_text("<html><body><p>Tide tables.</p>" + "<div>" * 300 + "deep" + "</body></html>")
    with pytest.raises(LoadError, match=r"^too deeply nested \(over 256 levels\)$"):
        load_elements(deep)
    fine = tmp_path / "fine.html"
    fine.write_text("<html><body>" + "<div>" * 200 + "The tide turns at noon." + "</body></html>")
    assert [e.text for e in load_elements(fine)] == ["The tide turns at noon."]
