"""One typed settings tree. Precedence: CLI flag > RAGAPP_* env var > TOML config file > default."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ragapp.errors import ConfigError

DEFAULT_CONFIG_FILE = Path("ragapp.toml")
BUNDLED = "bundled"

# the names in ragapp.backends.BACKENDS (a test keeps them equal); fake: unit tests
LLMBackend = Literal["llamacpp", "ollama", "openai", "gpt4all", "fake"]
PromptFamily = Literal["auto", "llama2", "llama3", "chatml", "gemma", "mistral", "phi3", "template"]
KVCacheType = Literal["f16", "q8_0", "q4_0"]


_COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,198}[A-Za-z0-9]")
_IPV4 = re.compile(r"\d{1,3}(\.\d{1,3}){3}")


class Settings(BaseSettings):
    """Everything ragapp can be told. Every field is also an env var: RAGAPP_<FIELD NAME>."""

    model_config = SettingsConfigDict(
        env_prefix="RAGAPP_",
        extra="forbid",
        validate_default=True,
    )

    # --- where things live -------------------------------------------------------------
    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("ragapp")),
        description="Directory holding the vector store, ledger and logs.",
    )
    cache_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_cache_dir("ragapp")),
        description="Directory for derived files that can be rebuilt at any time "
        "(the embedding model's verified ONNX export, and GGUF copies gpt4all can load).",
    )
    collection: str = Field(
        default="default",
        description="Name of the collection (a separate set of documents) to use.",
    )
    chroma_url: str = Field(
        default="",
        description="Empty: embedded Chroma in the data dir. http://host:port: a Chroma server. "
        "memory://NAME: this process's memory (unit tests).",
    )
    chroma_headers: dict[str, str] = Field(
        default_factory=dict,
        description="HTTP headers sent to the Chroma server, e.g. a token for the proxy in "
        'front of it (Chroma 1.x has no auth of its own): {"Authorization": "Bearer T"}; '
        "as an env var, JSON.",
    )
    chroma_tenant: str = Field(
        default="default_tenant", description="Chroma tenant (distributed Chroma, Chroma Cloud)."
    )
    chroma_database: str = Field(
        default="default_database", description="Chroma database within the tenant."
    )

    # --- ingestion -----------------------------------------------------------------------
    embedding_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="Embedding model: the bundled 'all-MiniLM-L6-v2' or a local "
        "sentence-transformers folder. Never downloaded. 'fake': a hash embedder (unit tests).",
    )
    embedding_batch_size: int = Field(
        default=32, ge=1, description="Chunks embedded per batch during ingest."
    )
    embedding_runtime: Literal["auto", "onnx", "torch"] = Field(
        default="auto",
        description="Where the embedding model runs: 'onnx' (onnxruntime over a verified local "
        "export of the same weights, same vectors; faster than torch on some CPUs, not all), "
        "'torch' (sentence-transformers), or 'auto' (onnx when the model allows it, else torch).",
    )
    chunk_size: int = Field(default=1000, ge=100, description="Maximum characters per chunk.")
    chunk_overlap: int = Field(
        default=150,
        ge=0,
        description="Characters repeated between consecutive chunks of one section.",
    )
    ingest_workers: int = Field(
        default=0,
        ge=0,
        description="Processes parsing files while the main process embeds (0: CPUs - 1, at least 1).",
    )
    max_file_mb: float = Field(
        default=100.0, gt=0, description="Files larger than this (MiB) are skipped with a reason."
    )
    max_unzipped_mb: float = Field(
        default=512.0,
        gt=0,
        description="Zip-based documents (docx, xlsx, pptx, odt, epub) that inflate to more "
        "than this (MiB, all members together, as declared and as really inflated) are refused "
        "before parsing, as likely zip bombs. Real documents inflate to a few times their size "
        "(a 300-page docx: about 10 MiB), and a parser holds several times the XML in memory.",
    )
    max_zip_ratio: float = Field(
        default=100.0,
        gt=1,
        description="A zip member past 10 MiB inflated that is more than this many times its "
        "compressed size is refused (zip bomb). Office and e-book XML compresses 5-20:1, "
        "images about 1:1; a deflate bomb reaches 1000:1.",
    )
    max_zip_entries: int = Field(
        default=10_000,
        ge=1,
        description="Zip-based documents with more members than this are refused. A docx has "
        "about 20, a 500-slide pptx with its media a few thousand.",
    )
    parse_timeout_s: float = Field(
        default=300.0,
        ge=0,
        description="Seconds one file may take to parse (each page OCR'd gets this much again) "
        "before its parser is killed and the file fails with the reason; the rest goes on. "
        "A 50-page PDF's text layer takes about 1 s, an OCR'd page about 6 s. 0: no limit.",
    )
    parse_memory_mb: int = Field(
        default=4096,
        ge=0,
        description="Memory (MiB of address space, RLIMIT_AS) one file's parse may take in its "
        "parser process, on top of the parser libraries (about 1 GiB, not counted); a file that "
        "needs more fails with the reason, and the rest goes on. Measured: OCR adds about 1 GiB, "
        "a 38 MB HTML page about 2 GiB, a 52-page PDF 0.1 GiB. 0: no limit.",
    )

    # --- retrieval -------------------------------------------------------------------------
    top_k: int = Field(default=4, ge=1, le=100, description="Chunks retrieved per question.")
    search: Literal["hybrid", "similarity", "mmr"] = Field(
        default="hybrid",
        description="'hybrid': dense and BM25 keyword rankings fused by reciprocal rank "
        "(best on both eval sets). 'similarity': dense only. 'mmr': maximal marginal "
        "relevance, trading some relevance for less repetition among the top_k.",
    )
    mmr_lambda: float = Field(
        default=0.9,
        ge=0.0,
        le=1.0,
        description="For search='mmr': 1 is pure relevance, 0 pure diversity (0.9 measured best).",
    )
    window_chars: int = Field(
        default=300,
        ge=0,
        le=4000,
        description="For search='hybrid': each chunk is also cut into non-overlapping windows "
        "of about this many characters, embedded once after an ingest (about 1.4x more "
        "embedding work), and a chunk ranks by the mean of its own and its best window's "
        "cosine. 0: off. 300 measured best on both eval sets (docs/retrieval.md).",
    )
    min_score: float = Field(
        default=0.275,
        ge=-1.0,
        le=1.0,
        description="Cosine relevance below which a chunk is ignored; if none is left the "
        "answer is an explicit refusal instead of a guess. 0.275 is calibrated with "
        "`ragapp eval --unanswerable` on the Debian FAQ (README, 'Refusals').",
    )
    min_score_margin: float = Field(
        default=0.02,
        ge=0.0,
        le=0.2,
        description="A near miss: when no chunk reaches min_score, the best one is still "
        "given to the LLM if it lies within this margin of min_score and BM25 (hybrid "
        "search) ranks it first too. 0: off. 0.02 refuses as many out-of-scope questions "
        "as 0 on the Debian FAQ (README, 'Refusals').",
    )

    # --- LLM -------------------------------------------------------------------------------------
    llm_backend: LLMBackend = Field(
        default="llamacpp",
        description="Which LLM runtime answers: llamacpp is in-process; fake is an echo LLM "
        "for unit tests.",
    )
    llm_model: str = Field(
        default=BUNDLED,
        description="GGUF path (llamacpp, gpt4all) or model name (ollama, openai); "
        "'bundled' is SmolLM2-135M-Instruct shipped with ragapp.",
    )
    llm_base_url: str = Field(
        default="",
        description="Server URL for the ollama backend (default http://127.0.0.1:11434) or the "
        "openai backend (required, e.g. http://127.0.0.1:8080/v1).",
    )
    llm_api_key: str = Field(
        default="", description="API key for an openai-compatible server that wants one."
    )
    keep_alive: str = Field(
        default="5m",
        description="How long Ollama keeps the model loaded after a question ('-1': always).",
    )
    models_dir: Path = Field(
        default_factory=lambda data: Path(data["data_dir"]) / "models",
        description="Folder searched (recursively) for .gguf files by `ragapp models` and "
        "`--model NAME` [default: DATA_DIR/models].",
    )
    prompt_format: PromptFamily = Field(
        default="auto",
        description="Prompt format; 'auto' picks it from the model's chat template.",
    )
    n_ctx: int = Field(default=4096, ge=512, description="llama.cpp context window (tokens).")
    n_batch: int = Field(default=512, ge=1, description="llama.cpp prompt-processing batch size.")
    n_gpu_layers: int = Field(
        default=-1, ge=-1, description="Layers offloaded to the GPU (-1: all, 0: CPU only)."
    )
    n_threads: int | None = Field(
        default=None,
        ge=1,
        description="CPU threads for llama.cpp and gpt4all, prompt and generation "
        "(default: llama-cpp-python's own choice).",
    )
    flash_attn: bool = Field(default=False, description="Use flash attention in llama.cpp.")
    kv_cache_type: KVCacheType = Field(
        default="f16", description="llama.cpp KV cache precision (q8_0/q4_0 need flash_attn)."
    )
    use_mmap: bool = Field(default=True, description="Memory-map the GGUF file.")
    use_mlock: bool = Field(default=False, description="Lock the model in RAM.")
    temperature: float = Field(default=0.1, ge=0.0, le=2.0, description="Sampling temperature.")
    repeat_penalty: float = Field(
        default=1.1,
        ge=0.0,
        description="Penalty on repeating recent tokens (1.0: none). Small models loop without it; "
        "sent to every backend (OpenAI-compatible servers get it as an extra field).",
    )
    max_tokens: int = Field(default=256, ge=1, description="Maximum tokens in an answer.")
    seed: int = Field(
        default=42,
        description="Sampling seed, for repeatable answers (gpt4all has none: use temperature 0).",
    )
    llm_parallel: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Questions `ragapp serve` answers at once with a server backend (ollama, "
        "openai) that has parallel slots (vLLM, llama.cpp's server with --parallel N, Ollama "
        "with OLLAMA_NUM_PARALLEL); the others wait in line. The in-process runtimes "
        "(llamacpp, gpt4all) always answer one at a time.",
    )
    history_turns: int = Field(
        default=4, ge=0, description="Previous chat turns kept in the prompt of `ragapp chat`."
    )

    # --- server limits ---------------------------------------------------------------------
    max_queue: int = Field(
        default=32,
        ge=0,
        description="Questions `ragapp serve` lets wait for the LLM; one more is answered 503 "
        "with Retry-After at once instead of waiting minutes. 0: no limit.",
    )
    request_timeout_s: float = Field(
        default=300.0,
        ge=0,
        description="Time budget of one question on `ragapp serve`, waiting in line included: "
        "past it the request ends with 503 and Retry-After (its generation stops at the "
        "next token). 0: none.",
    )
    min_free_mb: float = Field(
        default=200,
        ge=0,
        description="Free space ragapp keeps on the data dir's disk: an ingest that would "
        "go below it stops before writing, with what was written kept (embedded store "
        "only; a Chroma server keeps its own disk).",
    )
    session_hours: float = Field(
        default=12.0,
        gt=0,
        description="How long a sign-in to `ragapp serve`'s web page (with a token) lasts, "
        "in hours; signing out ends it at once, and so does a restart of the server (sessions "
        "are held in its memory).",
    )

    @field_validator("collection")
    @classmethod
    def _collection_name(cls, value: str) -> str:
        # Chroma's rule (3-512 of [a-zA-Z0-9._-], alphanumeric at both ends, no '..', not an
        # IPv4 address), at most 200 characters: the name is also a folder and file name.
        if not _COLLECTION_NAME.fullmatch(value) or ".." in value or _IPV4.fullmatch(value):
            raise ValueError(
                "collection names are 3-200 letters, digits, '.', '_' or '-', starting and "
                "ending with a letter or digit, without '..', and not an IP address"
            )
        if value.endswith(("__files", "__windows", "__failed")):  # side tables (ragapp.store)
            raise ValueError("collection names may not end in '__files', '__windows' or '__failed'")
        return value

    @field_validator("data_dir", "cache_dir", "models_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def store_path(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def resolved_ingest_workers(self) -> int:
        return self.ingest_workers or max(1, (os.cpu_count() or 2) - 1)

    @property
    def llm_label(self) -> str:
        return f"{self.llm_backend}:{self.llm_model}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = settings_cls.model_config.get("toml_file")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


def config_file_path(explicit: Path | None = None) -> Path | None:
    """The config file in force: --config, else RAGAPP_CONFIG, else ./ragapp.toml if present."""
    if explicit is not None:
        path = Path(explicit)
    elif os.environ.get("RAGAPP_CONFIG"):
        path = Path(os.environ["RAGAPP_CONFIG"])
    elif DEFAULT_CONFIG_FILE.is_file():
        return DEFAULT_CONFIG_FILE.resolve()
    else:
        return None
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    return path.resolve()


def _invalid(err: Any, given: dict[str, Any], path: Path | None) -> str:
    """The one line for a setting that was refused, naming where it came from (a flag,
    the RAGAPP_* variable, the TOML file) and, for a name that isn't one, the closest."""
    name = ".".join(str(p) for p in err["loc"]) or "settings"
    env = f"RAGAPP_{name.upper()}"
    if name in given:
        origin = ""  # a command-line flag: the user just typed it
    elif env in os.environ:
        origin = f" (from {env}={os.environ[env]!r})"
    else:
        origin = f" (in {path})" if path else ""
    if err["type"] == "extra_forbidden":
        close = difflib.get_close_matches(name, Settings.model_fields, n=1)
        hint = f"; did you mean {close[0]}?" if close else "; `ragapp --help` lists the settings"
        return f"unknown setting {name}{origin}{hint}"
    return f"invalid setting {name}{origin}: {err['msg']}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; ``overrides`` (CLI flags) win over env, env over the TOML file."""
    path = config_file_path(config_file)
    cls: type[Settings] = Settings
    if path is not None:
        cls = type(
            "Settings",
            (Settings,),
            {"model_config": SettingsConfigDict(**{**Settings.model_config, "toml_file": path})},
        )
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return cls(**given)
    except ValidationError as exc:
        raise ConfigError(_invalid(exc.errors()[0], given, path)) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
