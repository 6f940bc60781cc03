"""HTTP only: the Defender API session and the fetch functions that yield raw pages.

No retries and no transforms here: the shared client (``VendorHttp``) retries 429/5xx with
Retry-After and enforces the client-side rate limits; the engine stages and applies the pages.
The session adds what is Defender-specific: a bearer token per audience, one renewal after a 401,
and 403s explained as the missing application permission. Pagination is treated as untrusted:
repeated pages and off-host next links raise :class:`PaginationLoopError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from aria_sync.connectors.base import FetchRequest, Page
from aria_sync.connectors.ms_defender.auth import (
    CONNECTOR,
    MDE_SCOPE,
    XDR_SCOPE,
    TokenSource,
    permission_error,
    token_roles,
)
from aria_sync.errors import (
    AuthenticationError,
    AuthorizationError,
    FatalSourceError,
    MalformedResponseError,
    PaginationLoopError,
)
from aria_sync.http import VendorHttp

MACHINES_PATH = "/api/machines"
ALERTS_PATH = "/api/alerts"
INCIDENTS_PATH = "/api/incidents"
EXPORT_PATH = "/api/machines/SoftwareVulnerabilitiesByMachine"

# Documented page caps; a server may clamp lower, which the machine loop tolerates.
MAX_TOP = {"machines": 10_000, "alerts": 10_000, "incidents": 100}
DEFAULT_EXPORT_PAGE_SIZE = 50_000  # the API's default; ~1 KB per row, so ~50 MB per page
MAX_EXPORT_PAGE_SIZE = 200_000

ROLES = {
    "machines": (MDE_SCOPE, "Machine.Read.All"),
    "alerts": (MDE_SCOPE, "Alert.Read.All"),
    "vulnerabilities": (MDE_SCOPE, "Vulnerability.Read.All"),
    "incidents": (XDR_SCOPE, "Incident.Read.All"),
}


@dataclass(frozen=True)
class PageSizes:
    """Records asked for per request, from the installation's options (clamped to the API caps)."""

    machines: int = MAX_TOP["machines"]
    alerts: int = MAX_TOP["alerts"]
    incidents: int = MAX_TOP["incidents"]
    export: int = DEFAULT_EXPORT_PAGE_SIZE

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> PageSizes:
        def pick(name: str, default: int, cap: int) -> int:
            try:
                value = int(options.get(name, default))
            except (TypeError, ValueError):
                value = default
            return max(1, min(value, cap))

        return cls(
            machines=pick("machines_page_size", MAX_TOP["machines"], MAX_TOP["machines"]),
            alerts=pick("alerts_page_size", MAX_TOP["alerts"], MAX_TOP["alerts"]),
            incidents=pick("incidents_page_size", MAX_TOP["incidents"], MAX_TOP["incidents"]),
            export=pick("export_page_size", DEFAULT_EXPORT_PAGE_SIZE, MAX_EXPORT_PAGE_SIZE),
        )


class DefenderSession:
    """An open Defender API session: the API client(s), the token source and the page sizes."""

    def __init__(
        self,
        http: VendorHttp,
        tokens: TokenSource,
        *,
        incidents_http: VendorHttp | None = None,
        page_sizes: PageSizes | None = None,
    ) -> None:
        self.http = http
        self.incidents_http = incidents_http or http
        self.tokens = tokens
        self.page_sizes = page_sizes or PageSizes()

    def get(
        self, url: str, *, stream: str, params: Mapping[str, Any] | None = None, missing_ok: bool = False
    ) -> dict[str, Any] | None:
        """GET one page as a JSON object; None for a 404 when ``missing_ok``.

        The bearer token comes from msal's cache; a 401 (the token expired or was revoked) renews it
        once and resends; a second 401 is fatal.
        """
        scope, role = ROLES[stream]
        http = self.incidents_http if stream == "incidents" else self.http
        token = self.tokens.token(scope)
        try:
            try:
                response = http.request("GET", url, stream=stream, params=params, headers=_bearer(token))
            except AuthenticationError:
                token = self.tokens.renew(scope)
                try:
                    response = http.request("GET", url, stream=stream, params=params, headers=_bearer(token))
                except AuthenticationError:
                    raise AuthenticationError(
                        f"Defender refused a freshly issued access token for {stream} (401 twice). Fix: check "
                        "that apiBaseUrl and authorityHost belong to the same cloud and tenant.",
                        connector=CONNECTOR,
                        stream=stream,
                        url=http.redact(url),
                        status=401,
                    ) from None
        except AuthorizationError:
            raise permission_error(
                scope, role, client_id=self.tokens.client_id, roles=token_roles(token), stream=stream
            ) from None
        except FatalSourceError as exc:
            if missing_ok and exc.status == 404:
                return None
            raise
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise MalformedResponseError(
                f"Defender answered invalid JSON for {stream} ({len(response.content)} bytes)",
                connector=CONNECTOR,
                stream=stream,
                url=http.redact(str(response.request.url)),
                status=response.status_code,
            ) from None
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise MalformedResponseError(
                f"Defender answered {stream} without a 'value' list",
                connector=CONNECTOR,
                stream=stream,
                url=http.redact(str(response.request.url)),
                status=response.status_code,
            )
        return body


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _next_link(body: Mapping[str, Any], stream: str) -> str | None:
    link = body.get("@odata.nextLink")
    if link is None or link == "":
        return None
    if not isinstance(link, str):
        raise MalformedResponseError(f"Defender sent a non-text @odata.nextLink for {stream}", stream=stream)
    return link


def _fingerprint(rows: Page, key: str) -> str:
    """Identifies a page by its records, so a server that serves one page twice is caught."""
    digest = hashlib.sha1(usedforsecurity=False)
    for row in rows:
        digest.update(str(row.get(key) if isinstance(row, dict) else row).encode())
        digest.update(b"\0")
    return digest.hexdigest()


class _PageGuard:
    """Refuses a repeated page or next link: a looping vendor would otherwise never end a sync."""

    def __init__(self, session: DefenderSession, stream: str, key: str) -> None:
        self.session, self.stream, self.key = session, stream, key
        self._pages: set[str] = set()
        self._links: set[str] = set()

    def page(self, rows: Page) -> None:
        if not rows:
            return
        fingerprint = _fingerprint(rows, self.key)
        if fingerprint in self._pages:
            raise PaginationLoopError(
                f"Defender served the same {self.stream} page twice; stopping instead of looping",
                connector=CONNECTOR,
                stream=self.stream,
            )
        self._pages.add(fingerprint)

    def link(self, url: str) -> None:
        if url in self._links:
            raise PaginationLoopError(
                f"Defender repeated the {self.stream} next link {self.session.http.redact(url)}",
                connector=CONNECTOR,
                stream=self.stream,
            )
        self._links.add(url)


def _offset_pages(
    session: DefenderSession,
    stream: str,
    path: str,
    top: int,
    params: Mapping[str, Any],
    *,
    key: str,
    missing_ok: bool = False,
) -> Iterator[Page]:
    """Explicit ``$top``/``$skip`` paging, which the API documents (its unfiltered next links are not).

    The loop ends on an empty page, or on a page shorter than the largest one served so far: a
    server that clamps ``$top`` below what was asked must not end the walk after its first page.
    A next link, when the server sends one, is followed instead (VendorHttp refuses it off-host).
    """
    guard = _PageGuard(session, stream, key)
    skip = 0
    url: str = path
    query: Mapping[str, Any] | None = {**params, "$top": top, "$skip": 0}
    largest = 0
    while True:
        body = session.get(url, stream=stream, params=query, missing_ok=missing_ok)
        if body is None:  # 404: Defender's answer for "no (more) machines"
            return
        rows: Page = body["value"]
        link = _next_link(body, stream)
        del body
        guard.page(rows)
        count = len(rows)
        if rows:
            yield rows
        del rows  # a page must not stay alive while the next one is fetched
        short = not count or count < largest
        largest = max(largest, count)
        skip += count
        if link is not None:
            guard.link(link)
            url, query = link, None
            continue
        if short:
            return
        url, query = path, {**params, "$top": top, "$skip": skip}


def fetch_machines(session: DefenderSession, request: FetchRequest) -> Iterator[Page]:
    """Every machine (full refresh); a tenant without machines answers 404, which means zero."""
    yield from _offset_pages(
        session, "machines", MACHINES_PATH, session.page_sizes.machines, {}, key="id", missing_ok=True
    )


def _since(cursor: str | None) -> dict[str, str]:
    # Inclusive: re-reading the boundary record is harmless, the engine's MERGE de-duplicates it.
    return {"$filter": f"lastUpdateTime ge {cursor}"} if cursor else {}


def fetch_alerts(session: DefenderSession, request: FetchRequest) -> Iterator[Page]:
    """Alerts with their evidence, incrementally on ``lastUpdateTime``."""
    params = {**_since(request.cursor), "$expand": "evidence"}
    yield from _offset_pages(session, "alerts", ALERTS_PATH, session.page_sizes.alerts, params, key="id")


def fetch_incidents(session: DefenderSession, request: FetchRequest) -> Iterator[Page]:
    """Defender XDR incidents (with their alerts and devices), incrementally on ``lastUpdateTime``."""
    yield from _offset_pages(
        session,
        "incidents",
        INCIDENTS_PATH,
        session.page_sizes.incidents,
        _since(request.cursor),
        key="incidentId",
    )


def fetch_vulnerabilities(session: DefenderSession, request: FetchRequest) -> Iterator[Page]:
    """The full SoftwareVulnerabilitiesByMachine export, following ``@odata.nextLink`` ($skiptoken)."""
    guard = _PageGuard(session, "vulnerabilities", "id")
    url: str | None = EXPORT_PATH
    params: Mapping[str, Any] | None = {"pageSize": session.page_sizes.export}
    pages = 0
    while url is not None:
        body = session.get(url, stream="vulnerabilities", params=params)
        assert body is not None
        rows: Page = body["value"]
        url, params = _next_link(body, "vulnerabilities"), None
        del body
        guard.page(rows)
        pages += 1
        if rows:
            yield rows
            request.progress(f"vulnerability export page {pages}")
        # A 50,000-row export page must not stay alive while the next one is fetched.
        del rows
        if url is not None:
            guard.link(url)
