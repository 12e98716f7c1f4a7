"""The MCP server's tools and resource over the fake stack, through the SDK's own client
connected in-process (tests/integration/test_mcp.py drives the real `ragapp mcp`)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from typer.testing import CliRunner

from ragapp.app import RagApp
from ragapp.cli import cli
from ragapp.mcp_server import COLLECTION_URI, create_mcp_server
from ragapp.settings import load_settings


def with_client(test: Callable[[Client], Awaitable[None]]) -> None:
    async def main() -> None:
        async with Client(create_mcp_server(RagApp(load_settings()))) as client:
            await test(client)

    anyio.run(main)


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


def test_search_ask_and_the_collection(docs: Path) -> None:
    assert CliRunner().invoke(cli, ["ingest", str(docs)], catch_exceptions=False).exit_code == 0

    async def check(client: Client) -> None:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {"search", "ask"}
        assert tools["search"].input_schema["required"] == ["query"]
        assert tools["search"].annotations.read_only_hint is True

        found = await client.call_tool("search", {"query": "membership fee", "k": 2})
        assert not found.is_error, text_of(found)
        results = found.structured_content["results"]
        assert len(results) == 2 and set(results[0]) == {"source", "page", "score", "text"}
        assert Path(results[0]["source"]).name == "fees.md"
        assert json.loads(text_of(found)) == found.structured_content

        said = await client.call_tool("ask", {"question": "What is the membership fee?"})
        assert not said.is_error, text_of(said)
        answer = said.structured_content
        assert "forty-two" in answer["answer"] and answer["refused"] is False
        assert answer["sources"][0]["n"] == 1
        assert Path(answer["sources"][0]["source"]).name == "fees.md"

        listing = await client.read_resource(COLLECTION_URI)
        body = json.loads(listing.contents[0].text)
        assert (body["collection"], body["documents"]) == ("default", 3)
        assert sorted(Path(s["path"]).name for s in body["sources"]) == [
            "board.txt",
            "fees.md",
            "notes.txt",
        ]
        assert body["chunks"] == sum(s["chunks"] for s in body["sources"]) > 0

    with_client(check)


def test_bad_calls_are_one_line_tool_errors() -> None:
    async def check(client: Client) -> None:
        for name, args, expected in [
            ("search", {"query": "fee", "k": 0}, "k must be between 1 and 100, not 0"),
            ("search", {"query": "  "}, "query must not be empty"),
            ("ask", {"question": ""}, "question must not be empty"),
            ("search", {"query": "fee"}, "collection 'default' is empty"),  # nothing ingested
            ("ask", {"question": "fee?"}, "collection 'default' is empty"),
        ]:
            result = await client.call_tool(name, args)
            assert result.is_error, (name, args)
            message = text_of(result)
            assert expected in message and "\n" not in message, message
        listing = json.loads((await client.read_resource(COLLECTION_URI)).contents[0].text)
        assert listing["sources"] == []

    with_client(check)


def test_arguments_that_fail_the_schema_are_one_line_tool_errors() -> None:
    async def check(client: Client) -> None:
        for args, expected in [
            ({"query": "fee", "k": "many"}, "k: Input should be a valid integer"),
            ({}, "query: Field required"),
        ]:
            result = await client.call_tool("search", args)
            message = text_of(result)
            assert result.is_error and expected in message and "\n" not in message, message
        unknown = await client.call_tool("nope", {})
        assert unknown.is_error and "nope" in text_of(unknown)

    with_client(check)


def test_an_unexpected_error_is_named_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(RagApp, "retrieve", broken)

    async def check(client: Client) -> None:
        result = await client.call_tool("search", {"query": "fee"})
        assert result.is_error
        assert text_of(result) == "Error executing tool search: unexpected RuntimeError: boom"

    with_client(check)
