"""The LLM seam: build the configured backend as a LangChain LLM, with its prompt format."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel, BaseLLM
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough

from ragapp.bundled import BUNDLED_LLM, llm_gguf
from ragapp.errors import BackendError, ModelNotFoundError, RagappError
from ragapp.prompts import PromptFormat, choose_format
from ragapp.settings import BUNDLED, Settings

_KV_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2}  # llama_cpp.GGML_TYPE_*


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
        return render | self.llm.bind(stop=[*self.prompt_format.stop, *stop], **kwargs)


def llama_tokenizer(client: Any) -> Callable[[str], int]:
    """Token counter of a loaded ``llama_cpp.Llama`` (BOS included, special tokens parsed)."""
    return lambda text: len(client.tokenize(text.encode("utf-8"), add_bos=True, special=True))


def gguf_path(settings: Settings) -> Path:
    if settings.llm_model == BUNDLED:
        return llm_gguf()
    path = Path(settings.llm_model).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(
            f"LLM model file not found: {path} (RAGAPP_LLM_MODEL takes a local .gguf path)"
        )
    return path.resolve()


def llm_label(settings: Settings) -> str:
    if settings.llm_backend in ("llamacpp", "gpt4all") and settings.llm_model == BUNDLED:
        return f"{settings.llm_backend}:{BUNDLED_LLM} (bundled)"
    return settings.llm_label


def load_llamacpp(settings: Settings) -> LoadedLLM:
    """llama-cpp-python in-process, through LangChain's LlamaCpp LLM."""
    path = gguf_path(settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # langchain-community's sunset notice
        from langchain_community.llms import LlamaCpp

    kv_type = _KV_TYPES[settings.kv_cache_type]
    try:
        llm = LlamaCpp(
            model_path=str(path),
            n_ctx=settings.n_ctx,
            n_batch=settings.n_batch,
            n_gpu_layers=settings.n_gpu_layers,
            n_threads=settings.n_threads,
            use_mmap=settings.use_mmap,
            use_mlock=settings.use_mlock,
            seed=settings.seed,
            temperature=settings.temperature,
            repeat_penalty=settings.repeat_penalty,
            max_tokens=settings.max_tokens,
            streaming=True,
            verbose=False,
            model_kwargs={
                "flash_attn": settings.flash_attn,
                "type_k": kv_type,
                "type_v": kv_type,
                # the prompt too: llama-cpp-python would use every CPU for it otherwise
                **({"n_threads_batch": settings.n_threads} if settings.n_threads else {}),
            },
        )
    except ValueError as exc:
        raise BackendError(f"llama.cpp could not load {path}: {exc}") from None
    metadata = dict(llm.client.metadata)
    return LoadedLLM(
        llm=llm,
        prompt_format=choose_format(settings.prompt_format, metadata),
        label=llm_label(settings),
        metadata=metadata,
        n_ctx=settings.n_ctx,
        max_tokens=settings.max_tokens,
        tokenizer=llama_tokenizer(llm.client),
    )


def load_llm(settings: Settings) -> LoadedLLM:
    if settings.llm_backend == "llamacpp":
        return load_llamacpp(settings)
    if settings.llm_backend == "ollama":
        from ragapp.llm_servers import load_ollama

        return load_ollama(settings)
    if settings.llm_backend == "openai":
        from ragapp.llm_servers import load_openai

        return load_openai(settings)
    if settings.llm_backend == "gpt4all":
        from ragapp.llm_gpt4all import load_gpt4all

        return load_gpt4all(settings)
    raise BackendError(f"unknown LLM backend {settings.llm_backend!r}")
