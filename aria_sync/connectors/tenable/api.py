"""HTTP only: the Tenable session and the fetch functions that yield raw pages.

No retries here (``VendorHttp`` owns them) and no transforms (SQL in ``transform.py`` owns them).
Bulk data comes from the export endpoints; ``GET /assets`` and the workbenches stop at 5 000 rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import httpx
import orjson

from aria_sync.connectors.base import FetchRequest, Page
from aria_sync.connectors.tenable.export import ExportIterator, ExportKind, ExportSettings
from aria_sync.errors import AuthenticationError, MalformedResponseError
from aria_sync.http import VendorHttp

VULN_STATES = ["OPEN", "REOPENED", "FIXED"]  # upper case: lower case breaks on FedCloud

KEYS_REJECTED = "Tenable rejected the API keys (401)"


class TenableSession:
    """One installation's Tenable API: the shared HTTP client plus the export settings."""

    def __init__(self, http: VendorHttp, settings: ExportSettings) -> None:
        self.http = http
        self.settings = settings

    def request(self, method: str, path: str, *, stream: str | None = None, **kwargs: Any) -> httpx.Response:
        """``VendorHttp.request`` with Tenable's 401 explained (keys are per user and rotate)."""
        try:
            return self.http.request(method, path, stream=stream, **kwargs)
        except AuthenticationError as exc:
            raise AuthenticationError(
                f"{KEYS_REJECTED}: check the access and secret key of the integration user; "
                "regenerating keys in Tenable invalidates the previous pair",
                connector=exc.connector,
                stream=exc.stream,
                url=exc.url,
                status=exc.status,
            ) from None

    def get_json(self, path: str, *, stream: str | None = None, **kwargs: Any) -> Any:
        response = self.request("GET", path, stream=stream, **kwargs)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise MalformedResponseError(
                f"Tenable answered invalid JSON for GET {self.http.redact(str(response.request.url))}",
                connector="Tenable",
                stream=stream,
                status=response.status_code,
            ) from None

    def export(self, kind: ExportKind, body: dict[str, Any], *, stream: str) -> ExportIterator:
        return ExportIterator(self, kind, body, stream=stream, settings=self.settings)


def cursor_epoch(cursor: str | None) -> int | None:
    """A saved cursor (epoch seconds, possibly fractional) as whole seconds, rounded down.

    Rounding down re-reads the boundary second; the landing upsert makes that harmless.
    """
    if cursor is None or cursor == "":
        return None
    try:
        value = float(cursor)
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return math.floor(value)


def vulnerability_export_body(cursor: str | None, settings: ExportSettings) -> dict[str, Any]:
    """The vuln export request: every state, and a time filter so no 30-day window applies.

    Without ``state`` Tenable returns OPEN and REOPENED only, and without a time filter only the
    last 30 days; both would silently drop findings. ``since: 0`` is the whole history.
    """
    since = cursor_epoch(cursor)
    return {
        "num_assets": settings.vuln_num_assets,
        "filters": {"since": since if since is not None else 0, "state": list(VULN_STATES)},
    }


def asset_export_body(cursor: str | None, settings: ExportSettings) -> dict[str, Any]:
    """The v1 asset export request; incremental runs ask for assets updated after the cursor.

    No ``is_deleted`` / ``is_terminated`` filter: deleted and terminated assets must arrive so
    they can be marked deleted.
    """
    filters: dict[str, Any] = {}
    since = cursor_epoch(cursor)
    if since is not None:
        # "later than" the whole second below the cursor: the boundary record is re-read, not lost
        filters["updated_at"] = max(0, since - 1)
    return {"chunk_size": settings.asset_chunk_size, "filters": filters}


def fetch_assets(session: TenableSession, request: FetchRequest) -> Iterator[Page]:
    """Asset export (v1) chunks; on incremental runs only assets updated after the cursor."""
    body = asset_export_body(request.cursor, session.settings)
    yield from session.export("assets", body, stream="assets")


def fetch_vulnerabilities(session: TenableSession, request: FetchRequest) -> Iterator[Page]:
    """Vulnerability export chunks: everything on a first or full run, changes since the cursor after."""
    body = vulnerability_export_body(request.cursor, session.settings)
    yield from session.export("vulns", body, stream="vulnerabilities")


def fetch_scans(session: TenableSession, request: FetchRequest) -> Iterator[Page]:
    """``GET /scans``: one page holding every scan the user can view (full refresh)."""
    body = session.get_json("/scans", stream="scans")
    if not isinstance(body, dict):
        raise MalformedResponseError("Tenable answered /scans without a JSON object", connector="Tenable")
    scans = body.get("scans")
    if scans is None:
        scans = []  # Tenable sends null when the user has no scans
    if not isinstance(scans, list):
        raise MalformedResponseError("Tenable answered /scans without a 'scans' list", connector="Tenable")
    if scans:
        yield scans
