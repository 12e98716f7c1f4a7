"""LLM figures for the bundled model: time to first token with and without reuse of the
prompt prefix's KV cache, and decode speed through ragapp against raw llama-cpp-python on
the same prompts, in the same process.

    .venv/bin/python bench/llm.py [--json]

llama-cpp-python keeps the KV cache of the last prompt and re-evaluates only the part of
the next prompt that differs (longest common token prefix). ragapp's prompt starts with
the fixed system turn, so consecutive questions share that prefix. "no reuse" resets the
model's state before every question, which is what a fresh process or a shuffled prompt
layout would pay.

Then the same questions through the openai backend against llama-cpp-python's own server
(`python -m llama_cpp.server`, same model, started on loopback by this script): what a
local server costs over in-process llama.cpp.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import ragapp  # noqa: F401
    from ingest.loaders import use_local_spacy
    from ingest.pipeline import ingest_paths
    from ragapp.app import RagApp
    from ragapp.query.prompts import ANSWER_PROMPT, SYSTEM_PROMPT, format_context
    from ragapp.settings import load_settings
    from tests.facts import FACTS

    questions = [f[0] for f in FACTS]
    with tempfile.TemporaryDirectory() as tmp:
        use_local_spacy()
        app = RagApp(load_settings(data_dir=Path(tmp)))
        ingest_paths([ROOT / "sample_docs"], app.collection)
        loaded = app.llm
        llama = loaded.llm.client
        fmt = loaded.prompt_format
        app.ask("warm up")

        def ttfts(reset: bool) -> list[float]:
            out = []
            for q in questions:
                if reset:
                    llama.reset()
                answer = app.ask(q)
                if answer.timings.completion_tokens:
                    out.append(answer.timings.ttft_ms - answer.timings.retrieve_ms)
            return out

        no_reuse = ttfts(reset=True)
        reuse = ttfts(reset=False)

        # Decode speed: the same rendered prompts through ragapp's chain and raw llama-cpp.
        ragapp_tps, raw_tps = [], []
        for q in questions:
            llama.reset()
            answer = app.ask(q)
            if answer.timings.tokens_per_s:
                ragapp_tps.append(answer.timings.tokens_per_s)
            prompt = fmt.render(
                ANSWER_PROMPT.invoke(
                    {"question": q, "history": [], "context": format_context(answer.sources)}
                )
            )
            llama.reset()
            stamps = []
            for _ in llama.create_completion(
                prompt,
                max_tokens=app.settings.max_tokens,
                temperature=app.settings.temperature,
                stop=[*fmt.stop, "\nQuestion:"],
                stream=True,
            ):
                stamps.append(time.perf_counter())
            if len(stamps) > 1:
                raw_tps.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
        prefix_tokens = loaded.count_tokens(fmt.render_turns([("system", SYSTEM_PROMPT)]))
        server = through_server(app.settings, questions)

    figures: dict[str, Any] = {
        "questions": len(questions),
        "system_prefix_tokens": prefix_tokens,
        "prompt_eval_ms_p50_no_reuse": statistics.median(no_reuse),
        "prompt_eval_ms_p50_reuse": statistics.median(reuse),
        "ragapp_tokens_per_s_p50": statistics.median(ragapp_tps),
        "raw_llamacpp_tokens_per_s_p50": statistics.median(raw_tps),
    }
    figures.update(server)
    figures["reuse_saving"] = (
        1 - figures["prompt_eval_ms_p50_reuse"] / figures["prompt_eval_ms_p50_no_reuse"]
    )
    figures["decode_ratio"] = (
        figures["ragapp_tokens_per_s_p50"] / figures["raw_llamacpp_tokens_per_s_p50"]
    )
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"# bench/llm.py: bundled SmolLM2-135M, {len(questions)} sample-docs questions, k=4\n")
    print("| measure | p50 |")
    print("|---|---:|")
    print(
        f"| time to first token after retrieval, KV state reset each time | {figures['prompt_eval_ms_p50_no_reuse']:.0f} ms |"
    )
    print(
        f"| the same, reusing the shared prefix ({prefix_tokens}-token system turn) | {figures['prompt_eval_ms_p50_reuse']:.0f} ms |"
    )
    print(
        f"| decode through ragapp (LangChain LlamaCpp, streaming) | {figures['ragapp_tokens_per_s_p50']:.1f} tok/s |"
    )
    print(
        f"| decode through raw llama-cpp-python, same prompts | {figures['raw_llamacpp_tokens_per_s_p50']:.1f} tok/s |"
    )
    print(
        f"| time to first token after retrieval, openai backend via llama_cpp.server | {figures['server_ttft_ms_p50']:.0f} ms |"
    )
    print(
        f"| decode, openai backend via llama_cpp.server | {figures['server_tokens_per_s_p50']:.1f} tok/s |"
    )
    print(f"\n- prefix reuse saves {100 * figures['reuse_saving']:.0f}% of time to first token")
    print(f"- ragapp decode = {100 * figures['decode_ratio']:.0f}% of raw llama-cpp-python")


def through_server(settings: Any, questions: list[str]) -> dict[str, float]:
    """TTFT and decode through the openai backend against llama-cpp-python's server."""
    import urllib.request

    from ragapp.app import RagApp
    from ragapp.bundled import llm_gguf

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(llm_gguf()),
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(settings.n_ctx)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        update = {"llm_backend": "openai", "llm_base_url": f"http://127.0.0.1:{port}/v1"}
        app = RagApp(settings.model_copy(update=update))
        app.ask("warm up")
        answers = [app.ask(q) for q in questions]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    timed = [a.timings for a in answers if a.timings.completion_tokens > 1]
    return {
        "server_ttft_ms_p50": statistics.median(t.ttft_ms - t.retrieve_ms for t in timed),
        "server_tokens_per_s_p50": statistics.median(t.tokens_per_s for t in timed),
    }


if __name__ == "__main__":
    main()
