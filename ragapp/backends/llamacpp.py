"""The llamacpp backend: llama-cpp-python in-process (GPU offload with n_gpu_layers), through
LangChain's LlamaCpp LLM, on the bundled GGUF or any local one."""

from __future__ import annotations

import warnings

from ragapp.backends.base import LoadedLLM, gguf_path, llama_tokenizer, llm_label
from ragapp.backends.formats import choose_format
from ragapp.errors import BackendError
from ragapp.settings import Settings

_KV_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2}  # llama_cpp.GGML_TYPE_*


def load(settings: Settings) -> LoadedLLM:
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
