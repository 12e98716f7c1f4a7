"""What the server holds for its lifetime: the models (loaded once, shared by every
collection), one RagApp (a Collection and the LLM) per collection, the LLM queue and the
ingest jobs."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

from pydantic import ValidationError

from ragapp.app import Models, RagApp
from ragapp.backends import configured
from ragapp.errors import InvalidCollectionError
from ragapp.server.jobs import Jobs
from ragapp.server.queue import AnswerQueue
from ragapp.server.security import Auth
from ragapp.settings import Settings

log = logging.getLogger(__name__)

EMPTY_HINT = "upload documents first"  # what an empty collection tells a server user


def answer_slots(settings: Settings) -> int:
    """How many questions run at once: llm_parallel, except for a runtime in this process
    (its one llama.cpp context is not thread-safe)."""
    return 1 if configured(settings).runs_gguf else settings.llm_parallel


def document_id(path: str) -> str:
    """A stable, URL-safe id for an ingested file (its path never appears in URLs)."""
    return hashlib.sha256(path.encode("utf-8")).hexdigest()[:16]


def chunk_anchor(text: str) -> str:
    """The id of a chunk in the document viewer, derived from its text."""
    return "c-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


class ServerState:
    """The composition root of the server: settings, shared models, apps, queue, jobs, and
    the token's sign-in sessions."""

    def __init__(self, settings: Settings, token: str | None = None) -> None:
        self.settings = settings
        self.token = token or None
        self.auth = Auth(self.token, settings.session_hours)
        self.started_at = time.time()
        self.models = Models(settings)
        self.queue = AnswerQueue(answer_slots(settings), settings.max_queue)
        self.jobs = Jobs()
        self._apps: dict[str, RagApp] = {}
        self._apps_lock = threading.Lock()
        self._build: dict[str, Any] | None = None

    @property
    def default_collection(self) -> str:
        return self.settings.collection

    def app(self, collection: str | None = None) -> RagApp:
        name = collection or self.settings.collection
        with self._apps_lock:
            if name not in self._apps:
                self._apps[name] = RagApp(self._settings_for(name), self.models)
            return self._apps[name]

    def _settings_for(self, name: str) -> Settings:
        if name == self.settings.collection:
            return self.settings
        try:
            return type(self.settings).model_validate(
                {**self.settings.model_dump(), "collection": name}
            )
        except ValidationError as exc:
            raise InvalidCollectionError(
                f"invalid collection name {name!r}: {exc.errors()[0]['msg']}"
            ) from None

    def collection_names(self) -> list[str]:
        return sorted({self.settings.collection, *self.models.collection_names()})

    def llama_build(self) -> dict[str, Any]:
        """Which accelerator llama-cpp-python can offload to (read once)."""
        if self._build is None:
            try:
                from ragapp.doctor import llama_build

                self._build = llama_build()
            except Exception:  # noqa: BLE001 - llama_cpp missing: another backend, no GPU facts
                self._build = {"gpu_offload": False, "backend": "CPU"}
        return self._build

    def preload(self) -> None:
        """Load the models now (in a background thread at startup), not at the first request."""
        try:
            self.models.embeddings()
            self.models.llm()
            app = self.app()
            with self.queue.turn(exclusive=True):
                app.collection.refresh_search_index()
            log.info("models loaded: %s", app.llm_label)
        except Exception as exc:  # noqa: BLE001 - the first request will report it properly
            log.warning("could not preload the models: %s", exc)
