"""What every LLM backend hands the query side: a LangChain LLM, its prompt format, its
token counter and its context size (LoadedLLM), plus the helpers backends share."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel, BaseLLM
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableGenerator,
    RunnableLambda,
    RunnablePassthrough,
)

from ragapp.backends.formats import PromptFormat
from ragapp.bundled import BUNDLED_LLM, llm_gguf
from ragapp.errors import BackendError, ModelNotFoundError, RagappError
from ragapp.settings import BUNDLED, Settings

log = logging.getLogger(__name__)


@dataclass
class LoadedLLM:
    """A ready LLM, the prompt format it needs, and what to call it in output.

    A text LLM (``BaseLLM``) gets the prompt rendered by ``prompt_format`` into the exact
    string its model family was trained on. A chat model (``BaseChatModel``: a server that
    applies its own model's chat template) gets the messages; its ``prompt_format`` only
    serves to count tokens.
    """

    llm: BaseLLM | BaseChatModel
    prompt_format: PromptFormat
    label: str
    metadata: dict[str, Any]
    n_ctx: int = 4096
    max_tokens: int = 256
    # The model's own tokenizer (text -> token count); None: estimate from the length.
    tokenizer: Callable[[str], int] | None = None
    # Turns what a server backend's client raised into a one-line error (None: not its).
    describe_error: Callable[[BaseException], RagappError | None] | None = None
    # Held by every generation of an in-process runtime: its one llama.cpp (or gpt4all)
    # context is not thread-safe, so two decodes must never run on it at once, whatever
    # path (queue, eval, a generator torn down late) asked. None: a server backend.
    guard: threading.Lock | None = None

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` by the model's own tokenizer. Without one, a deliberately high
        estimate (one token per 3 characters), so an estimated prompt is never cut."""
        if self.tokenizer is not None:
            return self.tokenizer(text)
        return len(text) // 3 + 1

    @property
    def is_chat(self) -> bool:
        return isinstance(self.llm, BaseChatModel)

    def generate(self, stop: list[str], **kwargs: Any) -> Runnable[Any, Any]:
        """prompt (a PromptValue) -> model output, rendered for a text LLM, ending at the
        format's stop strings and ``stop``."""
        render: Runnable[Any, Any] = (
            RunnablePassthrough()
            if self.is_chat
            else RunnableLambda(self.prompt_format.render, name="render_prompt")
        )
        model = self.llm.bind(stop=[*self.prompt_format.stop, *stop], **kwargs)
        return render | (model if self.guard is None else _one_at_a_time(model, self.guard))


def _one_at_a_time(model: Runnable[Any, Any], guard: threading.Lock) -> Runnable[Any, Any]:
    """``model`` holding ``guard`` from its first decode until its generation ends (or is
    closed). The server's queue already gives the model one request at a time; waiting
    here means something slipped past it, which is logged."""

    def generate(prompts: Iterator[Any], config: RunnableConfig) -> Iterator[Any]:
        for prompt in prompts:
            if not guard.acquire(blocking=False):
                log.warning("a generation waited for another on the same LLM context")
                guard.acquire()
            try:
                yield from model.stream(prompt, config)
            finally:
                guard.release()

    return RunnableGenerator(generate, name="one_generation_at_a_time")  # type: ignore[arg-type]


def llama_tokenizer(client: Any) -> Callable[[str], int]:
    """Token counter of a loaded ``llama_cpp.Llama`` (BOS included, special tokens parsed)."""
    return lambda text: len(client.tokenize(text.encode("utf-8"), add_bos=True, special=True))


def gguf_path(settings: Settings) -> Path:
    """The GGUF file ``llm_model`` names: the bundled model, a path, or a name that
    `ragapp models` lists (a file under ``models_dir``, with or without ``.gguf``)."""
    if settings.llm_model == BUNDLED:
        return llm_gguf()
    path = Path(settings.llm_model).expanduser()
    if not path.is_file():
        path = in_models_dir(settings.models_dir, settings.llm_model) or path
    if not path.is_file():
        raise ModelNotFoundError(
            f"LLM model not found: {settings.llm_model} (give a .gguf path, or a name "
            f"`ragapp models` lists from {settings.models_dir})"
        )
    with path.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise ModelNotFoundError(
                f"{path} is not a GGUF model (llama.cpp and gpt4all read .gguf files only)"
            )
    return path.resolve()


def in_models_dir(models_dir: Path, name: str) -> Path | None:
    """The .gguf under ``models_dir`` (searched recursively) called ``name``, by file
    name or stem."""
    if "/" in name or not models_dir.is_dir():
        return None
    return next((p for p in sorted(models_dir.rglob("*.gguf")) if name in (p.name, p.stem)), None)


DEMO_NOTE = "demo model — answers are unreliable; see README to use a real one"


def is_demo_model(settings: Settings) -> bool:
    """Whether the LLM is the bundled 135M demo model (too small to trust)."""
    return settings.llm_backend in ("llamacpp", "gpt4all") and settings.llm_model == BUNDLED


def llm_label(settings: Settings) -> str:
    if settings.llm_backend in ("llamacpp", "gpt4all") and settings.llm_model == BUNDLED:
        return f"{settings.llm_backend}:{BUNDLED_LLM} (bundled)"
    return settings.llm_label


def missing_package(package: str, install: str | None = None) -> BackendError:
    """The one-line error for a backend whose Python package is not installed."""
    return BackendError(f"the {package} package is missing: {install or f'pip install {package}'}")
