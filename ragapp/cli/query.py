"""Question verbs: `retrieve` (no LLM), `ask`, `chat`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from ragapp.app import RagApp
from ragapp.backends.base import DEMO_NOTE, is_demo_model
from ragapp.cli.common import (
    JsonOpt,
    _app,
    _print_json,
    err,
    out,
)
from ragapp.errors import RagappError
from ragapp.settings import LLMBackend
from ragapp.types import Source

KOpt = Annotated[
    int | None,
    typer.Option(
        "-k",
        "--top-k",
        metavar="N",
        min=1,
        max=100,
        help="Chunks to retrieve \\[default: top_k setting].",
    ),
]


PathFilterOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--path",
        metavar="GLOB",
        help="Only search files matching this glob (a name like '*.pdf', or a path like "
        "'reports/*'); repeatable.",
    ),
]
TypeFilterOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--type",
        metavar="TYPE",
        help="Only search files of this type (pdf, md, docx, ...); repeatable.",
    ),
]


# --- retrieve ----------------------------------------------------------------------------------------


def _where(src: Source) -> str:
    return src.source + (f" (page {src.page})" if src.page is not None else "")


def retrieve(
    ctx: typer.Context,
    question: Annotated[
        str | None, typer.Argument(metavar="QUESTION", help="The question to search for.")
    ] = None,
    k: KOpt = None,
    json_out: JsonOpt = False,
    path: PathFilterOpt = None,
    file_type: TypeFilterOpt = None,
    batch: Annotated[
        Path | None,
        typer.Option(
            "--batch",
            metavar="FILE",
            help="JSONL file with a 'question' per line; writes JSONL results.",
        ),
    ] = None,
) -> None:
    """Show the chunks a question retrieves, best first (no LLM).

    Example:  ragapp retrieve "membership fee" -k 3 --type pdf --path "reports/*"
    """
    if (question is None) == (batch is None):
        raise typer.BadParameter("give either a QUESTION or --batch FILE")
    app = _app(ctx)
    where = app.collection.search_filter(path, file_type)
    if batch is not None:
        _retrieve_batch(app, batch, k, where)
        return
    assert question is not None
    results = app.retrieve(question, k, where)
    if json_out:
        _print_json({"results": [s.to_json() for s in results]})
        return
    for n, src in enumerate(results, start=1):
        out.print(f"[bold][{n}][/] {_where(src)}  [dim]score {src.score:.3f}[/]")
        out.print(Text(src.text.strip()[:500]), style="dim")
        out.print()


def _retrieve_batch(app: RagApp, batch: Path, k: int | None, where: dict | None) -> None:
    try:
        lines = batch.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise RagappError(f"cannot read {batch}: {exc.strerror or exc}") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            question = json.loads(line)["question"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise RagappError(
                f"{batch}:{lineno}: expected a JSON object with a 'question' field"
            ) from None
        results = app.retrieve(str(question), k, where)
        _print_json({"question": question, "results": [s.to_json() for s in results]})


# --- ask / chat ----------------------------------------------------------------------------------------

LLMOpt = Annotated[
    LLMBackend | None,
    typer.Option(
        "--llm",
        metavar="BACKEND",
        help="LLM backend: llamacpp, ollama, openai or gpt4all \\[env: RAGAPP_LLM_BACKEND].",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        metavar="NAME",
        help="A GGUF path, a name `ragapp models` lists, or a server's model \\[env: RAGAPP_LLM_MODEL].",
    ),
]


def _print_sources(sources: list[Source]) -> None:
    if not sources:
        return
    out.print("\n[bold]Sources[/]")
    for n, src in enumerate(sources, start=1):
        section = f" — {src.section}" if src.section else ""
        out.print(f"  [bold][{n}][/] {_where(src)}{section}  [dim]score {src.score:.2f}[/]")


def _stream_token(token: str) -> None:
    out.file.write(token)
    out.file.flush()


def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(metavar="QUESTION", help="Your question.")],
    k: KOpt = None,
    json_out: JsonOpt = False,
    llm: LLMOpt = None,
    model: ModelOpt = None,
    path: PathFilterOpt = None,
    file_type: TypeFilterOpt = None,
) -> None:
    """Answer a question from your documents, citing file and page.

    Example:  ragapp ask "Who chairs the board?"
    """
    if not question.strip():
        raise typer.BadParameter("the question is empty", param_hint="QUESTION")
    app = _app(ctx, llm_backend=llm, llm_model=model)
    where = app.collection.search_filter(path, file_type)
    if json_out:
        _print_json(app.ask(question, k, where=where).to_json())
        return
    answer = app.ask(question, k, on_token=_stream_token, where=where)
    out.print()
    _print_sources(answer.sources)
    t = answer.timings
    if not answer.sources:
        stats = (
            f"no passage scored above min_score {app.settings.min_score:g}; the LLM was not asked"
        )
    else:
        stats = (
            f"first token {t.ttft_ms:.0f} ms · {t.completion_tokens} tokens at "
            f"{t.tokens_per_s:.1f} tok/s · {app.llm_label}"
        )
    err.print(f"[dim]retrieve {t.retrieve_ms:.0f} ms · {stats}[/]", soft_wrap=True)
    if answer.sources and is_demo_model(app.settings):
        err.print(f"[yellow]{DEMO_NOTE}[/]", soft_wrap=True)


CHAT_HELP = """\
/help     this list
/sources  the sources of the last answer again
/reset    forget the conversation so far (a new topic)
/exit     leave (or Ctrl-D)
Anything else is a question. The arrow keys edit the line and walk the history."""


def chat(
    ctx: typer.Context,
    k: KOpt = None,
    llm: LLMOpt = None,
    model: ModelOpt = None,
    path: PathFilterOpt = None,
    file_type: TypeFilterOpt = None,
) -> None:
    """Talk with your documents; earlier turns stay in the conversation. /help lists the
    commands; Ctrl-D or /exit ends it.

    Example:  ragapp chat
    """
    from ragapp.query.chain import history_messages

    app = _app(ctx, llm_backend=llm, llm_model=model)
    where = app.collection.search_filter(path, file_type)
    app.collection.require_chunks()  # fail now on an empty collection, not after a question
    prompt = _line_editing(app.settings.data_dir / "chat_history")
    err.print(f"[dim]{app.llm_label} · collection {app.settings.collection!r} · /help[/]")
    if is_demo_model(app.settings):
        err.print(f"[yellow]{DEMO_NOTE}[/]", soft_wrap=True)
    history: list[tuple[str, str]] = []
    last: list[Source] = []
    while True:
        try:
            question = input(prompt).strip()
        except (EOFError, KeyboardInterrupt):
            out.print()
            return
        if not question:
            continue
        if question.startswith("/"):
            command = question.split()[0].lower()
            if command in ("/exit", "/quit"):
                return
            if command == "/help":
                out.print(Text(CHAT_HELP))
            elif command == "/sources":
                if last:
                    _print_sources(last)
                else:
                    out.print("[dim]no sources yet[/]")
            elif command == "/reset":
                history, last = [], []
                out.print("[dim]conversation cleared[/]")
            else:
                out.print(Text(f"unknown command {command} (/help lists them)", "yellow"))
            continue
        messages = history_messages(history, app.settings.history_turns)
        out.print("[bold blue]ragapp>[/] ", end="")
        answer = app.ask(question, k, history=messages, on_token=_stream_token, where=where)
        out.print()
        _print_sources(answer.sources)
        out.print()
        history.append((question, answer.text))
        last = answer.sources


def _line_editing(history_file: Path) -> str:
    """Line editing and a history kept across sessions for ``input()``, through the
    standard library's readline (GNU readline or libedit) where the platform has it.
    Returns the prompt; its colour codes are fenced (\\001, \\002) so readline knows
    how wide it is, and redraws the line without eating it."""
    color = out.is_terminal and out.color_system is not None
    prompt = "\001\033[1;32m\002you>\001\033[0m\002 " if color else "you> "
    try:
        import readline
    except ImportError:  # Windows without pyreadline: plain input
        return prompt
    import atexit
    from contextlib import suppress

    readline.set_history_length(1000)
    with suppress(OSError):  # first chat, or unreadable: start empty
        readline.read_history_file(history_file)

    def save() -> None:
        with suppress(OSError):
            history_file.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(history_file)

    atexit.register(save)
    return prompt
