"""Request and response models of the HTTP API (they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Globs = str | list[str] | None


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=8000, description="The question.")
    k: int | None = Field(None, ge=1, le=100, description="Chunks to retrieve (default: top_k).")
    path: Globs = Field(
        None, description="Only search files matching this glob ('*.pdf', 'reports/*'); or a list."
    )
    type: Globs = Field(
        None, description="Only search files of this type ('pdf', 'md'); or a list."
    )


class ChatMessage(BaseModel):
    role: Literal["user", "assistant", "system"]
    content: str


class ChatRequest(BaseModel):
    messages: list[ChatMessage] = Field(
        min_length=1,
        description="The conversation, oldest first; the last message is the user's question. "
        "System messages are ignored (ragapp's grounding prompt applies).",
    )
    k: int | None = Field(None, ge=1, le=100)
    path: Globs = None
    type: Globs = None


class SourceOut(BaseModel):
    n: int
    source: str = Field(description="Absolute path of the file as ingested.")
    page: int | None
    score: float
    text: str


class TimingsOut(BaseModel):
    retrieve_ms: float
    ttft_ms: float
    total_ms: float
    completion_tokens: int
    tokens_per_s: float


class AnswerOut(BaseModel):
    """Exactly the shape of `ragapp ask --json`."""

    answer: str
    refused: bool
    sources: list[SourceOut]
    timings: TimingsOut
    citations_added: bool


class DocumentOut(BaseModel):
    id: str = Field(description="Stable id of the file (used in URLs instead of its path).")
    name: str
    path: str
    type: str
    chunks: int
    bytes: int
    ingested_at: str
    uploaded: bool = Field(description="Whether the file was uploaded through the server.")
    file_url: str
    view_url: str


class FailedOut(BaseModel):
    """A file that could not be ingested, as its last attempt left it."""

    id: str = Field(description="DELETE /api/documents/{id} forgets it (and deletes an upload).")
    name: str
    path: str
    type: str
    bytes: int
    reason: str = Field(description="Why it failed, as `ragapp ingest` reports it.")
    skipped: bool = Field(description="No text found in it: skipped rather than failed.")
    attempted_at: str
    uploaded: bool = Field(description="Whether the file was uploaded through the server.")


class DocumentsOut(BaseModel):
    collection: str
    documents: list[DocumentOut]
    chunks: int
    failed: list[FailedOut] = Field(
        default_factory=list, description="Files that could not be ingested, with the reason."
    )


class UploadedFile(BaseModel):
    name: str
    path: str
    bytes: int


class JobAccepted(BaseModel):
    job_id: str
    collection: str
    files: list[UploadedFile] = []
    events_url: str
    status_url: str


class FileProgressOut(BaseModel):
    path: str
    name: str
    status: str
    chunks: int
    reason: str | None


class JobOut(BaseModel):
    id: str
    kind: Literal["upload", "sync"]
    collection: str
    state: Literal["queued", "running", "done", "failed"]
    files_total: int
    files_done: int
    chunks: int
    failures: list[dict[str, str]]
    files: list[FileProgressOut]
    phase: dict[str, Any] | None = Field(
        default=None, description="The work after the files: {name: 'index', done, total}."
    )
    report: dict[str, Any] | None = Field(description="`ragapp ingest --json` of the run.")
    error: str | None
    created_at: float
    finished_at: float | None


class DeletedOut(BaseModel):
    id: str
    path: str
    chunks: int
    upload_deleted: bool


class GpuOut(BaseModel):
    supported: bool = Field(description="This llama-cpp-python build can offload to a GPU.")
    active: bool = Field(description="Layers are (or will be) offloaded: supported and asked for.")
    backend: str = Field(description="CUDA, Metal, Vulkan, ... or CPU.")
    n_gpu_layers: int
    layers_offloaded: int | None = Field(description="Known once the model is loaded.")


class StatusOut(BaseModel):
    collection: str
    documents: int
    chunks: int
    embedding_model: str
    llm: str
    llm_note: str | None = Field(
        None, description="A caution about the model, e.g. that the bundled one is a demo."
    )
    store: str
    backend: str
    gpu: GpuOut
    gpu_offload: bool = Field(description="Same as gpu.active.")
    llm_loaded: bool
    queue: int = Field(description="Questions running or waiting for the LLM.")
    auth_required: bool
    max_upload_mb: float
    version: str


class CollectionOut(BaseModel):
    name: str
    documents: int
    chunks: int
    default: bool
    error: str | None = Field(None, description="Why the collection cannot be used, if so.")


class CollectionsOut(BaseModel):
    default: str
    collections: list[CollectionOut]


# --- OpenAI-compatible ------------------------------------------------------------------------


class OpenAIMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    """OpenAI's request; sampling fields are accepted and ignored (the server's settings
    apply)."""

    model_config = ConfigDict(extra="allow")

    model: str = "ragapp"
    messages: list[OpenAIMessage] = Field(min_length=1)
    stream: bool = False


class OpenAIModel(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ragapp"


class OpenAIModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIModel]
