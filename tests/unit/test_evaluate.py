"""`ragapp eval`: the dataset README's relevance rule and context budget, the metrics, and
the command end to end on a small dataset built from sample_docs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ragapp.errors import ConfigError
from ragapp.evaluate import (
    Question,
    evaluate,
    load_dataset,
    relevant_ranks,
    retrieval_metrics,
    token_f1,
)
from ragapp.types import Source

Q = Question("q1", "What is the fee?", "a.md", ("The fee is  THIRTY pounds",), "thirty pounds")


def src(name: str, text: str) -> Source:
    return Source(source=f"/docs/{name}", page=None, score=0.5, text=text)


def test_relevance_needs_the_file_and_a_normalised_needle() -> None:
    hit = src("a.md", "Intro.\nthe fee   is thirty\tpounds a year")
    assert relevant_ranks(Q, [hit], 1) == [1]
    assert relevant_ranks(Q, [src("b.md", hit.text)], 1) == []
    assert relevant_ranks(Q, [src("a.md", "the fee is forty pounds")], 1) == []


def test_context_budget_counts_only_the_first_k_thousand_characters() -> None:
    needle_at = "x" * 990 + " the fee is thirty pounds"
    # k=1: the needle starts before the 1,000-character line but ends after it: not counted.
    assert relevant_ranks(Q, [src("a.md", needle_at)], 1) == []
    assert relevant_ranks(Q, [src("a.md", needle_at)], 2) == [1]
    # a long first result pushes the second past the budget: it counts not at all.
    long_first = src("b.md", "y" * 5000)
    assert relevant_ranks(Q, [long_first, src("a.md", "the fee is thirty pounds")], 5) == []
    assert relevant_ranks(Q, [long_first, src("a.md", "the fee is thirty pounds")], 6) == [2]


def test_metrics() -> None:
    rel, other = src("a.md", "The fee is thirty pounds."), src("c.md", "nothing")
    rows = [(Q, [rel, rel]), (Q, [other, other, rel]), (Q, [other] * 10)]
    m = retrieval_metrics(rows)
    assert m["recall@1"] == pytest.approx(1 / 3)
    assert m["recall@5"] == m["recall@10"] == pytest.approx(2 / 3)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 3) / 3)
    # nDCG: [rel, rel] is ideal (1.0); [other, other, rel] is 1/log2(4) / 1.
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4)) / 3)


def test_token_f1_is_squad_style() -> None:
    assert token_f1("The fee is £30.", "fee is £30") == 1.0
    assert token_f1("thirty", "thirty pounds") == pytest.approx(2 / 3)
    assert token_f1("", "x") == 0.0


def test_evaluate_reports_latency_and_answers() -> None:
    from ragapp.types import Answer, Timings

    answer = Answer("It is thirty pounds [2].", [src("b.md", ""), src("a.md", "")])
    answer.timings = Timings(ttft_ms=120.0)
    report = evaluate(
        [Q], lambda q, n: [src("a.md", "the fee is thirty pounds")], 10, lambda q: answer
    )
    assert report["recall@1"] == 1.0 and report["retrieve_ms_p95"] >= report["retrieve_ms_p50"] >= 0
    assert report["answers"] == {
        "source_hit": 1.0,  # [2] cites a.md
        "f1": pytest.approx(token_f1(answer.text, Q.answer)),
        "refusal_rate": 0.0,
        "ttft_ms_p50": 120.0,
        "citation_rate": 1.0,
        "model_citation_rate": 1.0,
    }


def test_refusal_calibration_sweeps_thresholds() -> None:
    from ragapp.evaluate import refusal_calibration

    def one(score: float, rank: int | None = None) -> list[tuple[float, int | None]]:
        return [(score, rank)]

    r = refusal_calibration(
        [one(0.6), one(0.5), one(0.3), one(0.2)], [one(0.1), one(0.22), one(0.35)], 0.25
    )
    assert (r["unanswerable_refused"], r["answerable_refused"]) == (pytest.approx(2 / 3), 0.25)
    assert r["n_unanswerable"] == 3
    by_t = {row["min_score"]: row for row in r["sweep"]}
    assert by_t[0.0]["unanswerable_refused"] == 0.0 and by_t[0.6]["answerable_refused"] == 0.75
    best = max(r["sweep"], key=lambda x: x["unanswerable_refused"] - x["answerable_refused"])
    assert r["best_min_score"] == best["min_score"]


def test_a_near_miss_is_admitted_only_when_bm25_ranks_it_first() -> None:
    from ragapp.evaluate import refusal_calibration
    from ragapp.query.retriever import admitted

    assert admitted([(0.30, 3), (0.20, 1)], 0.275, 0.02) == [0]  # above the threshold
    assert admitted([(0.26, 1), (0.20, 2)], 0.275, 0.02) == [0]  # a near miss BM25 agrees on
    assert admitted([(0.26, 2), (0.20, 1)], 0.275, 0.02) == []  # BM25 prefers another
    assert admitted([(0.25, 1)], 0.275, 0.02) == []  # too far below
    assert admitted([(0.27, 1)], 0.275, 0.0) == []  # no margin: the plain threshold
    r = refusal_calibration([[(0.27, 1)], [(0.5, 1)]], [[(0.26, 1)], [(0.1, 1)]], 0.275, 0.02)
    assert (r["answerable_refused"], r["unanswerable_refused"]) == (0.0, 0.5)
    by_m = {row["min_score_margin"]: row for row in r["margin_sweep"]}
    assert by_m[0.0]["answerable_refused"] == 0.5 and by_m[0.02]["unanswerable_refused"] == 0.5


def test_malformed_datasets_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs docs/ and qrels.jsonl"):
        load_dataset(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "qrels.jsonl").write_text('{"question": "q"}\n')
    with pytest.raises(ConfigError, match=r"qrels.jsonl:1: expected an object"):
        load_dataset(tmp_path)
