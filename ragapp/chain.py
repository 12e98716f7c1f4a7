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
from langchain_core.runnables import Runnable, RunnableBranch, RunnableLambda, RunnablePassthrough

from ragapp.errors import ContextOverflowError
from ragapp.llms import LoadedLLM
from ragapp.prompts import ANSWER_PROMPT, REFUSAL, format_context
from ragapp.retriever import to_source
from ragapp.types import Answer, Source, Timings

log = logging.getLogger(__name__)
_REFUSAL_RE = re.compile(r"couldn'?t find this in your documents|i (do not|don'?t) know", re.I)


def fit_context(loaded: LoadedLLM, x: dict[str, Any]) -> dict[str, Any]:
    """Keep the best-ranked sources whose prompt fits n_ctx - max_tokens, counted with the
    model's own tokenizer, so the backend never truncates silently."""
    fmt, sources = loaded.prompt_format, list(x["sources"])
    budget = loaded.n_ctx - loaded.max_tokens
    while True:
        context = format_context(sources)
        needed = loaded.count_tokens(fmt.render(ANSWER_PROMPT.invoke({**x, "context": context})))
        if needed <= budget or len(sources) <= 1:
            break
        sources.pop()
    if needed > budget:
        raise ContextOverflowError(
            f"the prompt needs {needed} tokens but n_ctx {loaded.n_ctx} - max_tokens "
            f"{loaded.max_tokens} leaves {budget}: raise RAGAPP_N_CTX or lower chunk_size"
        )
    if len(sources) < len(x["sources"]):
        log.debug(
            "context budget: kept %d of %d chunks (%d tokens of %d)",
            len(sources), len(x["sources"]), needed, budget,
        )  # fmt: skip
    return {**x, "sources": sources, "context": context}


def build_chain(retriever: BaseRetriever, loaded: LoadedLLM) -> Runnable[dict[str, Any], Any]:
    """Input: {"question": str, "history": [messages]}. Output (streamed): {"sources"}, then
    {"answer": token}..."""
    fmt = loaded.prompt_format
    generate = (
        ANSWER_PROMPT
        | RunnableLambda(fmt.render, name="render_prompt")
        # small models go on to invent the next "Question:" of our template: stop there
        | loaded.llm.bind(stop=[*fmt.stop, "\nQuestion:"])
        | StrOutputParser()
    )
    answer = RunnableBranch(
        (lambda x: not x["sources"], RunnableLambda(lambda _: REFUSAL, name="refuse")),
        generate,
    )

    def to_sources(docs: list[Document]) -> list[Source]:
        return [to_source(d) for d in docs]

    return (
        RunnablePassthrough.assign(sources=itemgetter("question") | retriever | to_sources)
        | RunnableLambda(lambda x: fit_context(loaded, x), name="fit_context")
        | RunnablePassthrough.assign(answer=answer).pick(["sources", "answer"])
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
                on_token(token)
    end = time.perf_counter()
    text = "".join(parts).strip()
    timings.total_ms = (end - start) * 1000
    if sources and parts:
        timings.ttft_ms = (first_token_at - start) * 1000
        timings.completion_tokens = len(parts)
        decode_s = last_token_at - first_token_at
        if len(parts) > 1 and decode_s > 0:
            timings.tokens_per_s = (len(parts) - 1) / decode_s
    return Answer(
        text=text, sources=sources, refused=not sources or is_refusal(text), timings=timings
    )
