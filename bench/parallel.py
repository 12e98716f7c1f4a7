"""What `llm_parallel` buys a server backend: many clients asking `ragapp serve` at once.

Ingests sample_docs/ into a temporary data dir, then for each `RAGAPP_LLM_PARALLEL` value
starts a real `ragapp serve` (loopback, with a token, openai backend) on that data dir and
has --clients threads POST one question each to /api/ask (JSON) at the same moment. It
prints errors (should be 0), the wall time for all of them, per-request latency p50/p95,
and the ratio of the totals.

The LLM is a stand-in OpenAI-compatible server this script runs on loopback: every chat
completion streams the same short answer citing [1] as --tokens SSE chunks, --token-ms
apart, with --slots requests decoding at once (vLLM, llama.cpp's server with -np 4). So
this measures ragapp's queue and concurrency, not LLM throughput: a real server slows
down as its slots fill, the stand-in doesn't. "LLM floor" is what the stand-in alone
would take for all the clients; the rest is ragapp (retrieval, the bundled embedder on
the CPU, the queue, HTTP).

    .venv/bin/python bench/parallel.py [--clients 50] [--parallel 1,4] [--tokens 20]
        [--token-ms 25] [--slots 4]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COLLECTION = "bench-parallel"
MODEL = "stand-in"
ANSWER = (
    "This is the fixed answer of the stand-in LLM server, the same for every question, "
    "whatever the documents say"
)


def answer_tokens(n: int) -> list[str]:
    """The stand-in's answer as ``n`` tokens, the last one citing source [1]."""
    vocabulary = ANSWER.split()
    words = [vocabulary[i % len(vocabulary)] for i in range(n - 1)]
    return [(" " if i else "") + w for i, w in enumerate(words)] + [" [1]." if n > 1 else "[1]."]


@dataclass
class StandIn:
    """Counts what the stand-in LLM server saw: requests, and how many were in flight."""

    tokens: list[str]
    token_s: float
    slots: threading.Semaphore
    lock: threading.Lock = field(default_factory=threading.Lock)
    completions: int = 0
    in_flight: int = 0
    peak: int = 0

    def reset(self) -> None:
        with self.lock:
            self.completions = self.peak = 0

    def enter(self) -> None:
        with self.lock:
            self.completions += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1


def stand_in_handler(llm: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """/v1/models and /v1/chat/completions (streamed or not); 404 for ragapp's probes of
        /props and /tokenize, as an OpenAI-compatible server without them answers."""

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                model = {"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}
                self._json(200, {"object": "list", "data": [model]})
            else:
                self._json(404, {"error": {"message": "not found", "code": 404}})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._json(404, {"error": {"message": "not found", "code": 404}})
                return
            request = json.loads(body or b"{}")
            llm.enter()
            try:
                with llm.slots:
                    if request.get("stream"):
                        self._stream(request)
                    else:
                        time.sleep(llm.token_s * len(llm.tokens))
                        self._json(200, self._completion("".join(llm.tokens)))
            finally:
                llm.leave()

        def _completion(self, text: str) -> dict[str, Any]:
            n = len(llm.tokens)
            return {
                "id": "chatcmpl-bench", "object": "chat.completion", "created": int(time.time()),
                "model": MODEL,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 0, "completion_tokens": n, "total_tokens": n},
            }  # fmt: skip

        def _stream(self, request: dict[str, Any]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()  # HTTP/1.0: the body ends when the connection closes
            head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk",
                    "created": int(time.time()), "model": MODEL}  # fmt: skip

            def send(choices: list[dict[str, Any]], **extra: Any) -> None:
                self.wfile.write(
                    f"data: {json.dumps({**head, 'choices': choices, **extra})}\n\n".encode()
                )
                self.wfile.flush()

            send(
                [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
            )
            for token in llm.tokens:
                time.sleep(llm.token_s)
                send([{"index": 0, "delta": {"content": token}, "finish_reason": None}])
            send([{"index": 0, "delta": {}, "finish_reason": "stop"}])
            if (request.get("stream_options") or {}).get("include_usage"):
                n = len(llm.tokens)
                send([], usage={"prompt_tokens": 0, "completion_tokens": n, "total_tokens": n})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    return Handler


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ragapp_cmd(data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "ragapp", "--data-dir", str(data_dir),
            "--collection", COLLECTION, *args]  # fmt: skip


def ingest_sample_docs(data_dir: Path, env: dict[str, str]) -> None:
    """sample_docs/ into the bench's collection in ``data_dir``; exits if the ingest fails."""
    ingest = subprocess.run(
        ragapp_cmd(data_dir, "ingest", str(ROOT / "sample_docs")), env=env, cwd=ROOT,
        capture_output=True, text=True,
    )  # fmt: skip
    if ingest.returncode != 0:
        sys.exit(f"ingest failed ({ingest.returncode}):\n{ingest.stderr[-3000:]}")


@dataclass
class Run:
    parallel: int
    total_s: float
    latencies_s: list[float]
    errors: list[str]
    refused: int
    uncited: int
    peak_at_llm: int
    completions: int
    stop_s: float | None
    log_problems: list[str]


def serve(data_dir: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start `ragapp serve` and wait for /healthz; returns the process and its base URL."""
    port = free_port()
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            ragapp_cmd(data_dir, "serve", "--port", str(port)), env=env, cwd=ROOT,
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"ragapp serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    sys.exit(f"ragapp serve did not answer /healthz in 120 s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> float | None:
    """SIGTERM: uvicorn shuts down gracefully, then re-raises it (exit status -15). The
    seconds that took, or None if it had to be killed."""
    began = time.perf_counter()
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None
    return time.perf_counter() - began if proc.returncode in (0, -15) else None


def ask_all(url: str, token: str, questions: list[str]) -> tuple[float, list[Any]]:
    """One thread per question, all released at once; (wall time, per-request results)."""
    results: list[Any] = [None] * len(questions)
    start = threading.Barrier(len(questions) + 1)
    limits = httpx.Limits(max_connections=len(questions), max_keepalive_connections=0)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=600, limits=limits) as client:

        def one(i: int) -> None:
            start.wait()
            began = time.perf_counter()
            try:
                response = client.post("/api/ask", json={"question": questions[i]})
                results[i] = (time.perf_counter() - began, response.status_code, response.text)
            except httpx.HTTPError as exc:
                results[i] = (time.perf_counter() - began, None, f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(questions))]
        for t in threads:
            t.start()
        start.wait()
        began = time.perf_counter()
        for t in threads:
            t.join()
        return time.perf_counter() - began, results


def run_once(
    parallel: int, data_dir: Path, base_env: dict[str, str], llm: StandIn, questions: list[str]
) -> Run:
    token = secrets.token_urlsafe(24)
    env = {**base_env, "RAGAPP_LLM_PARALLEL": str(parallel), "RAGAPP_SERVER_TOKEN": token}
    log = data_dir / f"serve-{parallel}.log"
    proc, url = serve(data_dir, env, log)
    try:
        warm = httpx.post(f"{url}/api/ask", json={"question": questions[0]}, timeout=600,
                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        if warm.status_code != 200:  # models load at the first question: not timed
            sys.exit(f"warm-up question failed: {warm.status_code} {warm.text[:500]}")
        llm.reset()
        total, results = ask_all(url, token, questions)
    finally:
        stop_s = stop(proc)
    problems = [
        line
        for line in log.read_text(errors="replace").splitlines()
        if any(word in line for word in ("Traceback", "ERROR", "WARNING", "Error"))
    ]
    errors, refused, uncited = [], 0, 0
    for _, status, text in results:
        if status != 200:
            errors.append(f"{status}: {text[:200]}")
            continue
        answer = json.loads(text)
        refused += bool(answer["refused"])
        uncited += "[1]" not in answer["answer"]
    return Run(
        parallel, total, [r[0] for r in results], errors, refused, uncited,
        llm.peak, llm.completions, stop_s, problems,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50, help="Concurrent questions.")
    parser.add_argument("--parallel", default="1,4", help="RAGAPP_LLM_PARALLEL values, in order.")
    parser.add_argument("--tokens", type=int, default=20, help="Tokens in the stand-in's answer.")
    parser.add_argument("--token-ms", type=float, default=25.0, help="Stand-in delay per token.")
    parser.add_argument("--slots", type=int, default=4, help="Stand-in's parallel slots.")
    args = parser.parse_args()
    parallels = [int(p) for p in args.parallel.split(",")]

    from tests.facts import FACTS

    questions = [FACTS[i % len(FACTS)][0] for i in range(args.clients)]
    llm = StandIn(answer_tokens(args.tokens), args.token_ms / 1000, threading.Semaphore(args.slots))
    llm_server = ThreadingHTTPServer(("127.0.0.1", 0), stand_in_handler(llm))
    llm_server.daemon_threads = True
    llm_server.request_queue_size = max(128, args.clients)
    threading.Thread(target=llm_server.serve_forever, name="stand-in-llm", daemon=True).start()
    llm_url = f"http://127.0.0.1:{llm_server.server_address[1]}/v1"
    answer_s = args.tokens * args.token_ms / 1000

    print(
        f"# bench/parallel.py: {args.clients} concurrent POST /api/ask to `ragapp serve`, "
        f"openai backend"
    )
    print(
        f"# LLM: a stand-in at {llm_url}, {args.tokens} tokens x {args.token_ms:g} ms "
        f"streamed, {args.slots} slots. This measures ragapp's queue and concurrency, "
        "not LLM throughput."
    )
    runs = []
    with tempfile.TemporaryDirectory(prefix="ragapp-bench-parallel-") as tmp:
        data_dir = Path(tmp)
        base_env = {
            **os.environ,
            "RAGAPP_LLM_BACKEND": "openai",
            "RAGAPP_LLM_BASE_URL": llm_url,
            "RAGAPP_LLM_MODEL": "bundled",  # the stand-in's one model
        }
        started = time.perf_counter()
        ingest_sample_docs(data_dir, base_env)
        print(f"# ingested sample_docs/ in {time.perf_counter() - started:.0f} s\n")
        for parallel in parallels:
            runs.append(run_once(parallel, data_dir, base_env, llm, questions))
    llm_server.shutdown()

    print(
        "| llm_parallel | errors | refused | uncited | total (s) | LLM floor (s) | "
        "p50 (s) | p95 (s) | LLM calls | peak at LLM | serve stop (s) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        lat = sorted(run.latencies_s)
        p95 = statistics.quantiles(lat, n=100, method="inclusive")[94] if len(lat) > 1 else lat[0]
        floor = math.ceil(args.clients / min(run.parallel, args.slots)) * answer_s
        print(
            f"| {run.parallel} | {len(run.errors)} | {run.refused} | {run.uncited} | "
            f"{run.total_s:.2f} | {floor:.2f} | {statistics.median(lat):.2f} | {p95:.2f} | "
            f"{run.completions} | {run.peak_at_llm} | "
            f"{'killed' if run.stop_s is None else f'{run.stop_s:.1f}'} |"
        )
    for run in runs:
        for error in run.errors[:5]:
            print(f"- llm_parallel={run.parallel} error {error}")
        for line in run.log_problems[:5]:
            print(f"- llm_parallel={run.parallel} server log: {line}")
    if len(runs) >= 2:
        first, last = runs[0], runs[-1]
        print(
            f"\n- total({first.parallel}) / total({last.parallel}) = "
            f"{first.total_s / last.total_s:.2f}"
        )
    print(
        "- peak at LLM: most chat completions the stand-in had in flight at once "
        "(at most llm_parallel); LLM floor: ceil(clients / min(llm_parallel, slots)) x "
        "tokens x token-ms"
    )
    if any(run.errors or run.stop_s is None for run in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
