"""`ragapp eval`: retrieval (and optionally answer) quality on a dataset of real questions.

A dataset is a folder with ``docs/`` and ``qrels.jsonl`` (one question per line:
``{"id", "question", "source", "needles", "answer"}``), the format of ../shared/eval.

Relevance rule (exactly the dataset README's): a retrieved chunk is relevant when its file
name equals ``source`` and its text, lower-cased with white-space runs folded, contains a
needle normalised the same way. Context budget: at cut-off k only the first k x 1,000
characters of the results, read in rank order, count; a needle must lie in counted text.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import string
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragapp.errors import ConfigError
from ragapp.query.citations import cited_numbers
from ragapp.query.retriever import admitted
from ragapp.types import Answer, Source

BUDGET_PER_RESULT = 1000
CUTOFFS = (1, 5, 10)


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    source: str
    needles: tuple[str, ...]
    answer: str


def load_dataset(folder: Path) -> tuple[Path, list[Question]]:
    """The dataset's docs folder and questions; a clear error for anything malformed."""
    docs, qrels = folder / "docs", folder / "qrels.jsonl"
    if not docs.is_dir() or not qrels.is_file():
        raise ConfigError(f"{folder} is not an eval dataset: it needs docs/ and qrels.jsonl")
    questions = []
    for lineno, line in enumerate(qrels.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            questions.append(
                Question(
                    id=str(row.get("id", lineno)),
                    question=str(row["question"]),
                    source=str(row["source"]),
                    needles=tuple(str(n) for n in row["needles"]),
                    answer=str(row.get("answer", "")),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{qrels}:{lineno}: expected an object with question, source and needles ({exc})"
            ) from None
    if not questions:
        raise ConfigError(f"{qrels} has no questions")
    return docs, questions


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def relevant_ranks(q: Question, results: Sequence[Source], k: int) -> list[int]:
    """1-based ranks, within the top k and the k x 1,000-character budget, of relevant results."""
    budget, used, ranks = k * BUDGET_PER_RESULT, 0, []
    needles = [normalise(n) for n in q.needles]
    for rank, r in enumerate(results[:k], start=1):
        if used >= budget:
            break
        counted = r.text[: budget - used]
        used += len(r.text)
        if Path(r.source).name == q.source and any(n in normalise(counted) for n in needles):
            ranks.append(rank)
    return ranks


def retrieval_metrics(pairs: Iterable[tuple[Question, Sequence[Source]]]) -> dict[str, float]:
    """recall@1/5/10, MRR@10 and nDCG@10 (binary gains; the ideal ranking puts the relevant
    results that were found first, as graded judgements of every chunk don't exist)."""
    rows = list(pairs)
    n = len(rows)
    out: dict[str, float] = {"n": n}
    for k in CUTOFFS:
        out[f"recall@{k}"] = sum(bool(relevant_ranks(q, r, k)) for q, r in rows) / n
    mrr = ndcg = 0.0
    for q, r in rows:
        ranks = relevant_ranks(q, r, 10)
        if ranks:
            mrr += 1 / ranks[0]
            dcg = sum(1 / math.log2(rank + 1) for rank in ranks)
            ideal = sum(1 / math.log2(i + 2) for i in range(len(ranks)))
            ndcg += dcg / ideal
    out["mrr@10"] = mrr / n
    out["ndcg@10"] = ndcg / n
    return out


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[index]


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD's token F1: lower-case, strip punctuation and articles, split on white space."""

    def tokens(text: str) -> list[str]:
        text = "".join(c for c in text.lower() if c not in set(string.punctuation))
        return re.sub(r"\b(a|an|the)\b", " ", text).split()

    pred, ref = tokens(prediction), tokens(gold)
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref or not common:
        return float(not pred and not ref)
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def cited(answer: Answer) -> list[Source]:
    """The sources an answer cites by [n]; all of them when it cites none explicitly."""
    numbers = cited_numbers(answer.text, len(answer.sources))
    chosen = [s for i, s in enumerate(answer.sources, start=1) if i in numbers]
    return chosen or list(answer.sources)


def load_questions(path: Path) -> list[str]:
    """A JSONL file with a ``question`` per line (other fields ignored)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        return [str(json.loads(line)["question"]) for line in lines if line.strip()]
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ConfigError(f"{path}: every line must be a JSON object with a 'question'") from None


Hits = Sequence[tuple[float, int | None]]  # a question's passages: (cosine score, BM25 rank)


def refusal_calibration(
    answerable: Sequence[Hits],
    unanswerable: Sequence[Hits],
    min_score: float,
    margin: float = 0.0,
) -> dict[str, Any]:
    """How the refusal rule (``admitted``) splits questions, given each one's passages: the
    share of unanswerable ones refused and of answerable ones wrongly refused, at the
    configured ``min_score`` and ``margin``; over a sweep of thresholds (no margin), with
    ``best_min_score`` maximising the difference (Youden's J); and over a sweep of margins
    at the configured threshold."""

    def split(t: float, m: float) -> dict[str, float]:
        def refused(questions: Sequence[Hits]) -> float:
            return sum(not admitted(hits, t, m) for hits in questions) / len(questions)

        return {
            "min_score": round(t, 3),
            "min_score_margin": round(m, 3),
            "unanswerable_refused": refused(unanswerable),
            "answerable_refused": refused(answerable),
        }

    sweep = [split(i / 40, 0.0) for i in range(0, 25)]  # 0.000 .. 0.600 in steps of 0.025
    best = max(sweep, key=lambda r: r["unanswerable_refused"] - r["answerable_refused"])
    return {
        **split(min_score, margin),
        "n_unanswerable": len(unanswerable),
        "best_min_score": best["min_score"],
        "sweep": sweep,
        "margin_sweep": [split(min_score, i / 200) for i in range(0, 11)],  # 0 .. 0.05
    }


def evaluate(
    questions: Sequence[Question],
    retrieve: Callable[[str, int], list[Source]],
    k: int = 10,
    ask: Callable[[str], Answer] | None = None,
    progress: Callable[[int], None] | None = None,
    unanswerable: Sequence[str] = (),
    min_score: float = 0.0,
    answer_k: int = 4,
    min_score_margin: float = 0.0,
) -> dict[str, Any]:
    """Run every question; the CONTRACT's JSON shape (plus ``answers`` when ``ask`` is given,
    and ``refusal`` when unanswerable questions are)."""
    pairs, latencies = [], []
    hits = f1s = refused = citing = model_citing = 0.0
    ttfts: list[float] = []
    for i, q in enumerate(questions, start=1):
        started = time.perf_counter()
        results = retrieve(q.question, max(k, 10))
        latencies.append((time.perf_counter() - started) * 1000)
        pairs.append((q, results))
        if ask is not None:
            answer = ask(q.question)
            refused += answer.refused
            hits += any(Path(s.source).name == q.source for s in cited(answer))
            f1s += token_f1(answer.text, q.answer)
            if not answer.refused:
                ttfts.append(answer.timings.ttft_ms)
                cites = bool(cited_numbers(answer.text, len(answer.sources)))
                citing += cites
                model_citing += cites and not answer.citations_added
        if progress is not None:
            progress(i)
    report: dict[str, Any] = retrieval_metrics(pairs)
    report["retrieve_ms_p50"] = statistics.median(latencies)
    report["retrieve_ms_p95"] = percentile(latencies, 95)
    if unanswerable:
        # A question is refused when the rule admits none of the answer_k passages it
        # would be answered from (the same rule as the chain's: ragapp.query.retriever).
        def passages(results: Sequence[Source]) -> Hits:
            return [(s.score, s.keyword_rank) for s in results[:answer_k]]

        report["refusal"] = refusal_calibration(
            [passages(r) for _, r in pairs],
            [passages(retrieve(q, answer_k)) for q in unanswerable],
            min_score,
            min_score_margin,
        )
    if ask is not None:
        n = len(questions)
        report["answers"] = {
            "source_hit": hits / n,
            "f1": f1s / n,
            "refusal_rate": refused / n,
            "ttft_ms_p50": statistics.median(ttfts) if ttfts else 0.0,
            # shares of the non-refused answers with at least one valid [n] citation: in the
            # final answer, and written by the model itself (before ragapp's attribution)
            "citation_rate": citing / len(ttfts) if ttfts else 0.0,
            "model_citation_rate": model_citing / len(ttfts) if ttfts else 0.0,
        }
    return report
