"""The ChunkStore contract (tests/store_contract.py) on real embedded Chroma: what the unit
tier proves on MemoryStore holds for the store users run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ragapp.backends.fake import HashEmbeddings
from ragapp.settings import load_settings
from ragapp.store import ChromaStore, ChunkStore, make_client
from ragapp.types import EmbeddingSpec
from tests import store_contract


@pytest.fixture
def make_store(clean_environ: Path) -> Any:
    client = make_client(load_settings(data_dir=clean_environ))

    def make(model: str = "hash-64", dim: int = 64) -> ChunkStore:
        spec = EmbeddingSpec(model, clean_environ)
        return ChromaStore(client, "default", spec, dim, lambda: HashEmbeddings(dim))

    return make


@pytest.mark.parametrize("check", store_contract.CHECKS, ids=lambda c: c.__name__)
def test_chroma_store_keeps_the_contract(check: Any, make_store: Any) -> None:
    check(make_store)
