"""The collection as an MCP server (`ragapp mcp`): tools `search` and `ask`, and the resource
``ragapp://collection``, for AI agents (Claude Desktop, VS Code, ...).

Models load on first use, as everywhere: the embedder on the first search, the LLM on the
first ask. What a tool raises becomes an MCP tool error with one line for the agent."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError, UnexpectedToolError
from mcp.types import CallToolResult, InputRequiredResult, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from ragapp import __version__
from ragapp.app import RagApp
from ragapp.errors import RagappError
from ragapp.types import Source

__all__ = ["COLLECTION_URI", "create_mcp_server"]

log = logging.getLogger(__name__)

COLLECTION_URI = "ragapp://collection"
MAX_K = 100  # as `ragapp retrieve -k`
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)


class Passage(BaseModel):
    """A retrieved chunk: `ragapp retrieve --json`'s result shape."""

    source: str = Field(description="Absolute path of the file as ingested.")
    page: int | None = Field(description="Page number in the file (PDFs), else null.")
    score: float = Field(description="Relevance, higher is better.")
    text: str

    @classmethod
    def of(cls, src: Source) -> Passage:
        return cls(source=src.source, page=src.page, score=src.score, text=src.text)


class SearchResult(BaseModel):
    results: list[Passage] = Field(description="Best first.")


class CitedPassage(Passage):
    n: int = Field(description="The number the answer cites this passage by, as [n].")


class AskResult(BaseModel):
    answer: str
    refused: bool = Field(description="True when the documents did not hold the answer.")
    sources: list[CitedPassage] = Field(description="The passages the answer was written from.")


def _one_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


@contextmanager
def _reported(error: type[Exception]) -> Iterator[None]:
    """ragapp's own errors keep their one-line message; anything else is named in one line,
    and logged on stderr (with its traceback under --debug); stdout is the protocol's."""
    try:
        yield
    except (ToolError, ResourceError):
        raise
    except RagappError as exc:
        raise error(_one_line(str(exc))) from exc
    except Exception as exc:
        detail = _one_line(str(exc))
        message = f"unexpected {type(exc).__name__}" + (f": {detail}" if detail else "")
        log.error(
            "%s (--debug shows the traceback)", message, exc_info=log.isEnabledFor(logging.DEBUG)
        )
        raise error(message) from exc


def _check_k(k: int | None) -> None:
    if k is not None and not 1 <= k <= MAX_K:
        raise ToolError(f"k must be between 1 and {MAX_K}, not {k}")


def _check_text(name: str, value: str) -> str:
    if not value.strip():
        raise ToolError(f"{name} must not be empty")
    return value.strip()


KArg = Annotated[
    int | None,
    Field(
        description=f"How many passages to use, 1-{MAX_K} (default: the top_k setting).",
        json_schema_extra={"minimum": 1, "maximum": MAX_K},
    ),
]


def collection_listing(app: RagApp) -> dict[str, Any]:
    """The ingested files with their chunk counts: `ragapp sources --json`, with totals."""
    sources = app.sources()
    return {
        "collection": app.settings.collection,
        "documents": len(sources),
        "chunks": sum(s["chunks"] for s in sources),
        "sources": sources,
    }


class RagappMCPServer(MCPServer[Any]):
    """The SDK's server, with arguments that fail the input schema (a string for ``k``, a
    missing ``query``) reported in one line, like every other tool error."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(exc, UnexpectedToolError) or not isinstance(cause, ValidationError):
                raise
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in cause.errors()
            )
            raise ToolError(f"Error executing tool {name}: {problems}") from cause


def create_mcp_server(app: RagApp) -> MCPServer[Any]:
    """An MCP server over ``app``'s collection; run it with ``.run("stdio")``."""
    name = app.settings.collection
    server = RagappMCPServer(
        "ragapp",
        version=__version__,
        instructions=(
            f"Searches and answers from the user's own documents (ragapp collection {name!r}), "
            "fully on this machine. Use `search` for passages with file and page, `ask` for an "
            f"answer with its sources; read {COLLECTION_URI} for the files it holds."
        ),
        log_level="WARNING",
    )

    @server.tool(
        annotations=READ_ONLY,
        description="Find the passages of the user's documents that best match a query "
        "(no LLM): each with its file path, page and score, best first.",
    )
    def search(
        query: Annotated[str, Field(description="What to look for, in natural language.")],
        k: KArg = None,
    ) -> SearchResult:
        _check_k(k)
        query = _check_text("query", query)
        with _reported(ToolError):
            return SearchResult(results=[Passage.of(s) for s in app.retrieve(query, k)])

    @server.tool(
        annotations=READ_ONLY,
        description="Answer a question from the user's documents with the local LLM, "
        "citing its sources (file and page) as [n].",
    )
    def ask(
        question: Annotated[str, Field(description="The question to answer.")],
        k: KArg = None,
    ) -> AskResult:
        _check_k(k)
        question = _check_text("question", question)
        with _reported(ToolError):
            answer = app.ask(question, k)
        return AskResult(
            answer=answer.text,
            refused=answer.refused,
            sources=[
                CitedPassage(n=n, **Passage.of(s).model_dump())
                for n, s in enumerate(answer.sources, start=1)
            ],
        )

    @server.resource(
        COLLECTION_URI,
        name="collection",
        title=f"ragapp collection {name!r}",
        description="The ingested files with their chunk counts (JSON).",
        mime_type="application/json",
    )
    def collection() -> str:
        with _reported(ResourceError):
            return json.dumps(collection_listing(app), ensure_ascii=False, indent=2)

    return server
