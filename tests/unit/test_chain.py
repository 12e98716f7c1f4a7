"""The LCEL chain's wiring, with a fake LLM (the real model is exercised end to end)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.language_models import FakeListLLM
from langchain_core.retrievers import BaseRetriever

from ragapp.backends.base import LoadedLLM
from ragapp.backends.formats import FORMATS
from ragapp.query.chain import build_chain, history_messages, is_refusal, run_answer
from ragapp.query.prompts import REFUSAL


class ListRetriever(BaseRetriever):
    docs: list[Document]

    def _get_relevant_documents(self, query: str, *, run_manager: object) -> list[Document]:
        return self.docs


def _loaded(responses: list[str]) -> LoadedLLM:
    return LoadedLLM(FakeListLLM(responses=responses), FORMATS["chatml"], "fake", {})


def test_streams_sources_then_tokens_and_times_them() -> None:
    doc = Document("The fee is 42.", metadata={"source": "/d/a.pdf", "page": 2, "score": 0.8})
    chain = build_chain(ListRetriever(docs=[doc]), _loaded(["It is 42 [1]."]))
    tokens: list[str] = []
    answer = run_answer(chain, "fee?", on_token=tokens.append)
    assert answer.text == "It is 42 [1]."
    assert "".join(tokens) == answer.text
    assert not answer.refused
    assert [(s.source, s.page, s.score) for s in answer.sources] == [("/d/a.pdf", 2, 0.8)]
    assert answer.timings.completion_tokens == len(tokens) > 0
    assert answer.timings.total_ms >= answer.timings.ttft_ms >= answer.timings.retrieve_ms > 0


def test_prompt_reaching_the_llm_is_rendered_in_the_models_format() -> None:
    seen: list[str] = []

    class Recording(FakeListLLM):
        def _call(self, prompt: str, *args: object, **kwargs: object) -> str:
            seen.append(prompt)
            return "ok"

    doc = Document("Board meets Tuesdays.", metadata={"source": "/d/b.md", "score": 0.5})
    loaded = LoadedLLM(Recording(responses=["ok"]), FORMATS["chatml"], "fake", {})
    history = history_messages([("first q", "first a")], turns=4)
    run_answer(build_chain(ListRetriever(docs=[doc]), loaded), "when?", history)
    prompt = seen[-1]  # seen[0] rewrote the follow-up "when?" for retrieval
    assert prompt.startswith("<|im_start|>system\nYou answer questions")
    assert "[1] (b.md)\nBoard meets Tuesdays." in prompt
    assert "<|im_start|>user\nfirst q<|im_end|>\n<|im_start|>assistant\nfirst a<|im_end|>" in prompt
    assert prompt.endswith("\n\nQuestion: when?<|im_end|>\n<|im_start|>assistant\n")


def test_no_relevant_chunk_means_refusal_without_calling_the_llm() -> None:
    llm = _loaded(["should never be used"])
    answer = run_answer(build_chain(ListRetriever(docs=[]), llm), "capital of France?")
    assert answer.text == REFUSAL and answer.refused and answer.sources == []
    assert llm.llm.i == 0  # type: ignore[attr-defined]


def test_refusal_detection() -> None:
    assert is_refusal("I couldn't find this in your documents.")
    assert is_refusal("Sorry, I don't know.")
    assert not is_refusal("The fee is 42 pounds [1].")


def test_history_keeps_last_turns() -> None:
    msgs = history_messages([("q1", "a1"), ("q2", "a2"), ("q3", "a3")], turns=2)
    assert [m.content for m in msgs] == ["q2", "a2", "q3", "a3"]
    assert history_messages([("q1", "a1")], turns=0) == []


def _docs(n: int, size: int) -> list[Document]:
    return [
        Document(
            f"passage {i} " + "x" * size, metadata={"source": f"/d/{i}.md", "score": 1 - i / 10}
        )
        for i in range(n)
    ]


def _quarter(text: str) -> int:
    """A stand-in tokenizer: one token per 4 characters."""
    return len(text) // 4 + 1


def test_lowest_ranked_chunks_are_dropped_to_fit_the_context() -> None:
    loaded = LoadedLLM(
        FakeListLLM(responses=["ok"]),
        FORMATS["chatml"],
        "fake",
        {},
        n_ctx=700,
        max_tokens=100,
        tokenizer=_quarter,
    )
    answer = run_answer(build_chain(ListRetriever(docs=_docs(4, 800)), loaded), "q?")
    # ~200 tokens a passage: 2 fit in 600 with the instructions, the best two
    assert [s.source for s in answer.sources] == ["/d/0.md", "/d/1.md"]


def test_a_prompt_that_cannot_fit_is_a_clear_error() -> None:
    import pytest

    from ragapp.errors import ContextOverflowError

    loaded = LoadedLLM(
        FakeListLLM(responses=["ok"]),
        FORMATS["chatml"],
        "fake",
        {},
        n_ctx=300,
        max_tokens=100,
        tokenizer=_quarter,
    )
    with pytest.raises(ContextOverflowError, match="raise RAGAPP_N_CTX"):
        run_answer(build_chain(ListRetriever(docs=_docs(2, 2000)), loaded), "q?")


def test_history_is_trimmed_oldest_first_after_the_chunks() -> None:
    seen: list[str] = []

    class Recording(FakeListLLM):
        def _call(self, prompt: str, *args: object, **kwargs: object) -> str:
            seen.append(prompt)
            return "ok"

    loaded = LoadedLLM(
        Recording(responses=["ok"]),
        FORMATS["chatml"],
        "fake",
        {},
        n_ctx=700,
        max_tokens=100,
        tokenizer=_quarter,
    )
    turns = [(f"old question {i} " + "y" * 300, f"answer {i} " + "z" * 300) for i in range(3)]
    history = history_messages(turns, turns=4)
    answer = run_answer(build_chain(ListRetriever(docs=_docs(3, 400)), loaded), "q?", history)
    # the two extra passages went first; then the oldest turns, until the prompt fit
    assert [s.source for s in answer.sources] == ["/d/0.md"]
    prompt = seen[-1]
    assert "old question 2" in prompt and "old question 0" not in prompt
    assert prompt.endswith("Question: q?<|im_end|>\n<|im_start|>assistant\n")


class QueryRecorder(BaseRetriever):
    docs: list[Document]
    queries: list[str] = []

    def _get_relevant_documents(self, query: str, *, run_manager: object) -> list[Document]:
        self.queries.append(query)
        return self.docs


def test_follow_ups_are_rewritten_before_retrieval() -> None:
    from langchain_core.messages import AIMessage, HumanMessage

    from ragapp.query.chain import is_follow_up

    assert is_follow_up("And what is his role?") and is_follow_up("why?")
    assert not is_follow_up("Who is the Health and Safety Lead of the cooperative?")
    doc = Document("Desmond runs safety.", metadata={"source": "/d/s.docx", "score": 0.9})
    history = [HumanMessage("Who is the Health and Safety Lead?"), AIMessage("Desmond [1].")]

    # a plausible rewrite is what gets searched
    retriever = QueryRecorder(docs=[doc], queries=[])
    llm = _loaded(["What is the role of the Health and Safety Lead?", "He runs safety [1]."])
    run_answer(build_chain(retriever, llm), "And what is his role?", history)
    assert retriever.queries == ["What is the role of the Health and Safety Lead?"]

    # a rewrite that answers instead of asking falls back to both questions together
    retriever = QueryRecorder(docs=[doc], queries=[])
    llm = _loaded(["Desmond is the lead [1] and he is great.", "He runs safety [1]."])
    run_answer(build_chain(retriever, llm), "And what is his role?", history)
    assert retriever.queries == ["Who is the Health and Safety Lead? And what is his role?"]

    # a self-contained question is searched as asked, without an LLM call
    retriever = QueryRecorder(docs=[doc], queries=[])
    llm = _loaded(["The fee is 37 pounds [1]."])
    answer = run_answer(
        build_chain(retriever, llm), "How much is the yearly membership fee?", history
    )
    assert retriever.queries == ["How much is the yearly membership fee?"]
    assert answer.text == "The fee is 37 pounds [1]."  # the first response was not used up


def test_a_stopped_answer_is_torn_down_before_run_answer_returns() -> None:
    """A client that leaves stops the answer by raising from on_token. The generation must
    be closed in that same call, inside the caller's turn on the LLM, not later by the
    garbage collector while another request already decodes (issue 15's segfault)."""
    from langchain_core.runnables import RunnableGenerator

    events: list[str] = []

    def generation(inputs: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        try:
            for _ in inputs:
                pass
            yield {"sources": []}
            for token in ("one", "two", "three"):
                events.append(f"decode {token}")
                yield {"answer": token}
        finally:
            events.append("closed")

    class Left(Exception):
        pass

    def on_token(token: str) -> None:
        raise Left

    with pytest.raises(Left) as caught:
        run_answer(RunnableGenerator(generation), "q?", on_token=on_token)
    assert caught.value is not None  # the traceback is still held here
    assert events == ["decode one", "closed"]
