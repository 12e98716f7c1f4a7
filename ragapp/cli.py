"""The `ragapp` command line: thin verbs over RagApp and the ingest pipeline.

JSON goes to stdout only with --json; people get Rich output; errors are one line on stderr.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import ragapp  # noqa: F401  (offline env vars first)

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import click  # noqa: E402
import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import (  # noqa: E402
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table  # noqa: E402
from rich.text import Text  # noqa: E402

from ragapp.app import RagApp  # noqa: E402
from ragapp.errors import RagappError  # noqa: E402
from ragapp.settings import LLMBackend, Settings, load_settings  # noqa: E402
from ragapp.types import Source  # noqa: E402

EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 1, 2, 3

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

cli = typer.Typer(
    name="ragapp",
    help="Private, fully local question answering over your own documents.\n\n"
    "Example:  ragapp ingest ~/Documents/notes && ragapp ask 'When is the board meeting?'",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON to stdout (for scripts).")]
KOpt = Annotated[
    int | None,
    typer.Option(
        "-k", "--top-k", min=1, max=100, help="Chunks to retrieve [default: top_k setting]."
    ),
]


@cli.callback()
def _global(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Where the store and logs live [env: RAGAPP_DATA_DIR]."),
    ] = None,
    collection: Annotated[
        str | None, typer.Option("--collection", help="Collection to use [env: RAGAPP_COLLECTION].")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Settings file (TOML) [env: RAGAPP_CONFIG].")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("chromadb", "sentence_transformers", "httpx", "unstructured", "pdfminer"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.ERROR)
    ctx.obj = {"config": config, "overrides": {"data_dir": data_dir, "collection": collection}}


def _settings(ctx: typer.Context, **overrides: Any) -> Settings:
    obj = ctx.find_root().obj
    return load_settings(obj["config"], **obj["overrides"], **overrides)


def _app(ctx: typer.Context, **overrides: Any) -> RagApp:
    return RagApp(_settings(ctx, **overrides))


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


# --- ingest -----------------------------------------------------------------------------------------


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} files/s" if speed else "- files/s", style="progress.data.speed")


class _RichIngestProgress:
    """Files done / total, files per second, chunks written, ETA."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: Any = None
        self.chunks = 0

    def start(self, total_files: int) -> None:
        self.task = self.progress.add_task("Ingesting", total=total_files, chunks=0)

    def file_done(self, path: str, status: str, chunks: int) -> None:
        self.chunks += chunks
        self.progress.update(self.task, advance=1, chunks=self.chunks)
        if status == "failed":
            self.progress.console.print(f"[yellow]failed[/]  {path}")


@cli.command()
def ingest(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest.")],
    json_out: JsonOpt = False,
    keep_deleted: Annotated[
        bool, typer.Option("--keep-deleted", help="Keep chunks of files deleted from the folders.")
    ] = False,
) -> None:
    """Make the collection mirror the given files and folders (md, txt, rst, html, pdf, docx).

    Unchanged files are skipped, changed ones replaced, deleted ones removed. Exit code 3
    when some files failed (they are listed) and the rest were ingested.

    Example:  ragapp ingest sample_docs/
    """
    from ingest.pipeline import ingest_paths

    app = _app(ctx)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TextColumn("{task.fields[chunks]} chunks"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=json_out,
        disable=json_out or not err.is_terminal,
    ) as progress:
        if not json_out:
            err.print(f"Loading embedding model {app.embedding_spec.name}…")
        store = app.store
        report = ingest_paths(
            paths, store, app.settings, _RichIngestProgress(progress), keep_deleted
        )

    if json_out:
        _print_json(report.to_json())
    else:
        summary = (
            f"{report.added} added, {report.updated} updated, {report.removed} removed, "
            f"{report.unchanged} unchanged, {len(report.failed)} failed — "
            f"{report.chunks} chunks written in {report.seconds:.1f}s "
            f"(collection {app.settings.collection!r}: {store.count()} chunks)"
        )
        out.print(summary)
        _print_problems("Failed", report.failed, "red")
        _print_problems("Skipped", report.skipped, "dim")
    if report.failed:
        raise typer.Exit(EXIT_PARTIAL)


def _print_problems(title: str, rows: list[tuple[str, str]], style: str) -> None:
    if not rows:
        return
    table = Table(title=f"{title} ({len(rows)})", title_justify="left", style=style)
    table.add_column("file")
    table.add_column("reason")
    for path, reason in rows:
        table.add_row(path, reason)
    err.print(table)


# --- retrieve ----------------------------------------------------------------------------------------


def _where(src: Source) -> str:
    return src.source + (f" (page {src.page})" if src.page is not None else "")


@cli.command()
def retrieve(
    ctx: typer.Context,
    question: Annotated[str | None, typer.Argument(help="The question to search for.")] = None,
    k: KOpt = None,
    json_out: JsonOpt = False,
    batch: Annotated[
        Path | None,
        typer.Option(
            "--batch", help="JSONL file with a 'question' per line; writes JSONL results."
        ),
    ] = None,
) -> None:
    """Show the chunks a question retrieves, best first (no LLM).

    Example:  ragapp retrieve "membership fee" -k 3
    """
    if (question is None) == (batch is None):
        raise click.UsageError("give either a QUESTION or --batch FILE")
    app = _app(ctx)
    if batch is not None:
        _retrieve_batch(app, batch, k)
        return
    assert question is not None
    results = app.retrieve(question, k)
    if json_out:
        _print_json({"results": [s.to_json() for s in results]})
        return
    for n, src in enumerate(results, start=1):
        out.print(f"[bold][{n}][/] {_where(src)}  [dim]score {src.score:.3f}[/]")
        out.print(Text(src.text.strip()[:500]), style="dim")
        out.print()


def _retrieve_batch(app: RagApp, batch: Path, k: int | None) -> None:
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
        results = app.retrieve(str(question), k)
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
) -> None:
    """Answer a question from your documents, citing file and page.

    Example:  ragapp ask "Who chairs the board?"
    """
    app = _app(ctx, llm_backend=llm, llm_model=model)
    if json_out:
        _print_json(app.ask(question, k).to_json())
        return
    answer = app.ask(question, k, on_token=_stream_token)
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
) -> None:
    """Talk with your documents; earlier turns stay in the conversation. Ctrl-D or /exit ends it.

    Example:  ragapp chat
    """
    from ragapp.chain import history_messages

    app = _app(ctx, llm_backend=llm, llm_model=model)
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
        answer = app.ask(question, k, history=messages, on_token=_stream_token)
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
    app = _app(ctx)
    store = app.store
    files = store.files()
    data = {
        "documents": len(files),
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
    app = RagApp(settings)
    dropped = app.store.drop()
    err.print(f"collection {settings.collection!r} " + ("deleted" if dropped else "did not exist"))


# --- entry point ----------------------------------------------------------------------------------------


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
