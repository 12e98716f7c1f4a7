"""What the server holds for its lifetime: the models (loaded once, shared by every
collection), one RagApp per collection, the LLM queue and the ingest jobs."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ragapp.app import Models, RagApp
from ragapp.errors import ConfigError, EmptyCollectionError
from ragapp.server.jobs import Jobs
from ragapp.server.queue import AnswerQueue
from ragapp.settings import Settings

log = logging.getLogger(__name__)


def document_id(path: str) -> str:
    """A stable, URL-safe id for an ingested file (its path never appears in URLs)."""
    return hashlib.sha256(path.encode("utf-8")).hexdigest()[:16]


def chunk_anchor(text: str) -> str:
    """The id of a chunk in the document viewer, derived from its text."""
    return "c-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


class CollectionApp(RagApp):
    """A collection's RagApp whose models are the server's, shared with every collection."""

    @property
    def uploads_dir(self) -> Path:
        return self.settings.data_dir / "uploads" / self.settings.collection

    def ledger(self) -> Any:
        from ingest.ledger import Ledger

        return Ledger(self.settings.data_dir / "ledger.sqlite", self.settings.collection)

    def require_chunks(self) -> None:
        if self.store.count() == 0:
            raise EmptyCollectionError(
                f"collection {self.settings.collection!r} is empty: upload documents first"
            )


class ServerState:
    """The composition root of the server: settings, shared models, apps, queue, jobs."""

    def __init__(self, settings: Settings, token: str | None = None) -> None:
        self.settings = settings
        self.token = token or None
        self.started_at = time.time()
        self.models = Models(settings)
        self.queue = AnswerQueue()
        self.jobs = Jobs()
        self._apps: dict[str, CollectionApp] = {}
        self._apps_lock = threading.Lock()
        self._indexed: dict[str, int] = {}  # collection -> chunk count its BM25 index has seen
        self._build: dict[str, Any] | None = None

    @property
    def default_collection(self) -> str:
        return self.settings.collection

    def app(self, collection: str | None = None) -> CollectionApp:
        name = collection or self.settings.collection
        with self._apps_lock:
            if name not in self._apps:
                self._apps[name] = CollectionApp(self._settings_for(name), self.models)
            return self._apps[name]

    def _settings_for(self, name: str) -> Settings:
        if name == self.settings.collection:
            return self.settings
        try:
            return type(self.settings).model_validate(
                {**self.settings.model_dump(), "collection": name}
            )
        except ValidationError as exc:
            raise ConfigError(
                f"invalid collection name {name!r}: {exc.errors()[0]['msg']}"
            ) from None

    def collection_names(self) -> list[str]:
        names = {self.settings.collection}
        for c in self.models.client().list_collections():
            names.add(c if isinstance(c, str) else c.name)
        return sorted(names)

    def prepare_retrieval(self, app: CollectionApp) -> None:
        """Bring the collection's BM25 index up to date before a question (call in the
        queue's turn): after the server's own ingests and deletes, and after a CLI ingest
        that changed the number of chunks."""
        name = app.settings.collection
        count = app.store.count()
        if self._indexed.get(name) != count:
            app.refresh_keyword_index()
            self._indexed[name] = count

    def keyword_changed(self, collection: str) -> None:
        self._indexed.pop(collection, None)

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
            if app.store.count():
                with self.queue.turn():
                    self.prepare_retrieval(app)
            log.info("models loaded: %s", app.llm_label)
        except Exception as exc:  # noqa: BLE001 - the first request will report it properly
            log.warning("could not preload the models: %s", exc)
