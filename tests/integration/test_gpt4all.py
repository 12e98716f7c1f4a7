"""The gpt4all backend with the real bundled model and gpt4all's own runtime.

gpt4all 2.8.2's llama.cpp refuses SmolLM2's pre-tokenizer name; these tests check that
the renamed copy is made once, verified token by token, reused, and then answers through
ragapp's chain with streamed tokens, honoured stop strings and no network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from ragapp.backends import gguf_compat
from ragapp.backends.base import LoadedLLM
from ragapp.backends.gguf_compat import (
    PRE_KEY,
    SAMPLE_TEXT,
    check_copy,
    compatible_gguf,
    llama_cpp_tokens,
    write_with_string,
)
from ragapp.backends.gpt4all import gpt4all_tokens, open_gpt4all, until_stop
from ragapp.backends.gpt4all import load as load_gpt4all
from ragapp.bundled import llm_gguf
from ragapp.errors import BackendError
from ragapp.query.chain import build_chain, run_answer
from ragapp.settings import Settings
from tests.conftest import SAMPLE_DOCS, run_cli

HAS_GPT4ALL = importlib.util.find_spec("gpt4all") is not None
needs_gpt4all = pytest.mark.skipif(not HAS_GPT4ALL, reason="gpt4all is not installed")


# --- stop strings on a stream (no model) ----------------------------------------------------


@pytest.mark.parametrize(
    ("pieces", "stop", "want"),
    [
        (["Hel", "lo", " world"], [], ["Hel", "lo", " world"]),
        (["The fee", " is £37", ".<|im_", "end|>", "more"], ["<|im_end|>"], "The fee is £37."),
        (["a\n", "Ques", "tion: b"], ["\nQuestion:"], "a"),
        (["a\n", "Quest", "ion"], ["\nQuestion:"], "a\nQuestion"),  # a near miss is released
        (["<", "b>", "<|im_start|>"], ["<|im_end|>", "<|im_start|>"], "<b>"),
        (["stop now"], ["stop"], ""),
    ],
)
def test_stop_strings_cut_the_stream(pieces: list[str], stop: list[str], want: Any) -> None:
    got = list(until_stop(iter(pieces), stop))
    assert (got if isinstance(want, list) else "".join(got)) == want
    assert all(got)  # no empty pieces


def test_nothing_is_pulled_from_the_model_after_a_stop() -> None:
    pulled: list[str] = []

    def model() -> Iterator[str]:
        for piece in ["It is 42.", "<|im_end|>", "never generated"]:
            pulled.append(piece)
            yield piece

    assert list(until_stop(model(), ["<|im_end|>"])) == ["It is 42."]
    assert pulled == ["It is 42.", "<|im_end|>"]


def test_text_that_may_start_a_stop_is_held_back_only_until_known() -> None:
    stream = until_stop(iter(["x <|", "im", "_start"]), ["<|im_end|>"])
    assert next(stream) == "x "
    assert "".join(stream) == "<|im_start"


# --- GGUF header surgery on a tiny synthetic file -------------------------------------------


def _gguf_string(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("<Q", len(raw)) + raw


def _tiny_gguf(path: Path, pre: str, alignment: int = 32) -> bytes:
    """A GGUF v3 with string, scalar, array KVs and two tensors at aligned offsets, as
    llama.cpp lays them out; returns its data section (tensors and padding)."""
    kvs = [
        ("general.architecture", 8, _gguf_string("llama")),
        ("general.alignment", 4, struct.pack("<I", alignment)),
        (PRE_KEY, 8, _gguf_string(pre)),
        ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 2) + _gguf_string("a") + _gguf_string("bc")),
        ("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, 2) + struct.pack("<2f", 0.5, -1.0)),
        ("tokenizer.ggml.add_bos_token", 7, b"\x00"),
    ]  # fmt: skip
    blobs = [bytes(range(16)), bytes(range(100, 124))]  # f32 [4] and f32 [2, 3]
    tensors = [("t0", [4], 0), ("t1", [2, 3], alignment)]
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for key, vtype, value in kvs:
        head += _gguf_string(key) + struct.pack("<I", vtype) + value
    for name, dims, offset in tensors:
        head += _gguf_string(name) + struct.pack("<I", len(dims))
        head += b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", 0, offset)
    data = b"".join(blob + b"\0" * (-len(blob) % alignment) for blob in blobs)
    path.write_bytes(head + b"\0" * (-len(head) % alignment) + data)
    return data


def _fields(path: Path, but: str = PRE_KEY) -> dict[str, tuple[list[int], Any]]:
    """Every KV of a GGUF but one, as (types, value), gguf-py's GGUF.* version and counts too."""
    fields = gguf.GGUFReader(path).fields.items()
    return {k: ([int(t) for t in f.types], f.contents()) for k, f in fields if k != but}


def _pre(path: Path) -> str:
    return gguf.GGUFReader(path).get_field(PRE_KEY).contents()  # type: ignore[union-attr]


def _tensor_infos_end(reader: gguf.GGUFReader) -> int:
    last = reader.tensors[-1].field
    return last.offset + sum(int(part.nbytes) for part in last.parts)


@pytest.mark.parametrize("new", ["command-r", "refact", "x"])
def test_a_string_kv_is_rewritten_and_the_data_stays_aligned(tmp_path: Path, new: str) -> None:
    src, dst = tmp_path / "src.gguf", tmp_path / "dst.gguf"
    data = _tiny_gguf(src, "smollm", alignment=64)
    write_with_string(src, dst, PRE_KEY, new)
    before, after = gguf.GGUFReader(src), gguf.GGUFReader(dst)
    assert _pre(dst) == new
    assert _fields(dst) == _fields(src)
    assert after.alignment == 64 and after.data_offset % 64 == 0
    assert all(t.data_offset % 64 == 0 for t in after.tensors)
    assert dst.read_bytes()[after.data_offset :] == data
    assert [(t.name, t.data.tobytes()) for t in after.tensors] == [
        (t.name, t.data.tobytes()) for t in before.tensors
    ]
    shift = len(new) - len("smollm")
    assert _tensor_infos_end(after) == _tensor_infos_end(before) + shift


def test_a_copy_with_other_changes_fails_the_check(tmp_path: Path) -> None:
    src, dst = tmp_path / "src.gguf", tmp_path / "dst.gguf"
    _tiny_gguf(src, "smollm")
    write_with_string(src, dst, PRE_KEY, "command-r")
    good = dst.read_bytes()
    check_copy(gguf.GGUFReader(src), gguf.GGUFReader(dst), PRE_KEY, "command-r")
    with pytest.raises(ValueError, match=f"does not have {PRE_KEY}"):
        check_copy(gguf.GGUFReader(src), gguf.GGUFReader(dst), PRE_KEY, "refact")
    tampered = {
        "metadata": good.replace(b"llama", b"llamb"),  # general.architecture
        "tensor data": good.replace(bytes(range(100, 124)), bytes(range(101, 125))),  # t1
    }
    for what, raw in tampered.items():
        assert raw != good
        dst.write_bytes(raw)
        with pytest.raises(ValueError, match=f"does not hold the same {what}"):
            check_copy(gguf.GGUFReader(src), gguf.GGUFReader(dst), PRE_KEY, "command-r")


def test_a_missing_key_is_not_written(tmp_path: Path) -> None:
    src, dst = tmp_path / "src.gguf", tmp_path / "dst.gguf"
    _tiny_gguf(src, "smollm")
    with pytest.raises(ValueError, match="has no string key 'general.name'"):
        write_with_string(src, dst, "general.name", "x")
    assert not dst.exists()


@pytest.mark.parametrize("cut", [None, 40, 200, 400])
def test_not_a_gguf_is_a_clear_error(tmp_path: Path, cut: int | None) -> None:
    bad = tmp_path / "model.gguf"
    if cut is None:
        bad.write_bytes(b"not a gguf at all")
    else:  # a GGUF cut short, in its metadata or in its tensor data
        _tiny_gguf(bad, "smollm")
        bad.write_bytes(bad.read_bytes()[:cut])
    with pytest.raises(BackendError, match="cannot read the GGUF header"):
        compatible_gguf(bad, tmp_path / "cache")


def test_a_copy_that_fails_its_check_is_refused_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src.gguf"
    _tiny_gguf(src, "smollm")

    def mismatch(*args: object) -> None:
        raise ValueError("the copy does not hold the same tensor data")

    monkeypatch.setattr(gguf_compat, "check_copy", mismatch)
    with pytest.raises(BackendError, match="cannot make a faithful copy of src.gguf: .* tensor"):
        compatible_gguf(src, tmp_path / "cache")
    assert list((tmp_path / "cache" / "gguf").iterdir()) == []


def test_a_gguf_without_an_alias_is_used_as_is(tmp_path: Path) -> None:
    src = tmp_path / "other.gguf"
    _tiny_gguf(src, "llama-bpe")
    assert compatible_gguf(src, tmp_path / "cache") == src
    assert not (tmp_path / "cache").exists()


# --- the real bundled model through gpt4all -------------------------------------------------


@pytest.fixture(scope="module")
def settings(shared_cache_dir: Path) -> Settings:
    return Settings(
        llm_backend="gpt4all",
        llm_model="bundled",
        prompt_format="auto",
        cache_dir=shared_cache_dir,
        temperature=0.0,  # greedy: the same answer every run
        max_tokens=96,
        n_ctx=2048,
    )


@pytest.fixture(scope="module")
def loaded(settings: Settings) -> LoadedLLM:
    if not HAS_GPT4ALL:
        pytest.skip("gpt4all is not installed")
    return load_gpt4all(settings)


def _derived(settings: Settings) -> list[Path]:
    return sorted((settings.cache_dir / "gguf").glob("*.gguf"))


@needs_gpt4all
def test_the_renamed_copy_is_made_once_verified_and_reused(
    loaded: LoadedLLM, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    [copy] = _derived(settings)
    assert _pre(copy) == "command-r"
    assert _pre(llm_gguf()) == "smollm"
    stat = copy.stat()

    def no_rewrite(*args: object) -> None:
        raise AssertionError("the verified copy was written again")

    monkeypatch.setattr(gguf_compat, "write_with_string", no_rewrite)
    again = load_gpt4all(settings)
    assert again.label == loaded.label == "gpt4all:SmolLM2-135M-Instruct (bundled)"
    assert _derived(settings) == [copy]
    assert (copy.stat().st_ino, copy.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    assert not list((settings.cache_dir / "gguf").glob(".*"))  # no partial file left


@needs_gpt4all
def test_the_copy_differs_only_in_the_pre_tokenizer_name(
    loaded: LoadedLLM, settings: Settings
) -> None:
    [copy] = _derived(settings)
    src = llm_gguf()
    assert _fields(src) == _fields(copy)
    a, b = gguf.GGUFReader(src), gguf.GGUFReader(copy)
    assert [(t.name, t.tensor_type, t.shape.tolist()) for t in a.tensors] == [
        (t.name, t.tensor_type, t.shape.tolist()) for t in b.tensors
    ]

    def data_hash(path: Path, start: int) -> str:
        with path.open("rb") as fh:
            fh.seek(start)
            return hashlib.file_digest(fh, "sha256").hexdigest()

    assert data_hash(src, a.data_offset) == data_hash(copy, b.data_offset)


@needs_gpt4all
def test_gpt4all_tokenizes_the_copy_as_llama_cpp_does_the_original(
    loaded: LoadedLLM, settings: Settings
) -> None:
    [copy] = _derived(settings)
    want = llama_cpp_tokens(llm_gguf(), SAMPLE_TEXT)
    assert len(want) > 200
    assert gpt4all_tokens(copy, SAMPLE_TEXT) == want
    assert llama_cpp_tokens(copy, SAMPLE_TEXT) == want


@needs_gpt4all
def test_gpt4all_refuses_the_original_and_says_why() -> None:
    with pytest.raises(BackendError, match="unknown pre-tokenizer type: 'smollm'"):
        open_gpt4all(llm_gguf(), n_ctx=512, n_threads=1)


@needs_gpt4all
def test_a_copy_that_tokenizes_differently_is_refused_and_removed(tmp_path: Path) -> None:
    def off_by_one(path: Path, text: str) -> list[int]:
        return [t + 1 for t in llama_cpp_tokens(path, text)]

    with pytest.raises(BackendError, match="does not tokenize like 'smollm'"):
        compatible_gguf(llm_gguf(), tmp_path, checks=[off_by_one])
    assert list((tmp_path / "gguf").iterdir()) == []


@needs_gpt4all
def test_a_model_gpt4all_cannot_load_is_a_one_line_error(
    tmp_path: Path, settings: Settings
) -> None:
    odd = tmp_path / "odd.gguf"
    write_with_string(llm_gguf(), odd, PRE_KEY, "no-such-pre")
    with pytest.raises(BackendError) as info:
        load_gpt4all(settings.model_copy(update={"llm_model": str(odd)}))
    message = str(info.value)
    assert message.startswith("gpt4all could not load odd.gguf: ")
    assert "unknown pre-tokenizer type: 'no-such-pre'" in message and "\n" not in message


def test_a_missing_wheel_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    from ragapp.backends import load_llm

    monkeypatch.setitem(sys.modules, "gpt4all", None)  # import gpt4all -> ImportError
    with pytest.raises(BackendError, match=r"pip install 'ragapp\[gpt4all\]'"):
        load_llm(settings)


class OneDoc(BaseRetriever):
    doc: Document

    def _get_relevant_documents(self, query: str, *, run_manager: object) -> list[Document]:
        return [self.doc]


@needs_gpt4all
def test_answers_a_grounded_question_through_the_chain_streaming(loaded: LoadedLLM) -> None:
    doc = Document(
        "Harbourlight members pay an annual membership fee of £37, due each January.",
        metadata={"source": "/docs/handbook.md", "score": 0.9},
    )
    tokens: list[str] = []
    answer = run_answer(
        build_chain(OneDoc(doc=doc), loaded),
        "How much is the annual membership fee?",
        on_token=tokens.append,
    )
    assert "£37" in answer.text, answer.text
    assert len(tokens) > 3  # streamed piece by piece, not in one block
    assert not answer.refused and answer.sources[0].source == "/docs/handbook.md"
    assert "<|im_end|>" not in answer.text and "<|im_start|>" not in answer.text
    assert answer.timings.ttft_ms > 0 and answer.timings.completion_tokens == len(tokens)


@needs_gpt4all
def test_stop_strings_end_the_generation(loaded: LoadedLLM) -> None:
    prompt = loaded.prompt_format.render_turns([("user", "List the days of the week.")])
    full = loaded.llm.invoke(prompt, stop=loaded.prompt_format.stop)
    assert "Wednesday" in full, full
    cut = loaded.llm.invoke(prompt, stop=[*loaded.prompt_format.stop, "Wednesday"])
    assert cut == full[: full.index("Wednesday")]
    streamed = list(loaded.llm.stream(prompt, stop=["Wednesday"]))
    assert "".join(streamed) == cut and len(streamed) > 1
    # a bound max_tokens (as the chain's question rewriter uses) is honoured
    short = loaded.llm.bind(max_tokens=3).invoke(prompt)
    assert short and loaded.count_tokens(short) <= 4 and full.startswith(short)


@needs_gpt4all
def test_the_token_counter_is_the_models(loaded: LoadedLLM) -> None:
    assert loaded.count_tokens(SAMPLE_TEXT) == len(llama_cpp_tokens(llm_gguf(), SAMPLE_TEXT))
    assert loaded.prompt_format.family == "chatml"
    assert loaded.metadata["tokenizer.ggml.pre"] == "smollm"


STRACE_SCRIPT = """
import sys
from ragapp.settings import Settings
from ragapp.backends.gpt4all import load as load_gpt4all
loaded = load_gpt4all(Settings(llm_backend="gpt4all", cache_dir=sys.argv[1], max_tokens=8))
print("".join(loaded.llm.stream("<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n")))
"""


def _remote_connects(
    command: list[str], trace: Path
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``command`` under strace; its connect/send calls to non-loopback addresses."""
    proc = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace), *command],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if proc.returncode != 0 and "ptrace" in proc.stderr:
        pytest.skip(f"strace can't trace here: {proc.stderr.strip()}")
    calls = trace.read_text().splitlines() if trace.exists() else []
    return proc, [c for c in calls if "AF_INET" in c and not ("127.0.0.1" in c or "::1" in c)]


@needs_gpt4all
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_gpt4all_opens_no_network_connection(tmp_path: Path) -> None:
    """pytest-socket sees only Python's sockets; strace sees gpt4all's native code too. The
    fresh cache makes the copy, its verification and the load all run under it."""
    script = [sys.executable, "-c", STRACE_SCRIPT, str(tmp_path / "cache")]
    proc, remote = _remote_connects(script, tmp_path / "trace.txt")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()  # it did generate
    assert remote == []
    # control: the same check does see a connection attempt
    attempt = (
        "import socket; s = socket.socket(); s.setblocking(False); s.connect_ex(('192.0.2.1', 80))"
    )
    _, seen = _remote_connects([sys.executable, "-c", attempt], tmp_path / "control.txt")
    assert len(seen) == 1 and "192.0.2.1" in seen[0]


# --- end to end: the CLI over sample_docs ---------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sample_docs ingested once into a data dir for this module."""
    root = tmp_path_factory.mktemp("gpt4all-corpus")
    docs, data = root / "docs", root / "data"
    shutil.copytree(SAMPLE_DOCS, docs)
    res = run_cli("--data-dir", str(data), "ingest", str(docs), "--json")
    assert res.code == 0, res.stderr
    return data


@needs_gpt4all
@pytest.mark.e2e
def test_cli_ask_with_the_gpt4all_backend(corpus: Path, tmp_path: Path) -> None:
    from tests.integration.test_no_egress import attempts, guarded_env

    log = tmp_path / "egress.jsonl"
    env = {"RAGAPP_LLM_BACKEND": "gpt4all", **guarded_env(log)}
    start = time.perf_counter()
    res = run_cli(
        "--data-dir", str(corpus), "ask",
        "What was the cooperative's total income for 2025?", "--json", env=env,
    )  # fmt: skip
    assert res.code == 0, res.stderr
    data = res.json()
    assert data["answer"].strip() and data["refused"] is False
    assert any(
        Path(s["source"]).name == "annual-report-2025.pdf" and s["page"] == 2
        for s in data["sources"]
    )
    assert data["timings"]["completion_tokens"] > 0 and data["timings"]["tokens_per_s"] > 0
    assert attempts(log) == []  # not one connection or DNS lookup from Python
    human = run_cli(
        "--data-dir", str(corpus), "ask", "How much is the annual membership fee?", env=env
    )
    assert human.code == 0, human.stderr
    assert "\nSources\n" in human.stdout and "gpt4all:" in human.stderr
    assert "Failed to load" not in human.stderr  # gpt4all's CUDA probing stays quiet
    print(f"\ngpt4all CLI ask: {time.perf_counter() - start:.1f} s for two questions")


# --- figures for the README (printed, not asserted) -----------------------------------------


@needs_gpt4all
@pytest.mark.e2e
@pytest.mark.skipif(not os.environ.get("RAGAPP_BENCH"), reason="set RAGAPP_BENCH=1 to measure")
def test_print_speed_gpt4all_vs_llama_cpp(settings: Settings) -> None:
    """Time to first token and decode speed of both in-process runtimes, same GGUF, same
    prompts (a short one and a RAG-sized one), same threads, greedy; runs interleaved."""
    from ragapp.backends.llamacpp import load as load_llamacpp

    threads = int(os.environ.get("RAGAPP_BENCH_THREADS", "1"))
    common = {"max_tokens": 128, "n_threads": threads, "temperature": 0.0, "n_ctx": 4096}
    import llama_cpp

    llamacpp_settings = settings.model_copy(update={**common, "llm_backend": "llamacpp"})
    backends = {
        "gpt4all": load_gpt4all(settings.model_copy(update=common)),
        "llama-cpp-python": load_llamacpp(llamacpp_settings),  # as ragapp configures it
        "llama-cpp-python*": load_llamacpp(llamacpp_settings),  # * batch threads = threads
    }
    client = backends["llama-cpp-python*"].llm.client  # type: ignore[union-attr]
    llama_cpp.llama_set_n_threads(client.ctx, threads, threads)
    context = (SAMPLE_DOCS / "handbook.md").read_text()[:4000]
    fmt = backends["gpt4all"].prompt_format
    prompts = {
        "short": fmt.render_turns([("user", "Write a short story about a lighthouse keeper.")]),
        "rag": fmt.render_turns(
            [("user", f"Context:\n{context}\n\nQuestion: Summarise the handbook.")]
        ),
    }
    # Wall-clock figures swing with other load on a shared machine; CPU time (all threads
    # of this process) does not, so both are printed.
    runs: dict[tuple[str, str], list[tuple[float, float, float, float, int]]] = {}
    for _ in range(int(os.environ.get("RAGAPP_BENCH_RUNS", "5"))):
        for pname, prompt in prompts.items():
            for name, llm in backends.items():
                wall, cpu = time.perf_counter(), time.process_time()
                stamps = [
                    (time.perf_counter(), time.process_time()) for _ in llm.llm.stream(prompt)
                ]
                (w0, c0), (w1, c1), n = stamps[0], stamps[-1], len(stamps) - 1
                runs.setdefault((pname, name), []).append(
                    (w0 - wall, c0 - cpu, n / (w1 - w0), n / (c1 - c0), n + 1)
                )
    for (pname, name), rs in runs.items():
        n_prompt = backends[name].count_tokens(prompts[pname])
        med = [sorted(r[i] for r in rs)[len(rs) // 2] for i in range(4)]
        print(f"\n{pname:5} prompt ({n_prompt:3} tokens) {name:17}: "
              f"TTFT {med[0] * 1000:5.0f} ms wall / {med[1] * 1000:5.0f} ms CPU, "
              f"decode {med[2]:5.1f} tok/s wall / {med[3]:5.1f} tok per CPU-s "
              f"({rs[0][4]} tokens, {threads} thread(s), median of {len(rs)})")  # fmt: skip
