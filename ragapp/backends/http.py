"""The HTTP probes the server backends and `ragapp doctor` make (httpx, short timeouts)."""

from __future__ import annotations

from typing import Any

import httpx

PROBE_TIMEOUT_S = 5.0


def get_json(url: str) -> Any:
    response = httpx.get(url, timeout=PROBE_TIMEOUT_S)
    response.raise_for_status()
    return response.json()


def post_json(url: str, body: dict[str, Any]) -> Any:
    response = httpx.post(url, json=body, timeout=PROBE_TIMEOUT_S)
    response.raise_for_status()
    return response.json()


def reachable(url: str) -> bool:
    """Whether anything answers HTTP at ``url`` (an error status counts: it answered)."""
    try:
        httpx.get(url, timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError:
        return False
    return True
