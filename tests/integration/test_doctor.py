"""`ragapp doctor` on this machine's real build, model and store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.e2e


def _checks(data: dict) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    for c in data["checks"]:
        found.setdefault(c["name"], []).append((c["status"], c["detail"]))
    return found


def test_doctor_reports_the_build_the_model_and_the_store() -> None:
    import llama_cpp

    res = run_cli("doctor", "--json")
    assert res.code == 0, res.stderr
    assert res.stderr == ""  # llama.cpp's own chatter is kept out of the terminal
    data = res.json()
    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    assert data["llamacpp"]["gpu_offload"] is gpu
    model = data["model"]
    assert model["path"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert (model["template_family"], model["prompt_format"]) == ("chatml", "chatml")
    assert model["layers"] == 30 and model["context_trained"] == 8192
    assert model["layers_offloaded"] == (31 if gpu else 0)
    checks = _checks(data)
    if not gpu:  # n_gpu_layers=-1 (all it can) by default: on a CPU-only build, a fact
        assert checks["gpu offload"][0][0] == "info"
        assert "CPU-only" in checks["gpu offload"][0][1]
        asked = _checks(run_cli("doctor", "--json", env={"RAGAPP_N_GPU_LAYERS": "20"}).json())
        assert asked["gpu offload"][0][0] == "warn"  # asked for the GPU by number: a problem
    assert (
        data["embedding"]["model"] == "all-MiniLM-L6-v2" and data["embedding"]["dimension"] == 384
    )
    assert checks["store"][0][0] == "warn"  # nothing ingested in this fresh data dir
    assert data["store"]["chunks"] == 0


def test_doctor_warns_about_a_small_context_and_fails_on_a_missing_model(tmp_path: Path) -> None:
    small = run_cli("doctor", "--json", env={"RAGAPP_N_CTX": "1024"}).json()
    status, detail = _checks(small)["context"][0]
    assert status == "warn" and "raise RAGAPP_N_CTX" in detail
    missing = run_cli("doctor", env={"RAGAPP_LLM_MODEL": str(tmp_path / "nope.gguf")})
    assert missing.code == 1
    assert "LLM model not found" in missing.stdout


def test_models_lists_the_bundled_model_and_the_models_dir(tmp_path: Path) -> None:
    import os

    from ragapp.bundled import llm_gguf

    models = tmp_path / "models"
    (models / "sub").mkdir(parents=True)
    os.symlink(llm_gguf(), models / "sub" / "my-copy.gguf")
    (models / "broken.gguf").write_text("not a gguf\n")
    env = {
        "RAGAPP_MODELS_DIR": str(models),
        "RAGAPP_LLM_MODEL": str(models / "sub" / "my-copy.gguf"),
    }
    res = run_cli("models", "--json", env=env)
    assert res.code == 0, res.stderr
    rows = {m["name"]: m for m in res.json()["models"]}
    assert set(rows) == {"bundled", "broken", "my-copy"}
    assert rows["my-copy"]["selected"] and not rows["bundled"]["selected"]
    assert rows["my-copy"]["template_family"] == rows["bundled"]["template_family"] == "chatml"
    assert rows["broken"]["error"].startswith("cannot read:")
    # a name that `ragapp models` prints selects that file
    by_name = {**env, "RAGAPP_LLM_MODEL": "my-copy"}
    rows = {m["name"]: m for m in run_cli("models", "--json", env=by_name).json()["models"]}
    assert rows["my-copy"]["selected"]
    checks = _checks(run_cli("doctor", "--json", env=by_name).json())
    assert checks["llm model"][0][0] == "ok", checks["llm model"]
    broken = run_cli("doctor", env={**env, "RAGAPP_LLM_MODEL": "broken"})
    assert broken.code == 1
    shown = "".join(line.strip() for line in broken.stdout.splitlines())  # long lines wrap
    assert f"{models / 'broken.gguf'} is not a GGUF model" in shown
