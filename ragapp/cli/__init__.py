"""The `ragapp` command line: thin verbs over RagApp and the ingest pipeline.

JSON goes to stdout only with --json; people get Rich output; errors are one line on stderr.

    common.py  the Typer app, consoles, global options, settings
    ingest.py  ingest (--dry-run, --watch), sources, remove
    query.py   retrieve, ask, chat
    admin.py   status, backfill, reset, doctor, models
    evaluate.py  eval
    serve.py   serve
    mcp.py     mcp (an MCP server on stdio, for agents)
"""

from __future__ import annotations

import logging
import sys
import time

import typer
from typer.exceptions import TyperException

from ragapp.cli import admin, evaluate, ingest, mcp, query, serve
from ragapp.cli.common import EXIT_ERROR, EXIT_USAGE, cli, err
from ragapp.errors import RagappError

for command in (
    ingest.ingest,
    ingest.sources,
    ingest.remove,
    query.retrieve,
    query.ask,
    query.chat,
    admin.status,
    admin.backfill,
    admin.reset,
    serve.serve,
    mcp.mcp,
    admin.doctor,
    admin.models,
):
    cli.command()(command)
cli.command("eval")(evaluate.eval_command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: map errors to exit codes and one-line messages."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    started = time.perf_counter()
    try:
        code = cli(args=args, prog_name="ragapp", standalone_mode=False)
    except typer.Abort:
        err.print("aborted")
        code = 130
    except TyperException as exc:  # Typer's (vendored click's) usage errors: bad option, ...
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        code = int(getattr(exc, "exit_code", EXIT_USAGE))
    except RagappError as exc:
        if debug:
            err.print_exception()
        err.print(f"[red]error:[/] {exc}", soft_wrap=True)
        code = exc.exit_code
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
