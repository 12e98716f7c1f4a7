"""Long-line figures: parse and ingest cost of text files by size, when the text never
breaks (the whole file one line) and when it is ordinary paragraphs.

    .venv/bin/python bench/longlines.py [--sizes 1 10 100] [--paragraph-sizes 1 10]
                                        [--ingest-mb 1] [--json]

The text is generated sentences of 8-20 words. Each parse runs in a fresh process (spaCy
loaded before the clock starts, so its peak RSS is its own) exactly as an ingest worker
runs it: load_elements, then chunk_elements at the default chunk size. In the same run the
old path parses the 1 MB single line: the same partitioner with unstructured reading up to
spaCy's own 1,000,000 characters of an element, nothing cut. Then the whole `ragapp ingest
--json` command ingests the --ingest-mb files, embedding included (the part that dominates:
on 2 cores about 5 KB of text a second, so 100 MB would take hours), with the peak RSS of
its process tree (the parser worker included).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.test_hostile_files import TreeMemory  # noqa: E402

MB = 1_000_000
WORDS = [
    *["the", "harbour", "ferry", "leaves", "at", "nine", "and", "the", "lantern", "keeper"],
    *["writes", "each", "member", "fee", "in", "the", "board", "ledger", "while", "tide"],
    *["and", "rope", "and", "anchor", "and", "sail", "wait", "by", "the", "pier"],
]
SHAPES = {"single line": "line", "paragraphs": "paragraphs"}


def write_text(path: Path, megabytes: float, shape: str, seed: int = 0) -> Path:
    """About ``megabytes`` MB of sentences: one line, or ~500-character paragraphs."""
    rng = random.Random(seed)
    target = int(megabytes * MB)
    with path.open("w") as out:
        size = 0
        while size < target:
            sentences = [
                " ".join(rng.choices(WORDS, k=rng.randint(8, 20))).capitalize() + "."
                for _ in range(rng.randint(3, 8))
            ]
            block = " ".join(sentences) + (" " if shape == "line" else "\n\n")
            out.write(block)
            size += len(block)
        out.write("\n")
    return path


# --- phases (each in its own process) ---------------------------------------------------------


def phase_parse(path: Path) -> dict[str, Any]:
    """What an ingest worker does with the file: elements, then chunks."""
    from ingest.loaders import load_elements, use_local_spacy

    use_local_spacy()
    return _timed_parse(path, load_elements)


def phase_unbounded(path: Path) -> dict[str, Any]:
    """The path before elements were bounded: spaCy's own limit, no cutting."""
    from unstructured.nlp import tokenize

    from ingest.loaders import PARTITIONERS, use_local_spacy

    use_local_spacy()
    tokenize._get_nlp().max_length = 1_000_000
    return _timed_parse(path, lambda p: PARTITIONERS[p.suffix](str(p)))


def _timed_parse(path: Path, elements_of: Callable[[Path], list[Any]]) -> dict[str, Any]:
    from ingest.chunking import chunk_elements
    from ragapp.settings import load_settings

    settings = load_settings()  # chunk size and overlap as `ragapp ingest` would have them
    warm = write_text(path.with_name(f"warm-up{path.suffix}"), 0.001, "line")
    elements_of(warm)  # imports and spaCy's first call are not the file's parse
    warm.unlink()
    started = time.perf_counter()
    elements = elements_of(path)
    parsed = time.perf_counter()
    chunks = chunk_elements(
        elements,
        source=str(path),
        file_hash="-",
        file_type="txt",
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
    )
    done = time.perf_counter()
    return {
        "seconds": done - started,
        "elements_seconds": parsed - started,
        "chunk_seconds": done - parsed,
        "elements": len(elements),
        "longest_element": max(len(e.text) for e in elements),
        "chunks": len(chunks),
    }


PHASES = {"parse": phase_parse, "unbounded": phase_unbounded}


def run_phase(phase: str, path: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--phase", phase, "--file", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["mb"] = path.stat().st_size / MB
    result["mb_per_s"] = result["mb"] / result["seconds"]
    return result


def ingest(path: Path, data_dir: Path) -> dict[str, Any]:
    """The whole `ragapp ingest FILE --json` command, with its process tree's peak RSS."""
    env = {**os.environ, "RAGAPP_MAX_FILE_MB": str(max(100.0, 2 * path.stat().st_size / MB))}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragapp", "--data-dir", str(data_dir), "ingest", str(path)]
        + ["--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    memory = TreeMemory(proc.pid)  # the process tree's summed RSS, as the tests measure it
    out, err = proc.communicate()
    peak = memory.stop()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"ragapp ingest {path.name} failed:\n{err[-3000:]}")
    report = json.loads(out)
    mb = path.stat().st_size / MB
    return {
        "mb": mb,
        "seconds": seconds,
        "mb_per_s": mb / seconds,
        "peak_rss_mb": peak / 2**20,
        "chunks": report["chunks"],
        "phases": report["phases"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=float, nargs="*", default=[1, 10, 100], help="MB, one line")
    parser.add_argument(
        "--paragraph-sizes", type=float, nargs="*", default=[1, 10], help="MB, paragraphs"
    )
    parser.add_argument("--ingest-mb", type=float, nargs="*", default=[1], help="whole command")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        result = PHASES[args.phase](Path(args.file))
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    figures: dict[str, Any] = {"parse": [], "ingest": []}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for shape, sizes in (("single line", args.sizes), ("paragraphs", args.paragraph_sizes)):
            for mb in sizes:
                path = write_text(tmp / f"{SHAPES[shape]}-{mb:g}.txt", mb, SHAPES[shape])
                figures["parse"].append({"shape": shape, **run_phase("parse", path)})
                if shape == "single line" and mb == 1:
                    old = run_phase("unbounded", path)
                    figures["parse"].append({"shape": "single line, old path", **old})
                path.unlink()
        for mb in args.ingest_mb:
            for shape in SHAPES:
                path = write_text(tmp / f"{SHAPES[shape]}-{mb:g}.txt", mb, SHAPES[shape])
                row = ingest(path, tmp / f"data-{SHAPES[shape]}-{mb:g}")
                figures["ingest"].append({"shape": shape, **row})
                path.unlink()
    print(json.dumps(figures, indent=2) if args.json else table(figures))


def table(f: dict[str, Any]) -> str:
    lines = [
        "# bench/longlines.py: parse (load_elements + chunk_elements, one process each)\n",
        "| text | MB | seconds | MB/s | peak RSS MB | elements | longest element | chunks |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in f["parse"]:
        lines.append(
            f"| {r['shape']} | {r['mb']:.3g} | {r['seconds']:.1f} | {r['mb_per_s']:.2f} | "
            f"{r['peak_rss_mb']:.0f} | {r['elements']} | {r['longest_element']:,} | {r['chunks']} |"
        )
    if f["ingest"]:
        lines += [
            "",
            "| `ragapp ingest FILE` | MB | seconds | MB/s | peak RSS MB (tree) | chunks | phases (s) |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in f["ingest"]:
            phases = ", ".join(f"{k} {v:.1f}" for k, v in r["phases"].items() if v >= 0.05)
            lines.append(
                f"| {r['shape']} | {r['mb']:.3g} | {r['seconds']:.1f} | {r['mb_per_s']:.3f} | "
                f"{r['peak_rss_mb']:.0f} | {r['chunks']} | {phases} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
