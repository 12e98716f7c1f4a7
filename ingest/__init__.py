"""ingest: turn folders of files into chunks in the vector store.

discover (walk folders) -> loaders (unstructured partitioners) -> chunking (element-aware
chunks with source, page and section) -> pipeline (embed in batches, write per file).
"""

from ingest.pipeline import IngestReport, ingest_paths

__all__ = ["IngestReport", "ingest_paths"]
