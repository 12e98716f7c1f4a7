"""Collection and machine verbs: `status`, `reset`, `doctor`, `models`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from ragapp.app import RagApp
from ragapp.cli.common import EXIT_ERROR, JsonOpt, _app, _print_json, _settings, err, out


def status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """What the collection holds and which models and store are in use.

    Example:  ragapp status --json
    """
    app = _app(ctx)
    data = app.status()
    if json_out:
        _print_json(data)
        return
    table = Table(show_header=False, box=None)
    table.add_row("collection", app.settings.collection)
    for key, value in data.items():
        table.add_row(key.replace("_", " "), str(value))
    out.print(table)


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
