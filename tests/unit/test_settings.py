"""Settings precedence: CLI flag > env var > config file > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragapp.errors import ConfigError
from ragapp.settings import Settings, load_settings

pytestmark = pytest.mark.real_defaults  # the defaults themselves are under test


def test_defaults(clean_environ: Path) -> None:
    s = load_settings()
    assert s.collection == "default"
    assert s.llm_backend == "llamacpp"
    assert s.data_dir == clean_environ.resolve()
    assert s.n_gpu_layers == -1


def test_every_field_is_described() -> None:
    missing = [name for name, f in Settings.model_fields.items() if not f.description]
    assert missing == []


def test_precedence_flag_over_env_over_file_over_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "custom.toml"
    cfg.write_text('collection = "from-file"\ntop_k = 7\nn_ctx = 1024\n')
    s = load_settings(cfg)
    assert (s.collection, s.top_k, s.n_ctx) == ("from-file", 7, 1024)

    monkeypatch.setenv("RAGAPP_COLLECTION", "from-env")
    monkeypatch.setenv("RAGAPP_N_CTX", "2048")
    s = load_settings(cfg)
    assert (s.collection, s.top_k, s.n_ctx) == ("from-env", 7, 2048)

    s = load_settings(cfg, collection="from-flag", top_k=None)
    assert (s.collection, s.top_k, s.n_ctx) == ("from-flag", 7, 2048)


def test_config_found_in_cwd_and_through_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ragapp.toml").write_text('collection = "cwd-file"\n')
    assert load_settings().collection == "cwd-file"
    other = tmp_path / "other.toml"
    other.write_text('collection = "env-file"\n')
    monkeypatch.setenv("RAGAPP_CONFIG", str(other))
    assert load_settings().collection == "env-file"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('colection = "typo"\n', "colection"),
        ("top_k = 0\n", "top_k"),
        ('llm_backend = "hal9000"\n', "llm_backend"),
        ("top_k = [\n", "cannot read config file"),
    ],
)
def test_bad_config_is_a_one_line_error(tmp_path: Path, content: str, message: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(cfg)
    assert "\n" not in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize("name", ["ab", "-abc", "has space", "x" * 513])
def test_invalid_collection_names(name: str) -> None:
    with pytest.raises(ConfigError, match="collection"):
        load_settings(collection=name)
