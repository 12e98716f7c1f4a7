"""`ragapp mcp` as an agent runs it: the real CLI in a subprocess, spoken to by the MCP SDK's
own stdio client, over sample_docs with the bundled models and real Chroma, under the
egress guard (not one non-loopback connection or DNS lookup), with stdout checked to carry
nothing but the protocol."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.conftest import RAGAPP, Corpus
from tests.integration.test_no_egress import (  # noqa: F401  (no_offline_env: a fixture)
    attempts,
    guarded_env,
    no_offline_env,
)

INCOME = "What was the cooperative's total income for 2025?"


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


def serve_to(
    body: Callable[[Client], Awaitable[None]],
    env: dict[str, str],
    stderr_path: Path,
    mode: str = "auto",
    command: list[str] = [*RAGAPP, "mcp"],  # noqa: B006  (never mutated)
) -> list[Exception]:
    """Start ``command`` as an agent would and run ``body`` with a connected client;
    returns what the server's stdout held that was not JSON-RPC."""
    params = StdioServerParameters(command=command[0], args=command[1:], env={**os.environ, **env})
    not_protocol: list[Exception] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, Exception):
            not_protocol.append(message)

    async def session() -> None:
        with stderr_path.open("w") as errlog:
            transport = stdio_client(params, errlog=errlog)
            client = Client(
                transport, mode=mode, message_handler=on_message, read_timeout_seconds=240
            )
            async with client as c:
                await body(c)

    anyio.run(session)
    return not_protocol


@pytest.mark.e2e
@pytest.mark.usefixtures("no_offline_env")
@pytest.mark.parametrize("mode", ["auto", "legacy"])  # legacy: the initialize handshake
def test_an_agent_searches_asks_and_reads_the_collection(
    tmp_path: Path, asked_corpus: Corpus, mode: str
) -> None:
    async def agent(c: Client) -> None:
        assert {t.name for t in (await c.list_tools()).tools} == {"search", "ask"}

        found = await c.call_tool("search", {"query": INCOME, "k": 8})
        assert not found.is_error, text_of(found)
        results = found.structured_content["results"]
        assert len(results) == 8
        assert all(set(r) == {"source", "page", "score", "text"} for r in results)
        hit = next(r for r in results if "£1,284,600" in r["text"])
        assert (Path(hit["source"]).name, hit["page"]) == ("annual-report-2025.pdf", 2)
        assert Path(hit["source"]).parent == asked_corpus.docs

        for args in ({"query": INCOME, "k": 0}, {"query": " "}):
            bad = await c.call_tool("search", args)
            assert bad.is_error and "\n" not in text_of(bad), text_of(bad)
        again = await c.call_tool("search", {"query": INCOME, "k": 1})  # still serving
        assert not again.is_error and again.structured_content["results"], text_of(again)

        said = await c.call_tool("ask", {"question": INCOME, "k": 3})
        assert not said.is_error, text_of(said)
        answer = said.structured_content
        assert answer["answer"].strip() and answer["refused"] is False
        assert answer["sources"] and all(
            {"n", "source", "page"} <= set(s) for s in answer["sources"]
        )
        assert any(
            Path(s["source"]).name == "annual-report-2025.pdf" and s["page"] == 2
            for s in answer["sources"]
        )

        listing = await c.read_resource("ragapp://collection")
        body = json.loads(listing.contents[0].text)
        assert body["documents"] == 5 and body["chunks"] > 10
        assert {Path(s["path"]).name for s in body["sources"]} >= {
            "annual-report-2025.pdf",
            "handbook.md",
        }

    egress = tmp_path / "egress.jsonl"
    env = {
        **guarded_env(egress),
        "RAGAPP_DATA_DIR": str(asked_corpus.data),
        "RAGAPP_MAX_TOKENS": "24",
    }
    stderr_path = tmp_path / "mcp.stderr"
    not_protocol = serve_to(agent, env, stderr_path, mode)
    stderr = stderr_path.read_text()
    assert not_protocol == [], stderr
    assert "Traceback" not in stderr, stderr
    assert attempts(egress) == []


def test_the_stdout_check_sees_stray_output(tmp_path: Path) -> None:
    """Control: a line on stdout that is not the protocol is caught (fake stack, no models)."""

    async def agent(c: Client) -> None:
        assert len((await c.list_tools()).tools) == 2

    fake = {"RAGAPP_CHROMA_URL": "memory://mcp", "RAGAPP_EMBEDDING_MODEL": "fake"}
    noisy = ["sh", "-c", "echo stray; exec " + shlex.join([*RAGAPP, "mcp"])]
    not_protocol = serve_to(agent, fake, tmp_path / "mcp.stderr", command=noisy)
    assert len(not_protocol) == 1 and "stray" in str(not_protocol[0])
