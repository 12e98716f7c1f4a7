"""Retrieval quality: ragapp against the plain LangChain tutorial pipeline, on every eval
dataset, with the same relevance rule and context budget (ragapp.evaluate).

    .venv/bin/python bench/retrieval.py [--json]

Datasets: ../shared/eval/debian-faq and every folder of eval/ holding docs/ + qrels.jsonl.
ragapp runs as a user runs it (`ragapp eval DATASET --json`); the plain pipeline is
DirectoryLoader(UnstructuredFileLoader) + RecursiveCharacterTextSplitter(1000, 200) +
all-MiniLM-L6-v2 (sentence-transformers) + Chroma, top-10 by cosine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

METRICS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")


def datasets() -> list[Path]:
    found = [ROOT.parent / "shared" / "eval" / "debian-faq"]
    found += sorted(p for p in (ROOT / "eval").iterdir() if (p / "qrels.jsonl").is_file())
    return [p for p in found if (p / "docs").is_dir()]


def ragapp_eval(dataset: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "ragapp", "eval", str(dataset), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"ragapp eval {dataset} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def plain_eval(dataset: Path) -> dict[str, Any]:
    warnings.simplefilter("ignore")
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from langchain_chroma import Chroma
    from langchain_community.document_loaders import DirectoryLoader, UnstructuredFileLoader
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from ingest.loaders import use_local_spacy
    from ragapp.bundled import embedding_model_dir
    from ragapp.evaluate import evaluate, load_dataset
    from ragapp.types import Source

    use_local_spacy()
    docs_dir, questions = load_dataset(dataset)
    embeddings = HuggingFaceEmbeddings(model_name=str(embedding_model_dir()))
    with tempfile.TemporaryDirectory() as tmp:
        client = chromadb.PersistentClient(
            path=tmp, settings=ChromaSettings(anonymized_telemetry=False)
        )
        documents = DirectoryLoader(str(docs_dir), loader_cls=UnstructuredFileLoader).load()
        chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(
            documents
        )
        store = Chroma.from_documents(
            chunks,
            embeddings,
            client=client,
            collection_name="plain",
            collection_metadata={"hnsw:space": "cosine"},
        )

        def retrieve(question: str, k: int) -> list[Source]:
            hits = store.similarity_search_with_relevance_scores(question, k=k)
            return [Source(d.metadata["source"], None, s, d.page_content) for d, s in hits]

        return evaluate(questions, retrieve, 10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for dataset in datasets():
        rows.append({"dataset": dataset.name, "system": "ragapp", **ragapp_eval(dataset)})
        rows.append({"dataset": dataset.name, "system": "plain LangChain", **plain_eval(dataset)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| dataset | questions | system | " + " | ".join(METRICS) + " | retrieve p50 ms |")
    print("|---|---:|---|" + "---:|" * (len(METRICS) + 1))
    for r in rows:
        cells = " | ".join(f"{r[m]:.3f}" for m in METRICS)
        print(
            f"| {r['dataset']} | {r['n']} | {r['system']} | {cells} | {r['retrieve_ms_p50']:.1f} |"
        )


if __name__ == "__main__":
    main()
