"""What the server tests share: sample documents, settings, upload and SSE helpers."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragapp.settings import Settings

ASK_KEYS = {"answer", "refused", "sources", "timings", "citations_added"}


TIMING_KEYS = {"retrieve_ms", "ttft_ms", "total_ms", "completion_tokens", "tokens_per_s"}


SOURCE_KEYS = {"n", "source", "page", "score", "text"}


LIGHTHOUSE = (
    "Kestrel Point lighthouse\n\n"
    "The keeper of the Kestrel Point lighthouse is Ingrid Solberg. She has kept the light "
    "since 2019 and lives in the cottage beside the tower.\n\n"
    "The lamp of the lighthouse was lit for the first time on 14 March 1887.\n\n"
    'Notes copied from a web page: <script>window.__xss = 1; alert("pwned")</script> '
    "<b>bold</b> & more.\n"
)


IN_SCOPE = "Who is the keeper of the Kestrel Point lighthouse?"


OUT_OF_SCOPE = "What is the boiling point of liquid nitrogen in kelvin?"


PDF_QUESTION = "What is the harbour dredging budget for 2026?"


def harbour_pdf() -> bytes:
    """Two pages; the dredging budget is stated on page 2 only."""
    import io

    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    pdf = canvas.Canvas(buf, pagesize=A4)
    pdf.setTitle("Harbour report")
    for lines in (
        [
            "Harbour report 2026",
            "The harbour has forty moorings for fishing boats and twelve for visitors.",
            "The harbour office opens at seven in the morning.",
        ],
        [
            "Dredging",
            "The harbour dredging budget for 2026 is 48,300 crowns.",
            "Dredging takes place every second autumn.",
        ],
    ):
        y = 780
        for line in lines:
            pdf.drawString(72, y, line)
            y -= 24
        pdf.showPage()
    pdf.save()
    return buf.getvalue()


def server_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Fast settings for the bundled models; RAGAPP_* from the shell do not leak in."""
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("RAGAPP_") and key != "RAGAPP_CACHE_DIR":
                mp.delenv(key)
        values: dict[str, Any] = {
            "data_dir": data_dir,
            "max_tokens": 24,
            "top_k": 2,
            "n_ctx": 2048,
            "ingest_workers": 1,
        }
        return Settings(**{**values, **overrides})


def sse_events(response: httpx.Response) -> list[tuple[str, Any]]:
    """(event, data) pairs of a server-sent-event stream, data parsed as JSON when it is."""
    events: list[tuple[str, Any]] = []
    name, data = "message", []
    for line in response.iter_lines():
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    events.append((name, json.loads(text)))
                except json.JSONDecodeError:
                    events.append((name, text))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
    return events


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def upload(
    client: httpx.Client, files: list[tuple[str, bytes]], collection: str | None = None
) -> httpx.Response:
    params = {"collection": collection} if collection else None
    return client.post(
        "/api/documents",
        params=params,
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
    )


@dataclass
@dataclass
class Served:
    url: str
    app: Any
    settings: Settings
    client: httpx.Client
    first_upload: dict[str, Any]
    first_job: dict[str, Any]

    @property
    def state(self) -> Any:
        return self.app.state.server

    @property
    def uploads(self) -> Path:
        return self.settings.data_dir / "uploads" / self.settings.collection

    def document(self, name: str) -> dict[str, Any]:
        docs = self.client.get("/api/documents").json()["documents"]
        return next(d for d in docs if d["name"] == name)
