"""Pipeline figures: ingest, retrieval and generation, against the plain LangChain tutorial
pipeline in the same run.

    .venv/bin/python bench/pipeline.py [--asks 5] [--json]

For each corpus (sample_docs/ and ../shared/eval/debian-faq/docs when present) it runs, each
phase in a fresh subprocess so its peak RSS is its own and models load outside the timing:
  ragapp ingest   - ingest.ingest_paths into an empty embedded Chroma
  plain ingest    - DirectoryLoader(UnstructuredFileLoader) + RecursiveCharacterTextSplitter
                    (1000, 200) + HuggingFaceEmbeddings (same model) + Chroma.from_documents
  retrieve        - every question of the corpus, top-4, milliseconds per question
  ask             - the first N questions through the bundled LLM: time to first token, tok/s
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def corpora() -> dict[str, tuple[Path, list[str]]]:
    from tests.facts import FACTS

    found = {"sample_docs": (ROOT / "sample_docs", [f[0] for f in FACTS])}
    faq = ROOT.parent / "shared" / "eval" / "debian-faq"
    if (faq / "docs").is_dir():
        questions = [json.loads(line)["question"] for line in (faq / "qrels.jsonl").open()]
        found["debian-faq"] = (faq / "docs", questions)
    return found


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _settings(data_dir: str) -> Any:
    from ragapp.settings import load_settings

    return load_settings(data_dir=Path(data_dir))


def phase_ragapp_ingest(docs: Path, data_dir: str, _: list[str], __: int) -> dict[str, Any]:
    from ingest.loaders import use_local_spacy
    from ingest.pipeline import ingest_paths
    from ragapp.app import RagApp

    app = RagApp(_settings(data_dir))
    app.collection.store.embeddings.embed_query("warm up")  # model loads are not ingest time,
    use_local_spacy()  # for either pipeline
    started = time.perf_counter()
    report = ingest_paths([docs], app.collection)
    seconds = time.perf_counter() - started
    assert not report.failed, report.failed
    return {"seconds": seconds, "files": report.added, "chunks": report.chunks}


def phase_plain_ingest(docs: Path, data_dir: str, _: list[str], __: int) -> dict[str, Any]:
    import warnings

    warnings.simplefilter("ignore")
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from langchain_chroma import Chroma
    from langchain_community.document_loaders import DirectoryLoader, UnstructuredFileLoader
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from ingest.loaders import use_local_spacy
    from ragapp.bundled import embedding_model_dir

    use_local_spacy()  # the tutorial pipeline would otherwise try to download spaCy
    embeddings = HuggingFaceEmbeddings(model_name=str(embedding_model_dir()))
    embeddings.embed_query("warm up")
    client = chromadb.PersistentClient(
        path=data_dir, settings=ChromaSettings(anonymized_telemetry=False)
    )
    started = time.perf_counter()
    documents = DirectoryLoader(str(docs), loader_cls=UnstructuredFileLoader, recursive=True).load()
    chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(
        documents
    )
    Chroma.from_documents(chunks, embeddings, client=client, collection_name="plain")
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "files": len({d.metadata["source"] for d in documents}),
        "chunks": len(chunks),
    }


def phase_retrieve(_: Path, data_dir: str, questions: list[str], __: int) -> dict[str, Any]:
    from ragapp.app import RagApp

    app = RagApp(_settings(data_dir))
    app.retrieve("warm up")
    times = []
    for q in questions:
        started = time.perf_counter()
        app.retrieve(q, 4)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "questions": len(times),
        "p50_ms": statistics.median(times),
        "p95_ms": times[min(len(times) - 1, int(0.95 * len(times)))],
    }


def phase_ask(_: Path, data_dir: str, questions: list[str], asks: int) -> dict[str, Any]:
    from ragapp.app import RagApp

    app = RagApp(_settings(data_dir))
    app.llm  # noqa: B018  (model load is not answer time)
    ttft, tps, tokens = [], [], 0
    for q in questions[:asks]:
        t = app.ask(q).timings
        if t.completion_tokens:
            ttft.append(t.ttft_ms)
            tps.append(t.tokens_per_s)
            tokens += t.completion_tokens
    return {
        "asks": len(ttft),
        "ttft_ms_p50": statistics.median(ttft) if ttft else None,
        "tokens_per_s": statistics.median(tps) if tps else None,
        "completion_tokens": tokens,
    }


PHASES = {
    "ragapp_ingest": phase_ragapp_ingest,
    "plain_ingest": phase_plain_ingest,
    "retrieve": phase_retrieve,
    "ask": phase_ask,
}


def run_phase(phase: str, corpus: str, data_dir: str, asks: int) -> dict[str, Any]:
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--phase",
            phase,
            "--corpus",
            corpus,
            "--data-dir",
            data_dir,
            "--asks",
            str(asks),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"phase {phase} on {corpus} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--asks", type=int, default=5, help="questions answered by the LLM per corpus"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:  # child process: one phase, JSON on the last line
        import ragapp  # noqa: F401  (offline env first)

        docs, questions = corpora()[args.corpus]
        result = PHASES[args.phase](docs, args.data_dir, questions, args.asks)
        result["peak_rss_mb"] = round(peak_rss_mb(), 1)
        print(json.dumps(result))
        return

    figures: dict[str, Any] = {"cpus": os.cpu_count()}
    for name in corpora():
        with tempfile.TemporaryDirectory() as tmp:
            ours_dir, plain_dir = f"{tmp}/ragapp", f"{tmp}/plain"
            row = {
                "ragapp_ingest": run_phase("ragapp_ingest", name, ours_dir, args.asks),
                "plain_ingest": run_phase("plain_ingest", name, plain_dir, args.asks),
                "retrieve": run_phase("retrieve", name, ours_dir, args.asks),
                "ask": run_phase("ask", name, ours_dir, args.asks),
            }
        ours, plain = row["ragapp_ingest"], row["plain_ingest"]
        for r in (ours, plain):
            r["chunks_per_s"] = r["chunks"] / r["seconds"]
            r["files_per_s"] = r["files"] / r["seconds"]
        row["ingest_speedup_files"] = plain["seconds"] / ours["seconds"]
        figures[name] = row
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print_table(figures)


def print_table(figures: dict[str, Any]) -> None:
    print(f"# bench/pipeline.py  ({figures['cpus']} CPUs)\n")
    print("| corpus | pipeline | files | chunks | ingest s | files/s | chunks/s | peak RSS MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, row in figures.items():
        if name == "cpus":
            continue
        for label, key in (("ragapp", "ragapp_ingest"), ("plain LangChain", "plain_ingest")):
            r = row[key]
            print(
                f"| {name} | {label} | {r['files']} | {r['chunks']} | {r['seconds']:.1f} | "
                f"{r['files_per_s']:.2f} | {r['chunks_per_s']:.1f} | {r['peak_rss_mb']:.0f} |"
            )
    print(
        "\n| corpus | ingest time, plain / ragapp | retrieve p50 ms | p95 ms | TTFT p50 ms | tok/s | ask peak RSS MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, row in figures.items():
        if name == "cpus":
            continue
        r, a = row["retrieve"], row["ask"]
        print(
            f"| {name} | {row['ingest_speedup_files']:.2f}x | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
            f"{a['ttft_ms_p50']:.0f} | {a['tokens_per_s']:.1f} | {a['peak_rss_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
