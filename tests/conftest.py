"""Shared fixtures: every test gets a clean environment, a private data dir and cwd."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DOCS = ROOT / "sample_docs"
SHARED = ROOT.parent / "shared"
RAGAPP = [sys.executable, "-m", "ragapp"]
OLLAMA_MODEL = "smollm2:135m"


@pytest.fixture(scope="session", autouse=True)
def shared_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One cache for the session, so the embedder's ONNX export is built once, not per test,
    and never in the developer's own cache. Set before module-scoped fixtures run."""
    path = tmp_path_factory.mktemp("cache")
    before = os.environ.get("RAGAPP_CACHE_DIR")
    os.environ["RAGAPP_CACHE_DIR"] = str(path)
    yield path
    if before is None:
        os.environ.pop("RAGAPP_CACHE_DIR", None)
    else:
        os.environ["RAGAPP_CACHE_DIR"] = before


@pytest.fixture(autouse=True)
def clean_environ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_cache_dir: Path
) -> Iterator[Path]:
    """No RAGAPP_* leaks in from the developer's shell; data lives in a temp dir."""
    for key in list(os.environ):
        if key.startswith("RAGAPP_"):
            monkeypatch.delenv(key)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("RAGAPP_DATA_DIR", str(data_dir))
    monkeypatch.setenv("RAGAPP_CACHE_DIR", str(shared_cache_dir))
    monkeypatch.chdir(tmp_path)
    yield data_dir


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def jsonl(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    input_text: str | None = None,
    timeout: float = 300,
) -> Result:
    """Run the real `ragapp` CLI in a subprocess, as a user would."""
    proc = subprocess.run(
        [*RAGAPP, *args],
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli() -> Any:
    return run_cli


class Corpus:
    """sample_docs copied to a temp dir and ingested once for the whole module."""

    def __init__(self, root: Path) -> None:
        self.docs = root / "docs"
        self.data = root / "data"
        shutil.copytree(SAMPLE_DOCS, self.docs)
        self.first_ingest = self.cli("ingest", str(self.docs), "--json")

    def cli(self, *args: str, **kw: Any) -> Result:
        return run_cli("--data-dir", str(self.data), *args, **kw)


@pytest.fixture(scope="session")
def asked_corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """sample_docs ingested once for the whole session, for tests that only ask questions
    of it (never change it: tests that ingest or remove build their own Corpus)."""
    corpus = Corpus(tmp_path_factory.mktemp("asked-corpus"))
    assert corpus.first_ingest.code == 0, corpus.first_ingest.stderr
    return corpus


# --- LLM servers on loopback, shared by the backend tests -------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def server_process(
    command: list[str], health_url: str, env: dict[str, str] | None = None
) -> Iterator[None]:
    """A real server in a child process, up once ``health_url`` answers; stopped after."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_until_serving(health_url)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def llama_cpp_python_server() -> Iterator[str]:
    port = free_port()
    from ragapp.bundled import llm_gguf

    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(llm_gguf()),
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096"]  # fmt: skip
    with server_process(command, f"http://127.0.0.1:{port}/v1/models"):
        yield f"http://127.0.0.1:{port}/v1"


@pytest.fixture(scope="session")
def llama_cpp_native_server() -> Iterator[str]:
    """llama.cpp's server, in this process, with a smaller context than ragapp's n_ctx."""
    import xllamacpp

    from ragapp.bundled import llm_gguf

    params = xllamacpp.CommonParams()
    params.model.path = str(llm_gguf())
    params.n_ctx = 2048
    params.port = free_port()
    server = xllamacpp.Server(params)
    url = f"http://127.0.0.1:{params.port}"
    wait_until_serving(f"{url}/health")
    yield url  # no /v1: ragapp adds it
    del server


@pytest.fixture(scope="session")
def ollama() -> Iterator[Any]:
    """A protocol-faithful Ollama server (tests/servers/ollama.py) serving the bundled model."""
    from ragapp.bundled import llm_gguf
    from tests.servers.ollama import running_ollama

    with running_ollama({OLLAMA_MODEL: llm_gguf()}) as server:
        yield server


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Chroma server (`chroma run`, from the chromadb package) on a loopback port,
    with its own store in a temp dir; yields its URL for RAGAPP_CHROMA_URL."""
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    chroma = Path(sys.executable).with_name("chroma")
    command = [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    with server_process(command, f"http://127.0.0.1:{port}/api/v2/heartbeat", env):
        yield f"http://127.0.0.1:{port}"
