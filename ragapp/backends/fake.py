"""The fake backend: an LLM and an embedder with no model behind them, for fast unit tests
(RAGAPP_LLM_BACKEND=fake, RAGAPP_EMBEDDING_MODEL=fake). End-to-end tests use the real
bundled models; these only make the plumbing around them testable in milliseconds.

- ``EchoLLM`` answers from the prompt it is given: by default the first sentence of
  passage [1], cited ("... [1]"); ``llm_model = "echo"`` repeats the question; scripted
  ``responses`` are returned in turn; ``answers`` answers the questions it names (not the
  rewrite of a follow-up). Answers stream word by word and end at stop strings.
- ``HashEmbeddings``: deterministic bag-of-words vectors, so texts sharing words are close.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import LLM
from langchain_core.outputs import GenerationChunk

from ragapp.backends.base import LoadedLLM
from ragapp.backends.formats import FORMATS
from ragapp.settings import Settings

FAKE_EMBEDDING = "fake-hash-64"
_PASSAGE = re.compile(
    r"\n\[1\] \([^)\n]*\)\n(.+?)(?:\n\n\[2\] \(|\n\nQuestion: |<\|im_end\|>|\Z)", re.S
)
_QUESTION = re.compile(r"(?:Follow-up question|Question): (.+?)(?:\n|<\|im_end\|>|$)")


class EchoLLM(LLM):
    """A LangChain LLM that answers from its prompt (see the module docstring)."""

    mode: str = "cite"  # "cite" | "echo"
    responses: list[str] = []
    answers: dict[str, str] = {}  # question -> its scripted answer
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "fake-echo"

    def reply(self, prompt: str) -> str:
        question = _QUESTION.findall(prompt)
        follow_up = "Follow-up question:" in prompt
        if question and not follow_up and question[-1].strip() in self.answers:
            text = self.answers[question[-1].strip()]
        elif self.responses:
            text = self.responses[self.calls % len(self.responses)]
        else:
            passage = _PASSAGE.search(prompt)
            if self.mode == "echo" or follow_up or passage is None:
                text = question[-1].strip() if question else prompt
            else:
                text = " ".join(passage.group(1).split())
                first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
                text = f"{first} [1]"
        self.calls += 1
        return text

    def _call(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        return "".join(c.text for c in self._stream(prompt, stop, run_manager, **kwargs))

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        text = self.reply(prompt)
        for marker in stop or []:
            text = text.split(marker, 1)[0]
        for piece in re.findall(r"\S+\s*", text):
            chunk = GenerationChunk(text=piece)
            if run_manager is not None:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk


def load(settings: Settings) -> LoadedLLM:
    mode = "echo" if settings.llm_model == "echo" else "cite"
    return LoadedLLM(
        llm=EchoLLM(mode=mode),
        prompt_format=FORMATS["chatml"],
        label=f"fake:{mode}",
        metadata={"general.architecture": "fake"},
        n_ctx=settings.n_ctx,
        max_tokens=settings.max_tokens,
        tokenizer=lambda text: len(text.split()) + 1,
    )


class HashEmbeddings(Embeddings):
    """Deterministic bag-of-words vectors: texts sharing words are close."""

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim

    def _vec(self, text: str) -> list[float]:
        v = [0.0] * self.dim
        for word in text.lower().split():
            v[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norm = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / norm for x in v]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vec(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vec(text)
