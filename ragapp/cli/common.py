"""What every `ragapp` command shares: the Typer app, consoles, global options, settings."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import ragapp  # noqa: F401  (offline env vars first)

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import typer  # noqa: E402
from rich.console import Console  # noqa: E402

from ragapp.app import RagApp  # noqa: E402
from ragapp.settings import Settings, load_settings  # noqa: E402

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

JsonOpt = Annotated[
    bool, typer.Option("--json", metavar="", help="Print JSON to stdout (for scripts).")
]


@cli.callback()
def _global(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            metavar="DIR",
            help="Where the store and logs live \\[env: RAGAPP_DATA_DIR].",
        ),
    ] = None,
    collection: Annotated[
        str | None,
        typer.Option(
            "--collection", metavar="NAME", help="Collection to use \\[env: RAGAPP_COLLECTION]."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", metavar="FILE", help="Settings file (TOML) \\[env: RAGAPP_CONFIG]."
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", metavar="", help="Show tracebacks and debug logs.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # ragapp's own progress notes (INFO) reach the user; libraries stay at WARNING.
    logging.getLogger("ragapp").setLevel(logging.DEBUG if debug else logging.INFO)
    for noisy in (
        "chromadb",
        "sentence_transformers",
        "httpx",
        "unstructured",
        "pdfminer",
        "pypandoc",
        "bm25s",
    ):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.ERROR)
    ctx.obj = {"config": config, "overrides": {"data_dir": data_dir, "collection": collection}}


def _settings(ctx: typer.Context, **overrides: Any) -> Settings:
    obj = ctx.find_root().obj
    return load_settings(obj["config"], **{**obj["overrides"], **overrides})


def _app(ctx: typer.Context, **overrides: Any) -> RagApp:
    return RagApp(_settings(ctx, **overrides))


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()
