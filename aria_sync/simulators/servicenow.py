"""A ServiceNow instance (Table API, Aggregate API, OAuth token endpoint) served from the shared estate.

What it reproduces, because connectors trip over exactly these on real instances:

- Basic auth (and optional OAuth bearer tokens from ``/oauth_token.do``), the ``status: failure``
  error envelopes (401, 400 unknown table, 403 read ACL, 404 unknown sys_id, 405, 406).
- ``/api/now/table/{table}`` with the ``v1``/``v2`` aliases, table inheritance (``cmdb_ci`` holds
  computers, servers and services; a parent table shows only the columns every child shares, with
  ``sys_class_name`` naming the real class), and the encoded-query language of
  :mod:`aria_sync.simulators.servicenow_query` (unknown fields silently ignored).
- ``sysparm_fields``/``limit``/``offset``/``display_value``/``exclude_reference_link``/``no_count``/
  ``suppress_pagination_header``; every value a string, references as ``{"link","value"}`` objects or
  ``""`` when empty, display values in a configurable user time zone and date format.
- ``X-Total-Count`` and the comma-joined ``Link`` header, ``/api/now/stats/{table}`` with string counts.
- An hourly per-user rate-limit rule (429 with ``Retry-After`` and ``X-RateLimit-*``) and an optional
  slow query that the transaction quota cancels.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, quote, urlencode
from zoneinfo import ZoneInfo

import orjson

from aria_sync.simulators.framework import SimRequest, SimResponse, SimulatorServer, VendorApp
from aria_sync.simulators.servicenow_query import SN_DATETIME, EncodedQuery, parse_encoded_query

Row = dict[str, Any]

# A second account with the itil role only: it reads incidents, services and the catalogue, but the
# read ACLs of the CMDB computer classes and of sys_audit_delete deny it, as on a typical instance.
ITIL_ONLY_USER = {"username": "itil.integration", "password": "itil-demo-password"}  # nosec B105 # the simulator's published demo login

# Demo OAuth application registered on the simulated instance (``/oauth_token.do``).
OAUTH_CLIENT = {"client_id": "aria-sync-demo-client", "client_secret": "aria-sync-demo-client-secret"}  # nosec B105 # the simulator's published demo client

RATE_LIMIT_RULE_SYS_ID = "5b2c7e1f3d9a4c6e8f0a1b2c3d4e5f60"

CONTENT_TYPE = "application/json;charset=UTF-8"

# cmdb_ci is the root CMDB class; the estate serves its concrete classes, so it is assembled here.
CMDB_ROOT = "cmdb_ci"
CMDB_ROOT_MEMBERS = ("cmdb_ci_computer", "cmdb_ci_service")
ITIL_DENIED_TABLES = frozenset(
    {
        CMDB_ROOT,
        "cmdb_ci_computer",
        "cmdb_ci_server",
        "cmdb_ci_win_server",
        "cmdb_ci_linux_server",
        "sys_audit_delete",
    }
)

CLASS_LABELS = {
    "cmdb_ci": "Configuration Item",
    "cmdb_ci_computer": "Computer",
    "cmdb_ci_server": "Server",
    "cmdb_ci_win_server": "Windows Server",
    "cmdb_ci_linux_server": "Linux Server",
    "cmdb_ci_service": "Business Service",
    "sc_cat_item": "Catalog Item",
    "incident": "Incident",
    "sys_user": "User",
    "sys_audit_delete": "Deleted Record Audit",
    "cmdb_rel_ci": "CI Relationship",
}

_CI_INSTALL_STATUS = {
    "0": "Implementing",
    "1": "Installed",
    "2": "On Order",
    "3": "In Maintenance",
    "4": "Pending Install",
    "5": "Pending Repair",
    "6": "In Stock",
    "7": "Retired",
    "8": "Stolen",
    "100": "Absent",
}
_CI_OPERATIONAL_STATUS = {
    "1": "Operational",
    "2": "Non-Operational",
    "3": "Repair in Progress",
    "4": "DR Standby",
    "5": "Ready",
    "6": "Retired",
    "7": "Pipeline",
    "8": "Catalog",
}
_INCIDENT_STATE = {
    "1": "New",
    "2": "In Progress",
    "3": "On Hold",
    "6": "Resolved",
    "7": "Closed",
    "8": "Canceled",
}
_PRIORITY = {"1": "1 - Critical", "2": "2 - High", "3": "3 - Moderate", "4": "4 - Low", "5": "5 - Planning"}
_IMPACT_URGENCY = {"1": "1 - High", "2": "2 - Medium", "3": "3 - Low"}
_HOLD_REASON = {
    "1": "Awaiting Caller",
    "3": "Awaiting Problem",
    "4": "Awaiting Vendor",
    "5": "Awaiting Change",
}

CHOICE_LABELS: dict[str, dict[str, str]] = {
    "install_status": _CI_INSTALL_STATUS,
    "operational_status": _CI_OPERATIONAL_STATUS,
    "priority": _PRIORITY,
    "impact": _IMPACT_URGENCY,
    "urgency": _IMPACT_URGENCY,
}
# ``state`` means different things per table; only the task tables carry these labels.
TASK_CHOICE_LABELS: dict[str, dict[str, str]] = {
    "state": _INCIDENT_STATE,
    "incident_state": _INCIDENT_STATE,
    "hold_reason": _HOLD_REASON,
}
TASK_TABLES = frozenset({"incident"})

# Columns of tables that can be empty in a small estate, so queries on them still parse.
FALLBACK_COLUMNS: dict[str, tuple[str, ...]] = {
    "sys_audit_delete": (
        "sys_id",
        "tablename",
        "documentkey",
        "display_value",
        "payload",
        "sys_created_on",
        "sys_created_by",
        "sys_updated_on",
    ),
}
_BASE_COLUMNS = ("sys_id", "sys_class_name", "sys_created_on", "sys_updated_on")

_DATETIME_VALUE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\Z")
_DATETIME_SAMPLE = 200
_DATETIME_SUFFIXES = ("_on", "_at", "_discovered")
_TABLE_NAME = r"(?P<table>[A-Za-z0-9_]+)"
_API_PREFIX = r"/api/now(?:/v[12])?"


class ServiceNowEstate(Protocol):
    """The part of :class:`aria_sync.simulators.estate.Estate` this simulator reads."""

    @property
    def generation(self) -> int: ...

    @property
    def now(self) -> dt.datetime: ...

    @property
    def credentials(self) -> Mapping[str, Mapping[str, str]]: ...

    @property
    def SERVICENOW_TABLES(self) -> Sequence[str]: ...

    @property
    def servicenow_references(self) -> Mapping[str, Mapping[str, str]]: ...

    def servicenow_records(self, table: str) -> list[dict[str, Any]]: ...


@dataclass
class TableView:
    """One table as the instance exposes it: its rows (projected to the table's own columns), an index by
    sys_id, the reference columns and the datetime columns."""

    name: str
    rows: list[Row]
    columns: tuple[str, ...]
    column_set: frozenset[str]
    by_sys_id: dict[str, Row]
    references: dict[str, str]  # column -> referenced table
    datetime_fields: frozenset[str]


@dataclass
class _Token:
    username: str
    expires_at: float


@dataclass
class _RateWindow:
    started: float
    count: int = 0


class ServiceNowSimulator(VendorApp):
    """Simulated ServiceNow instance; see the module docstring for what it reproduces.

    Options (all keyword): ``hourly_limit`` requests per user per window (None = no rule),
    ``rate_limit_window_seconds`` (3600), ``default_limit`` rows when ``sysparm_limit`` is absent
    (10 000), ``max_limit`` hard cap on a page (None), ``display_timezone``/``display_datetime_format``
    of the integration user (display values), ``instance_url`` used in links (defaults to the Host the
    client called), ``reject_basic_auth`` (an instance policy that refuses Basic even for valid users),
    ``token_lifetime_seconds`` of OAuth access tokens (1799), ``slow_query_seconds`` that every Table/
    Aggregate request with ``sysparm_limit >= slow_query_min_limit`` takes, cancelled with a 500 once it
    exceeds ``transaction_timeout_seconds`` (60), ``query_cache_size`` filtered result sets kept.
    """

    name = "servicenow"

    def __init__(
        self,
        estate: ServiceNowEstate,
        *,
        hourly_limit: int | None = None,
        rate_limit_window_seconds: float = 3600.0,
        default_limit: int = 10_000,
        max_limit: int | None = None,
        display_timezone: str = "America/Los_Angeles",
        display_datetime_format: str = "%m/%d/%Y %H:%M:%S",
        instance_url: str | None = None,
        reject_basic_auth: bool = False,
        token_lifetime_seconds: float = 1799.0,
        slow_query_seconds: float = 0.0,
        slow_query_min_limit: int = 0,
        transaction_timeout_seconds: float = 60.0,
        query_cache_size: int = 16,
    ) -> None:
        super().__init__()
        self.estate = estate
        self.hourly_limit = hourly_limit
        self.rate_limit_window_seconds = rate_limit_window_seconds
        self.default_limit = default_limit
        self.max_limit = max_limit
        self.display_zone = ZoneInfo(display_timezone)
        self.display_datetime_format = display_datetime_format
        self.instance_url = instance_url.rstrip("/") if instance_url else None
        self.reject_basic_auth = reject_basic_auth
        self.token_lifetime_seconds = token_lifetime_seconds
        self.slow_query_seconds = slow_query_seconds
        self.slow_query_min_limit = slow_query_min_limit
        self.transaction_timeout_seconds = transaction_timeout_seconds
        self.query_cache_size = query_cache_size

        demo = estate.credentials["servicenow"]
        self.users: dict[str, str] = {
            demo["username"]: demo["password"],
            ITIL_ONLY_USER["username"]: ITIL_ONLY_USER["password"],
        }
        self.denied_tables: dict[str, frozenset[str]] = {ITIL_ONLY_USER["username"]: ITIL_DENIED_TABLES}
        self._tokens: dict[str, _Token] = {}
        self._refresh_tokens: dict[str, str] = {}
        self._rate_windows: dict[str, _RateWindow] = {}
        self._rate_lock = threading.Lock()

        self._cached_generation: int | None = None
        self._views: dict[str, TableView] = {}
        self._query_cache: OrderedDict[tuple[str, str], list[Row]] = OrderedDict()
        self._global_index: dict[str, Row] | None = None

        table = _API_PREFIX + r"/table/" + _TABLE_NAME
        self.route("GET", table, self._guarded(self._list_records))
        self.route("GET", table + r"/(?P<sys_id>[^/]+)", self._guarded(self._get_record))
        self.route("GET", _API_PREFIX + r"/stats/" + _TABLE_NAME, self._guarded(self._stats))
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            self.route(method, table + r"(?:/[^/]+)?", self._guarded(self._method_not_allowed))
        self.route("POST", r"/oauth_token\.do", self._oauth_token)

    # ------------------------------------------------------------------ public helpers

    def describe(self) -> dict[str, Any]:
        demo = self.estate.credentials["servicenow"]
        described = {"username": demo["username"], "password": demo["password"]}
        if self.instance_url:
            described["instanceUrl"] = self.instance_url
        return described

    def known_tables(self) -> tuple[str, ...]:
        tables = tuple(self.estate.SERVICENOW_TABLES)
        return tables if CMDB_ROOT in tables else (*tables, CMDB_ROOT)

    def view(self, table: str) -> TableView:
        """The table as served at the estate's current generation (built once per generation)."""
        with self.lock:
            self._sync_generation()
            cached = self._views.get(table)
            if cached is None:
                cached = self._build_view(table)
                self._views[table] = cached
            return cached

    # ------------------------------------------------------------------ request pipeline

    def _guarded(
        self, handler: Callable[[SimRequest, re.Match[str], str], SimResponse]
    ) -> Callable[[SimRequest, re.Match[str]], SimResponse]:
        """Wraps a handler in what every instance request goes through: Accept check, authentication,
        the hourly rate-limit rule and the transaction quota."""

        def guarded(request: SimRequest, match: re.Match[str]) -> SimResponse:
            accept = (request.header("accept") or "*/*").lower()
            if not any(kind in accept for kind in ("json", "*/*", "application/*")):
                return error_response(406, "Requested response format not supported", f"Accept: {accept}")
            username = self._authenticate(request)
            if username is None:
                response = error_response(
                    401, "User Not Authenticated", "Required to provide Auth information"
                )
                response.headers["WWW-Authenticate"] = 'BASIC realm="Service-now"'
                return response
            rate_headers, refused = self._count_request(username, request.received_at)
            if refused is not None:
                return refused
            slow = self._transaction_quota(request)
            response = slow if slow is not None else handler(request, match, username)
            response.headers.update(rate_headers)
            return response

        return guarded

    def _authenticate(self, request: SimRequest) -> str | None:
        header = request.header("authorization") or ""
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "basic" and not self.reject_basic_auth:
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            username, sep, password = decoded.partition(":")
            expected = self.users.get(username)
            if sep and expected is not None and secrets.compare_digest(expected, password):
                return username
            return None
        if scheme.lower() == "bearer":
            with self.lock:
                token = self._tokens.get(credentials.strip())
            if token is not None and token.expires_at > time.time():
                return token.username
        return None

    def _count_request(self, username: str, now: float) -> tuple[dict[str, str], SimResponse | None]:
        if self.hourly_limit is None:
            return {}, None
        with self._rate_lock:
            window = self._rate_windows.get(username)
            if window is None or now >= window.started + self.rate_limit_window_seconds:
                window = _RateWindow(started=now)
                self._rate_windows[username] = window
            reset_at = window.started + self.rate_limit_window_seconds
            headers = {
                "X-RateLimit-Limit": str(self.hourly_limit),
                "X-RateLimit-Reset": str(math.ceil(reset_at)),
                "X-RateLimit-Rule": RATE_LIMIT_RULE_SYS_ID,
            }
            if window.count >= self.hourly_limit:
                refused = error_response(
                    429,
                    "Rate limit exceeded",
                    f"The number of requests exceeded the limit of {self.hourly_limit} per hour set by the "
                    "rate limit rule",
                )
                refused.headers.update(headers)
                refused.headers["Retry-After"] = str(max(1, math.ceil(reset_at - now)))
                return headers, refused
            window.count += 1
        return headers, None

    def _transaction_quota(self, request: SimRequest) -> SimResponse | None:
        if self.slow_query_seconds <= 0:
            return None
        if self._page_limit(request) < self.slow_query_min_limit:
            return None
        if self.slow_query_seconds < self.transaction_timeout_seconds:
            time.sleep(self.slow_query_seconds)
            return None
        time.sleep(self.transaction_timeout_seconds)
        return error_response(
            500,
            "Transaction cancelled: maximum execution time exceeded",
            f"Check logs for error trace or enable glide.rest.debug property to verify REST request "
            f"processing (quota {self.transaction_timeout_seconds:g} s)",
        )

    def not_found(self, request: SimRequest) -> SimResponse:
        return error_response(400, "Requested URI does not represent any resource", None)

    def _method_not_allowed(self, request: SimRequest, match: re.Match[str], username: str) -> SimResponse:
        return error_response(
            405, "Method not Supported", f"{request.method} is not supported by this simulator"
        )

    # ------------------------------------------------------------------ OAuth

    def _oauth_token(self, request: SimRequest, match: re.Match[str]) -> SimResponse:
        form = {key: values[0] for key, values in parse_qs(request.body.decode("utf-8", "replace")).items()}
        denied = SimResponse(
            401,
            orjson.dumps({"error_description": "access_denied", "error": "server_error"}),
            {"Content-Type": CONTENT_TYPE},
        )
        client_ok = form.get("client_id") == OAUTH_CLIENT["client_id"] and secrets.compare_digest(
            form.get("client_secret", ""), OAUTH_CLIENT["client_secret"]
        )
        if not client_ok:
            return denied
        grant = form.get("grant_type")
        username: str | None = None
        if grant == "password":
            candidate = form.get("username", "")
            expected = self.users.get(candidate)
            if expected is not None and secrets.compare_digest(expected, form.get("password", "")):
                username = candidate
        elif grant == "client_credentials":
            username = self.estate.credentials["servicenow"]["username"]
        elif grant == "refresh_token":
            with self.lock:
                username = self._refresh_tokens.pop(form.get("refresh_token", ""), None)
        if username is None:
            return denied
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.lock:
            self._tokens[access] = _Token(username, time.time() + self.token_lifetime_seconds)
            self._refresh_tokens[refresh] = username
        body = {
            "access_token": access,
            "refresh_token": refresh,
            "scope": "useraccount",
            "token_type": "Bearer",  # nosec B105 # a token type, not a secret
            "expires_in": int(self.token_lifetime_seconds),
        }
        return SimResponse(200, orjson.dumps(body), {"Content-Type": CONTENT_TYPE})

    # ------------------------------------------------------------------ Table API

    def _check_table(self, table: str, username: str) -> SimResponse | None:
        if table not in self.known_tables():
            return error_response(400, f"Invalid table {table}", f"Table {table} does not exist")
        if table in self.denied_tables.get(username, frozenset()):
            return error_response(
                403, "Insufficient rights to query records", f"Read ACL denied for table {table}"
            )
        return None

    def _list_records(self, request: SimRequest, match: re.Match[str], username: str) -> SimResponse:
        table = match.group("table")
        problem = self._check_table(table, username)
        if problem is not None:
            return problem
        view = self.view(table)
        rows = self._matching_rows(view, request.arg("sysparm_query") or "")
        limit = self._page_limit(request)
        offset = _non_negative_int(request.arg("sysparm_offset"), 0)
        page = rows[offset : offset + limit]
        renderer = self._renderer(view, request)
        body = orjson.dumps({"result": [renderer(row) for row in page]})
        headers = {"Content-Type": CONTENT_TYPE}
        no_count = _flag(request.arg("sysparm_no_count"))
        if not no_count:
            headers["X-Total-Count"] = str(len(rows))
        if not _flag(request.arg("sysparm_suppress_pagination_header")):
            link = self._link_header(request, offset, limit, None if no_count else len(rows), len(page))
            if link:
                headers["Link"] = link
        return SimResponse(200, body, headers)

    def _get_record(self, request: SimRequest, match: re.Match[str], username: str) -> SimResponse:
        table, sys_id = match.group("table"), match.group("sys_id")
        if table not in self.known_tables():
            return error_response(400, f"Invalid table {table}", f"Table {table} does not exist")
        row = None
        if table not in self.denied_tables.get(username, frozenset()):
            row = self.view(table).by_sys_id.get(sys_id)
        if row is None:
            # An ACL-hidden record is indistinguishable from a missing one, as on the instance.
            return error_response(
                404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
            )
        renderer = self._renderer(self.view(table), request)
        return SimResponse(200, orjson.dumps({"result": renderer(row)}), {"Content-Type": CONTENT_TYPE})

    def _page_limit(self, request: SimRequest) -> int:
        limit = _positive_int(request.arg("sysparm_limit"), self.default_limit)
        if self.max_limit is not None:
            limit = min(limit, self.max_limit)
        return limit

    def _matching_rows(self, view: TableView, query_text: str) -> list[Row]:
        """Filtered and ordered rows, cached per (table, query) so paging through a large result costs one
        filter and sort, not one per page."""
        key = (view.name, query_text)
        with self.lock:
            self._sync_generation()
            cached = self._query_cache.get(key)
            if cached is not None:
                self._query_cache.move_to_end(key)
                return cached
        query = self._parse(view, query_text)
        rows = query.sort(query.filter(view.rows))
        with self.lock:
            if self._views.get(view.name) is view:  # the estate did not move on meanwhile
                self._query_cache[key] = rows
                while len(self._query_cache) > self.query_cache_size:
                    self._query_cache.popitem(last=False)
        return rows

    def _parse(self, view: TableView, query_text: str) -> EncodedQuery:
        return parse_encoded_query(query_text, view.column_set, now=self.estate.now)

    def _link_header(
        self, request: SimRequest, offset: int, limit: int, total: int | None, page_rows: int
    ) -> str:
        if total is not None and offset == 0 and total <= limit:
            return ""
        if total is None and offset == 0 and page_rows < limit:
            return ""
        links = [("first", 0)]
        if offset > 0:
            links.append(("prev", max(0, offset - limit)))
        has_next = offset + limit < total if total is not None else page_rows >= limit
        if has_next:
            links.append(("next", offset + limit))
        if total is not None:
            links.append(("last", max(0, (total - 1) // limit * limit)))
        return ",".join(f'<{self._page_url(request, at, limit)}>;rel="{rel}"' for rel, at in links)

    def _page_url(self, request: SimRequest, offset: int, limit: int) -> str:
        params: list[tuple[str, str]] = []
        for name, values in request.query.items():
            if name in ("sysparm_offset", "sysparm_limit"):
                continue
            params.extend((name, value) for value in values)
        params.append(("sysparm_limit", str(limit)))
        params.append(("sysparm_offset", str(offset)))
        return f"{self._base_url(request)}{request.path}?{urlencode(params, quote_via=quote)}"

    def _base_url(self, request: SimRequest) -> str:
        if self.instance_url:
            return self.instance_url
        return f"http://{request.header('host') or '127.0.0.1'}"

    # ------------------------------------------------------------------ rendering

    def _renderer(self, view: TableView, request: SimRequest) -> Callable[[Row], Row]:
        mode = (request.arg("sysparm_display_value") or "false").lower()
        if mode not in ("true", "all"):
            mode = "false"
        with_links = not _flag(request.arg("sysparm_exclude_reference_link"))
        fields = _requested_fields(request.arg("sysparm_fields"), view)
        base = self._base_url(request)
        link_prefixes = {
            column: f"{base}/api/now/table/{target}/" for column, target in view.references.items()
        }
        dot_walks = [name for name in fields or () if "." in name]
        selected = fields

        def pick(row: Row) -> Row:
            if selected is None:
                return row
            picked = {name: row[name] for name in selected if name in row}
            for name in dot_walks:
                picked[name] = self._dot_walk(view, row, name)
            return picked

        if mode == "false":
            if not with_links:
                return pick

            def raw_with_links(row: Row) -> Row:
                out = dict(pick(row))
                for column, prefix in link_prefixes.items():
                    value = out.get(column)
                    if value:
                        out[column] = {"link": prefix + value, "value": value}
                return out

            return raw_with_links

        display = self._display_function(view)

        def displayed(row: Row) -> Row:
            source = pick(row)
            out: Row = {}
            for column, value in source.items():
                text = "" if value is None else value
                if column in link_prefixes:
                    if not text:
                        out[column] = {"display_value": "", "value": ""} if mode == "all" else ""
                        continue
                    shown = self._reference_display(text)
                    if mode == "all":
                        cell: Row = {"display_value": shown, "value": text}
                        if with_links:
                            cell["link"] = link_prefixes[column] + text
                        out[column] = cell
                    elif with_links:
                        out[column] = {"display_value": shown, "link": link_prefixes[column] + text}
                    else:
                        out[column] = shown
                    continue
                shown = display(column, text, row)
                out[column] = {"display_value": shown, "value": text} if mode == "all" else shown
            return out

        return displayed

    def _display_function(self, view: TableView) -> Callable[[str, str, Row], str]:
        zone, fmt = self.display_zone, self.display_datetime_format

        @functools.lru_cache(maxsize=65_536)
        def local_time(text: str) -> str:
            if not _DATETIME_VALUE.match(text):
                return text
            moment = dt.datetime.strptime(text, SN_DATETIME).replace(tzinfo=dt.UTC)
            return moment.astimezone(zone).strftime(fmt)

        def display(column: str, text: str, row: Row) -> str:
            if not text:
                return ""
            if column in view.datetime_fields:
                return local_time(text)
            if column == "sys_class_name":
                return CLASS_LABELS.get(text, text)
            labels = CHOICE_LABELS.get(column)
            if labels is None and (row.get("sys_class_name") or view.name) in TASK_TABLES:
                labels = TASK_CHOICE_LABELS.get(column)
            if labels is not None:
                return labels.get(text, text)
            return text

        return display

    def _reference_display(self, sys_id: str) -> str:
        target = self._index().get(sys_id)
        if target is None:
            return sys_id
        for candidate in ("name", "number", "user_name", "short_description"):
            value = target.get(candidate)
            if value:
                return str(value)
        return sys_id

    def _dot_walk(self, view: TableView, row: Row, path: str) -> str:
        head, _, rest = path.partition(".")
        if head not in view.references:
            return ""
        current: Row | None = self._index().get(str(row.get(head) or ""))
        parts = rest.split(".")
        for part in parts[:-1]:
            current = self._index().get(str(current.get(part) or "")) if current else None
        if current is None:
            return ""
        value = current.get(parts[-1], "")
        return "" if value is None else str(value)

    def _index(self) -> dict[str, Row]:
        with self.lock:
            self._sync_generation()
            if self._global_index is None:
                index: dict[str, Row] = {}
                for table in self.estate.SERVICENOW_TABLES:
                    for row in self.estate.servicenow_records(table):
                        sys_id = row.get("sys_id")
                        if sys_id:
                            index.setdefault(str(sys_id), row)
                self._global_index = index
            return self._global_index

    # ------------------------------------------------------------------ Aggregate API

    def _stats(self, request: SimRequest, match: re.Match[str], username: str) -> SimResponse:
        table = match.group("table")
        problem = self._check_table(table, username)
        if problem is not None:
            return problem
        view = self.view(table)
        rows = self._matching_rows(view, request.arg("sysparm_query") or "")
        want_count = _flag(request.arg("sysparm_count"))
        aggregates = {
            kind: [
                name
                for name in _split_fields(request.arg(f"sysparm_{kind}_fields"))
                if name in view.column_set
            ]
            for kind in ("sum", "avg", "min", "max")
        }
        group_by = [
            name for name in _split_fields(request.arg("sysparm_group_by")) if name in view.column_set
        ]
        if not group_by:
            result: Any = {"stats": _aggregate(rows, want_count, aggregates)}
        else:
            shown = self._group_value_function(view, request)
            groups: dict[tuple[str, ...], list[Row]] = {}
            for row in rows:
                groups.setdefault(tuple(str(row.get(name) or "") for name in group_by), []).append(row)
            result = [
                {
                    "stats": _aggregate(members, want_count, aggregates),
                    "groupby_fields": [
                        {"field": name, "value": shown(name, value, members[0])}
                        for name, value in zip(group_by, key, strict=True)
                    ],
                }
                for key, members in sorted(groups.items())
            ]
        return SimResponse(200, orjson.dumps({"result": result}), {"Content-Type": CONTENT_TYPE})

    def _group_value_function(self, view: TableView, request: SimRequest) -> Callable[[str, str, Row], str]:
        if (request.arg("sysparm_display_value") or "false").lower() != "true":
            return lambda name, value, row: value
        display = self._display_function(view)

        def shown(name: str, value: str, row: Row) -> str:
            if name in view.references:
                return self._reference_display(value) if value else ""
            return display(name, value, row)

        return shown

    # ------------------------------------------------------------------ estate views

    def _sync_generation(self) -> None:
        generation = self.estate.generation
        if generation != self._cached_generation:
            self._cached_generation = generation
            self._views.clear()
            self._query_cache.clear()
            self._global_index = None

    def _build_view(self, table: str) -> TableView:
        if table == CMDB_ROOT and CMDB_ROOT not in self.estate.SERVICENOW_TABLES:
            members = [row for member in CMDB_ROOT_MEMBERS for row in self.estate.servicenow_records(member)]
            source = sorted(members, key=lambda row: str(row.get("sys_id", "")))
            reference_tables: Iterable[str] = CMDB_ROOT_MEMBERS
        else:
            source = self.estate.servicenow_records(table)
            reference_tables = (table,)
        columns = _shared_columns(source) or FALLBACK_COLUMNS.get(table, _BASE_COLUMNS)
        column_set = frozenset(columns)
        rows = [
            row if len(row) == len(columns) else {name: row[name] for name in columns if name in row}
            for row in source
        ]
        references: dict[str, str] = {}
        classes = {str(row.get("sys_class_name") or table) for row in source}
        for name in (*reference_tables, *sorted(classes)):
            for column, target in self.estate.servicenow_references.get(name, {}).items():
                if column in column_set:
                    references.setdefault(column, target)
        return TableView(
            name=table,
            rows=rows,
            columns=columns,
            column_set=column_set,
            by_sys_id={str(row["sys_id"]): row for row in rows if row.get("sys_id")},
            references=references,
            datetime_fields=_datetime_columns(rows, columns),
        )


def _shared_columns(rows: Sequence[Row]) -> tuple[str, ...]:
    """Columns every row has: a parent table shows only the columns its child classes share."""
    if not rows:
        return ()
    shared = set(rows[0])
    first_length = len(rows[0])
    for row in rows:
        if len(row) != first_length or row.keys() != shared:
            shared &= row.keys()
    return tuple(name for name in rows[0] if name in shared)


def _datetime_columns(rows: Sequence[Row], columns: Sequence[str]) -> frozenset[str]:
    found: set[str] = set()
    rejected: set[str] = set()
    for row in rows[:_DATETIME_SAMPLE]:
        for name in columns:
            value = row.get(name)
            if not value or name in rejected:
                continue
            if isinstance(value, str) and _DATETIME_VALUE.match(value):
                found.add(name)
            else:
                rejected.add(name)
    # A column empty in every sampled row is still a datetime when its name says so (resolved_at, ...).
    by_name = {name for name in columns if name.endswith(_DATETIME_SUFFIXES)}
    return frozenset((found | by_name) - rejected)


def _aggregate(rows: Sequence[Row], want_count: bool, aggregates: dict[str, list[str]]) -> Row:
    stats: Row = {}
    if want_count:
        stats["count"] = str(len(rows))
    for kind, names in aggregates.items():
        if not names:
            continue
        values: Row = {}
        for name in names:
            cells = [str(row.get(name) or "") for row in rows]
            cells = [cell for cell in cells if cell]
            if kind in ("min", "max"):
                values[name] = (min(cells) if kind == "min" else max(cells)) if cells else ""
                continue
            numbers = [_to_number(cell) for cell in cells]
            present = [number for number in numbers if number is not None]
            if kind == "sum":
                values[name] = _number_text(sum(present))
            else:
                values[name] = _number_text(sum(present) / len(present)) if present else ""
        stats[kind] = values
    return stats


def _to_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _number_text(value: float) -> str:
    if value == int(value):
        return str(int(value))
    return f"{value:.4f}".rstrip("0")


def _requested_fields(text: str | None, view: TableView) -> list[str] | None:
    names = _split_fields(text)
    if not names:
        return None
    picked: list[str] = []
    for name in names:
        if (name in view.column_set or name.partition(".")[0] in view.references) and name not in picked:
            picked.append(name)
    return picked


def _split_fields(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def _positive_int(value: str | None, default: int) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    return number if number > 0 else default


def _non_negative_int(value: str | None, default: int) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    return max(0, number)


def error_response(status: int, message: str, detail: str | None) -> SimResponse:
    """The instance's error envelope ``{"error":{"message","detail"},"status":"failure"}``."""
    body = {"error": {"message": message, "detail": detail}, "status": "failure"}
    return SimResponse(status, orjson.dumps(body), {"Content-Type": CONTENT_TYPE})


def start_servicenow(estate: ServiceNowEstate, *, tls: bool = False, **options: Any) -> SimulatorServer:
    """Creates and starts a :class:`ServiceNowSimulator` on loopback (plain HTTP unless ``tls``); links in
    responses point at the started server unless ``instance_url`` is given."""
    app = ServiceNowSimulator(estate, **options)
    server = SimulatorServer(app, tls=tls)
    if app.instance_url is None:
        app.instance_url = server.base_url
    return server.start()
