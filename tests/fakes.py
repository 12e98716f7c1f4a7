"""Fast stand-ins for unit tests only (they are ragapp's own fake backend); end-to-end
tests use the real bundled models."""

from ragapp.backends.fake import EchoLLM, HashEmbeddings

__all__ = ["EchoLLM", "HashEmbeddings"]
