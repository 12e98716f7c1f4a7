"""The question-answering chain (LCEL): retrieve top-k -> numbered context -> prompt -> LLM.

Streaming the chain yields the retrieved sources first, then the answer token by token.
A question with no chunk above the relevance threshold gets an explicit refusal and never
reaches the LLM, so the model cannot invent an answer from nothing.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableGenerator,
    RunnableLambda,
    RunnablePassthrough,
)
from langchain_core.runnables.utils import AddableDict

from ragapp.backends.base import LoadedLLM
from ragapp.errors import ContextOverflowError
from ragapp.query.citations import missing_citations
from ragapp.query.prompts import ANSWER_PROMPT, CONDENSE_PROMPT, REFUSAL, format_context
from ragapp.query.retriever import to_source
from ragapp.types import Answer, Source, Timings

log = logging.getLogger(__name__)
_REFUSAL_RE = re.compile(r"couldn'?t find this in your documents|i (do not|don'?t) know", re.I)
# A question that leans on the conversation: opens with a connective, points back with a
# pronoun, or is too short to stand alone.
_FOLLOW_UP_RE = re.compile(
    r"^\s*(and|but|also|so|then|what about|how about)\b"
    r"|\b(it|its|itself|that|this|these|those|they|them|their|there|he|him|his|she|her"
    r"|one|ones|former|latter|same|above)\b",
    re.I,
)


def is_follow_up(question: str) -> bool:
    return bool(_FOLLOW_UP_RE.search(question)) or len(question.split()) < 4


def standalone_question(loaded: LoadedLLM, question: str, history: Sequence[BaseMessage]) -> str:
    """The question to retrieve with. A follow-up is rewritten by the LLM into a standalone
    question; when the rewrite is not a plausible question (small models often answer
    instead), the previous question and the follow-up are searched together."""
    if not history or not is_follow_up(question):
        return question
    transcript = "\n".join(
        f"{'User' if isinstance(m, HumanMessage) else 'Assistant'}: {m.content}"
        for m in history[-4:]
    )
    rewrite = CONDENSE_PROMPT | loaded.generate(stop=["\n"], max_tokens=64) | StrOutputParser()
    candidate = rewrite.invoke({"transcript": transcript, "question": question}).strip().strip('"')
    plausible = (
        candidate.endswith("?")
        and "[" not in candidate
        and len(candidate) <= 2 * len(transcript) + 200
        and candidate.lower() != question.lower()
    )
    previous = next((str(m.content) for m in reversed(history) if isinstance(m, HumanMessage)), "")
    query = candidate if plausible else f"{previous} {question}".strip()
    log.debug("follow-up %r searched as %r", question, query)
    return query


def fit_context(loaded: LoadedLLM, x: dict[str, Any]) -> dict[str, Any]:
    """Fit system prompt + sources + history + question into n_ctx - max_tokens, counted
    with the model's own tokenizer, so the backend never truncates silently. The
    lowest-ranked sources go first (the best one always stays), then the oldest history
    turns; if even that does not fit, a clear error names the setting to change."""
    fmt = loaded.prompt_format
    sources, history = list(x["sources"]), list(x.get("history") or [])
    budget = loaded.n_ctx - loaded.max_tokens
    while True:
        context = format_context(sources)
        prompt = ANSWER_PROMPT.invoke({**x, "history": history, "context": context})
        needed = loaded.count_tokens(fmt.render(prompt))
        if needed <= budget:
            break
        if len(sources) > 1:
            sources.pop()
        elif history:
            del history[:2]  # one (question, answer) turn, oldest first
        else:
            raise ContextOverflowError(
                f"the prompt needs {needed} tokens but n_ctx {loaded.n_ctx} - max_tokens "
                f"{loaded.max_tokens} leaves {budget}: raise RAGAPP_N_CTX or lower chunk_size"
            )
    dropped_sources = len(x["sources"]) - len(sources)
    dropped_turns = (len(x.get("history") or []) - len(history)) // 2
    if dropped_sources or dropped_turns:
        log.debug(
            "context budget: kept %d of %d chunks and %d of %d history turns (%d tokens of %d)",
            len(sources), len(x["sources"]), len(history) // 2,
            len(x.get("history") or []) // 2, needed, budget,
        )  # fmt: skip
    return {**x, "sources": sources, "history": history, "context": context}


def build_chain(retriever: BaseRetriever, loaded: LoadedLLM) -> Runnable[dict[str, Any], Any]:
    """Input: {"question": str, "history": [messages]}. Output (streamed): {"sources"}, then
    {"answer": token}..."""
    # small models go on to invent the next "Question:" of our template: stop there
    generate = ANSWER_PROMPT | loaded.generate(stop=["\nQuestion:"]) | StrOutputParser()

    def answer(inputs: Iterator[dict[str, Any]], config: RunnableConfig) -> Iterator[AddableDict]:
        # A generator, not `assign(answer=...)`: RunnableParallel hands every streamed token
        # across a thread pool, which cost about 3% of decode speed.
        for x in inputs:
            yield AddableDict(sources=x["sources"])
            if not x["sources"]:
                yield AddableDict(answer=REFUSAL)
                continue
            for token in generate.stream(x, config):
                yield AddableDict(answer=token)

    def to_sources(docs: list[Document]) -> list[Source]:
        return [to_source(d) for d in docs]

    def search_query(x: dict[str, Any]) -> str:
        return standalone_question(loaded, x["question"], x.get("history") or [])

    return (
        RunnablePassthrough.assign(query=RunnableLambda(search_query, name="standalone_question"))
        | RunnablePassthrough.assign(sources=itemgetter("query") | retriever | to_sources)
        | RunnableLambda(lambda x: fit_context(loaded, x), name="fit_context")
        | RunnableGenerator(answer, name="answer")  # type: ignore[arg-type]  # takes the config too
    )


def history_messages(history: Sequence[tuple[str, str]], turns: int) -> list[BaseMessage]:
    """The last ``turns`` (question, answer) pairs as chat messages."""
    kept = history[-turns:] if turns else []
    messages: list[BaseMessage] = []
    for question, answer in kept:
        messages += [HumanMessage(question), AIMessage(answer)]
    return messages


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL_RE.search(text))


def run_answer(
    chain: Runnable[dict[str, Any], Any],
    question: str,
    history: list[BaseMessage] | None = None,
    on_token: Callable[[str], None] | None = None,
) -> Answer:
    """Stream the chain, timing retrieval, first token and decode; return the whole Answer."""
    start = time.perf_counter()
    timings = Timings()
    sources: list[Source] = []
    parts: list[str] = []
    first_token_at = last_token_at = 0.0
    stream: Iterator[dict[str, Any]] = chain.stream(
        {"question": question, "history": history or []}
    )
    try:
        for chunk in stream:
            now = time.perf_counter()
            if "sources" in chunk:
                sources = chunk["sources"]
                timings.retrieve_ms = (now - start) * 1000
            token = chunk.get("answer")
            if token:
                if not parts:
                    first_token_at = now
                parts.append(token)
                last_token_at = now
                if on_token is not None:
                    on_token(token)  # may raise to stop (the client went away)
    finally:
        # Tear the generation down here, in the caller's turn on the LLM: left to the
        # garbage collector, the abandoned generators would unwind inside llama.cpp after
        # the turn was given to the next request (issue 15: two decodes, a segfault).
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    text = "".join(parts).strip()
    refused = not sources or is_refusal(text)
    suffix = "" if refused else missing_citations(text, sources)
    if suffix:
        text += suffix
        if on_token is not None:
            on_token(suffix)
    end = time.perf_counter()
    timings.total_ms = (end - start) * 1000
    if sources and parts:
        timings.ttft_ms = (first_token_at - start) * 1000
        timings.completion_tokens = len(parts)
        decode_s = last_token_at - first_token_at
        if len(parts) > 1 and decode_s > 0:
            timings.tokens_per_s = (len(parts) - 1) / decode_s
    return Answer(
        text=text,
        sources=sources,
        refused=refused,
        timings=timings,
        citations_added=bool(suffix),
    )
