"""How ragapp's costs grow with the collection: 1k, 10k and 100k chunks, embedded Chroma
and a Chroma server (`chroma run` on loopback).

For each size a collection is synthesised straight into the store, as ingest writes it:
files of 100 chunks of real English words (drawn from sample_docs and the eval corpus, so
BM25 sees real posting lists), each chunk with two window vectors, a file record each, and
random unit vectors (the vectors' values don't change what is timed; embedding them for
real would take hours here). Then, with the real bundled embedder:

- ``new host BM25``: building this host's BM25 cache from the store (once per host);
- ``add`` / ``update``: one 1-chunk file added, then edited, through ``ragapp ingest FILE``
  as a user runs it (whole command: model load included; its peak RSS, VmHWM), and
  the same in process (``ingest_paths`` + the BM25 refresh), with the models loaded;
- ``retrieve``: in process, the eval questions (Debian FAQ) through ``Collection.retrieve``
  (hybrid: dense + BM25 + window vectors), p50/p95; and ``ragapp retrieve`` as a command;
- ``serve RSS``: a ``ragapp serve`` (fake LLM: the LLM's own memory is not the point)
  after a few questions.

    .venv/bin/python bench/scale.py [--sizes 1000 10000 100000] [--stores embedded server]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingest.pipeline import ingest_paths  # noqa: E402
from ragapp.app import Models  # noqa: E402
from ragapp.collection import Collection  # noqa: E402
from ragapp.settings import Settings, load_settings  # noqa: E402
from ragapp.types import Chunk  # noqa: E402

PER_FILE = 100
WORDS_PER_CHUNK = 150
EVAL = ROOT.parent / "shared" / "eval" / "debian-faq"
RAGAPP = [sys.executable, "-m", "ragapp"]


def vocabulary() -> list[str]:
    """Real words, repeated as often as they occur (so sampling follows their frequency)."""
    words: list[str] = []
    for folder in (ROOT / "sample_docs", EVAL / "docs", ROOT / "eval"):
        for path in folder.rglob("*"):
            if path.suffix in (".md", ".txt", ".html", ".htm"):
                text = re.sub(r"<[^>]+>", " ", path.read_text(errors="ignore"))
                words += re.findall(r"[A-Za-z][a-z]{2,}", text)
    return words


def questions() -> list[str]:
    lines = (EVAL / "qrels.jsonl").read_text().splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()][:50]


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> list[list[float]]:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.tolist()  # type: ignore[no-any-return]


def synthesise(collection: Collection, chunks: int, words: list[str]) -> float:
    """Write ``chunks`` chunks in files of PER_FILE, as ingest writes them. Returns seconds."""
    rng = np.random.default_rng(7)
    pick = random.Random(7)
    dim = collection.store.dim
    started = time.perf_counter()
    for f in range(chunks // PER_FILE):
        source = f"/bench/corpus/file-{f:05d}.txt"
        found = [
            Chunk(
                id=f"{f}-{i}",
                text=" ".join(pick.choices(words, k=WORDS_PER_CHUNK)),
                source=source,
                file_hash=f"h{f}",
                file_type="txt",
                index=i,
            )
            for i in range(PER_FILE)
        ]
        windows = unit_vectors(rng, 2 * PER_FILE, dim)
        collection.write_file(
            source, found, unit_vectors(rng, PER_FILE, dim), 1000, 1, f"h{f}",
            [windows[2 * i : 2 * i + 2] for i in range(PER_FILE)], collection.settings.window_chars,
        )  # fmt: skip
    return time.perf_counter() - started


def run(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """A command's wall seconds, peak RSS (MB) and stdout. The peak is the child's own
    VmHWM, polled until it exits: getrusage's maxrss would count this process's RSS at
    fork, which the child inherits."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = [0.0]

    def watch() -> None:
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                found = re.search(r"VmHWM:\s+(\d+)", status.read_text())
            except OSError:
                break
            if found:
                peak[0] = max(peak[0], int(found.group(1)) / 1024)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    out, err = proc.communicate()
    watcher.join()
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(command)} failed: {err.decode()[-2000:]}")
    return seconds, peak[0], out.decode()


def wait_until(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def chroma_server(path: Path) -> Iterator[str]:
    port = free_port()
    chroma = Path(sys.executable).with_name("chroma")
    proc = subprocess.Popen(
        [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    try:
        wait_until(f"http://127.0.0.1:{port}/api/v2/heartbeat")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def serve_rss(env: dict[str, str], asked: list[str]) -> float:
    port = free_port()
    proc = subprocess.Popen(
        [*RAGAPP, "serve", "--port", str(port)],
        env={**env, "RAGAPP_LLM_BACKEND": "fake"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(f"{url}/healthz")
        for question in asked:
            body = json.dumps({"question": question}).encode()
            request = urllib.request.Request(
                f"{url}/api/ask", body, {"Content-Type": "application/json"}
            )
            urllib.request.urlopen(request, timeout=300).close()
        status = Path(f"/proc/{proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def measure(store: str, size: int, words: list[str], asked: list[str]) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"ragapp-scale-{store}-{size}-"))
    try:
        with (
            chroma_server(root / "chroma-server")
            if store == "server"
            else contextmanager(lambda: iter([""]))()
        ) as url:
            return _measure(root, url, size, words, asked)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _measure(root: Path, url: str, size: int, words: list[str], asked: list[str]) -> dict[str, Any]:
    settings: Settings = load_settings(
        data_dir=root / "data", collection="scale", chroma_url=url or None
    )
    models = Models(settings)
    collection = models.collection(settings)
    figures: dict[str, Any] = {"build_s": synthesise(collection, size, words)}
    assert collection.count() == size

    started = time.perf_counter()
    collection.refresh_search_index()
    figures["new_host_bm25_s"] = time.perf_counter() - started

    env = {**os.environ, "RAGAPP_DATA_DIR": str(settings.data_dir), "RAGAPP_COLLECTION": "scale"}
    if url:
        env["RAGAPP_CHROMA_URL"] = url
    docs = root / "docs"
    docs.mkdir()
    note = docs / "note.txt"
    note.write_text("The harbour office opens at nine on weekdays.\n")
    figures["add_cmd_s"], figures["add_cmd_rss_mb"], out = run(
        [*RAGAPP, "ingest", str(note), "--json"], env
    )
    assert json.loads(out)["added"] == 1, out
    note.write_text("The harbour office opens at ten on weekdays.\n")
    figures["update_cmd_s"], figures["update_cmd_rss_mb"], out = run(
        [*RAGAPP, "ingest", str(note), "--json"], env
    )
    assert json.loads(out)["updated"] == 1, out

    # in process, models loaded: the cost of the change itself
    collection.retrieve(asked[0])  # warm: models, HNSW, BM25 cache
    in_process = []
    for n in range(3):
        extra = docs / f"extra-{n}.txt"
        extra.write_text(f"Extra note number {n} about the ferry timetable.\n")
        started = time.perf_counter()
        ingest_paths([extra], collection)
        collection.refresh_search_index()
        in_process.append(time.perf_counter() - started)
    figures["add_ms"] = statistics.median(in_process) * 1000

    times = []
    for question in asked:
        started = time.perf_counter()
        collection.retrieve(question, k=5)
        times.append((time.perf_counter() - started) * 1000)
    figures["retrieve_p50_ms"] = percentile(times, 50)
    figures["retrieve_p95_ms"] = percentile(times, 95)

    commands = [run([*RAGAPP, "retrieve", q, "--json"], env)[0] for q in asked[:3]]
    figures["retrieve_cmd_s"] = statistics.median(commands)
    figures["serve_rss_mb"] = serve_rss(env, asked[:5])
    return figures


COLUMNS = [
    ("build_s", "synthesise (s)", "{:.0f}"),
    ("new_host_bm25_s", "new host BM25 (s)", "{:.2f}"),
    ("add_cmd_s", "add: command (s)", "{:.2f}"),
    ("add_cmd_rss_mb", "add: RSS (MB)", "{:.0f}"),
    ("update_cmd_s", "update: command (s)", "{:.2f}"),
    ("add_ms", "add: in process (ms)", "{:.0f}"),
    ("retrieve_p50_ms", "retrieve p50 (ms)", "{:.1f}"),
    ("retrieve_p95_ms", "retrieve p95 (ms)", "{:.1f}"),
    ("retrieve_cmd_s", "retrieve: command (s)", "{:.2f}"),
    ("serve_rss_mb", "serve RSS (MB)", "{:.0f}"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--stores", nargs="+", default=["embedded", "server"])
    args = parser.parse_args()
    words, asked = vocabulary(), questions()
    print(f"# {len(words)} words of vocabulary, {len(asked)} questions, {os.cpu_count()} cores")
    print("| store | chunks | " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    print("|---|---:|" + "---:|" * len(COLUMNS), flush=True)
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for store in args.stores:
        for size in args.sizes:
            figures = measure(store, size, words, asked)
            results[store, size] = figures
            cells = " | ".join(fmt.format(figures[key]) for key, _, fmt in COLUMNS)
            print(f"| {store} | {size:,} | {cells} |", flush=True)
    for store in args.stores:
        small, large = min(args.sizes), max(args.sizes)
        if (store, small) in results and (store, large) in results and small != large:
            a, b = results[store, small], results[store, large]
            print(
                f"- {store}: one-file add at {large:,} / at {small:,}: command "
                f"{b['add_cmd_s'] / a['add_cmd_s']:.2f}x, in process {b['add_ms'] / a['add_ms']:.2f}x"
            )


if __name__ == "__main__":
    main()
