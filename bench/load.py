"""Load on `ragapp serve`: --clients streaming questions at the same moment, real LLMs.

Ingests sample_docs/ into a temporary data dir, then for each backend starts a real
`ragapp serve` (loopback) with the default limits (`max_queue`, `request_timeout_s`) unless
overridden, warms it with one question, and releases --clients threads that each POST one
question to /api/ask as a server-sent-event stream. Per backend it prints: how many were
answered, refused with 503 + Retry-After (the line was full: an honest "busy"), or failed
otherwise (should be 0); p50/p95 time to first token and to the whole answer of those
answered; the Retry-After values given; and the server process's RSS before and after the
burst, and its peak.

Backends: `llamacpp` (the bundled GGUF in-process, one question at a time) and `server`
(the same GGUF behind llama-cpp-python's OpenAI-compatible server, `python -m
llama_cpp.server`, started here on loopback; ragapp's `openai` backend talks to it).

    .venv/bin/python bench/load.py [--clients 50] [--backends llamacpp,server]
        [--max-tokens 32] [--max-queue N] [--timeout-s S]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parallel import free_port, ingest_sample_docs, serve, stop  # noqa: E402


@dataclass
class Outcome:
    status: int | None  # HTTP status, None: transport error
    ttft_s: float | None = None
    total_s: float | None = None
    retry_after: int | None = None
    error: str = ""


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def stream_one(client: httpx.Client, question: str, start: threading.Barrier) -> Outcome:
    start.wait()
    began = time.perf_counter()
    try:
        with client.stream(
            "POST", "/api/ask", json={"question": question},
            headers={"Accept": "text/event-stream"},
        ) as response:  # fmt: skip
            if response.status_code != 200:
                response.read()
                after = response.headers.get("retry-after")
                return Outcome(response.status_code, retry_after=int(after) if after else None,
                               error=response.text[:200])  # fmt: skip
            outcome = Outcome(200)
            event = ""
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                    if event == "token" and outcome.ttft_s is None:
                        outcome.ttft_s = time.perf_counter() - began
                elif line.startswith("data:") and event == "error":
                    outcome.status, outcome.error = 500, line[5:200]
                    if '"retry_after"' in line:
                        outcome.status = 503
                elif line.startswith("data:") and event == "done":
                    outcome.total_s = time.perf_counter() - began
            if outcome.status == 200 and outcome.total_s is None:
                outcome.status, outcome.error = 500, "the stream ended without done"
            return outcome
    except httpx.HTTPError as exc:
        return Outcome(None, error=f"{type(exc).__name__}: {exc}")


def burst(url: str, questions: list[str]) -> list[Outcome]:
    outcomes: list[Any] = [None] * len(questions)
    start = threading.Barrier(len(questions))
    limits = httpx.Limits(max_connections=len(questions), max_keepalive_connections=0)
    with httpx.Client(base_url=url, timeout=900, limits=limits) as client:

        def one(i: int) -> None:
            outcomes[i] = stream_one(client, questions[i], start)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(questions))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return outcomes


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(sorted(values), n=100, method="inclusive")[q - 1]


def llm_server(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """llama-cpp-python's OpenAI-compatible server on the bundled GGUF, on loopback."""
    from ragapp.bundled import llm_gguf

    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(llm_gguf()),
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096"]  # fmt: skip
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    sys.exit(f"llama_cpp.server did not start:\n{log.read_text()[-2000:]}")


def run_backend(
    name: str, data_dir: Path, env: dict[str, str], questions: list[str]
) -> dict[str, Any]:
    helper = None
    if name == "server":
        helper, url = llm_server(data_dir / "llm-server.log")
        env = {**env, "RAGAPP_LLM_BACKEND": "openai", "RAGAPP_LLM_BASE_URL": url,
               "RAGAPP_LLM_MODEL": "bundled"}  # fmt: skip
    try:
        proc, url = serve(data_dir, env, data_dir / f"serve-{name}.log")
        try:
            warm = httpx.post(f"{url}/api/ask", json={"question": questions[0]}, timeout=600)
            if warm.status_code != 200:
                sys.exit(f"{name}: warm-up question failed: {warm.status_code} {warm.text[:300]}")
            rss_before, _ = rss_mb(proc.pid)
            began = time.perf_counter()
            outcomes = burst(url, questions)
            wall = time.perf_counter() - began
            rss_after, peak = rss_mb(proc.pid)
            alive = proc.poll() is None
        finally:
            stop(proc)
    finally:
        if helper is not None:
            stop(helper)
    answered = [o for o in outcomes if o.status == 200]
    busy = [o for o in outcomes if o.status == 503]
    return {
        "backend": name,
        "clients": len(questions),
        "answered": len(answered),
        "busy_503": len(busy),
        "errors": [o.error or str(o.status) for o in outcomes if o.status not in (200, 503)],
        "retry_after": sorted({o.retry_after for o in busy if o.retry_after}),
        "ttft_p50": percentile([o.ttft_s for o in answered if o.ttft_s], 50),
        "ttft_p95": percentile([o.ttft_s for o in answered if o.ttft_s], 95),
        "total_p50": percentile([o.total_s for o in answered if o.total_s], 50),
        "total_p95": percentile([o.total_s for o in answered if o.total_s], 95),
        "wall_s": wall,
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_after,
        "rss_peak_mb": peak,
        "alive": alive,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--backends", default="llamacpp,server")
    parser.add_argument("--max-tokens", type=int, default=32, help="RAGAPP_MAX_TOKENS")
    parser.add_argument("--max-queue", type=int, help="RAGAPP_MAX_QUEUE (default: ragapp's)")
    parser.add_argument("--timeout-s", type=float, help="RAGAPP_REQUEST_TIMEOUT_S")
    args = parser.parse_args()

    from tests.facts import FACTS

    questions = [FACTS[i % len(FACTS)][0] for i in range(args.clients)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGAPP_")}
    env["RAGAPP_MAX_TOKENS"] = str(args.max_tokens)
    if args.max_queue is not None:
        env["RAGAPP_MAX_QUEUE"] = str(args.max_queue)
    if args.timeout_s is not None:
        env["RAGAPP_REQUEST_TIMEOUT_S"] = str(args.timeout_s)
    from ragapp.settings import Settings

    defaults = Settings.model_fields
    max_queue = args.max_queue if args.max_queue is not None else defaults["max_queue"].default
    timeout = (
        args.timeout_s if args.timeout_s is not None else defaults["request_timeout_s"].default
    )
    print(
        f"# bench/load.py: {args.clients} concurrent streaming POST /api/ask, "
        f"max_tokens {args.max_tokens}, max_queue {max_queue}, request_timeout_s {timeout:g}, "
        f"{os.cpu_count()} CPUs"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="ragapp-bench-load-") as tmp:
        data_dir = Path(tmp)
        ingest_sample_docs(data_dir, env)
        for name in args.backends.split(","):
            rows.append(run_backend(name, data_dir, env, questions))

    print(
        "\n| backend | answered | 503 busy | errors | TTFT p50 / p95 (s) | answer p50 / p95 (s) "
        "| Retry-After (s) | RSS before -> after (peak) MB | alive |"
    )
    print("|---|---:|---:|---:|---|---|---|---|---|")
    for r in rows:
        retry = ", ".join(map(str, r["retry_after"][:6])) or "-"
        print(
            f"| {r['backend']} | {r['answered']} | {r['busy_503']} | {len(r['errors'])} | "
            f"{r['ttft_p50']:.1f} / {r['ttft_p95']:.1f} | {r['total_p50']:.1f} / "
            f"{r['total_p95']:.1f} | {retry} | {r['rss_before_mb']:.0f} -> "
            f"{r['rss_after_mb']:.0f} ({r['rss_peak_mb']:.0f}) | {'yes' if r['alive'] else 'NO'} |"
        )
    for r in rows:
        for error in r["errors"][:5]:
            print(f"- {r['backend']}: {error}")
    if any(r["errors"] or not r["alive"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
