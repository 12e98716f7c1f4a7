"""`ragapp serve`: the web UI and HTTP API (FastAPI under uvicorn)."""

from __future__ import annotations

import signal
from typing import Annotated, Any

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
    from ragapp.server import create_app

    app = create_app(settings, token=token, preload=True)
    shown = f"[{host}]" if ":" in host else host
    err.print(
        f"ragapp: collection {settings.collection!r} at http://{shown}:{port}"
        + (" (token required)" if token else "")
        + " · Ctrl-C to stop",
        soft_wrap=True,
    )
    _run_until_stopped(app, host, port)


def _run_until_stopped(app: Any, host: str, port: int) -> None:
    """uvicorn, stopped the way `docker stop` and systemd stop things: on SIGTERM it takes
    no new connection, finishes the answers under way (up to ANSWER_GRACE_S), cancels what
    is left, and the process exits 0."""
    import uvicorn

    from ragapp.server.answers import ANSWER_GRACE_S

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            if not self.should_exit:
                err.print(
                    f"ragapp: stopping: finishing the answers under way (up to "
                    f"{ANSWER_GRACE_S} s), taking no new connections"
                )
            super().handle_exit(sig, frame)

    # uvicorn raises the signal again once drained, with the handler it found: a no-op
    # here, so a drained SIGTERM is a clean exit (0), not a death by signal (143)
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=ANSWER_GRACE_S + 5,
    )
    Server(config).run()


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
