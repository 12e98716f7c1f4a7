"""`ragapp eval` end to end: the real CLI, models and store on a small dataset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_DOCS, run_cli
from tests.facts import FACTS


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """sample_docs with the 16 facts as questions; each needle is the fact's answer."""
    root = tmp_path / "harbourlight"
    shutil.copytree(SAMPLE_DOCS, root / "docs")
    lines = [
        json.dumps({"id": f"f{i}", "question": q, "source": f, "needles": [a], "answer": a})
        for i, (q, a, f, _) in enumerate(FACTS)
    ]
    (root / "qrels.jsonl").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.e2e
def test_eval_command_on_a_dataset(dataset: Path) -> None:
    res = run_cli("eval", str(dataset), "--json")
    assert res.code == 0, res.stderr
    report = res.json()
    assert set(report) == {
        *("n", "recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10"),
        *("retrieve_ms_p50", "retrieve_ms_p95"),
    }
    off_topic = dataset / "off-topic.jsonl"
    off_topic.write_text(
        '{"question": "Who won the FIFA World Cup in 2014?"}\n'
        '{"question": "How do I reverse a linked list in Java?"}\n'
    )
    refusal = run_cli("eval", str(dataset), "--unanswerable", str(off_topic), "--json").json()
    assert refusal["refusal"]["n_unanswerable"] == 2
    assert refusal["refusal"]["min_score"] == 0.275  # the configured threshold
    assert refusal["refusal"]["unanswerable_refused"] == 1.0
    assert refusal["refusal"]["answerable_refused"] == 0.0
    assert report["n"] == len(FACTS)
    assert report["recall@10"] == 1.0  # every fact is retrievable (see test_e2e_cli)
    assert 0 < report["mrr@10"] <= report["recall@10"]
    # the throw-away collection left nothing behind in the user's store
    assert run_cli("status", "--json").json()["chunks"] == 0


@pytest.mark.e2e
def test_eval_answers_into_a_named_collection(dataset: Path) -> None:
    qrels = dataset / "qrels.jsonl"
    qrels.write_text("".join(qrels.read_text().splitlines(keepends=True)[:2]))
    res = run_cli("--collection", "harbour", "eval", str(dataset), "--answers", "--json")
    assert res.code == 0, res.stderr
    answers = res.json()["answers"]
    assert set(answers) == {
        *("source_hit", "f1", "refusal_rate", "ttft_ms_p50"),
        *("citation_rate", "model_citation_rate"),
    }
    assert answers["refusal_rate"] == 0.0 and answers["ttft_ms_p50"] > 0
    # The gold file is among the cited sources for at least one of the two (which ones the
    # 135M model cites depends on its wording; the metric itself is checked by hand above).
    assert answers["source_hit"] in (0.5, 1.0)
    status = run_cli("--collection", "harbour", "status", "--json").json()
    assert status["documents"] == 5  # --collection given: the ingested dataset is kept
