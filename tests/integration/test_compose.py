"""The docker-compose stack, brought up for real with podman and podman-compose.

The images are built (ragapp's Dockerfile; a chromadb/chroma stand-in where no registry is
reachable), the stack started with the Chroma server and the `llamacpp` profile, sample_docs/
uploaded through the API with the token and questions answered through /api/ask and
/v1/chat/completions by llama.cpp's server in its own container; the watcher's folder is
synced; from inside the containers on the internal network, nothing outside is reachable.
Then everything is torn down. `make compose-test` installs podman and runs this; without
podman it is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, SAMPLE_DOCS, free_port
from tests.server_helpers import wait_for_job

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None, reason="podman is not installed (make compose-test installs it)"
)

COMPOSE = [sys.executable, "-m", "podman_compose"]
RAGAPP_IMAGE = "localhost/ragapp:latest"
CHROMA_IMAGE = "docker.io/chromadb/chroma:1.5.9"
QUESTION = "What was the cooperative's total income for 2025?"
# TEST-NET-1 (RFC 5737): never routed anywhere, so a try reaches no one whatever happens.
OUTSIDE = "192.0.2.1"


def podman_env() -> dict[str, str]:
    # no RAGAPP_* from the test session: compose would take them over the env file
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGAPP_")}
    # the sandbox's podman settings (runc, no default ulimits, cgroupfs) unless told otherwise
    env.setdefault("CONTAINERS_CONF", str(ROOT / "docker" / "podman" / "containers.conf"))
    return env


def run(
    cmd: list[str], timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=podman_env(), cwd=ROOT
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc


@dataclass
class Stack:
    project: str
    env_file: Path
    docs: Path
    url: str
    token: str

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return run([
            *COMPOSE, "-p", self.project, "--env-file", str(self.env_file),
            "--profile", "llamacpp", *args,
        ], timeout)  # fmt: skip

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def exec(self, service: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return run(["podman", "exec", self.container(service), *cmd], 60, check=False)

    def wait_healthy(self, service: str, timeout: float = 300) -> None:
        # podman 4.3 runs no healthcheck timers without systemd: run the check ourselves.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                run(
                    ["podman", "healthcheck", "run", self.container(service)], check=False
                ).returncode
                == 0
            ):
                return
            time.sleep(2)
        raise AssertionError(f"{service} not healthy after {timeout:.0f} s:\n{self.logs(service)}")

    def logs(self, service: str) -> str:
        return run(["podman", "logs", "--tail", "60", self.container(service)], check=False).stderr

    def client(self, token: str | None = None) -> httpx.Client:
        token = self.token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=300)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run([str(ROOT / "docker" / "podman" / "base-image.sh")], 900)
    run([str(ROOT / "docker" / "podman" / "build-images.sh")], 3600)

    where = tmp_path_factory.mktemp("compose")
    docs = where / "docs"
    docs.mkdir()
    (docs / "watched-note.md").write_text(
        "# Greenhouse log\n\nThe greenhouse heater was serviced on 3 March 2025 by Hollis & Sons.\n"
    )
    port, token = free_port(), secrets.token_urlsafe(24)
    env_file = where / ".env"
    env_file.write_text(
        f"RAGAPP_SERVER_TOKEN={token}\nRAGAPP_PORT={port}\nRAGAPP_DOCS={docs}\n"
        f"RAGAPP_MODELS={where}\nRAGAPP_IMAGE={RAGAPP_IMAGE}\n"
        "RAGAPP_LLM_BACKEND=openai\nRAGAPP_LLM_BASE_URL=http://llamacpp:8080/v1\n"
        "RAGAPP_LLM_MODEL=local\n"
    )
    stack = Stack(f"ragapp-test-{os.getpid()}", env_file, docs, f"http://127.0.0.1:{port}", token)
    try:
        # podman-compose starts services in dependency order but does not wait for health
        # (podman 4.3 ignores `condition: service_healthy`): bring the servers up first.
        stack.compose("up", "-d", "chroma", "llamacpp")
        stack.wait_healthy("chroma")
        stack.wait_healthy("llamacpp")
        stack.compose("up", "-d")
        stack.wait_healthy("ragapp")
        yield stack
    finally:
        for service in ("ragapp", "ingest", "llamacpp", "chroma"):
            print(f"--- {service} ---\n{stack.logs(service)}", file=sys.stderr)
        stack.compose("down", "-v", "-t", "5", timeout=300)
        if not os.environ.get("RAGAPP_COMPOSE_KEEP_IMAGES"):
            run(["podman", "rmi", "-f", RAGAPP_IMAGE, CHROMA_IMAGE], check=False)


def test_the_stack_needs_the_token(stack: Stack) -> None:
    with stack.client(token="") as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/api/status").status_code == 401
    with stack.client(token="wrong") as wrong:
        assert wrong.get("/api/status").status_code == 401


def test_upload_then_a_cited_answer_from_the_llamacpp_server(stack: Stack) -> None:
    with stack.client() as client:
        files = [
            ("files", (p.name, p.read_bytes(), "application/octet-stream"))
            for p in sorted(SAMPLE_DOCS.iterdir())
        ]
        accepted = client.post("/api/documents", files=files)
        assert accepted.status_code == 202, accepted.text
        job = wait_for_job(client, accepted.json()["job_id"], timeout=600)
        assert job["state"] == "done" and not job["failures"], job
        assert job["report"]["added"] == len(files), job["report"]

        status = client.get("/api/status").json()
        assert status["llm"] == "openai:local", status  # the llamacpp container answers
        assert status["store"] == "http://chroma:8000", status

        res = client.post("/api/ask", json={"question": QUESTION})
        assert res.status_code == 200, res.text
        answer = res.json()
        assert answer["refused"] is False and answer["answer"].strip()
        assert any(
            Path(s["source"]).name == "annual-report-2025.pdf" and s["page"] == 2
            for s in answer["sources"]
        ), answer["sources"]

        res = client.post(
            "/v1/chat/completions",
            json={"model": "ragapp", "messages": [{"role": "user", "content": QUESTION}]},
        )
        assert res.status_code == 200, res.text
        completion = res.json()
        assert completion["choices"][0]["message"]["content"].strip()
        assert any(
            Path(s["source"]).name == "annual-report-2025.pdf" for s in completion["sources"]
        ), completion["sources"]


def test_the_watcher_keeps_the_documents_folder_in_sync(stack: Stack) -> None:
    with stack.client() as client:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            docs = client.get("/api/documents").json()["documents"]
            if any(d["path"] == "/docs/watched-note.md" for d in docs):
                break
            time.sleep(2)
        else:
            raise AssertionError(f"the watcher never ingested /docs:\n{stack.logs('ingest')}")
        res = client.post("/api/ask", json={"question": "Who serviced the greenhouse heater?"})
        assert res.status_code == 200, res.text
        assert any(s["source"] == "/docs/watched-note.md" for s in res.json()["sources"])


@pytest.mark.parametrize("service", ["chroma", "llamacpp"])
def test_the_servers_have_no_way_out(stack: Stack, service: str) -> None:
    # No default route in the container: nothing outside the project's network is
    # reachable, whatever a process inside tries.
    routes = stack.exec(service, "cat", "/proc/net/route")
    assert routes.returncode == 0, routes.stderr
    destinations = [line.split()[1] for line in routes.stdout.splitlines()[1:]]
    assert destinations and "00000000" not in destinations, routes.stdout
    # A connection out fails at once, and so does every name lookup (no query leaves: the
    # resolver is loopback), while the server itself answers on the stack's network.
    if service == "chroma":  # the chroma image has bash and no python: /dev/tcp and getent
        out = stack.exec(
            "chroma", "/bin/bash", "-c",
            f"(exec 3<>/dev/tcp/{OUTSIDE}/80) 2>&1 && echo connected; "
            "getent hosts pypi.org chroma || echo no-names; "
            "(exec 3<>/dev/tcp/127.0.0.1/8000) && echo serving",
        )  # fmt: skip
        assert "connected" not in out.stdout and "unreachable" in out.stdout.lower(), out
        assert "no-names" in out.stdout and "serving" in out.stdout, out
    else:
        probe = (
            "import json, socket\n"
            "def attempt(f):\n"
            "    try:\n"
            "        return 'ok: %s' % (f(),)\n"
            "    except OSError as e:\n"
            "        return type(e).__name__ + ': ' + str(e)\n"
            f"print(json.dumps({{'outside': attempt(lambda: socket.create_connection(('{OUTSIDE}', 80), 5)), "
            "'dns': attempt(lambda: socket.getaddrinfo('pypi.org', 443)), "
            "'serving': attempt(lambda: socket.create_connection(('127.0.0.1', 8080), 5))}))\n"
        )
        out = stack.exec(service, "python", "-c", probe)
        result = json.loads(out.stdout)
        assert "unreachable" in result["outside"].lower(), result
        assert result["dns"].startswith("gaierror"), result
        assert result["serving"].startswith("ok"), result
