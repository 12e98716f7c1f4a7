"""Every supported file format, end to end: generated files (and real documents) go through
the real `ragapp ingest` and `ragapp retrieve` CLI, and each fact is found in its own file
on the right page (slide, sheet, PDF page)."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED, Result, run_cli
from tests.format_samples import SAMPLES, WRITERS, Sample, write_all

pytestmark = pytest.mark.e2e

EVAL = SHARED / "eval"
FORMATS = EVAL / "formats"
QRELS = EVAL / "debian-faq" / "qrels.jsonl"


def norm(text: str) -> str:
    """Lower-cased, runs of white space folded to one space (the eval set's relevance rule)."""
    return re.sub(r"\s+", " ", text.lower()).strip()


def retrieve(data: Path, questions: list[str], batch: Path, k: int) -> list[dict[str, Any]]:
    """Ask every question in one `retrieve --batch` run; one result list per question."""
    batch.write_text("".join(json.dumps({"question": q}) + "\n" for q in questions))
    res = run_cli("--data-dir", str(data), "retrieve", "--batch", str(batch), "-k", str(k))
    assert res.code == 0, res.stderr
    lines = res.jsonl()
    assert [line["question"] for line in lines] == questions
    return [line["results"] for line in lines]


def describe(results: list[dict[str, Any]]) -> str:
    """The results, one line each, for assertion messages."""
    return "\n".join(
        f"  {Path(r['source']).name} p={r['page']} {r['score']:.3f} {r['text'][:100]!r}"
        for r in results
    )


# --- generated samples ---------------------------------------------------------------------


class Samples:
    """All generated samples (plus an unknown binary) ingested once, then all questions asked."""

    def __init__(self, root: Path) -> None:
        self.docs = root / "docs"
        self.data = root / "data"
        self.paths = write_all(self.docs)
        self.blob = self.docs / "blob.bin"
        self.blob.write_bytes(random.Random(0).randbytes(4096))
        self.ingest: Result = run_cli(
            "--data-dir", str(self.data), "ingest", str(self.docs), "--json"
        )
        self.results: list[list[dict[str, Any]]] = []
        if self.ingest.code in (0, 3):  # 3: some files failed, the rest are searchable
            questions = [s.question for s in SAMPLES]
            self.results = retrieve(self.data, questions, root / "questions.jsonl", k=5)


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Samples:
    return Samples(tmp_path_factory.mktemp("formats"))


def test_every_sample_is_ingested(samples: Samples) -> None:
    res = samples.ingest
    assert res.code == 0, f"exit {res.code}\n{res.stdout}\n{res.stderr}"
    report = res.json()
    assert report["failed"] == []
    assert report["added"] == len(WRITERS) == len(samples.paths)
    assert report["chunks"] >= len(WRITERS)


def test_unknown_binary_in_a_folder_is_skipped_with_a_reason(samples: Samples) -> None:
    report = samples.ingest.json()
    skipped = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert set(skipped) == {"blob.bin"}
    assert "unsupported" in skipped["blob.bin"] and ".bin" in skipped["blob.bin"]


SAMPLE_PARAMS = [pytest.param(s, id=f"{s.name}:{s.answer}") for s in SAMPLES]


@pytest.mark.parametrize("sample", SAMPLE_PARAMS)
def test_each_fact_is_found_in_its_file_and_page(samples: Samples, sample: Sample) -> None:
    assert samples.results, f"ingest failed:\n{samples.ingest.stdout}\n{samples.ingest.stderr}"
    failed = {Path(f["path"]).name: f["reason"] for f in samples.ingest.json()["failed"]}
    assert sample.name not in failed, f"{sample.name} failed to ingest: {failed[sample.name]}"
    results = samples.results[SAMPLES.index(sample)]
    hits = [
        r
        for r in results
        if Path(r["source"]).name == sample.name and norm(sample.answer) in norm(r["text"])
    ]
    assert hits, f"{sample.answer!r} not in a {sample.name} result:\n{describe(results)}"
    assert sample.page in [h["page"] for h in hits], describe(hits)


def test_unsupported_file_named_explicitly_fails(tmp_path: Path) -> None:
    odd = tmp_path / "drawing.xyz"
    odd.write_text("not a format ragapp reads")
    res = run_cli("--data-dir", str(tmp_path / "data"), "ingest", str(odd), "--json")
    assert res.code == 3, res.stderr
    report = res.json()
    assert report["added"] == 0 and report["skipped"] == []
    assert [f["path"] for f in report["failed"]] == [str(odd.resolve())]
    assert "unsupported" in report["failed"][0]["reason"]


# --- real documents ------------------------------------------------------------------------

# Debian FAQ questions answered in the HTML chapter, the PDF and the text version alike.
DEBIAN_QUESTIONS = ["debian-faq/basic-defs#pronunciation", "debian-faq/pkg-basics#puttingonhold"]
# An R FAQ answer that lies on one known page.
R_QUESTION = "How do I convert a factor to numeric values in R?"
R_ANSWER = "as.numeric(as.character(f))"


def pdf_pages_containing(path: Path, snippet: str) -> list[int]:
    """1-based numbers of the pages whose text layer contains ``snippet`` (white space folded)."""
    from pypdf import PdfReader

    reader = PdfReader(path)
    return [
        i for i, page in enumerate(reader.pages, 1) if norm(snippet) in norm(page.extract_text())
    ]


class RealDocs:
    """The Debian FAQ as HTML, PDF and text plus the R FAQ PDF, ingested once."""

    def __init__(self, root: Path) -> None:
        qrels = [json.loads(line) for line in QRELS.read_text().splitlines() if line.strip()]
        by_id = {q["id"]: q for q in qrels}
        self.qrels = [by_id[i] for i in DEBIAN_QUESTIONS]
        self.docs = root / "docs"
        self.data = root / "data"
        self.docs.mkdir()
        self.versions = ["debian-faq.pdf"]
        if (FORMATS / "debian-faq.txt").is_file():
            self.versions.append("debian-faq.txt")
        for name in [*self.versions, "R-FAQ.pdf"]:
            shutil.copy(FORMATS / name, self.docs / name)
        for q in self.qrels:
            shutil.copy(EVAL / "debian-faq" / "docs" / q["source"], self.docs / q["source"])
        self.ingest = run_cli("--data-dir", str(self.data), "ingest", str(self.docs), "--json")
        assert self.ingest.code == 0, self.ingest.stderr
        questions = [q["question"] for q in self.qrels] + [R_QUESTION]
        self.results = retrieve(self.data, questions, root / "questions.jsonl", k=10)


@pytest.fixture(scope="module")
def real_docs(tmp_path_factory: pytest.TempPathFactory) -> RealDocs:
    if not (QRELS.is_file() and (FORMATS / "debian-faq.pdf").is_file()):
        pytest.skip(f"evaluation documents not found under {EVAL}")
    return RealDocs(tmp_path_factory.mktemp("real"))


def test_real_documents_are_ingested(real_docs: RealDocs) -> None:
    report = real_docs.ingest.json()
    assert report["failed"] == [] and report["skipped"] == []
    assert report["added"] == len(list(real_docs.docs.iterdir()))


@pytest.mark.parametrize("index", range(len(DEBIAN_QUESTIONS)), ids=DEBIAN_QUESTIONS)
def test_same_answer_from_html_pdf_and_text(real_docs: RealDocs, index: int) -> None:
    qrel = real_docs.qrels[index]
    results = real_docs.results[index]
    needles = [norm(n) for n in qrel["needles"]]
    relevant = {
        Path(r["source"]).name for r in results if any(n in norm(r["text"]) for n in needles)
    }
    expected = {qrel["source"], *real_docs.versions}
    assert relevant >= expected, f"missing {expected - relevant}:\n{describe(results)}"


def test_r_faq_answer_cites_its_page(real_docs: RealDocs) -> None:
    pages = pdf_pages_containing(FORMATS / "R-FAQ.pdf", R_ANSWER)
    assert len(pages) == 1, pages
    results = real_docs.results[len(DEBIAN_QUESTIONS)]
    hits = [
        r
        for r in results
        if Path(r["source"]).name == "R-FAQ.pdf" and norm(R_ANSWER) in norm(r["text"])
    ]
    assert hits, describe(results)
    assert hits[0]["page"] == pages[0], describe(hits)
