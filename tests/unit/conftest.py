"""The unit tier: ragapp's fake backend (echo LLM, hash embedder) and an in-memory store,
so every test runs in milliseconds without a model, a Chroma, or a network."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ragapp.store import forget_memory_spaces


@pytest.fixture(autouse=True)
def fake_stack(
    request: pytest.FixtureRequest, clean_environ: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """RAGAPP_* set for the fakes (tests marked real_defaults see ragapp's own defaults)."""
    if request.node.get_closest_marker("real_defaults"):
        yield clean_environ
        return
    monkeypatch.setenv("RAGAPP_CHROMA_URL", "memory://unit")
    monkeypatch.setenv("RAGAPP_EMBEDDING_MODEL", "fake")
    monkeypatch.setenv("RAGAPP_LLM_BACKEND", "fake")
    yield clean_environ
    forget_memory_spaces("memory://unit")


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A small folder of text files about a cooperative."""
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "fees.md").write_text("# Fees\n\nThe yearly membership fee is forty-two pounds.\n")
    (root / "sub" / "board.txt").write_text("The board meets every first Tuesday of the month.\n")
    (root / "notes.txt").write_text("The harbour master is called Ole Brekke.\n")
    return root
