"""`ragapp eval DATASET_DIR`: measure retrieval (and answers) on a dataset of real questions."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ragapp.app import RagApp
from ragapp.cli.common import EXIT_PARTIAL, JsonOpt, _print_json, _settings, err, out
from ragapp.evaluate import evaluate, load_dataset, load_questions


def eval_command(
    ctx: typer.Context,
    dataset: Annotated[
        Path, typer.Argument(help="Folder with docs/ and qrels.jsonl (see ../shared/eval).")
    ],
    k: Annotated[
        int,
        typer.Option(
            "-k", "--top-k", metavar="N", min=10, max=100, help="Results retrieved per question."
        ),
    ] = 10,
    answers: Annotated[
        bool,
        typer.Option(
            "--answers", metavar="", help="Also generate answers: source hits, F1, refusals, TTFT."
        ),
    ] = False,
    unanswerable: Annotated[
        Path | None,
        typer.Option(
            "--unanswerable",
            help="JSONL of questions the documents don't answer: report how many the "
            "min_score threshold refuses, and how many answerable ones it wrongly refuses.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Ingest DATASET/docs into a throw-away collection (or --collection, kept) and report
    recall@1/5/10, MRR@10, nDCG@10 and retrieval latency.

    Example:  ragapp eval ../shared/eval/debian-faq --json
    """
    from ingest.pipeline import ingest_paths

    docs, questions = load_dataset(dataset)
    off_topic = load_questions(unanswerable) if unanswerable else []
    keep = ctx.find_root().obj["overrides"]["collection"] is not None or bool(
        os.environ.get("RAGAPP_COLLECTION")
    )
    scratch = None if keep else Path(tempfile.mkdtemp(prefix="ragapp-eval-"))
    overrides: dict[str, Any] = {}
    if scratch is not None:
        overrides = {"data_dir": scratch, "collection": f"eval-{uuid.uuid4().hex[:8]}"}
    app = RagApp(_settings(ctx, **overrides))
    try:
        with _progress(json_out) as progress:
            task = progress.add_task("Ingesting", total=None)
            report = ingest_paths([docs], app.collection)
            if report.failed:
                err.print(f"[yellow]{len(report.failed)} dataset files failed to ingest[/]")
            progress.update(task, description="Asking", total=len(questions), completed=0)
            ask = (lambda q: app.ask(q)) if answers else None
            metrics = evaluate(
                questions,
                lambda q, n: app.retrieve(q, n),
                k,
                ask,
                lambda i: progress.update(task, completed=i),
                off_topic,
                app.settings.min_score,
                app.settings.top_k,
                app.settings.min_score_margin,
            )
    finally:
        if scratch is not None:
            if app.settings.chroma_url:
                app.collection.reset()  # a server collection would otherwise outlive the run
            shutil.rmtree(scratch, ignore_errors=True)
    if json_out:
        _print_json(metrics)
    else:
        _print_table(dataset, metrics)
    if report.failed:
        raise typer.Exit(EXIT_PARTIAL)


def _progress(json_out: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=json_out or not err.is_terminal,
    )


def _print_table(dataset: Path, m: dict[str, Any]) -> None:
    table = Table(title=f"{dataset} — {m['n']} questions", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10"):
        table.add_row(key, f"{m[key]:.3f}")
    table.add_row(
        "retrieve p50 / p95", f"{m['retrieve_ms_p50']:.1f} / {m['retrieve_ms_p95']:.1f} ms"
    )
    for key, value in m.get("answers", {}).items():
        table.add_row(key, f"{value:.1f} ms" if key.endswith("_ms_p50") else f"{value:.3f}")
    if "refusal" in m:
        r = m["refusal"]
        table.add_row(
            f"refused at min_score {r['min_score']:.3f}, margin {r['min_score_margin']:.3f}",
            f"{r['unanswerable_refused']:.1%} of {r['n_unanswerable']} unanswerable, "
            f"{r['answerable_refused']:.1%} of answerable",
        )
        table.add_row("best min_score (Youden's J)", f"{r['best_min_score']:.3f}")
    out.print(table)
