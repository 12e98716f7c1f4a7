"""Window vectors: each long chunk is also cut into small windows, embedded with the chunk,
so a passage deep in a long chunk still counts when the dense candidates are ranked.

They are part of what a file's write puts in the store (its ``windows`` side table), cut
and embedded in the same call as the chunks themselves, so an ingest embeds once, shows
its progress file by file, and nothing is embedded later inside a question.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.embeddings import Embeddings

from ragapp.types import Chunk

Vector = list[float]


def chunk_windows(text: str, section: str | None, size: int) -> list[str]:
    """A chunk's text cut at white space into consecutive, non-overlapping windows of at
    most ``size`` characters (a last piece under half that joins the one before), each
    headed by the chunk's section title as the chunk itself is embedded. None for a chunk
    that fits in one window (its own vector already says everything) or when size is 0."""
    if size <= 0:
        return []
    pieces: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > size:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        if pieces and len(current) < size / 2:
            pieces[-1] += " " + current
        else:
            pieces.append(current)
    if len(pieces) <= 1:
        return []
    return [f"{section}\n{p}" if section and not p.startswith(section) else p for p in pieces]


def embed_with_windows(
    embeddings: Embeddings, texts: Sequence[str], chunks: Sequence[Chunk], size: int
) -> tuple[list[Vector], list[list[Vector]]]:
    """Embed the chunks' texts and their windows (of ``size`` characters, none at 0) in one
    call, so the embedder batches them together. Returns the chunk vectors and, per chunk,
    its window vectors."""
    windows = [chunk_windows(c.text, c.section, size) for c in chunks]
    flat = [w for ws in windows for w in ws]
    vectors = embeddings.embed_documents([*texts, *flat])
    chunk_vectors, rest = list(vectors[: len(texts)]), vectors[len(texts) :]
    per_chunk: list[list[Vector]] = []
    at = 0
    for ws in windows:
        per_chunk.append([list(v) for v in rest[at : at + len(ws)]])
        at += len(ws)
    return chunk_vectors, per_chunk
