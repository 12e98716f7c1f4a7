"""The `ragapp` command line: thin verbs over RagApp and the ingest pipeline.

JSON goes to stdout only with --json; people get Rich output; errors are one line on stderr.
Ingest verbs live in cli_ingest.py, `eval` in cli_eval.py; shared plumbing in cli_common.py.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.table import Table
from rich.text import Text

from ragapp import cli_eval, cli_ingest, cli_serve  # noqa: F401  (register eval; ingest, sources, remove; serve)
from ragapp.app import RagApp
from ragapp.cli_common import (
    EXIT_ERROR,
    EXIT_USAGE,
    JsonOpt,
    _app,
    _print_json,
    _settings,
    cli,
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


def _search_filter(app: RagApp, paths: list[str] | None, types: list[str] | None) -> dict | None:
    """The metadata filter for --path / --type; a clear error when no ingested file matches."""
    from ragapp.cli_ingest import open_ledger
    from ragapp.retriever import file_filter

    ingested = open_ledger(app.settings).entries() if paths else []
    return file_filter(ingested, paths, types, Path.cwd())


# --- retrieve ----------------------------------------------------------------------------------------


def _where(src: Source) -> str:
    return src.source + (f" (page {src.page})" if src.page is not None else "")


@cli.command()
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
        raise click.UsageError("give either a QUESTION or --batch FILE")
    app = _app(ctx)
    where = _search_filter(app, path, file_type)
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


@cli.command()
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
    where = _search_filter(app, path, file_type)
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


@cli.command()
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
    from ragapp.chain import history_messages

    app = _app(ctx, llm_backend=llm, llm_model=model)
    where = _search_filter(app, path, file_type)
    app.retriever(k)  # fail now on an empty collection, not after the first question
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


# --- status / reset -------------------------------------------------------------------------------------


@cli.command()
def status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """What the collection holds and which models and store are in use.

    Example:  ragapp status --json
    """
    from ragapp.cli_ingest import open_ledger

    app = _app(ctx)
    store = app.store
    data = {
        "documents": len(open_ledger(app.settings).entries()),
        "chunks": store.count(),
        "embedding_model": app.embedding_spec.name,
        "llm": app.llm_label,
        "store": app.settings.chroma_url or str(app.settings.store_path),
    }
    if json_out:
        _print_json(data)
        return
    table = Table(show_header=False, box=None)
    table.add_row("collection", app.settings.collection)
    for key, value in data.items():
        table.add_row(key.replace("_", " "), str(value))
    out.print(table)


@cli.command()
def reset(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete the collection and everything ingested into it (your files are not touched).

    Example:  ragapp reset --collection scratch --yes
    """
    settings = _settings(ctx)
    if not yes and not typer.confirm(f"Delete collection {settings.collection!r}?", err=True):
        raise typer.Exit(EXIT_ERROR)
    from ragapp.cli_ingest import open_ledger

    app = RagApp(settings)
    dropped = app.store.drop()
    open_ledger(settings).clear()
    app.drop_keyword_index()
    err.print(f"collection {settings.collection!r} " + ("deleted" if dropped else "did not exist"))


# --- entry point ----------------------------------------------------------------------------------------


_STATUS_STYLE = {"ok": "green", "info": "dim", "warn": "yellow", "error": "red"}


@cli.command()
def doctor(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """What runs where: llama.cpp build and GPU offload, the model and its prompt format,
    context size, embedding model, store. Warns about each problem found.

    Example:  ragapp doctor
    """
    from ragapp.doctor import diagnose

    diagnosis = diagnose(_settings(ctx))
    if json_out:
        _print_json(diagnosis.to_json())
    else:
        table = Table(show_header=False, box=None, padding=(0, 1))
        for check in diagnosis.checks:
            style = _STATUS_STYLE.get(check.status, "")
            table.add_row(f"[{style}]{check.status:>5}[/]", check.name, Text(check.detail))
        out.print(table)
    if diagnosis.failed:
        raise typer.Exit(EXIT_ERROR)


@cli.command()
def models(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """The local models ragapp can use: the bundled one, the .gguf files in models_dir, and
    the models of the Ollama / OpenAI-compatible server when one is configured or running.

    Example:  ragapp models   (then: RAGAPP_LLM_MODEL=/path/to/model.gguf ragapp ask ...)
    """
    from ragapp.doctor import list_models

    settings = _settings(ctx)
    found = list_models(settings)
    if json_out:
        _print_json({"models": found, "models_dir": str(settings.models_dir)})
        return
    table = Table(title=f"models_dir: {settings.models_dir}", title_justify="left")
    for column in ("", "name", "family", "size", "path"):
        table.add_column(column)
    for m in found:
        family = m.get("template_family") or m.get("error") or "unknown"
        table.add_row(
            "*" if m["selected"] else "", m["name"], family, f"{m['size_mb']} MB", m["path"]
        )
    out.print(table)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: map errors to exit codes and one-line messages."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    started = time.perf_counter()
    try:
        code = cli(args=args, prog_name="ragapp", standalone_mode=False)
    except click.exceptions.Abort:
        err.print("aborted")
        code = 130
    except click.ClickException as exc:
        exc.show()
        code = EXIT_USAGE if isinstance(exc, click.UsageError) else EXIT_ERROR
    except RagappError as exc:
        if debug:
            err.print_exception()
        err.print(f"[red]error:[/] {exc}", soft_wrap=True)
        code = EXIT_ERROR
    except KeyboardInterrupt:
        err.print("interrupted")
        code = 130
    except Exception as exc:
        if debug:
            err.print_exception()
        msg = str(exc).splitlines()[0] if str(exc) else ""
        err.print(
            f"[red]error:[/] unexpected {type(exc).__name__}: {msg} (run with --debug for details)"
        )
        code = EXIT_ERROR
    logging.getLogger(__name__).debug("ran in %.2fs", time.perf_counter() - started)
    sys.exit(code if isinstance(code, int) else 0)
