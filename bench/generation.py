"""What the collection's generation costs, and how that grows with the collection.

Every write gives the store a new generation (one metadata write per file written or
removed), and every question reads it once to decide whether the search index is stale.
This times both on embedded Chroma at 1k, 10k and 100k chunks (10 chunks a file, 64-d hash
vectors: the vectors' size doesn't matter here), against the same write without the
generation step, in the same process.

    .venv/bin/python bench/generation.py [--sizes 1000 10000 100000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from ragapp.backends.fake import HashEmbeddings
from ragapp.settings import load_settings
from ragapp.store import ChromaStore, make_client
from ragapp.types import Chunk, EmbeddingSpec

PER_FILE = 10


def file_chunks(n: int) -> list[Chunk]:
    source = f"/bench/file-{n}.md"
    return [
        Chunk(id=f"{n}-{i}", text=f"chunk {i} of file {n} about topic {n % 97}", source=source)
        for i in range(PER_FILE)
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    args = parser.parse_args()
    embed = HashEmbeddings()
    vector = embed.embed_documents(["x"])[0]
    print(f"{'chunks':>8} {'read gen (ms)':>14} {'write file (ms)':>16} {'of which gen (ms)':>18}")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            client = make_client(load_settings(data_dir=Path(tmp)))
            store = ChromaStore(
                client, "bench", EmbeddingSpec("hash-64", Path(tmp)), 64, lambda: embed
            )
            files = size // PER_FILE
            for n in range(files):  # fill without timing
                chunks = file_chunks(n)
                store._upsert(
                    [c.id for c in chunks], [vector] * PER_FILE,
                    [c.text for c in chunks], [c.metadata() for c in chunks],
                )  # fmt: skip
            reads = []
            for _ in range(50):
                started = time.perf_counter()
                store.generation()
                reads.append((time.perf_counter() - started) * 1000)
            writes, gens = [], []
            for n in range(files, files + 30):
                chunks = file_chunks(n)
                started = time.perf_counter()
                store.write_file(chunks[0].source, chunks, [vector] * PER_FILE)
                writes.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                store._new_generation()
                gens.append((time.perf_counter() - started) * 1000)
            print(
                f"{size:>8} {statistics.median(reads):>14.2f} "
                f"{statistics.median(writes):>16.2f} {statistics.median(gens):>18.2f}"
            )


if __name__ == "__main__":
    main()
