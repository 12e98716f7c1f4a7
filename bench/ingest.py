"""Ingest figures: throughput against the plain LangChain pipeline and against pure
embedding of the same chunks, re-ingest cost, and memory on a synthetic 2,000-file corpus.

    .venv/bin/python bench/ingest.py [--synthetic 2000] [--json]

Each measurement runs in a fresh process (models loaded before the clock starts), so its
peak RSS is its own; the plain pipeline runs in the same invocation, so the ratio holds on
a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pipeline import peak_rss_mb, phase_plain_ingest  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"


def eval_corpus(dest: Path) -> Path:
    """The supported files of ../shared/eval (HTML chapters, FAQ PDFs, FAQ text)."""
    dest.mkdir(parents=True)
    for path in sorted(EVAL.rglob("*")):
        if path.suffix in (".html", ".pdf", ".txt"):
            shutil.copy(path, dest / path.name)
    return dest


WORDS = [
    *[
        "harbour",
        "ledger",
        "solar",
        "panel",
        "meeting",
        "budget",
        "volunteer",
        "council",
        "report",
        "survey",
        "ferry",
        "depot",
    ],
    *[
        "archive",
        "inverter",
        "battery",
        "tariff",
        "member",
        "share",
        "dividend",
        "audit",
        "roof",
        "cable",
        "permit",
        "grant",
    ],
]


def synthetic_corpus(dest: Path, files: int, seed: int = 7) -> Path:
    """Small Markdown notes with sections, 400-2,400 characters each."""
    rng = random.Random(seed)
    dest.mkdir(parents=True)
    for i in range(files):
        sections = []
        for s in range(rng.randint(1, 3)):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(60, 130)))
            sections.append(
                f"## Section {s + 1}\n\nNote {i} records code {rng.randrange(10**6)}. {words}.\n"
            )
        sub = dest / f"folder{i % 40:02d}"
        sub.mkdir(exist_ok=True)
        (sub / f"note-{i:05d}.md").write_text(f"# Note {i}\n\n" + "\n".join(sections))
    return dest


def pages(folder: Path) -> int:
    """PDF pages, and one page per other file."""
    from pypdf import PdfReader

    return sum(len(PdfReader(p).pages) if p.suffix == ".pdf" else 1 for p in folder.rglob("*.*"))


# --- phases (each in its own process) ---------------------------------------------------------


def _app(data_dir: str, **overrides: Any) -> Any:
    import ragapp  # noqa: F401
    from ragapp.app import RagApp
    from ragapp.settings import load_settings

    return RagApp(load_settings(data_dir=Path(data_dir), **overrides))


def phase_ragapp(docs: Path, data_dir: str, workers: int = 0) -> dict[str, Any]:
    from ingest.loaders import use_local_spacy
    from ingest.pipeline import ingest_paths

    app = _app(data_dir, ingest_workers=workers)
    app.collection.store.embeddings.embed_query("warm up")  # model loads are not ingest time
    use_local_spacy()
    started = time.perf_counter()
    report = ingest_paths([docs], app.collection)
    stored = time.perf_counter()
    app.collection.refresh_search_index()  # as `ragapp ingest` does: BM25 index and window vectors
    seconds = time.perf_counter() - started
    assert not report.failed, report.failed
    return {
        "seconds": seconds,
        "phases": report.phases,
        "index_seconds": seconds - (stored - started),
        "files": report.added,
        "chunks": report.chunks,
    }


def phase_pure_embed(_: Path, data_dir: str, runtime: str = "auto") -> dict[str, Any]:
    """Embedding alone, of exactly what ragapp embedded: its chunks and their windows."""
    from ingest.chunking import embedding_text
    from ragapp.store import chunk_from
    from ragapp.windows import chunk_windows

    app = _app(data_dir, embedding_runtime=runtime)
    chunks = [
        chunk_from(str(d.id), d.page_content, d.metadata) for d, _ in app.collection.store.get()
    ]
    texts = [embedding_text(c) for c in chunks]
    windows = [
        w for c in chunks for w in chunk_windows(c.text, c.section, app.settings.window_chars)
    ]
    embeddings = app.collection.store.embeddings
    embeddings.embed_query("warm up")
    started = time.perf_counter()
    embeddings.embed_documents([*texts, *windows])
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "chunks": len(texts),
        "windows": len(windows),
        **compute_figures([*texts, *windows], seconds),
    }


def compute_figures(texts: list[str], seconds: float) -> dict[str, float]:
    """The embedder's arithmetic against this machine's: FLOPs per token of the bundled
    MiniLM (its linear layers plus attention at the texts' own lengths), the rate it
    reached, and what a large float32 matrix multiply reaches here (numpy, all cores)."""
    import numpy as np
    from tokenizers import Tokenizer

    from ragapp.bundled import embedding_model_dir

    model = embedding_model_dir()
    config = json.loads((model / "config.json").read_text())
    layers, d, ff = config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"]
    tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=256)
    lengths = [len(e.ids) for e in tokenizer.encode_batch(texts)]
    tokens = sum(lengths)
    linear = 2 * layers * (4 * d * d + 2 * d * ff)  # per token: Q, K, V, O and the FFN
    attention = sum(4 * layers * n * n * d for n in lengths)  # QK^T and AV per sequence
    flops = tokens * linear + attention
    a = np.random.default_rng(0).random((4096, d), dtype=np.float32)
    b = np.random.default_rng(1).random((d, ff), dtype=np.float32)
    a @ b
    started, reps = time.perf_counter(), 30
    for _ in range(reps):
        a @ b
    matmul = 2 * 4096 * d * ff * reps / (time.perf_counter() - started)
    return {
        "tokens": tokens,
        "tokens_per_s": tokens / seconds,
        "model_gflop": flops / 1e9,
        "embed_gflops": flops / seconds / 1e9,
        "matmul_gflops": matmul / 1e9,
    }


def phase_plain(docs: Path, data_dir: str) -> dict[str, Any]:
    return phase_plain_ingest(docs, data_dir, [], 0)


def phase_pure_embed_torch(docs: Path, data_dir: str) -> dict[str, Any]:
    """The same on sentence-transformers/torch, the runtime the plain pipeline uses."""
    return phase_pure_embed(docs, data_dir, "torch")


PHASES = {
    "ragapp": phase_ragapp,
    "pure_embed": phase_pure_embed,
    "pure_embed_torch": phase_pure_embed_torch,
    "plain": phase_plain,
}


def run_phase(phase: str, docs: Path, data_dir: Path, *extra: str) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--phase",
        phase,
        "--docs",
        str(docs),
        "--data-dir",
        str(data_dir),
        *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def reingest(docs: Path, data_dir: Path) -> dict[str, Any]:
    """The whole `ragapp ingest` command on an unchanged folder, as a user runs it."""
    started = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ragapp",
            "--data-dir",
            str(data_dir),
            "ingest",
            str(docs),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(proc.stdout)
    assert report["chunks"] == 0, report
    return {"command_seconds": time.perf_counter() - started, "sync_seconds": report["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--synthetic", type=int, default=2000, help="files in the synthetic corpus")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--docs", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        extra = {} if args.workers is None else {"workers": args.workers}
        result = PHASES[args.phase](Path(args.docs), args.data_dir, **extra)
        result["peak_rss_mb"] = round(peak_rss_mb(), 1)
        print(json.dumps(result))
        return

    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        docs = eval_corpus(tmp / "eval")
        ours = run_phase("ragapp", docs, tmp / "ours")
        plain = run_phase("plain", docs, tmp / "plain")
        pure = run_phase("pure_embed", docs, tmp / "ours")
        pure_torch = run_phase("pure_embed_torch", docs, tmp / "ours")
        again = reingest(docs, tmp / "ours")
        n_pages = pages(docs)
        for r in (ours, plain):
            r["files_per_s"] = r["files"] / r["seconds"]
            r["pages_per_s"] = n_pages / r["seconds"]
            r["chunks_per_s"] = r["chunks"] / r["seconds"]
        workers = []
        for n in range(1, (os.cpu_count() or 1) + 1):
            row = run_phase("ragapp", docs, tmp / f"workers{n}", f"--workers={n}")
            workers.append({"workers": n, "seconds": row["seconds"]})
        figures["eval"] = {
            "workers": workers,
            "files": ours["files"],
            "pages": n_pages,
            "ragapp": ours,
            "plain": plain,
            "pure_embed": pure,
            "pure_embed_torch": pure_torch,
            "speedup_vs_plain": plain["seconds"] / ours["seconds"],
            "vs_pure_embedding": ours["seconds"] / pure["seconds"],
            "reingest": again,
            "reingest_share": again["command_seconds"] / ours["seconds"],
        }
        sizes = sorted({args.synthetic // 4, args.synthetic} - {0})
        figures["synthetic"] = []
        for n in sizes:
            corpus = synthetic_corpus(tmp / f"synthetic{n}", n)
            row = run_phase("ragapp", corpus, tmp / f"syn{n}")
            row["reingest"] = reingest(corpus, tmp / f"syn{n}")
            figures["synthetic"].append(row)
            shutil.rmtree(corpus)
    print(json.dumps(figures, indent=2) if args.json else table(figures))


def table(f: dict[str, Any]) -> str:
    e = f["eval"]
    lines = [
        f"# bench/ingest.py: ../shared/eval ({e['files']} files, {e['pages']} pages)\n",
        "| pipeline | seconds | files/s | pages/s | chunks | chunks/s | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, key in (("ragapp", "ragapp"), ("plain LangChain", "plain")):
        r = e[key]
        lines.append(
            f"| {name} | {r['seconds']:.1f} | {r['files_per_s']:.2f} | {r['pages_per_s']:.1f} | "
            f"{r['chunks']} | {r['chunks_per_s']:.1f} | {r['peak_rss_mb']:.0f} |"
        )
    p = e["pure_embed"]
    lines += [
        f"| embedding only (ragapp's chunks and their {p['windows']} windows) | {p['seconds']:.1f} "
        f"| | | {p['chunks']} | {p['chunks'] / p['seconds']:.1f} | {p['peak_rss_mb']:.0f} |",
        f"| the same on torch (sentence-transformers) | {e['pure_embed_torch']['seconds']:.1f} | | | "
        f"{p['chunks']} | {p['chunks'] / e['pure_embed_torch']['seconds']:.1f} | "
        f"{e['pure_embed_torch']['peak_rss_mb']:.0f} |",
        "",
        "- ragapp phases (seconds; parse overlaps embed): "
        + ", ".join(f"{k} {v:.1f}" for k, v in e["ragapp"]["phases"].items()),
        "- ingest_workers: "
        + ", ".join(f"{w['workers']}: {w['seconds']:.1f} s" for w in e["workers"]),
        f"- embedding compute: {p['tokens']} tokens, {p['model_gflop']:.0f} GFLOP, "
        f"{p['tokens_per_s']:.0f} tokens/s = {p['embed_gflops']:.0f} GFLOP/s against "
        f"{p['matmul_gflops']:.0f} GFLOP/s for a float32 matmul on this machine "
        f"({100 * p['embed_gflops'] / p['matmul_gflops']:.0f}%)",
        f"- ragapp vs plain pipeline: **{e['speedup_vs_plain']:.2f}x** faster",
        f"- ragapp ingest time / pure embedding time: **{e['vs_pure_embedding']:.2f}x**",
        f"- re-ingest, unchanged: {e['reingest']['command_seconds']:.2f} s for the whole command "
        f"({e['reingest']['sync_seconds']:.3f} s of sync) = **{100 * e['reingest_share']:.1f}%** "
        "of the first ingest",
        "",
        "| synthetic corpus | seconds | files/s | chunks | chunks/s | peak RSS MB | re-ingest s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in f["synthetic"]:
        lines.append(
            f"| {r['files']} files | {r['seconds']:.1f} | {r['files'] / r['seconds']:.1f} | {r['chunks']} | "
            f"{r['chunks'] / r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | {r['reingest']['command_seconds']:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
