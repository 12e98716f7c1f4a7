"""The ollama backend (langchain-ollama): `/api/show` names the model's chat template; a
family ragapp knows is rendered by ragapp and sent raw to `/api/generate` (the same prompt
and stop strings as in-process llama.cpp); an unknown one goes through `/api/chat`, where
Ollama applies the model's own template. `num_ctx` is always sent: Ollama's default context
(2,048 tokens in most versions) would otherwise cut the retrieved passages silently.

The server is probed once at load, so a missing server or model is one clear line.
"""

from __future__ import annotations

from typing import Any

from ragapp.backends.base import LoadedLLM, missing_package
from ragapp.backends.formats import FORMATS, SERVER_FORMAT, detect_family
from ragapp.backends.http import PROBE_TIMEOUT_S
from ragapp.errors import BackendError
from ragapp.settings import BUNDLED, Settings

OLLAMA_DEFAULT_URL = "http://127.0.0.1:11434"  # as in the registry's entry


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


def load(settings: Settings) -> LoadedLLM:
    try:
        import ollama
        from langchain_ollama import ChatOllama, OllamaLLM
    except ImportError:
        raise missing_package("langchain-ollama") from None
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
        {
            "name": m.model,
            "size_mb": round((m.size or 0) / 2**20, 1),
            "family": m.details.family if m.details else None,
        }
        for m in listed.models
    ]


server_url = ollama_url


def list_models(settings: Settings) -> list[dict[str, Any]]:
    return ollama_models(ollama_url(settings))
