"""The errors ragapp raises on purpose. Each boundary (CLI, API) turns them into one line.

RagappError
├── ConfigError            bad settings or config file
├── ModelNotFoundError     an embedding or LLM model that is not on this machine
├── EmbeddingMismatchError the collection was built with another embedding model
├── StoreError             the vector store cannot be opened or written
├── EmptyCollectionError   a question asked of a collection with nothing in it
├── NoMatchingFileError    a path filter that matches no ingested file
├── BackendError           an LLM backend that is missing or unreachable
└── ContextOverflowError   the question and one passage do not fit the model's context
"""


class RagappError(Exception):
    """Base class: the message is written for the user and fits on one line."""


class ConfigError(RagappError):
    pass


class ModelNotFoundError(RagappError):
    pass


class EmbeddingMismatchError(RagappError):
    pass


class StoreError(RagappError):
    pass


class EmptyCollectionError(RagappError):
    pass


class NoMatchingFileError(RagappError):
    pass


class BackendError(RagappError):
    pass


class ContextOverflowError(RagappError):
    pass
