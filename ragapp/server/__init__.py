"""`ragapp serve`: the HTTP API, an OpenAI-compatible API and the web UI, in one FastAPI app.

factory.create_app(settings) → state (shared models, one RagApp per collection, the
LLM queue, ingest jobs) → api (/api, /healthz), openai_api (/v1), ui (/, /documents)
"""

from ragapp.server.factory import create_app

__all__ = ["create_app"]
