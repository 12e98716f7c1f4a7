"""The errors ragapp raises on purpose. Each carries what its boundary needs: the CLI's exit
code and the API's HTTP status, so each boundary translates them in one place (cli.main,
server.factory) into one line for the user.

RagappError                 exit 1, HTTP 400   the base class
├── ConfigError             exit 1, HTTP 400   bad settings or config file
│   └── InvalidCollectionError       HTTP 422   a collection name ragapp would not make
├── ModelNotFoundError      exit 1, HTTP 503   an embedding or LLM model that is not on this machine
├── EmbeddingMismatchError  exit 1, HTTP 409   the collection was built with another embedding model
├── StoreError              exit 1, HTTP 503   the vector store cannot be opened or written
│   └── DiskFullError       exit 1, HTTP 507   too little free disk for the data dir to grow
├── EmptyCollectionError    exit 1, HTTP 409   a question asked of a collection with nothing in it
├── NoMatchingFileError     exit 1, HTTP 404   a path filter that matches no ingested file
├── BackendError            exit 1, HTTP 503   an LLM backend that is missing or unreachable
├── ContextOverflowError    exit 1, HTTP 422   the question and one passage do not fit the model's context
└── BusyError                       HTTP 503   the server's line is full or the request's time ran out
                                                (with Retry-After)
"""

from __future__ import annotations

from typing import Any


class RagappError(Exception):
    """Base class: the message is written for the user and fits on one line."""

    exit_code = 1
    http_status = 400

    def to_json(self) -> dict[str, Any]:
        """The API's error body: status, the error's kind, the one-line message."""
        return {"status": self.http_status, "error": type(self).__name__, "detail": str(self)}


class ConfigError(RagappError):
    pass


class InvalidCollectionError(ConfigError):
    http_status = 422


class ModelNotFoundError(RagappError):
    http_status = 503


class EmbeddingMismatchError(RagappError):
    http_status = 409


class StoreError(RagappError):
    http_status = 503


class DiskFullError(StoreError):
    http_status = 507


class EmptyCollectionError(RagappError):
    http_status = 409


class NoMatchingFileError(RagappError):
    http_status = 404


class BackendError(RagappError):
    http_status = 503


class ContextOverflowError(RagappError):
    http_status = 422


class BusyError(RagappError):
    """The server cannot answer now: ``max_queue`` requests already wait, or the request
    ran past ``request_timeout_s``. ``retry_after``: seconds until a retry likely fits."""

    http_status = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "retry_after": self.retry_after}
