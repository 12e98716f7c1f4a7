"""The ChunkStore contract (tests/store_contract.py) on real Chroma, embedded and as a server
(`chroma run` on loopback): what the unit tier proves on MemoryStore holds for the stores
users run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ragapp.backends.fake import HashEmbeddings
from ragapp.settings import load_settings
from ragapp.store import ChromaStore, ChunkStore, make_client
from ragapp.types import EmbeddingSpec
from tests import store_contract


@pytest.fixture(params=["embedded", "server"])
def make_store(request: pytest.FixtureRequest, clean_environ: Path) -> Any:
    if request.param == "server":
        url = request.getfixturevalue("chroma_server")
        client = make_client(load_settings(chroma_url=url))
        for old in client.list_collections():  # the server outlives each test
            client.delete_collection(old if isinstance(old, str) else old.name)
    else:
        client = make_client(load_settings(data_dir=clean_environ))

    def make(model: str = "hash-64", dim: int = 64) -> ChunkStore:
        spec = EmbeddingSpec(model, clean_environ)
        return ChromaStore(client, "default", spec, dim, lambda: HashEmbeddings(dim))

    return make


@pytest.mark.parametrize("check", store_contract.CHECKS, ids=lambda c: c.__name__)
def test_chroma_store_keeps_the_contract(check: Any, make_store: Any) -> None:
    check(make_store)
