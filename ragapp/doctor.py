"""`ragapp doctor`: what runs where, and a warning for each problem found.

Nothing here generates text or downloads anything: the GGUF is opened vocabulary-only to
read its metadata, and the store is only counted.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ragapp.backends import BACKENDS, get_backend
from ragapp.settings import Settings

_GPU_BACKENDS = ("CUDA", "Metal", "Vulkan", "HIP", "ROCm", "SYCL", "OpenCL")


@dataclass
class Check:
    name: str
    status: str  # "ok" | "warn" | "error" | "info"
    detail: str


@dataclass
class Diagnosis:
    checks: list[Check] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, status: str, detail: str) -> None:
        self.checks.append(Check(name, status, detail))

    @property
    def failed(self) -> bool:
        return any(c.status == "error" for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {**self.facts, "checks": [asdict(c) for c in self.checks]}


def llama_build() -> dict[str, Any]:
    """Which accelerator this llama-cpp-python build can offload to."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    found = [b for b in _GPU_BACKENDS if re.search(rf"\b{b}\b", info, re.I)]
    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    return {
        "version": llama_cpp.__version__,
        "gpu_offload": gpu,
        "backend": (found[0] if found else "GPU") if gpu else "CPU",
        "system_info": info.strip(),
    }


def _model_metadata(path: str) -> dict[str, Any]:
    from pathlib import Path

    from ragapp.backends.gguf_compat import open_vocab

    model = open_vocab(Path(path))
    try:
        return dict(model.metadata)
    finally:
        model.close()


def diagnose(settings: Settings) -> Diagnosis:
    d = Diagnosis()
    _llm(settings, d)
    _backends(settings, d)
    _embedding(settings, d)
    _store(settings, d)
    return d


def _llm(settings: Settings, d: Diagnosis) -> None:
    build = llama_build()
    d.facts["llamacpp"] = build
    d.facts["llm_backend"] = settings.llm_backend
    if get_backend(settings.llm_backend).uses_server:
        trained_ctx, n_ctx = 0, _server_model(settings, d)
    else:
        trained_ctx, n_ctx = _gguf_model(settings, d, build), settings.n_ctx
    if n_ctx is not None:
        _context(settings, d, n_ctx, trained_ctx)


def _gguf_model(settings: Settings, d: Diagnosis, build: dict[str, Any]) -> int:
    """The local GGUF (llamacpp, gpt4all): family, layers offloaded. Returns its trained context."""
    from ragapp.backends.base import DEMO_NOTE, gguf_path, is_demo_model
    from ragapp.backends.formats import choose_format, detect_family
    from ragapp.errors import RagappError

    try:
        path = gguf_path(settings)
    except RagappError as exc:
        d.add("llm model", "error", str(exc))
        return 0
    meta = _model_metadata(str(path))
    arch = meta.get("general.architecture", "")
    layers = int(meta.get(f"{arch}.block_count", 0) or 0)
    trained_ctx = int(meta.get(f"{arch}.context_length", 0) or 0)
    family = detect_family(meta)
    chosen = choose_format(settings.prompt_format, meta).family
    requested = settings.n_gpu_layers
    wanted = layers + 1 if requested < 0 else min(requested, layers + 1)  # +1: output layer
    in_process = get_backend(settings.llm_backend).gpu_offload
    offloaded = wanted if build["gpu_offload"] and in_process else 0
    d.facts["model"] = {
        "path": str(path),
        "size_mb": round(path.stat().st_size / 2**20, 1),
        "architecture": arch,
        "layers": layers,
        "context_trained": trained_ctx,
        "template_family": family,
        "prompt_format": chosen,
        "n_gpu_layers": requested,
        "layers_offloaded": offloaded,
    }
    d.add("llm model", "ok", f"{path.name} ({arch}, {layers} layers), prompt format {chosen}")
    if is_demo_model(settings):
        d.add("llm model", "info", DEMO_NOTE)
    if family is None and settings.prompt_format == "auto":
        d.add(
            "prompt format",
            "warn",
            f"no known family in the GGUF; using {chosen}. Set prompt_format if answers look off",
        )
    if not in_process:
        d.add("gpu offload", "info", "gpt4all runs on the CPU here (ragapp asks it for device=cpu)")
    elif requested < 0 and not build["gpu_offload"]:  # the default: all layers if it can
        d.add(
            "gpu offload",
            "info",
            "CPU-only llama-cpp-python build: runs on the CPU. For a GPU, rebuild it with "
            "CUDA/Metal/Vulkan (README, 'GPU offload')",
        )
    elif requested > 0 and not build["gpu_offload"]:
        d.add(
            "gpu offload",
            "warn",
            f"n_gpu_layers={requested} asks for the GPU, but this llama-cpp-python build is "
            "CPU-only: everything runs on the CPU. Rebuild it with CUDA/Metal/Vulkan "
            "(README, 'GPU offload')",
        )
    elif build["gpu_offload"]:
        d.add("gpu offload", "ok", f"{offloaded} of {layers + 1} layers on {build['backend']}")
    else:
        d.add("gpu offload", "info", "CPU only (n_gpu_layers=0)")
    return trained_ctx


def _server_model(settings: Settings, d: Diagnosis) -> int | None:
    """The ollama/openai server: reachable, has the model, its template and context.
    Returns the context the prompt must fit in (None when the server can't be asked)."""
    from ragapp.errors import RagappError

    try:
        loaded = get_backend(settings.llm_backend).load(settings)
    except RagappError as exc:
        d.add("llm server", "error", str(exc))
        return None
    server = loaded.metadata.get("server") or settings.llm_base_url or "default address"
    how = (
        "the server applies the model's own chat template"
        if loaded.is_chat
        else f"ragapp renders the {loaded.prompt_format.family} format"
    )
    d.facts["model"] = {
        "name": loaded.label,
        "server": server,
        "prompt_format": loaded.prompt_format.family,
        "server_template": loaded.is_chat,
        "exact_token_counts": loaded.tokenizer is not None,
    }
    d.add("llm server", "ok", f"{loaded.label} answers; {how}")
    if loaded.tokenizer is None:
        d.add(
            "token counting",
            "info",
            "the server has no tokenize route: prompts are budgeted with a high estimate "
            "(3 characters a token)",
        )
    if loaded.n_ctx < settings.n_ctx:
        d.add(
            "context",
            "warn",
            f"the server runs with {loaded.n_ctx} tokens of context, less than n_ctx "
            f"{settings.n_ctx}: ragapp budgets for {loaded.n_ctx}; start the server with more",
        )
    return loaded.n_ctx


def _context(settings: Settings, d: Diagnosis, n_ctx: int, trained_ctx: int) -> None:
    # What a full prompt needs: instructions + top_k chunks (about 4 characters a token) +
    # the answer; history comes on top of this in chat.
    need = 200 + settings.top_k * (settings.chunk_size // 4 + 20) + settings.max_tokens
    d.facts["context"] = {"n_ctx": n_ctx, "estimated_need": need}
    if need > n_ctx:
        d.add(
            "context",
            "warn",
            f"n_ctx {n_ctx} < about {need} tokens for {settings.top_k} chunks of "
            f"{settings.chunk_size} chars + {settings.max_tokens} answer tokens: "
            "lower-ranked chunks will be dropped (raise RAGAPP_N_CTX)",
        )
    else:
        d.add("context", "ok", f"n_ctx {n_ctx}, about {need} needed")
    if trained_ctx and n_ctx > trained_ctx:
        d.add(
            "context",
            "warn",
            f"n_ctx {n_ctx} exceeds the {trained_ctx} tokens the model was trained on",
        )


def _backends(settings: Settings, d: Diagnosis) -> None:
    """Which optional runtimes are there: the gpt4all wheel, an Ollama server, the
    configured OpenAI-compatible server (only loopback/configured addresses are probed)."""
    from ragapp.backends.http import reachable

    found: dict[str, Any] = {"gpt4all": BACKENDS["gpt4all"].installed}
    ollama = _ollama_url(settings)
    found["ollama"] = {"url": ollama, "reachable": reachable(ollama)}
    if settings.llm_backend == "openai" and settings.llm_base_url:
        url = settings.llm_base_url
        found["openai"] = {"url": url, "reachable": reachable(url.rstrip("/") + "/models")}
    d.facts["backends"] = found
    missing = "not installed (pip install 'ragapp[gpt4all]')"
    parts = [f"gpt4all {'installed' if found['gpt4all'] else missing}"]
    parts += [
        f"{name} at {v['url']} {'reachable' if v['reachable'] else 'not reachable'}"
        for name, v in found.items()
        if isinstance(v, dict)
    ]
    d.add("backends", "info", "; ".join(parts))


def _embedding(settings: Settings, d: Diagnosis) -> None:
    from ragapp.embeddings import embedding_dimension, resolve_embedding_model
    from ragapp.embeddings.onnx import onnx_supported
    from ragapp.errors import RagappError

    try:
        spec = resolve_embedding_model(settings.embedding_model)
    except RagappError as exc:
        d.add("embedding model", "error", str(exc))
        return
    cached = sorted((settings.cache_dir / "onnx").glob(f"{spec.name}-*.onnx"))
    why_not = onnx_supported(spec.path)
    runtime = "torch" if settings.embedding_runtime == "torch" or why_not else "onnx"
    dim = embedding_dimension(spec)
    d.facts["embedding"] = {
        "model": spec.name,
        "path": str(spec.path),
        "dimension": dim,
        "runtime": runtime,
        "onnx_export": str(cached[-1]) if cached else None,
    }
    detail = f"{spec.name} ({dim}-d) on {runtime}"
    if runtime == "onnx" and not cached:
        detail += " (exported on first use, a few seconds)"
    if why_not and settings.embedding_runtime != "torch":
        detail += f" (onnxruntime not possible: {why_not})"
    d.add("embedding model", "ok", detail)


def _store(settings: Settings, d: Diagnosis) -> None:
    from ragapp.app import RagApp
    from ragapp.collection import describe_missing
    from ragapp.errors import RagappError

    collection = RagApp(settings).collection
    where = settings.chroma_url or str(settings.store_path)
    try:
        chunks = collection.count()
        missing = collection.missing(chunks=chunks) if chunks else {}
    except RagappError as exc:
        d.add("store", "error", str(exc))
        return
    d.facts["store"] = {
        "location": where, "collection": settings.collection, "chunks": chunks, "missing": missing,
    }  # fmt: skip
    if chunks:
        d.add("store", "ok", f"{where}, collection {settings.collection!r}: {chunks} chunks")
        if "fix" in missing:
            d.add("search data", "warn", describe_missing(missing))
    else:
        d.add(
            "store",
            "warn",
            f"{where}: collection {settings.collection!r} is empty (run `ragapp ingest PATH`)",
        )


def list_models(settings: Settings) -> list[dict[str, Any]]:
    """The usable local models: the bundled GGUF and every .gguf under models_dir, with
    architecture, size, chat-template family and whether it is the configured one."""
    from pathlib import Path

    from ragapp.backends.base import in_models_dir
    from ragapp.backends.formats import detect_family
    from ragapp.bundled import llm_gguf
    from ragapp.settings import BUNDLED

    configured = None
    if settings.llm_backend == "llamacpp":  # gpt4all runs a copy of the file, if renamed
        model = Path(settings.llm_model).expanduser()
        if settings.llm_model == BUNDLED:
            model = llm_gguf()
        elif not model.is_file():
            model = in_models_dir(settings.models_dir, settings.llm_model) or model
        configured = str(model.absolute())
    paths = [("bundled", llm_gguf())]
    if settings.models_dir.is_dir():
        paths += [("models_dir", p) for p in sorted(settings.models_dir.rglob("*.gguf"))]
    found = []
    for origin, path in paths:
        row: dict[str, Any] = {
            "name": "bundled" if origin == "bundled" else path.stem,
            "path": str(path),
            "origin": origin,
            "size_mb": round(path.stat().st_size / 2**20, 1),
            "selected": str(path) == configured,
        }
        try:
            meta = _model_metadata(str(path))
            row["architecture"] = meta.get("general.architecture")
            row["template_family"] = detect_family(meta)
        except Exception as exc:  # noqa: BLE001 - a broken file is listed with the reason
            row["error"] = f"cannot read: {exc}"
        found.append(row)
    return found + _server_models(settings)


def _server_models(settings: Settings) -> list[dict[str, Any]]:
    """Models of the configured ollama/openai server, and of a local Ollama if one runs."""
    from ragapp.backends.http import reachable
    from ragapp.errors import RagappError

    backend = settings.llm_backend
    servers: list[tuple[str, str, Settings]] = []
    ollama = _ollama_url(settings)
    if backend == "ollama" or reachable(ollama):
        servers.append(("ollama", ollama, settings.model_copy(update={"llm_base_url": ollama})))
    if backend == "openai" and settings.llm_base_url:
        servers.append(("openai", BACKENDS["openai"].server_url(settings) or "", settings))
    rows: list[dict[str, Any]] = []
    for origin, url, asked in servers:
        try:
            listed = BACKENDS[origin].list_models(asked)
        except RagappError as exc:
            rows.append({"name": "-", "path": url, "origin": origin, "size_mb": 0.0,
                         "selected": False, "error": str(exc)})  # fmt: skip
            continue
        for m in listed:
            rows.append({
                "name": m["name"], "path": url, "origin": origin, "size_mb": m["size_mb"],
                "selected": backend == origin and settings.llm_model in (m["name"], "bundled"),
                "template_family": m["family"],
            })  # fmt: skip
    return rows


def _ollama_url(settings: Settings) -> str:
    """The configured Ollama server, else the default address (probed only there)."""
    ollama = BACKENDS["ollama"]
    url = ollama.server_url(settings) if settings.llm_backend == "ollama" else None
    return url or ollama.default_url or ""
