"""Question verbs: `retrieve` (no LLM), `ask`, `chat`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from ragapp.app import RagApp
from ragapp.cli.common import (
    JsonOpt,
    _app,
    _print_json,
    err,
    out,
)
from ragapp.errors import RagappError
from ragapp.settings import LLMBackend
from ragapp.types import Source

KOpt = Annotated[
    int | None,
    typer.Option(
        "-k", "--top-k", min=1, max=100, help="Chunks to retrieve [default: top_k setting]."
    ),
]


PathFilterOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--path",
        help="Only search files matching this glob (a name like '*.pdf', or a path like "
        "'reports/*'); repeatable.",
    ),
]
TypeFilterOpt = Annotated[
    list[str] | None,
    typer.Option("--type", help="Only search files of this type (pdf, md, docx, ...); repeatable."),
]


# --- retrieve ----------------------------------------------------------------------------------------


def _where(src: Source) -> str:
    return src.source + (f" (page {src.page})" if src.page is not None else "")


def retrieve(
    ctx: typer.Context,
    question: Annotated[str | None, typer.Argument(help="The question to search for.")] = None,
    k: KOpt = None,
    json_out: JsonOpt = False,
    path: PathFilterOpt = None,
    file_type: TypeFilterOpt = None,
    batch: Annotated[
        Path | None,
        typer.Option(
            "--batch", help="JSONL file with a 'question' per line; writes JSONL results."
        ),
    ] = None,
) -> None:
    """Show the chunks a question retrieves, best first (no LLM).

    Example:  ragapp retrieve "membership fee" -k 3 --type pdf --path "reports/*"
    """
    if (question is None) == (batch is None):
        raise typer.BadParameter("give either a QUESTION or --batch FILE")
    app = _app(ctx)
    where = app.collection.search_filter(path, file_type)
    if batch is not None:
        _retrieve_batch(app, batch, k, where)
        return
    assert question is not None
    results = app.retrieve(question, k, where)
    if json_out:
        _print_json({"results": [s.to_json() for s in results]})
        return
    for n, src in enumerate(results, start=1):
        out.print(f"[bold][{n}][/] {_where(src)}  [dim]score {src.score:.3f}[/]")
        out.print(Text(src.text.strip()[:500]), style="dim")
        out.print()


def _retrieve_batch(app: RagApp, batch: Path, k: int | None, where: dict | None) -> None:
    try:
        lines = batch.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise RagappError(f"cannot read {batch}: {exc.strerror or exc}") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            question = json.loads(line)["question"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise RagappError(
                f"{batch}:{lineno}: expected a JSON object with a 'question' field"
            ) from None
        results = app.retrieve(str(question), k, where)
        _print_json({"question": question, "results": [s.to_json() for s in results]})


# --- ask / chat ----------------------------------------------------------------------------------------

LLMOpt = Annotated[
    LLMBackend | None, typer.Option("--llm", help="LLM backend [env: RAGAPP_LLM_BACKEND].")
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="GGUF path or model name [env: RAGAPP_LLM_MODEL].")
]


def _print_sources(sources: list[Source]) -> None:
    if not sources:
        return
    out.print("\n[bold]Sources[/]")
    for n, src in enumerate(sources, start=1):
        section = f" — {src.section}" if src.section else ""
        out.print(f"  [bold][{n}][/] {_where(src)}{section}  [dim]score {src.score:.2f}[/]")


def _stream_token(token: str) -> None:
    out.file.write(token)
    out.file.flush()


def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="Your question.")],
    k: KOpt = None,
    json_out: JsonOpt = False,
    llm: LLMOpt = None,
    model: ModelOpt = None,
    path: PathFilterOpt = None,
    file_type: TypeFilterOpt = None,
) -> None:
    """Answer a question from your documents, citing file and page.

    Example:  ragapp ask "Who chairs the board?"
    """
    app = _app(ctx, llm_backend=llm, llm_model=model)
    where = app.collection.search_filter(path, file_type)
    if json_out:
        _print_json(app.ask(question, k, where=where).to_json())
        return
    answer = app.ask(question, k, on_token=_stream_token, where=where)
    out.print()
    _print_sources(answer.sources)
    t = answer.timings
    if not answer.sources:
        stats = (
            f"no passage scored above min_score {app.settings.min_score:g}; the LLM was not asked"
        )
    else:
        stats = (
            f"first token {t.ttft_ms:.0f} ms · {t.completion_tokens} tokens at "
            f"{t.tokens_per_s:.1f} tok/s · {app.llm_label}"
        )
    err.print(f"[dim]retrieve {t.retrieve_ms:.0f} ms · {stats}[/]", soft_wrap=True)


def chat(
    ctx: typer.Context,
    k: KOpt = None,
    llm: LLMOpt = None,
    model: ModelOpt = None,
    path: PathFilterOpt = None,
    file_type: TypeFilterOpt = None,
) -> None:
    """Talk with your documents; earlier turns stay in the conversation. Ctrl-D or /exit ends it.

    Example:  ragapp chat
    """
    from ragapp.query.chain import history_messages

    app = _app(ctx, llm_backend=llm, llm_model=model)
    where = app.collection.search_filter(path, file_type)
    app.collection.require_chunks()  # fail now on an empty collection, not after a question
    err.print(f"[dim]{app.llm_label} · collection {app.settings.collection!r} · /exit to quit[/]")
    history: list[tuple[str, str]] = []
    while True:
        try:
            question = out.input("[bold green]you>[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            out.print()
            return
        if not question:
            continue
        if question in ("/exit", "/quit"):
            return
        messages = history_messages(history, app.settings.history_turns)
        out.print("[bold blue]ragapp>[/] ", end="")
        answer = app.ask(question, k, history=messages, on_token=_stream_token, where=where)
        out.print()
        _print_sources(answer.sources)
        out.print()
        history.append((question, answer.text))
