"""The gpt4all backend: GPT4All's own llama.cpp runtime, in-process, on a local GGUF.

The prompt ragapp renders goes to gpt4all's runtime untouched (raw template "%1%2": no
template of gpt4all's, no blank line it would append, special tokens parsed), and stop
strings are enforced on the streamed text here. gpt4all is always given
``allow_download=False``: it never fetches a model list or a model.

gpt4all 2.8.2's llama.cpp is from mid-2024 and refuses GGUFs whose pre-tokenizer name is
newer than it (the bundled SmolLM2's "smollm"); ``ragapp.backends.gguf_compat`` gives it a verified
copy under an equivalent name.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from queue import Queue
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import LLM
from langchain_core.outputs import GenerationChunk
from pydantic import ConfigDict, PrivateAttr

from ragapp.backends.base import LoadedLLM, gguf_path, llama_tokenizer, llm_label
from ragapp.backends.formats import choose_format
from ragapp.backends.gguf_compat import compatible_gguf, open_vocab, quiet_native_stderr
from ragapp.errors import BackendError
from ragapp.settings import Settings

log = logging.getLogger(__name__)

INSTALL = "pip install 'ragapp[gpt4all]'"
RAW_TEMPLATE = "%1%2"  # the prompt alone: nothing before it, nothing after the answer
_DONE = object()


def _import_gpt4all() -> Any:
    try:
        import gpt4all
    except ImportError:
        raise BackendError(f"the gpt4all backend needs the gpt4all package: {INSTALL}") from None
    return gpt4all


class GPT4AllLLM(LLM):
    """LangChain LLM over a loaded ``gpt4all.GPT4All``: takes the fully rendered prompt
    string, streams the answer piece by piece, and ends it at the first stop string.
    gpt4all takes no seed, so answers repeat exactly only at temperature 0."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: Any  # gpt4all.GPT4All
    max_tokens: int = 256
    temperature: float = 0.1
    repeat_penalty: float = 1.1
    # The rest as llama-cpp-python's defaults, so both in-process backends sample alike.
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_last_n: int = 64
    n_batch: int = 128  # gpt4all caps a prompt batch at 128 anyway
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "gpt4all"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.client.config.get("path"),
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "repeat_penalty": self.repeat_penalty,
        }

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
        pieces = self._pieces(prompt, int(kwargs.get("max_tokens", self.max_tokens)))
        try:
            for text in until_stop(pieces, stop or []):
                chunk = GenerationChunk(text=text)
                if run_manager is not None:
                    run_manager.on_llm_new_token(text, chunk=chunk)
                yield chunk
        finally:
            pieces.close()  # ends gpt4all's generation at its next token

    def _pieces(self, prompt: str, max_tokens: int) -> Generator[str, None, None]:
        """The answer as gpt4all decodes it, token by token. gpt4all generates through a
        C callback, so it runs in a thread; closing this generator ends the generation at
        the next token."""
        queue: Queue[Any] = Queue()
        cancelled = threading.Event()

        def on_token(token_id: int, piece: str) -> bool:
            if cancelled.is_set():
                return False
            # gpt4all reports a prompt it can't take (too long) as a "token" with id -1.
            queue.put(
                BackendError(f"gpt4all: {piece.removeprefix('ERROR: ')}") if token_id < 0 else piece
            )
            return True

        def generate() -> None:
            try:
                self.client.model.prompt_model(
                    prompt,
                    RAW_TEMPLATE,
                    on_token,
                    n_predict=max_tokens,
                    temp=self.temperature,
                    top_k=self.top_k,
                    top_p=self.top_p,
                    min_p=self.min_p,
                    repeat_penalty=self.repeat_penalty,
                    repeat_last_n=self.repeat_last_n,
                    n_batch=self.n_batch,
                    reset_context=True,
                    special=True,  # <|im_start|> etc. are the model's control tokens, not text
                )
            except Exception as exc:  # handed to the consumer's thread
                queue.put(exc)
            finally:
                queue.put(_DONE)

        with self._lock:  # one generation at a time: a gpt4all model has one context
            worker = threading.Thread(target=generate, name="gpt4all-generate", daemon=True)
            worker.start()
            try:
                while (item := queue.get()) is not _DONE:
                    if isinstance(item, BackendError):
                        raise item
                    if isinstance(item, Exception):
                        raise BackendError(f"gpt4all failed while generating: {item}") from item
                    if item:
                        yield item
            finally:
                cancelled.set()
                worker.join()


def until_stop(pieces: Iterator[str], stop: Sequence[str]) -> Iterator[str]:
    """Pass ``pieces`` through until the text contains a stop string, which is cut with
    everything after it. Text that may be the beginning of a stop string is held back
    until the next piece shows whether it is."""
    stops = [s for s in stop if s]
    pending = ""
    for piece in pieces:
        pending += piece
        hits = [i for i in (pending.find(s) for s in stops) if i >= 0]
        if hits:
            if head := pending[: min(hits)]:
                yield head
            return
        keep = max((_overlap(pending, s) for s in stops), default=0)
        if len(pending) > keep:
            yield pending[: len(pending) - keep]
            pending = pending[len(pending) - keep :]
    if pending:
        yield pending


def _overlap(text: str, stop: str) -> int:
    """Length of the longest end of ``text`` that is a beginning of ``stop``."""
    for n in range(min(len(text), len(stop) - 1), 0, -1):
        if text.endswith(stop[:n]):
            return n
    return 0


def gpt4all_tokens(path: Path, text: str) -> list[int]:
    """Token ids of ``text`` as gpt4all's own runtime feeds it to the model (special tokens
    parsed): ``text`` is prompted with nothing generated, and the context's tokens read."""
    client = open_gpt4all(path, n_ctx=2048, n_threads=1)
    try:
        client.model.prompt_model(
            text, RAW_TEMPLATE, lambda *_: True, n_predict=0, reset_context=True, special=True
        )
        ctx = client.model.context
        return [ctx.tokens[i] for i in range(ctx.tokens_size)]
    finally:
        client.close()


def open_gpt4all(path: Path, n_ctx: int, n_threads: int) -> Any:
    """A ``gpt4all.GPT4All`` on the GGUF ``path``, on the CPU, never downloading.

    gpt4all reports a model it can't load only on stderr (and returns an unloaded model),
    so its native stderr is captured during the load for the reason; the rest of what it
    prints there (missing CUDA libraries it probes for) goes to the debug log."""
    gpt4all = _import_gpt4all()
    from gpt4all._pyllmodel import llmodel

    client = None
    error: Exception | None = None
    with quiet_native_stderr() as output:
        try:
            client = gpt4all.GPT4All(
                model_name=path.name,
                model_path=path.parent,
                allow_download=False,
                device="cpu",
                n_ctx=n_ctx,
                n_threads=None,
                verbose=False,
            )
        except Exception as exc:  # RuntimeError, ValueError, FileNotFoundError
            error = exc
    lines = [line.strip() for line in output.text.splitlines() if line.strip()]
    for line in lines:
        log.debug("gpt4all: %s", line)
    loaded = client is not None and llmodel.llmodel_isModelLoaded(client.model.model)
    if not loaded:
        if client is not None:
            client.close()
        errors = [line for line in lines if "error" in line.lower()] or lines
        reason = str(error) if error is not None else (errors[0] if errors else "no reason given")
        raise BackendError(f"gpt4all could not load {path.name}: {reason}")
    assert client is not None
    client.model.set_thread_count(n_threads)
    return client


def default_threads() -> int:
    """llama-cpp-python's default, so RAGAPP_N_THREADS means the same on both backends."""
    return max((os.cpu_count() or 2) // 2, 1)


def load(settings: Settings) -> LoadedLLM:
    """gpt4all's runtime in-process on the configured GGUF (a verified compatible copy of
    it if gpt4all's llama.cpp only lacks the name of its pre-tokenizer)."""
    _import_gpt4all()
    source = gguf_path(settings)
    model_file = compatible_gguf(source, settings.cache_dir, checks=[gpt4all_tokens])
    client = open_gpt4all(model_file, settings.n_ctx, settings.n_threads or default_threads())
    # Prompt format and token counts come from the original file, by llama-cpp-python's
    # tokenizer (for a renamed copy, compatible_gguf has checked that gpt4all's agrees).
    vocab = open_vocab(source)
    metadata = dict(vocab.metadata)
    return LoadedLLM(
        llm=GPT4AllLLM(
            client=client,
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            repeat_penalty=settings.repeat_penalty,
            n_batch=settings.n_batch,
        ),
        prompt_format=choose_format(settings.prompt_format, metadata),
        label=llm_label(settings),
        metadata=metadata,
        n_ctx=settings.n_ctx,
        max_tokens=settings.max_tokens,
        tokenizer=llama_tokenizer(vocab),
    )


__all__ = ["GPT4AllLLM", "load", "until_stop"]
