"""`ragapp mcp`: the collection as an MCP server on stdio, for AI agents."""

from __future__ import annotations

import sys

import typer

from ragapp.app import RagApp
from ragapp.cli.common import _settings, err


def mcp(ctx: typer.Context) -> None:
    """Serve the collection to an AI agent (Claude Desktop, VS Code, ...) over MCP on stdio.

    Tools: search (passages with file, page and score) and ask (an answer with its sources); the resource ragapp://collection lists the ingested files.

    The agent starts this command itself: stdout carries only the protocol, logs go to stderr. Models load on first use.

    Example:  ragapp --collection notes mcp
    """
    from ragapp.mcp_server import create_mcp_server

    settings = _settings(ctx)
    server = create_mcp_server(RagApp(settings))
    hint = " (waiting for an MCP client on stdin; Ctrl-C to stop)" if sys.stdin.isatty() else ""
    err.print(f"ragapp: MCP server for collection {settings.collection!r} on stdio{hint}")
    server.run("stdio")
