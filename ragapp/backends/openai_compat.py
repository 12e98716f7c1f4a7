"""The openai backend (langchain-openai): any OpenAI-compatible local server (llamafile,
llama.cpp's server, llama-cpp-python's server, LM Studio, vLLM).

`/v1/chat/completions`, where the server applies its model's own chat template; setting
`prompt_format` to a family sends ragapp's rendering to `/v1/completions` instead. The
server's context size and tokenizer are used when it exposes them (llama.cpp's `/props`
and `/tokenize`, llama-cpp-python's `/extras/tokenize`); otherwise ragapp budgets with a
deliberately high token estimate. The server is probed once at load.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from ragapp.backends.base import LoadedLLM, missing_package
from ragapp.backends.formats import FORMATS, SERVER_FORMAT, PromptFormat
from ragapp.backends.http import PROBE_TIMEOUT_S, get_json, post_json
from ragapp.errors import BackendError
from ragapp.settings import BUNDLED, Settings

log = logging.getLogger(__name__)


def openai_url(settings: Settings) -> str:
    """The server's /v1 base URL (`http://host:port` and `http://host:port/v1` both work)."""
    if not settings.llm_base_url:
        raise BackendError(
            "RAGAPP_LLM_BASE_URL must name the server for the openai backend, "
            "e.g. http://127.0.0.1:8080/v1 (llamafile, llama.cpp server)"
        )
    url = settings.llm_base_url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def _server_root(v1_url: str) -> str:
    parts = urlsplit(v1_url)
    return urlunsplit(parts._replace(path=parts.path.removesuffix("/v1")))


def _counter(url: str, body: Callable[[str], dict[str, Any]]) -> Callable[[str], int]:
    return lambda text: len(post_json(url, body(text))["tokens"])


def server_tokenizer(v1_url: str) -> Callable[[str], int] | None:
    """The server's own token counter, where it has one: llama.cpp's `/tokenize`,
    llama-cpp-python's `/extras/tokenize`."""
    root = _server_root(v1_url)
    routes: list[tuple[str, Callable[[str], dict[str, Any]]]] = [
        (f"{root}/tokenize", lambda text: {"content": text}),
        (f"{root}/extras/tokenize", lambda text: {"input": text}),
    ]
    for url, body in routes:
        try:
            if isinstance(post_json(url, body("probe")).get("tokens"), list):
                return _counter(url, body)
        except (httpx.HTTPError, ValueError, AttributeError, KeyError):
            continue
    return None


def server_n_ctx(v1_url: str) -> int | None:
    """The context size a llama.cpp server runs with (`/props`), if it says."""
    try:
        props = get_json(f"{_server_root(v1_url)}/props")
    except (httpx.HTTPError, ValueError):
        return None
    n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx") or props.get("n_ctx")
    return int(n_ctx) if isinstance(n_ctx, int | float) and n_ctx > 0 else None


def openai_error(exc: BaseException, base_url: str) -> BackendError | None:
    import openai

    if isinstance(exc, openai.APIConnectionError):
        return BackendError(
            f"cannot reach the OpenAI-compatible server at {base_url}: is it running? "
            "(RAGAPP_LLM_BASE_URL sets the address)"
        )
    if isinstance(exc, openai.APIStatusError):
        return BackendError(f"the server at {base_url} answered {exc.status_code}: {exc.message}")
    return None


def openai_models(base_url: str, api_key: str = "") -> list[str]:
    import openai

    client = openai.OpenAI(
        base_url=base_url, api_key=api_key or "local", timeout=PROBE_TIMEOUT_S, max_retries=0
    )
    try:
        return [m.id for m in client.models.list()]
    except Exception as exc:
        raise (openai_error(exc, base_url) or exc) from None


def load(settings: Settings) -> LoadedLLM:
    try:
        from langchain_openai import ChatOpenAI, OpenAI
    except ImportError:
        raise missing_package("langchain-openai") from None
    base_url = openai_url(settings)
    api_key = settings.llm_api_key or "local"  # local servers ignore it; the client needs one
    served = openai_models(base_url, api_key)
    model = settings.llm_model
    if model == BUNDLED:
        if len(served) != 1:
            raise BackendError(
                f"the server at {base_url} serves {len(served)} models "
                f"({', '.join(served) or 'none'}): set RAGAPP_LLM_MODEL to one of them"
            )
        model = served[0]
    elif served and model not in served:
        raise BackendError(
            f"the server at {base_url} has no model {model!r}; it serves: {', '.join(served)}"
        )
    n_ctx = settings.n_ctx
    server_ctx = server_n_ctx(base_url)
    if server_ctx is not None and server_ctx < n_ctx:
        log.info("the server's context is %d tokens (n_ctx is %d): budgeting for %d",
                 server_ctx, n_ctx, server_ctx)  # fmt: skip
        n_ctx = server_ctx
    family = None if settings.prompt_format in ("auto", "template") else settings.prompt_format
    common: dict[str, Any] = {
        "model": model,
        "base_url": base_url,
        "api_key": api_key,
        "temperature": settings.temperature,
        "max_tokens": settings.max_tokens,
        "seed": settings.seed,
        "streaming": True,
        "max_retries": 0,
        # llama.cpp's and llama-cpp-python's servers read it; others ignore unknown fields
        "extra_body": {"repeat_penalty": settings.repeat_penalty},
    }
    llm: Any = OpenAI(**common) if family else ChatOpenAI(**common)
    fmt: PromptFormat = FORMATS[family] if family else SERVER_FORMAT
    return LoadedLLM(
        llm=llm,
        prompt_format=fmt,
        label=f"openai:{model.rsplit('/', 1)[-1]}",  # llama.cpp servers name models by path
        metadata={"server": base_url},
        n_ctx=n_ctx,
        max_tokens=settings.max_tokens,
        tokenizer=server_tokenizer(base_url),
        describe_error=lambda exc: openai_error(exc, base_url),
    )


server_url = openai_url


def list_models(settings: Settings) -> list[dict[str, Any]]:
    return [
        {"name": m, "size_mb": 0.0, "family": None} for m in openai_models(openai_url(settings))
    ]
