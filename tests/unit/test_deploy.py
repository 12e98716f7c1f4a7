"""The container files: the compose stack's privacy rules, its files parse, the lock installs
on the image's Python. (tests/integration/test_compose.py brings the stack up for real.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from typing import Any

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from tests.conftest import ROOT

# Debian bookworm's python3.11, which ragapp's image runs (and people run ragapp on).
IMAGE_PYTHON = "3.11.2"
SERVERS = ("chroma", "llamacpp", "ollama")


def compose_file(name: str = "docker-compose.yml") -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())
    return data


def test_every_locked_release_installs_on_the_images_python() -> None:
    pins = [
        line.split("==")[0]
        for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    ]
    refused = []
    for name in pins:
        try:
            wanted = distribution(name).metadata.get("Requires-Python")
        except PackageNotFoundError:
            continue
        if wanted and not SpecifierSet(wanted).contains(IMAGE_PYTHON):
            refused.append(f"{name} (Requires-Python {wanted})")
    assert not refused, f"not installable on Python {IMAGE_PYTHON}: {refused}"


def test_the_servers_sit_on_an_internal_network_and_only_ragapp_publishes() -> None:
    stack = compose_file()
    assert stack["networks"]["backend"]["internal"] is True
    services = stack["services"]
    for name in (*SERVERS, "ingest"):
        assert services[name]["networks"] == ["backend"], name
        assert "ports" not in services[name], name
    assert set(services["ragapp"]["networks"]) == {"frontend", "backend"}
    (port,) = services["ragapp"]["ports"]
    assert port.startswith("${RAGAPP_BIND:-127.0.0.1}:"), port


def test_healthchecks_use_what_the_images_contain() -> None:
    services = compose_file()["services"]
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test", [])
        assert not {"curl", "wget"} & set(" ".join(test).split()), name
    # chromadb/chroma ships bash and no curl, wget or python
    assert services["chroma"]["healthcheck"]["test"][:2] == ["CMD", "/bin/bash"]


def test_ragapp_refuses_to_start_without_a_token() -> None:
    token = compose_file()["services"]["ragapp"]["environment"]["RAGAPP_SERVER_TOKEN"]
    assert re.fullmatch(r"\$\{RAGAPP_SERVER_TOKEN:\?.+\}", token), token


def test_the_gpu_override_reserves_nvidia_devices() -> None:
    gpu = compose_file("docker-compose.gpu.yml")["services"]
    for name in ("ragapp", "llamacpp", "ollama"):
        (device,) = gpu[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"], name
    for name in ("ragapp", "ingest", "llamacpp"):  # one image, built with CUDA, not native
        args = gpu[name]["build"]["args"]["CMAKE_ARGS"].split()
        assert {"-DGGML_CUDA=on", "-DGGML_NATIVE=OFF"} <= set(args), name


def podman_compose(*args: str, token: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGAPP_")}
    if token is not None:
        env["RAGAPP_SERVER_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "podman_compose", "--dry-run", *args, "config"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=False,
    )  # fmt: skip


def test_podman_compose_reads_every_file_and_profile() -> None:
    pytest.importorskip("podman_compose")
    files = ["-f", "docker-compose.yml", "-f", "docker-compose.gpu.yml"]
    profiles = ["--profile", "llamacpp", "--profile", "ollama"]
    res = podman_compose(*files, *profiles, token="t0ken")
    assert res.returncode == 0, res.stderr
    merged = yaml.safe_load(res.stdout)
    assert set(merged["services"]) == {"chroma", "ragapp", "ingest", "llamacpp", "ollama"}
    assert merged["services"]["ragapp"]["environment"]["RAGAPP_SERVER_TOKEN"] == "t0ken"
    assert merged["services"]["llamacpp"]["command"][-1] == "--n_gpu_layers=-1"

    refused = podman_compose(token=None)
    assert refused.returncode != 0
    assert "set RAGAPP_SERVER_TOKEN in .env" in refused.stderr
