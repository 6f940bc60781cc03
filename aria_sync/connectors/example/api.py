"""HTTP only: yield raw pages. No retries, no transforms (the shared client and the engine own those)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aria_sync.connectors.base import FetchRequest, Page
from aria_sync.errors import MalformedResponseError, PaginationLoopError
from aria_sync.http import VendorHttp


def _pages(http: VendorHttp, stream: str, path: str, params: dict[str, Any]) -> Iterator[Page]:
    seen: set[str] = set()
    url: str | None = path
    while url:
        if url in seen:
            raise PaginationLoopError(
                f"example API repeated page {http.redact(url)}", connector="example", stream=stream
            )
        seen.add(url)
        body = http.get_json(url, stream=stream, params=params if url == path else None)
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise MalformedResponseError(
                "example API answered without an 'items' list", connector="example", stream=stream
            )
        yield body["items"]
        url = body.get("next")


def fetch_devices(http: VendorHttp, request: FetchRequest) -> Iterator[Page]:
    yield from _pages(http, "devices", "/api/devices", {"per_page": http.page_size})  # type: ignore[attr-defined]


def fetch_events(http: VendorHttp, request: FetchRequest) -> Iterator[Page]:
    params: dict[str, Any] = {"per_page": http.page_size}  # type: ignore[attr-defined]
    if request.cursor:
        params["since"] = request.cursor  # inclusive: re-reading the boundary is harmless, upserts dedupe
    yield from _pages(http, "events", "/api/events", params)
