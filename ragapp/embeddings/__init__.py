"""Embedding models: the bundled all-MiniLM-L6-v2 or any local sentence-transformers folder,
on torch or (onnx.py) onnxruntime; ``fake`` is the hash embedder for unit tests."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from langchain_core.embeddings import Embeddings

from ragapp.bundled import BUNDLED_EMBEDDING, embedding_model_dir
from ragapp.errors import ModelNotFoundError
from ragapp.types import EmbeddingSpec

log = logging.getLogger(__name__)


def resolve_embedding_model(name: str) -> EmbeddingSpec:
    """Map a setting to a local model folder. Names that are not on disk are an error:
    nothing is ever fetched from a hub."""
    if name == "fake":
        from ragapp.backends.fake import FAKE_EMBEDDING

        return EmbeddingSpec(FAKE_EMBEDDING, Path(), fake=True)
    if name in (BUNDLED_EMBEDDING, f"sentence-transformers/{BUNDLED_EMBEDDING}", "bundled"):
        return EmbeddingSpec(BUNDLED_EMBEDDING, embedding_model_dir())
    path = Path(name).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return EmbeddingSpec(path.resolve().name, path.resolve())
    raise ModelNotFoundError(
        f"embedding model {name!r} is not a local sentence-transformers folder "
        f"(ragapp never downloads models; the bundled one is {BUNDLED_EMBEDDING!r})"
    )


def load_embeddings(
    spec: EmbeddingSpec,
    batch_size: int = 32,
    runtime: str = "torch",
    cache_dir: Path | None = None,
) -> Embeddings:
    """A LangChain Embeddings for the model, normalised for cosine search.

    runtime "onnx" runs the same weights on onnxruntime (exported once into cache_dir and
    verified); "auto" does that when it can and otherwise uses sentence-transformers on torch.
    """
    if spec.fake:
        from ragapp.backends.fake import HashEmbeddings

        return HashEmbeddings()
    if runtime in ("onnx", "auto") and cache_dir is not None:
        from ragapp.embeddings.onnx import OnnxEmbeddings, cached_onnx, onnx_supported

        why_not = onnx_supported(spec.path)
        if runtime == "auto" and why_not:
            log.debug("embedding on torch: %s", why_not)  # a normal case, not a problem
            return _torch_embeddings(spec, batch_size)
        try:
            return OnnxEmbeddings(cached_onnx(spec, cache_dir), spec, batch_size)
        except Exception as exc:  # noqa: BLE001 - any export problem means: use torch instead
            if runtime == "onnx":
                raise ModelNotFoundError(f"embedding runtime 'onnx' unavailable: {exc}") from exc
            log.warning("embedding on torch (ONNX path unavailable: %s)", exc)
    return _torch_embeddings(spec, batch_size)


def _torch_embeddings(spec: EmbeddingSpec, batch_size: int) -> Embeddings:
    from langchain_huggingface import HuggingFaceEmbeddings

    return HuggingFaceEmbeddings(
        model_name=str(spec.path),
        model_kwargs={"device": "cpu", "local_files_only": True},
        encode_kwargs={"normalize_embeddings": True, "batch_size": batch_size},
    )


def embedding_dimension(spec: EmbeddingSpec) -> int:
    """The model's output size, read from its pooling config so no weights need loading."""
    if spec.fake:
        from ragapp.backends.fake import HashEmbeddings

        return HashEmbeddings().dim
    pooling = spec.path / "1_Pooling" / "config.json"
    try:
        return int(json.loads(pooling.read_text())["word_embedding_dimension"])
    except (OSError, KeyError, ValueError):
        client = _torch_embeddings(spec, 1)._client  # type: ignore[attr-defined]
        return int(client.get_embedding_dimension())
