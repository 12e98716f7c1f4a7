"""A protocol-faithful Ollama server for tests, generating with a real GGUF via llama-cpp-python.

There is no Ollama binary on these machines, so the `ollama` backend is tested against this
test double. It speaks Ollama's native HTTP API as ollama/ollama's docs/api.md and server code
define it: the same routes, request and response fields, defaults (stream true, num_predict -1,
temperature 0.8, ...), NDJSON streaming (application/x-ndjson, one object a line, a final
`done: true` object with done_reason, context and the counters) and `{"error": "..."}` bodies
with Ollama's status codes. The text comes from the real model, so a client is exercised end to
end. Every request is kept in `OllamaServer.requests` for tests to inspect.

Ollama behaviour reproduced on purpose:
- options.num_ctx is the context the model is loaded with (2048 when not sent, Ollama's
  historical default; capped at the model's trained context). Another num_ctx loads it again
  (kept per (model, num_ctx), so unlike Ollama /api/ps can list a model twice).
- A prompt longer than num_ctx is truncated silently from the front, keeping the first num_keep
  (4) tokens, as Ollama's runner does; when that fills the whole context, the runner's context
  shift (drop half the tokens after num_keep) follows. Ollama only logs "truncating input
  prompt"; here each truncation is also recorded in `OllamaServer.truncations`.

Not implemented: pull, push, create, copy, delete, blobs, embed(dings) and the OpenAI-compatible
/v1 routes answer 501 with an Ollama-style error body; the `template` override answers 501;
`format`, images, logprobs and repeat_last_n are ignored; `suffix`, tools and thinking are refused
as for a model without those capabilities. Generation that would need a context shift after it
started ends with done_reason "length" (llama-cpp-python cannot shift mid-generation), and old
chat messages are not dropped to fit num_ctx (the runner's truncation applies instead). Prompts
are rendered with the GGUF's own Jinja chat template; /api/show reports Ollama's ChatML Go
template for ChatML models.
"""

from __future__ import annotations

import argparse
import codecs
import hashlib
import json
import logging
import queue
import re
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import llama_cpp
import uvicorn
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

log = logging.getLogger(__name__)

VERSION = "0.6.8"  # the Ollama release whose API this double follows
DEFAULT_NUM_CTX = 2048
# Ollama's api.DefaultOptions() for the options that matter at generation time.
# fmt: off
DEFAULT_OPTIONS: dict[str, Any] = {
    "num_keep": 4, "seed": -1, "num_predict": -1, "top_k": 40, "top_p": 0.9, "min_p": 0.0,
    "tfs_z": 1.0, "typical_p": 1.0, "temperature": 0.8, "repeat_penalty": 1.1,
    "presence_penalty": 0.0, "frequency_penalty": 0.0, "mirostat": 0, "mirostat_tau": 5.0,
    "mirostat_eta": 0.1, "penalize_newline": True, "stop": [],
}
# fmt: on
# Ollama's sampling options -> Llama.generate()'s arguments
_SAMPLING = {"top_k": "top_k", "top_p": "top_p", "min_p": "min_p", "typical_p": "typical_p"}
_SAMPLING |= {"temperature": "temp", "repeat_penalty": "repeat_penalty", "tfs_z": "tfs_z"}
_SAMPLING |= {"frequency_penalty": "frequency_penalty", "presence_penalty": "presence_penalty"}
_SAMPLING |= {"mirostat": "mirostat_mode", "mirostat_tau": "mirostat_tau"}
_SAMPLING |= {"mirostat_eta": "mirostat_eta", "penalize_newline": "penalize_nl"}
_INT_OPTIONS = {"num_keep", "seed", "num_predict", "top_k", "repeat_last_n", "mirostat", "num_ctx"}
_INT_OPTIONS |= {"num_batch", "num_gpu", "main_gpu", "num_thread"}
_FLOAT_OPTIONS = {"top_p", "min_p", "tfs_z", "typical_p", "temperature", "repeat_penalty"}
_FLOAT_OPTIONS |= {"presence_penalty", "frequency_penalty", "mirostat_tau", "mirostat_eta"}
_BOOL_OPTIONS = {"penalize_newline", "numa", "low_vram", "f16_kv", "logits_all", "vocab_only"}
_BOOL_OPTIONS |= {"use_mmap", "use_mlock"}
CHATML_TEMPLATE = (  # ollama/ollama template/chatml.gotmpl
    "{{- if .Messages }}\n{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}\n"
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n{{ else }}\n{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n"
    "{{ end }}{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n{{ .Response }}<|im_end|>\n{{- end }}"
)
_FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1"}
_FILE_TYPES |= {10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M"}
_FILE_TYPES |= {16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 32: "BF16"}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class OllamaError(Exception):
    """Answered as Ollama answers errors: this status code and `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Truncation:
    """One silent prompt truncation, with the fields of Ollama's "truncating input prompt" log."""

    model: str
    limit: int  # num_ctx
    prompt: int  # prompt tokens before
    keep: int  # tokens kept at the front
    new: int  # prompt tokens after


@dataclass(frozen=True)
class ModelInfo:
    """What /api/tags and /api/show say about one GGUF, read from the file itself."""

    path: Path
    metadata: dict[str, Any]
    parameter_count: int
    bos: str
    eos: str
    digest: str

    @classmethod
    def read(cls, path: Path) -> ModelInfo:
        probe = llama_cpp.Llama(str(path), n_ctx=256, verbose=False)
        try:
            special = {"bos": probe.token_bos(), "eos": probe.token_eos()}
            words = {k: probe.detokenize([t], special=True).decode() for k, t in special.items()}
            parameter_count = llama_cpp.llama_model_n_params(probe.model)
            metadata = {key: _typed(value) for key, value in probe.metadata.items()}
        finally:
            probe.close()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return cls(path, metadata, parameter_count, words["bos"], words["eos"], digest)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    @property
    def context_length(self) -> int:
        return int(self.metadata.get(f"{self.architecture}.context_length", 0))

    @property
    def add_bos(self) -> bool:
        return bool(self.metadata.get("tokenizer.ggml.add_bos_token"))

    @property
    def chat_template(self) -> str | None:
        return self.metadata.get("tokenizer.chat_template")

    @property
    def is_chatml(self) -> bool:
        return "<|im_start|>" in (self.chat_template or "")

    @property
    def default_options(self) -> dict[str, Any]:
        """The PARAMETER lines Ollama's ChatML template carries."""
        return {"stop": ["<|im_start|>", "<|im_end|>"]} if self.is_chatml else {}

    @property
    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.architecture,
            "families": [self.architecture],
            "parameter_size": _human_number(self.parameter_count),
            "quantization_level": _FILE_TYPES.get(
                self.metadata.get("general.file_type"), "unknown"
            ),
        }

    @property
    def model_info(self) -> dict[str, Any]:
        skip = {"general.name", "tokenizer.chat_template"}  # dropped by Ollama too
        info = {k: v for k, v in self.metadata.items() if k not in skip}
        return dict(sorted({**info, "general.parameter_count": self.parameter_count}.items()))

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt for these messages, through the GGUF's own chat template."""
        if not self.chat_template:
            return "\n\n".join(m["content"] for m in messages)
        formatter = Jinja2ChatFormatter(self.chat_template, eos_token=self.eos, bos_token=self.bos)
        return formatter(messages=messages).prompt


@dataclass
class _Loaded:
    llm: llama_cpp.Llama
    expires_at: datetime


class OllamaServer:
    """Ollama's HTTP API over llama-cpp-python; `start()` serves it on 127.0.0.1."""

    def __init__(
        self,
        models: Mapping[str, Path | str],
        *,
        default_num_ctx: int = DEFAULT_NUM_CTX,
        max_loaded: int = 4,
        threads: int = 1,
    ) -> None:
        self.models = {_display_name(name): Path(path) for name, path in models.items()}
        self.default_num_ctx = default_num_ctx
        self.max_loaded = max_loaded  # (model, num_ctx) pairs kept loaded
        # llama.cpp threads when a request sends no num_thread: on a busy 2-core machine more
        # than one thread was 5-100x slower here (threads spin waiting for each other)
        self.threads = threads
        self.requests: list[tuple[str, Any]] = []  # (path, parsed JSON body or None)
        self.truncations: list[Truncation] = []
        self.base_url = ""
        self._info: dict[str, ModelInfo] = {}
        self._info_lock = threading.Lock()
        self._loaded: OrderedDict[tuple[str, int], _Loaded] = OrderedDict()
        self._lock = threading.Lock()  # llama.cpp contexts are not thread-safe
        self._uvicorn: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        unimplemented = ["/api/pull", "/api/push", "/api/create", "/api/copy", "/api/delete"]
        unimplemented += ["/api/embed", "/api/embeddings", "/api/blobs/{digest}", "/v1/{rest:path}"]
        self.app = Starlette(
            routes=[
                Route("/", self.root, methods=["GET", "HEAD"]),
                Route("/api/version", self.version, methods=["GET", "HEAD"]),
                Route("/api/tags", self.tags, methods=["GET", "HEAD"]),
                Route("/api/ps", self.ps, methods=["GET"]),
                Route("/api/show", self.show, methods=["POST"]),
                Route("/api/generate", self.generate, methods=["POST"]),
                Route("/api/chat", self.chat, methods=["POST"]),
                *(
                    Route(path, self.not_implemented, methods=["GET", "HEAD", "POST", "DELETE"])
                    for path in unimplemented
                ),
            ],
            exception_handlers={
                OllamaError: _error_response,
                404: self.no_route,
                405: self.no_route,
            },
        )

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._uvicorn.run, kwargs={"sockets": [sock]}, name="ollama-double", daemon=True
        )
        self._thread.start()
        while not self._uvicorn.started:
            if not self._thread.is_alive():
                raise RuntimeError("the Ollama test server did not start")
            time.sleep(0.01)
        self.base_url = f"http://{host}:{sock.getsockname()[1]}"

    def stop(self) -> None:
        if self._uvicorn and self._thread:
            self._uvicorn.should_exit = True
            self._thread.join(timeout=10)
        with self._lock:
            while self._loaded:
                self._loaded.popitem()[1].llm.close()

    # -- routes --------------------------------------------------------------------------------

    async def root(self, request: Request) -> Response:
        self.requests.append((request.url.path, None))
        return PlainTextResponse("Ollama is running")

    async def version(self, request: Request) -> Response:
        self.requests.append((request.url.path, None))
        return JSONResponse({"version": VERSION})

    async def tags(self, request: Request) -> Response:
        self.requests.append((request.url.path, None))
        models = []
        for name, path in self.models.items():
            info = await run_in_threadpool(self._describe, name)
            modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            models.append(
                {
                    "name": name,
                    "model": name,
                    "modified_at": _timestamp(modified),
                    "size": path.stat().st_size,
                    "digest": info.digest,
                    "details": info.details,
                }
            )
        return JSONResponse({"models": models})

    async def ps(self, request: Request) -> Response:
        self.requests.append((request.url.path, None))
        models = [
            {
                "name": name,
                "model": name,
                "size": self.models[name].stat().st_size,
                "digest": self._info[name].digest,
                "details": self._info[name].details,
                "expires_at": _timestamp(loaded.expires_at),
                "size_vram": 0,
                "context_length": num_ctx,
            }
            for (name, num_ctx), loaded in list(self._loaded.items())
        ]
        return JSONResponse({"models": models})

    async def show(self, request: Request) -> Response:
        body = await self._body(request)
        asked = body.get("model") or body.get("name")  # `name` is the deprecated spelling
        if not asked:
            raise OllamaError(400, "model is required")
        name = self._find(asked, f"model '{asked}' not found")
        info = await run_in_threadpool(self._describe, name)
        template = CHATML_TEMPLATE if info.is_chatml else "{{ .Prompt }}"
        parameters = [f"{'stop':<30} {json.dumps(s)}" for s in info.default_options.get("stop", [])]
        modelfile = (
            '# Modelfile generated by "ollama show"\n'
            "# To build a new Modelfile based on this, replace FROM with:\n"
            f'# FROM {name}\n\nFROM {info.path}\nTEMPLATE """{template}"""\n'
            + "".join(
                f"PARAMETER stop {json.dumps(s)}\n" for s in info.default_options.get("stop", [])
            )
        )
        return JSONResponse(
            {
                "license": str(info.metadata.get("general.license", "")),
                "modelfile": modelfile,
                "parameters": "\n".join(parameters),
                "template": template,
                "details": info.details,
                "model_info": info.model_info,
                "capabilities": ["completion"],
                "modified_at": _timestamp(datetime.fromtimestamp(info.path.stat().st_mtime, UTC)),
            }
        )

    async def generate(self, request: Request) -> Response:
        body = await self._body(request)
        name, info, options, keep_alive = await self._prepare(body)
        if body.get("template"):
            raise OllamaError(501, "the template override is not implemented by this test server")
        if body.get("raw") and (body.get("system") or body.get("context")):
            raise OllamaError(400, "raw mode does not support template, system, or context")
        prompt = body.get("prompt") or ""
        if not prompt:  # an empty prompt loads (or, with keep_alive 0, unloads) the model
            reason = await run_in_threadpool(self._load_or_unload, name, options, keep_alive)
            return JSONResponse(_head(body) | {"response": "", "done": True, "done_reason": reason})
        if body.get("suffix"):
            raise OllamaError(400, f"{json.dumps(body['model'])} does not support insert")
        if not body.get("raw"):
            system = [{"role": "system", "content": body["system"]}] if body.get("system") else []
            prompt = info.render([*system, {"role": "user", "content": prompt}])
        cancel = threading.Event()
        prefix = list(body.get("context") or [])
        pieces = self._complete(
            name, prompt, options, keep_alive, cancel, prefix=prefix, context=not body.get("raw")
        )
        return await _respond(body, pieces, cancel, "response")

    async def chat(self, request: Request) -> Response:
        body = await self._body(request)
        name, info, options, keep_alive = await self._prepare(body)
        messages = body.get("messages") or []
        if not isinstance(messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages
        ):
            raise OllamaError(400, "messages must be a list of objects with a role")
        if body.get("tools"):
            raise OllamaError(400, f"{body['model']} does not support tools")
        if not messages:  # no messages loads (or, with keep_alive 0, unloads) the model
            reason = await run_in_threadpool(self._load_or_unload, name, options, keep_alive)
            message = {"role": "assistant", "content": ""}
            return JSONResponse(
                _head(body) | {"message": message, "done_reason": reason, "done": True}
            )
        prompt = info.render(
            [{"role": m["role"], "content": m.get("content") or ""} for m in messages]
        )
        cancel = threading.Event()
        pieces = self._complete(name, prompt, options, keep_alive, cancel)
        return await _respond(body, pieces, cancel, "message")

    async def not_implemented(self, request: Request) -> Response:
        try:
            self.requests.append((request.url.path, json.loads(await request.body() or b"null")))
        except ValueError:
            self.requests.append((request.url.path, None))
        raise OllamaError(501, f"{request.url.path} is not implemented by this test server")

    async def no_route(self, request: Request, exc: Exception) -> Response:
        self.requests.append((request.url.path, None))
        if isinstance(exc, HTTPException) and exc.status_code == 405:
            return PlainTextResponse("405 method not allowed", 405)  # gin's words
        return PlainTextResponse("404 page not found", 404)

    # -- request handling ----------------------------------------------------------------------

    async def _body(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError as exc:
            self.requests.append((request.url.path, None))
            raise OllamaError(400, f"invalid JSON in request body: {exc}") from None
        self.requests.append((request.url.path, body))
        if body is None:
            raise OllamaError(400, "missing request body")
        if not isinstance(body, dict):
            raise OllamaError(400, "the request body must be a JSON object")
        return body

    async def _prepare(self, body: dict[str, Any]) -> tuple[str, ModelInfo, dict[str, Any], float]:
        """The checks /api/generate and /api/chat share, in Ollama's order."""
        if not body.get("model"):
            raise OllamaError(400, "model is required")
        asked = str(body["model"])
        name = self._find(asked, f"model {json.dumps(asked)} not found, try pulling it first")
        if body.get("think"):
            raise OllamaError(400, f"{json.dumps(asked)} does not support thinking")
        keep_alive = _keep_alive_seconds(body.get("keep_alive"))
        info = await run_in_threadpool(self._describe, name)
        return name, info, self._options(info, body.get("options")), keep_alive

    def _find(self, asked: str, not_found: str) -> str:
        wanted = _display_name(asked).lower()
        for name in self.models:
            if name.lower() == wanted:
                return name
        raise OllamaError(404, not_found)

    def _describe(self, name: str) -> ModelInfo:
        with self._info_lock:
            if name not in self._info:
                self._info[name] = ModelInfo.read(self.models[name])
            return self._info[name]

    def _options(self, info: ModelInfo, given: Any) -> dict[str, Any]:
        """Ollama's defaults, then the model's parameters, then the request's options."""
        options = DEFAULT_OPTIONS | {"num_ctx": self.default_num_ctx} | info.default_options
        if given is not None and not isinstance(given, dict):
            raise OllamaError(400, "options must be a JSON object")
        for key, value in (given or {}).items():
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if value is None:
                continue
            if key in _INT_OPTIONS or key in _FLOAT_OPTIONS:
                kind = "integer" if key in _INT_OPTIONS else "float32"
                if not number:
                    raise OllamaError(500, f'option "{key}" must be of type {kind}')
                value = int(value) if key in _INT_OPTIONS else float(value)
            elif key in _BOOL_OPTIONS and not isinstance(value, bool):
                raise OllamaError(500, f'option "{key}" must be of type boolean')
            elif key == "stop" and not (
                isinstance(value, list) and all(isinstance(s, str) for s in value)
            ):
                raise OllamaError(500, 'option "stop" must be of an array of strings')
            elif key not in _BOOL_OPTIONS and key != "stop":
                log.warning("invalid option provided option=%s", key)
                continue
            options[key] = value
        options["num_ctx"] = max(4, options["num_ctx"])
        if info.context_length and options["num_ctx"] > info.context_length:
            log.warning("requested context size too large for model num_ctx=%d", options["num_ctx"])
            options["num_ctx"] = info.context_length
        return options

    # -- the model -----------------------------------------------------------------------------

    def _load(self, name: str, options: dict[str, Any], keep_alive: float) -> llama_cpp.Llama:
        """The model loaded with num_ctx; call with self._lock held."""
        key = (name, options["num_ctx"])
        loaded = self._loaded.pop(key, None)
        if loaded is None:
            while len(self._loaded) >= self.max_loaded:
                self._loaded.popitem(last=False)[1].llm.close()
            llm = llama_cpp.Llama(
                str(self.models[name]),
                n_ctx=options["num_ctx"],
                n_threads=options.get("num_thread") or self.threads,
                n_threads_batch=options.get("num_thread") or self.threads,
                seed=llama_cpp.LLAMA_DEFAULT_SEED,
                verbose=False,
            )
            loaded = _Loaded(llm, datetime.now(UTC))
        forever = timedelta(days=292 * 365)  # Go's time.Duration(math.MaxInt64)
        loaded.expires_at = datetime.now(UTC) + (
            forever if keep_alive < 0 else timedelta(seconds=keep_alive)
        )
        self._loaded[key] = loaded
        return loaded.llm

    def _unload(self, name: str) -> None:
        for key in [key for key in self._loaded if key[0] == name]:
            self._loaded.pop(key).llm.close()

    def _load_or_unload(self, name: str, options: dict[str, Any], keep_alive: float) -> str:
        with self._lock:
            if keep_alive == 0:
                self._unload(name)
                return "unload"
            self._load(name, options, keep_alive)
            return "load"

    def _fit(self, name: str, tokens: list[int], options: dict[str, Any]) -> tuple[list[int], int]:
        """The prompt as Ollama's runner feeds it: truncated from the front past num_ctx.

        Returns the tokens and the prompt_eval_count Ollama reports (before the context shift).
        """
        num_ctx = options["num_ctx"]
        keep = len(tokens) if options["num_keep"] < 0 else options["num_keep"]
        keep = min(keep + self._info[name].add_bos, num_ctx - 1)
        if len(tokens) > num_ctx:
            new = tokens[:keep] + tokens[len(tokens) - (num_ctx - keep) :]
            self.truncations.append(Truncation(name, num_ctx, len(tokens), keep, len(new)))
            log.warning(
                "truncating input prompt limit=%d prompt=%d keep=%d new=%d",
                num_ctx,
                len(tokens),
                keep,
                len(new),
            )
            tokens = new
        evaluated = len(tokens)
        if len(tokens) >= num_ctx:  # no room for a token: the runner shifts the context first
            discard = max((len(tokens) - keep) // 2, 1)
            tokens = tokens[:keep] + tokens[keep + discard :]
        return tokens, evaluated

    def _complete(
        self,
        name: str,
        prompt: str,
        options: dict[str, Any],
        keep_alive: float,
        cancel: threading.Event,
        *,
        prefix: list[int] | None = None,
        context: bool = False,
    ) -> Iterator[str | dict[str, Any]]:
        """Yield the response text piece by piece, then the fields of Ollama's final chunk."""
        started = time.perf_counter_ns()
        with self._lock:
            llm = self._load(name, options, keep_alive)
            loaded = time.perf_counter_ns()
            full = [*(prefix or []), *llm.tokenize(prompt.encode(), add_bos=True, special=True)]
            tokens, prompt_eval_count = self._fit(name, full, options)
            llm.set_seed(options["seed"] if options["seed"] >= 0 else llama_cpp.LLAMA_DEFAULT_SEED)
            budget = options["num_ctx"] - len(tokens)
            if options["num_predict"] > 0:
                budget = min(budget, options["num_predict"])
            vocab = llama_cpp.llama_model_get_vocab(llm.model)
            stops = [s for s in options["stop"] if s]
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            pending, response, sampled, reason, first_token = "", [], 0, "length", loaded
            sampling = llm.generate(tokens, **{arg: options[o] for o, arg in _SAMPLING.items()})
            for token in sampling:
                sampled += 1
                if sampled == 1:
                    first_token = time.perf_counter_ns()
                if cancel.is_set() or llama_cpp.llama_vocab_is_eog(vocab, token):
                    reason = "stop"
                    break
                pending += decoder.decode(llm.detokenize([token]))
                hit = min((i for i in (pending.find(s) for s in stops) if i >= 0), default=-1)
                if hit >= 0:
                    pending, reason = pending[:hit], "stop"
                    break
                held = max(
                    (n for s in stops for n in range(1, len(s)) if pending.endswith(s[:n])),
                    default=0,
                )
                if len(pending) > held:  # hold back what may be the start of a stop sequence
                    response.append(pending[: len(pending) - held])
                    yield response[-1]
                    pending = pending[len(pending) - held :]
                if sampled >= budget:
                    break
            tail = pending + ("" if reason == "stop" else decoder.decode(b"", final=True))
            if tail:
                response.append(tail)
                yield tail
            finished = time.perf_counter_ns()
            done: dict[str, Any] = {"done_reason": reason}
            if context:
                text = (prompt + "".join(response)).encode()
                done["context"] = [*(prefix or []), *llm.tokenize(text, add_bos=True, special=True)]
            if keep_alive == 0:
                self._unload(name)
        yield done | {
            "total_duration": finished - started,
            "load_duration": loaded - started,
            "prompt_eval_count": prompt_eval_count,
            "prompt_eval_duration": first_token - loaded,
            "eval_count": sampled,
            "eval_duration": finished - first_token,
        }


@contextmanager
def running_ollama(
    models: Mapping[str, Path | str], *, default_num_ctx: int = DEFAULT_NUM_CTX, threads: int = 1
) -> Iterator[OllamaServer]:
    """An Ollama server for these {name: GGUF path} models on 127.0.0.1, on a free port."""
    server = OllamaServer(models, default_num_ctx=default_num_ctx, threads=threads)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _respond(
    body: dict[str, Any],
    pieces: Iterator[str | dict[str, Any]],
    cancel: threading.Event,
    text_field: str,
) -> Response:
    """NDJSON chunks unless the body says `"stream": false`, then one object with the whole text."""

    def chunk(piece: str | dict[str, Any], text: str) -> dict[str, Any]:
        content = {"role": "assistant", "content": text}
        fields = {"response": text} if text_field == "response" else {"message": content}
        done = {"done": False} if isinstance(piece, str) else {"done": True, **piece}
        return _head(body) | fields | done

    if body.get("stream") is not False:  # Ollama streams unless told not to
        chunks = (chunk(p, p if isinstance(p, str) else "") for p in pieces)
        return StreamingResponse(_ndjson(chunks, cancel), media_type="application/x-ndjson")

    def collect() -> dict[str, Any]:
        try:
            texts = list(pieces)
        except Exception as exc:  # any failure is Ollama's 500 {"error"}
            raise OllamaError(500, str(exc)) from exc
        return chunk(texts[-1], "".join(t for t in texts if isinstance(t, str)))

    return JSONResponse(await run_in_threadpool(collect))


def _ndjson(chunks: Iterator[dict[str, Any]], cancel: threading.Event) -> Iterator[bytes]:
    """Generation runs in its own thread; the response drains its lines, and a client that
    goes away cancels it."""
    lines: queue.Queue[bytes | None] = queue.Queue()

    def produce() -> None:
        try:
            for chunk in chunks:
                lines.put(json.dumps(chunk, separators=(",", ":")).encode() + b"\n")
        except Exception as exc:  # noqa: BLE001 - Ollama ends a failed stream with an {"error"} line
            lines.put(json.dumps({"error": str(exc)}).encode() + b"\n")
        finally:
            lines.put(None)

    threading.Thread(target=produce, name="ollama-double-generation", daemon=True).start()
    try:
        while (line := lines.get()) is not None:
            yield line
    finally:
        cancel.set()


def _error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OllamaError)
    return JSONResponse({"error": exc.message}, status_code=exc.status)


def _head(body: dict[str, Any]) -> dict[str, Any]:
    return {"model": body["model"], "created_at": _timestamp(datetime.now(UTC))}


def _timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _display_name(name: str) -> str:
    """Ollama's short name: no registry or `library/`, and a tag (`latest` when none)."""
    name = name.strip().removeprefix("registry.ollama.ai/").removeprefix("library/")
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _typed(value: str) -> Any:
    """A GGUF metadata value (llama.cpp gives strings) as the JSON type Ollama reports."""
    if value in ("true", "false"):
        return value == "true"
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    if re.fullmatch(r"-?\d*\.\d+(?:[eE][-+]?\d+)?", value):
        return float(value)
    return value


def _human_number(n: int) -> str:
    """Ollama's format.HumanNumber, as in details.parameter_size ("134.52M")."""
    for size, unit, decimals in ((10**9, "B", 1), (10**6, "M", 2), (10**3, "K", 0)):
        if n >= size:
            value = n / size
            return (
                f"{value:.0f}{unit}"
                if value.is_integer() or not decimals
                else f"{value:.{decimals}f}{unit}"
            )
    return str(n)


def _keep_alive_seconds(value: Any) -> float:
    """keep_alive as Ollama parses it: seconds as a number, or a Go duration ("5m"); < 0 = forever."""
    if value is None:
        return 300.0
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(int(value))
    if not isinstance(value, str):
        raise OllamaError(400, f"Unsupported type: '{type(value).__name__}'")
    body = value.lstrip("+-")
    parts = _DURATION_PART.findall(body)
    if body != "0" and (not parts or "".join(n + u for n, u in parts) != body):
        raise OllamaError(400, f'time: invalid duration "{value}"')
    seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    return -seconds if value.startswith("-") else seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Serve GGUF models over Ollama's API (a test double)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="repeatable; default: the bundled SmolLM2 as smollm2:135m",
    )
    parser.add_argument(
        "--num-ctx", type=int, default=DEFAULT_NUM_CTX, help="num_ctx when a request sends none"
    )
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads")
    args = parser.parse_args()
    if args.model:
        models = {name: path for name, path in (spec.split("=", 1) for spec in args.model)}
    else:
        from ragapp.bundled import llm_gguf

        models = {"smollm2:135m": str(llm_gguf())}
    logging.basicConfig(level=logging.INFO)
    server = OllamaServer(models, default_num_ctx=args.num_ctx, threads=args.threads)
    server.start(args.host, args.port)
    print(f"Ollama test server on {server.base_url} serving {', '.join(server.models)}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
