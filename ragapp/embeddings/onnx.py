"""The same sentence-transformers model, run by onnxruntime: identical vectors, no torch
import at query time.

The ONNX graph is exported once from the model's own local weights (torch's exporter, eager
attention so onnxruntime can fuse it), checked against sentence-transformers on probe
sentences, and cached in the data dir. Nothing is downloaded; if anything about the model
is unusual (pooling other than mean, a failed export, vectors that differ) the caller falls
back to the torch path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from ragapp.errors import ModelNotFoundError
from ragapp.types import EmbeddingSpec

log = logging.getLogger(__name__)

EXPORT_VERSION = "1"  # bump when the export recipe changes, so stale caches are rebuilt
MIN_COSINE = 0.9999  # the check an export must pass against sentence-transformers
PROBES = [
    "How do I upgrade Debian to the next stable release?",
    "a",
    "Die Genossenschaft hat 2025 einen Überschuss erzielt. " * 12,
    "apt-get install -t testing package # pin priorities and /etc/apt/preferences " * 40,
]


class OnnxEmbeddings(Embeddings):
    """LangChain Embeddings over an onnxruntime session: mean pooling, then L2 normalisation."""

    def __init__(self, onnx_path: Path, spec: EmbeddingSpec, batch_size: int = 32) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning, so they don't steal a core from the parsers.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_file(str(spec.path / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=_max_seq_length(spec.path))
        self._tokenizer.enable_padding()
        self.batch_size = batch_size

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 0), dtype=np.float32)
        # Longest first, so every batch pads to lengths close to its own.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            encs = self._tokenizer.encode_batch([texts[i] for i in idx])
            feed = {
                "input_ids": np.array([e.ids for e in encs], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64),
            }
            hidden = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[
                0
            ]
            mask = feed["attention_mask"][..., None].astype(np.float32)
            vecs = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            vecs /= np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)
            if out.shape[1] == 0:
                out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
            out[idx] = vecs
        return out

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._encode(list(texts)).tolist() if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self._encode([text])[0].tolist()


def onnx_supported(model_dir: Path) -> str | None:
    """Why this model can't take the ONNX path, or None when it can."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
        pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError):
        return "no sentence-transformers modules.json / pooling config"
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
        return f"module stack {kinds} is not Transformer+Pooling(+Normalize)"
    if (
        not pooling.get("pooling_mode_mean_tokens")
        or sum(bool(v) for k, v in pooling.items() if k.startswith("pooling_mode")) != 1
    ):
        return "pooling is not plain mean pooling"
    if not (model_dir / "tokenizer.json").is_file():
        return "no fast tokenizer (tokenizer.json)"
    return None


def cached_onnx(spec: EmbeddingSpec, cache_dir: Path) -> Path:
    """The verified ONNX export of this model, building it on first use."""
    target = cache_dir / f"{spec.name}-{_weights_key(spec.path)}.onnx"
    if target.is_file():
        return target
    reason = onnx_supported(spec.path)
    if reason:
        raise ModelNotFoundError(
            f"embedding model {spec.name!r} can't run on onnxruntime: {reason}"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    log.info("preparing %s for onnxruntime (once, a few seconds)", spec.name)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    try:
        # In a child process: torch is needed only for the export, and its memory goes with it.
        proc = subprocess.run(
            [sys.executable, "-m", __name__, str(spec.path), spec.name, str(partial)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or [f"exited with {proc.returncode}"])[-1]
            raise ModelNotFoundError(f"ONNX export of {spec.name!r} failed: {last}")
        os.replace(partial, target)  # atomic: a killed export never leaves a half file in use
    finally:
        partial.unlink(missing_ok=True)
    log.info("exported %s to ONNX at %s", spec.name, target)
    return target


def _max_seq_length(model_dir: Path) -> int:
    try:
        return int(
            json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"]
        )
    except (OSError, KeyError, ValueError):
        return int(
            json.loads((model_dir / "config.json").read_text()).get("max_position_embeddings", 512)
        )


def _weights_key(model_dir: Path) -> str:
    """Cheap identity of the weights: names, sizes and mtimes of the model's files."""
    h = hashlib.sha256(EXPORT_VERSION.encode())
    for f in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(model_dir)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _export(model_dir: Path, path: Path) -> None:
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(
        str(model_dir), local_files_only=True, attn_implementation="eager"
    ).eval()

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = tuple(torch.ones((2, 8), dtype=torch.long) for _ in names)
    # The tracer's warnings are about shapes that are constant for an encoder; _verify checks.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHidden(),
            sample,
            str(path),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "seq"} for n in [*names, "last_hidden_state"]},
            opset_version=17,
            dynamo=False,
        )


def _verify(path: Path, spec: EmbeddingSpec) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(spec.path), device="cpu", local_files_only=True)
    want = reference.encode(PROBES, normalize_embeddings=True, batch_size=len(PROBES))
    got = OnnxEmbeddings(path, spec, batch_size=len(PROBES))._encode(PROBES)
    worst = float((np.asarray(want) * got).sum(axis=1).min())
    if worst < MIN_COSINE:
        raise ModelNotFoundError(
            f"ONNX export of {spec.name!r} differs from the original (cosine {worst:.5f})"
        )


if __name__ == "__main__":
    import ragapp  # noqa: F401  (offline environment first)

    model_dir, name, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    _export(model_dir, out)
    _verify(out, EmbeddingSpec(name, model_dir))
