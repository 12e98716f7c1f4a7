"""The embedder: the onnxruntime path gives the same vectors as sentence-transformers, and
models it can't handle fall back to torch (or fail clearly when onnx was asked for)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from ragapp.embeddings import load_embeddings, resolve_embedding_model
from ragapp.embeddings.onnx import OnnxEmbeddings, onnx_supported
from ragapp.errors import ModelNotFoundError
from tests.conftest import SAMPLE_DOCS


def _texts() -> list[str]:
    paras = [
        p for f in ("faq.txt", "handbook.md") for p in (SAMPLE_DOCS / f).read_text().split("\n\n")
    ]
    return [p for p in paras if p.strip()] + ["x", "Mitgliederversammlung " * 200]


@pytest.mark.e2e
def test_onnx_vectors_equal_sentence_transformers(shared_cache_dir: Path) -> None:
    spec = resolve_embedding_model("bundled")
    onnx = load_embeddings(spec, 8, "onnx", shared_cache_dir / "onnx")
    torch = load_embeddings(spec, 8, "torch")
    assert isinstance(onnx, OnnxEmbeddings)
    texts = _texts()
    a = np.array(onnx.embed_documents(texts))
    b = np.array(torch.embed_documents(texts))
    assert a.shape == b.shape == (len(texts), 384)
    assert float((a * b).sum(axis=1).min()) > 0.9999
    assert float(np.dot(onnx.embed_query(texts[0]), b[0])) > 0.9999


def _copy_with_pooling(tmp_path: Path, **pooling: bool) -> Path:
    bundled = resolve_embedding_model("bundled").path
    model = tmp_path / "cls-model"
    shutil.copytree(bundled, model, copy_function=os.symlink)
    config = model / "1_Pooling" / "config.json"
    settings = json.loads(config.read_text()) | pooling
    config.unlink()
    config.write_text(json.dumps(settings))
    return model


def test_models_onnx_cannot_mirror_are_recognised(tmp_path: Path) -> None:
    assert onnx_supported(resolve_embedding_model("bundled").path) is None
    model = _copy_with_pooling(
        tmp_path, pooling_mode_mean_tokens=False, pooling_mode_cls_token=True
    )
    assert onnx_supported(model) == "pooling is not plain mean pooling"


@pytest.mark.e2e
def test_unsupported_model_falls_back_to_torch_or_fails_when_onnx_is_required(
    tmp_path: Path,
) -> None:
    model = _copy_with_pooling(
        tmp_path, pooling_mode_mean_tokens=False, pooling_mode_cls_token=True
    )
    spec = resolve_embedding_model(str(model))
    auto = load_embeddings(spec, 8, "auto", tmp_path / "cache")
    assert not isinstance(auto, OnnxEmbeddings)
    assert len(auto.embed_query("hello")) == 384
    with pytest.raises(ModelNotFoundError, match="runtime 'onnx' unavailable: .*mean pooling"):
        load_embeddings(spec, 8, "onnx", tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("**/*.onnx"))
