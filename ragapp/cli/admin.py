"""Collection and machine verbs: `status`, `backfill`, `reset`, `doctor`, `models`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from ragapp.app import RagApp
from ragapp.cli.common import EXIT_ERROR, JsonOpt, _app, _print_json, _settings, err, out
from ragapp.collection import describe_missing


def status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """What the collection holds and which models and store are in use.

    Example:  ragapp status --json
    """
    app = _app(ctx)
    data = app.status()
    if json_out:
        _print_json(data)
        return
    missing = data.pop("missing")
    table = Table(show_header=False, box=None)
    table.add_row("collection", app.settings.collection)
    for key, value in data.items():
        table.add_row(key.replace("_", " "), str(value))
    out.print(table)
    if "fix" in missing:
        err.print(f"[yellow]warning:[/] {describe_missing(missing)}", soft_wrap=True)


def backfill(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Make the derived search data `ragapp status` reports missing: file records for
    chunks written without one, window vectors for files written without them (by an
    earlier ragapp, another tool, or with window_chars = 0). Reuses the stored chunks:
    nothing is parsed, chunk vectors are kept.

    Example:  ragapp backfill
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    app = _app(ctx)
    collection = app.collection
    with Progress(
        "{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err, disable=json_out or not err.is_terminal, transient=True,
    ) as bar:  # fmt: skip
        tasks: dict[str, Any] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                label = {"records": "reading chunk records", "windows": "embedding windows"}
                tasks[what] = bar.add_task(label.get(what, what), total=total)
            bar.update(tasks[what], completed=done, total=total)

        made = collection.backfill(progress)
        collection.refresh_search_index()
    if json_out:
        _print_json({**made, "missing": collection.missing()})
        return
    err.print(
        f"recorded {made['recorded_files']} files; window vectors for "
        f"{made['windowed_files']} files ({made['windows']} windows)"
    )


def reset(
    ctx: typer.Context,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", metavar="", help="Do not ask for confirmation.")
    ] = False,
) -> None:
    """Delete the collection and everything ingested into it (your files are not touched).

    Example:  ragapp reset --collection scratch --yes
    """
    settings = _settings(ctx)
    if not yes and not typer.confirm(f"Delete collection {settings.collection!r}?", err=True):
        err.print(f"collection {settings.collection!r} kept: nothing deleted")
        return
    dropped = RagApp(settings).collection.reset()
    err.print(f"collection {settings.collection!r} " + ("deleted" if dropped else "did not exist"))


_STATUS_STYLE = {"ok": "green", "info": "dim", "warn": "yellow", "error": "red"}


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
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(overflow="fold")  # a path in a detail wraps; it is never cut off
        for check in diagnosis.checks:
            style = _STATUS_STYLE.get(check.status, "")
            table.add_row(f"[{style}]{check.status:>5}[/]", check.name, Text(check.detail))
        out.print(table)
    if diagnosis.failed:
        raise typer.Exit(EXIT_ERROR)


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
