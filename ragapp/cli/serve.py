"""`ragapp serve`: the web UI and HTTP API (FastAPI under uvicorn)."""

from __future__ import annotations

from typing import Annotated

import typer

from ragapp.cli.common import _settings, err
from ragapp.errors import RagappError


def serve(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            metavar="ADDRESS",
            help="Interface to bind; anything but loopback needs --token.",
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", metavar="PORT", min=0, max=65535, help="TCP port.")
    ] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="RAGAPP_SERVER_TOKEN",
            help="Require 'Authorization: Bearer TOKEN' on /api and /v1 (the UI asks for it once).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the web UI, the HTTP API (/api) and an OpenAI-compatible API (/v1).

    Binds 127.0.0.1 unless told otherwise; any other address needs a token.

    Example:  ragapp serve --port 8000   (then open http://127.0.0.1:8000)
    """
    from ragapp.server.security import is_loopback

    if not is_loopback(host) and not token:
        raise RagappError(
            f"refusing to serve on {host} without a token: pass --token or set "
            "RAGAPP_SERVER_TOKEN (or bind 127.0.0.1)"
        )
    _check_port(host, port)
    settings = _settings(ctx)
    import uvicorn

    from ragapp.server import create_app

    app = create_app(settings, token=token, preload=True)
    shown = f"[{host}]" if ":" in host else host
    err.print(
        f"ragapp: collection {settings.collection!r} at http://{shown}:{port}"
        + (" (token required)" if token else "")
        + " · Ctrl-C to stop",
        soft_wrap=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def _check_port(host: str, port: int) -> None:
    """A one-line error for an address in use, before any model loads."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise RagappError(f"cannot serve on {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise RagappError(
                f"cannot serve on {host}:{port}: {exc.strerror} (pick another --port)"
            ) from None
