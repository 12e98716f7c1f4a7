"""MemoryStore keeps the ChunkStore contract (tests/store_contract.py; the integration tier
runs the same checks on Chroma)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ragapp.backends.fake import HashEmbeddings
from ragapp.errors import StoreError
from ragapp.store import ChunkStore, MemoryStore, matches
from ragapp.types import EmbeddingSpec
from tests import store_contract


@pytest.fixture
def make_store() -> Any:
    shared: dict[str, Any] = {}

    def make(model: str = "hash-64", dim: int = 64) -> ChunkStore:
        spec = EmbeddingSpec(model, Path("."))
        return MemoryStore("default", spec, dim, lambda: HashEmbeddings(dim), shared)

    return make


@pytest.mark.parametrize("check", store_contract.CHECKS, ids=lambda c: c.__name__)
def test_memory_store_keeps_the_contract(check: Any, make_store: Any) -> None:
    check(make_store)


def test_filters_are_the_chroma_subset_ragapp_uses() -> None:
    meta = {"source": "/a.md", "file_type": "md", "page": 2}
    assert matches(meta, None) and matches(meta, {"source": "/a.md"})
    assert matches(meta, {"$or": [{"page": 3}, {"file_type": {"$eq": "md"}}]})
    assert not matches(meta, {"file_type": {"$nin": ["md"]}})
    with pytest.raises(StoreError, match="unsupported filter operator '\\$gt'"):
        matches(meta, {"page": {"$gt": 1}})


def test_vectors_of_the_wrong_size_are_refused(make_store: Any) -> None:
    from ragapp.types import Chunk

    store = make_store()
    chunk = Chunk(id="x", text="t", source="/a.md")
    with pytest.raises(StoreError, match="vector of 3 dimensions in a 64-d collection"):
        store.write_file("/a.md", [chunk], [[0.1, 0.2, 0.3]])
