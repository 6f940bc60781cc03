"""HTTP only: Table API pages of raw records. No retries, no transforms (the shared client and the engine own those).

Every list read uses raw values (``sysparm_display_value=false``: UTC datetimes, choice codes,
references as plain sys_ids), a fixed ``sysparm_limit`` and offset paging in a total order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from aria_sync.connectors.base import FetchRequest, Page
from aria_sync.connectors.servicenow.config import DEFAULT_PAGE_SIZE
from aria_sync.connectors.servicenow.query import EncodedQuery, field_list, updated_since
from aria_sync.errors import (
    AuthenticationError,
    AuthorizationError,
    MalformedResponseError,
    PaginationLoopError,
)
from aria_sync.http import VendorHttp

CONNECTOR = "ServiceNow"
TABLE_API = "/api/now/table/"

# The classes whose rows a read of cmdb_ci_computer returns; deletions are audited under the real class.
COMPUTER_CLASSES = (
    "cmdb_ci_computer",
    "cmdb_ci_server",
    "cmdb_ci_win_server",
    "cmdb_ci_linux_server",
    "cmdb_ci_unix_server",
    "cmdb_ci_esx_server",
    "cmdb_ci_aix_server",
    "cmdb_ci_solaris_server",
    "cmdb_ci_hpux_server",
    "cmdb_ci_osx_server",
)
SERVICE_CLASSES = (
    "cmdb_ci_service",
    "cmdb_ci_service_business",
    "cmdb_ci_service_technical",
    "cmdb_ci_service_auto",
    "cmdb_ci_service_discovered",
)
RELATION_CLASSES = ("cmdb_rel_ci",)
INCIDENT_CLASSES = ("incident",)
AUDITED_CLASSES = (*COMPUTER_CLASSES, *SERVICE_CLASSES, *RELATION_CLASSES, *INCIDENT_CLASSES)

RECONCILE_KIND = "reconcile"


@dataclass
class ServiceNowSession:
    """What every fetch function receives: the policy-checked client and the page size."""

    http: VendorHttp
    page_size: int = DEFAULT_PAGE_SIZE

    def redact(self, url: str) -> str:
        return self.http.redact(url)


def service_relations_query() -> EncodedQuery:
    """CI relationships whose parent is a business service (of any service class)."""
    return EncodedQuery("cmdb_rel_ci").where("parent.sys_class_name", "STARTSWITH", "cmdb_ci_service")


def get_table(
    session: ServiceNowSession, table: str, params: dict[str, str], *, stream: str | None
) -> tuple[list[Any], int | None]:
    """One Table API list response: its ``result`` rows and ``X-Total-Count`` (None when absent)."""
    try:
        response = session.http.request("GET", TABLE_API + table, stream=stream, params=params)
    except AuthenticationError as exc:
        raise AuthenticationError(
            f"ServiceNow rejected the credentials (401) for {table}: check the username and password, and "
            "that no instance policy refuses Basic auth for this user",
            connector=CONNECTOR,
            stream=stream,
            url=exc.url,
            status=exc.status,
        ) from None
    return _result_rows(session, response, table, stream), _total_count(response)


def table_pages(
    session: ServiceNowSession,
    table: str,
    query: EncodedQuery,
    *,
    stream: str,
    fields: str | None = None,
) -> Iterator[Page]:
    """Every row matching ``query``, one page per request (offset paging with a fixed limit).

    Stops at a short page or once the offset reaches ``X-Total-Count``; a page that repeats the
    previous one (an instance ignoring ``sysparm_offset``) raises :class:`PaginationLoopError`.
    """
    limit = session.page_size
    params = {
        "sysparm_query": query.encode(),
        "sysparm_display_value": "false",
        "sysparm_exclude_reference_link": "true",
        "sysparm_limit": str(limit),
    }
    if fields:
        params["sysparm_fields"] = fields
    offset = 0
    previous: tuple[Any, ...] | None = None
    while True:
        rows, total = get_table(session, table, {**params, "sysparm_offset": str(offset)}, stream=stream)
        if not rows:
            return
        signature = (len(rows), _sys_id(rows[0]), _sys_id(rows[-1]))
        if signature == previous:
            raise PaginationLoopError(
                f"ServiceNow repeated the page before offset {offset} of {table}; it may ignore sysparm_offset",
                connector=CONNECTOR,
                stream=stream,
            )
        previous = signature
        yield rows
        offset += len(rows)
        # A page shorter than the limit is the last one unless the count says the instance capped it.
        if total is not None:
            if offset >= total:
                return
        elif len(rows) < limit:
            return


def _sys_id(row: Any) -> Any:
    return row.get("sys_id") if isinstance(row, dict) else None


def _result_rows(
    session: ServiceNowSession, response: httpx.Response, table: str, stream: str | None
) -> list[Any]:
    url = session.redact(str(response.request.url))
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise MalformedResponseError(
            f"ServiceNow answered a body that is not JSON for {table} ({len(response.content)} bytes); "
            "a hibernating developer instance answers an HTML page",
            connector=CONNECTOR,
            stream=stream,
            url=url,
            status=response.status_code,
        ) from None
    rows = body.get("result") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise MalformedResponseError(
            f"ServiceNow answered {table} without a 'result' list",
            connector=CONNECTOR,
            stream=stream,
            url=url,
            status=response.status_code,
        )
    return rows


def _total_count(response: httpx.Response) -> int | None:
    text = response.headers.get("x-total-count")
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


# -- streams ---------------------------------------------------------------------------------------


def fetch_cmdb_items(session: ServiceNowSession, request: FetchRequest) -> Iterator[Page]:
    """cmdb_ci_computer and its server classes (one read returns every child class)."""
    query = updated_since(EncodedQuery("cmdb_ci_computer"), request.cursor)
    yield from table_pages(session, "cmdb_ci_computer", query, stream="cmdb_items")


def fetch_services(session: ServiceNowSession, request: FetchRequest) -> Iterator[Page]:
    query = updated_since(EncodedQuery("cmdb_ci_service"), request.cursor)
    yield from table_pages(session, "cmdb_ci_service", query, stream="services")


def fetch_service_relations(session: ServiceNowSession, request: FetchRequest) -> Iterator[Page]:
    query = updated_since(service_relations_query(), request.cursor)
    yield from table_pages(session, "cmdb_rel_ci", query, stream="service_relations")


def fetch_catalog_items(session: ServiceNowSession, request: FetchRequest) -> Iterator[Page]:
    """The whole catalogue every run: it is small, and absence is how a removed item shows."""
    query = EncodedQuery("sc_cat_item").order_by("sys_id")
    yield from table_pages(session, "sc_cat_item", query, stream="catalog_items")


def fetch_incidents(session: ServiceNowSession, request: FetchRequest) -> Iterator[Page]:
    query = updated_since(EncodedQuery("incident"), request.cursor)
    yield from table_pages(session, "incident", query, stream="incidents")


def deletions_query(cursor: str | None) -> EncodedQuery:
    base = EncodedQuery("sys_audit_delete").where("tablename", "IN", AUDITED_CLASSES)
    return updated_since(base, cursor, field="sys_created_on")


def fetch_deletions(session: ServiceNowSession, request: FetchRequest) -> Iterator[Page]:
    """Hard deletes from sys_audit_delete since the cursor; without read access to it, a sys_id
    reconcile of every synced table on full syncs instead (an incremental read cannot see deletes)."""
    pages = table_pages(session, "sys_audit_delete", deletions_query(request.cursor), stream="deletions")
    try:
        first = next(pages, None)
    except AuthorizationError:
        # sys_audit_delete usually needs an elevated read ACL; the rest of the sync must not fail for it.
        if request.full_refresh:
            yield from reconcile_pages(session)
        return
    if first is not None:
        yield first
        yield from pages


RECONCILE_SCOPES: tuple[tuple[str, EncodedQuery], ...] = (
    ("cmdb_ci_computer", EncodedQuery("cmdb_ci_computer")),
    ("cmdb_ci_service", EncodedQuery("cmdb_ci_service")),
    ("cmdb_rel_ci", service_relations_query()),
    ("incident", EncodedQuery("incident")),
)


def reconcile_pages(session: ServiceNowSession) -> Iterator[Page]:
    """One record per synced table listing every live sys_id, yielded only once the listing is complete
    (a partial list would make live records look deleted)."""
    for table, base in RECONCILE_SCOPES:
        live: list[str] = []
        pages = table_pages(
            session, table, base.order_by("sys_id"), stream="deletions", fields=field_list(table, ["sys_id"])
        )
        try:
            for page in pages:
                live.extend(str(row["sys_id"]) for row in page if isinstance(row, dict) and row.get("sys_id"))
        except AuthorizationError:
            continue  # a table this user cannot read is not synced either: nothing to reconcile there
        yield [
            {
                "sys_id": f"{RECONCILE_KIND}:{table}",
                "kind": RECONCILE_KIND,
                "tablename": table,
                "live_sys_ids": live,
            }
        ]


def probe(session: ServiceNowSession, table: str, *, stream: str) -> None:
    """Read one sys_id of ``table``: proves the read ACL without moving data."""
    get_table(
        session,
        table,
        {"sysparm_limit": "1", "sysparm_fields": field_list(table, ["sys_id"]), "sysparm_no_count": "true"},
        stream=stream,
    )
