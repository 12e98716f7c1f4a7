"""LLM backends that are local servers: Ollama, and any OpenAI-compatible server (llamafile,
llama.cpp's server, llama-cpp-python's server, LM Studio, vLLM).

Each is probed once at load, so a missing server or model is one clear line, not a stack
trace in the middle of an answer:

- **ollama** (`langchain-ollama`): `/api/show` names the model's chat template; a family
  ragapp knows is rendered by ragapp and sent raw to `/api/generate` (the same prompt and
  stop strings as in-process llama.cpp); an unknown one goes through `/api/chat`, where
  Ollama applies the model's own template. `num_ctx` is always sent: Ollama's default
  context (2,048 tokens in most versions) would otherwise cut the retrieved passages
  silently.
- **openai** (`langchain-openai`): `/v1/chat/completions`, where the server applies its
  model's own chat template; setting `prompt_format` to a family sends ragapp's rendering
  to `/v1/completions` instead. The server's context size and tokenizer are used when it
  exposes them (llama.cpp's `/props` and `/tokenize`, llama-cpp-python's
  `/extras/tokenize`); otherwise ragapp budgets with a deliberately high token estimate.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ragapp.errors import BackendError
from ragapp.llms import LoadedLLM
from ragapp.prompts import FORMATS, SERVER_FORMAT, PromptFormat, detect_family
from ragapp.settings import BUNDLED, Settings

log = logging.getLogger(__name__)

OLLAMA_DEFAULT_URL = "http://127.0.0.1:11434"
PROBE_TIMEOUT_S = 5.0


def _missing(package: str) -> BackendError:
    return BackendError(f"the {package} package is missing: pip install {package}")


# --- Ollama ---------------------------------------------------------------------------------------


def ollama_url(settings: Settings) -> str:
    return (settings.llm_base_url or OLLAMA_DEFAULT_URL).rstrip("/")


def ollama_error(exc: BaseException, base_url: str, model: str) -> BackendError | None:
    """A one-line BackendError for what the Ollama client raised, or None if not its."""
    import httpx
    import ollama

    if isinstance(exc, ollama.ResponseError):
        if exc.status_code == 404:
            return BackendError(
                f"Ollama at {base_url} has no model {model!r}: run `ollama pull {model}`"
            )
        return BackendError(f"Ollama at {base_url} answered {exc.status_code}: {exc.error}")
    if isinstance(exc, ConnectionError | httpx.TransportError):
        return BackendError(
            f"cannot reach Ollama at {base_url} ({type(exc).__name__}): "
            "is `ollama serve` running? (RAGAPP_LLM_BASE_URL sets the address)"
        )
    return None


def ollama_metadata(show: Any) -> dict[str, Any]:
    """`/api/show` as GGUF-style metadata, so one detector serves every backend."""
    info = dict(getattr(show, "modelinfo", None) or {})
    details = getattr(show, "details", None)
    meta: dict[str, Any] = {k: v for k, v in info.items() if not isinstance(v, list | dict)}
    meta["tokenizer.chat_template"] = getattr(show, "template", None) or ""
    if details is not None and getattr(details, "family", None):
        meta.setdefault("general.architecture", details.family)
    return meta


def load_ollama(settings: Settings) -> LoadedLLM:
    try:
        import ollama
        from langchain_ollama import ChatOllama, OllamaLLM
    except ImportError:
        raise _missing("langchain-ollama") from None
    base_url, model = ollama_url(settings), settings.llm_model
    if model == BUNDLED:
        raise BackendError(
            "RAGAPP_LLM_MODEL must name an Ollama model for the ollama backend "
            "(see `ragapp models` or `ollama list`)"
        )
    try:
        show = ollama.Client(host=base_url, timeout=PROBE_TIMEOUT_S).show(model)
    except Exception as exc:
        raise (ollama_error(exc, base_url, model) or exc) from None
    metadata = ollama_metadata(show)
    family = _family(settings.prompt_format, metadata)
    common: dict[str, Any] = {
        "model": model,
        "base_url": base_url,
        "num_ctx": settings.n_ctx,  # always: Ollama's default would truncate silently
        "num_predict": settings.max_tokens,
        "temperature": settings.temperature,
        "repeat_penalty": settings.repeat_penalty,
        "seed": settings.seed,
        "keep_alive": settings.keep_alive,
    }

    class RawOllamaLLM(OllamaLLM):
        """`/api/generate` with `raw: true`: the prompt is already in the model's format."""

        def _generate_params(
            self, prompt: str, stop: list[str] | None = None, **kwargs: Any
        ) -> dict[str, Any]:
            max_tokens = kwargs.pop("max_tokens", None)
            params = super()._generate_params(prompt, stop=stop, **kwargs)
            if max_tokens is not None:
                params["options"]["num_predict"] = max_tokens
            return {**params, "raw": True}

    llm: Any = RawOllamaLLM(**common) if family else ChatOllama(**common)
    return LoadedLLM(
        llm=llm,
        prompt_format=FORMATS[family] if family else SERVER_FORMAT,
        label=f"ollama:{model}",
        metadata=metadata,
        n_ctx=settings.n_ctx,
        max_tokens=settings.max_tokens,
        describe_error=lambda exc: ollama_error(exc, base_url, model),
    )


def _family(requested: str, metadata: dict[str, Any]) -> str | None:
    """The family ragapp renders for, or None to let the server apply its own template."""
    if requested == "template":
        return None
    return requested if requested != "auto" else detect_family(metadata)


def ollama_models(base_url: str) -> list[dict[str, Any]]:
    """The models an Ollama server has pulled (raises BackendError when unreachable)."""
    import ollama

    try:
        listed = ollama.Client(host=base_url, timeout=PROBE_TIMEOUT_S).list()
    except Exception as exc:
        raise (ollama_error(exc, base_url, "") or exc) from None
    return [
        {"name": m.model, "size_mb": round((m.size or 0) / 2**20, 1), "family": m.details.family}
        for m in listed.models
    ]


# --- OpenAI-compatible servers ----------------------------------------------------------------------


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


def _post_json(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as response:
        return json.load(response)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
        return json.load(response)


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
            if isinstance(_post_json(url, body("probe")).get("tokens"), list):
                return lambda text, url=url, body=body: len(_post_json(url, body(text))["tokens"])
        except (OSError, ValueError, AttributeError):
            continue
    return None


def server_n_ctx(v1_url: str) -> int | None:
    """The context size a llama.cpp server runs with (`/props`), if it says."""
    try:
        props = _get_json(f"{_server_root(v1_url)}/props")
    except (OSError, ValueError):
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


def load_openai(settings: Settings) -> LoadedLLM:
    try:
        from langchain_openai import ChatOpenAI, OpenAI
    except ImportError:
        raise _missing("langchain-openai") from None
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


def reachable(url: str) -> bool:
    """Whether anything answers HTTP at ``url`` (for `ragapp doctor`)."""
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, with an error status
    except OSError:
        return False
