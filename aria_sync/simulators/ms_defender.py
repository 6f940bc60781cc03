"""Microsoft Defender for Endpoint simulated over HTTPS: the Entra ID authority and the API host in one.

Authority side (what ``msal.ConfidentialClientApplication`` talks to, with ``instance_discovery=False``):

- ``GET /{tenant}/v2.0/.well-known/openid-configuration`` (and the v1 document without ``/v2.0``);
- ``POST /{tenant}/oauth2/v2.0/token`` (client credentials, ``scope=<resource>/.default``) and the legacy
  ``POST /{tenant}/oauth2/token`` (``resource=<resource>``);
- errors shaped as Entra returns them (``AADSTS90002`` unknown tenant, ``AADSTS700016`` unknown client,
  ``AADSTS7000215`` wrong secret, ``AADSTS1002012`` scope without ``/.default``, ...).

API side (``Authorization: Bearer <token>`` on every call, audience and roles checked):
``/api/machines``, ``/api/machines/{id or computer name}``, ``/api/alerts``, ``/api/incidents`` (the
Defender XDR audience), ``/api/vulnerabilities/machinesVulnerabilities``,
``/api/machines/SoftwareVulnerabilitiesByMachine`` and
``/api/machines/SoftwareVulnerabilityChangesByMachine``,
in the OData envelope with ``$top`` (clamped per endpoint), ``$skip``, a ``$filter`` subset and
``@odata.nextLink``/``$skiptoken`` paging on the exports; per-endpoint sliding-window rate limits answer 429
``TooManyRequests`` with ``Retry-After``.

Tokens are JWT-shaped (HS256 with a key private to the simulator instance) and carry ``aud``, ``tid``,
``appid``, ``roles`` and ``exp``, so a client can decode them like real Entra tokens while the simulator can
still tell a forged or expired one from a valid one.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import hashlib
import hmac
import itertools
import math
import re
import secrets
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, quote

import orjson

from aria_sync.simulators.framework import (
    Fault,
    SimRequest,
    SimResponse,
    SimulatorServer,
    VendorApp,
    raw_json_response,
)

Row = dict[str, Any]

MDE_RESOURCE = "https://api.securitycenter.microsoft.com"
# The same WindowsDefenderATP application under its application-ID URI, which the docs also show.
MDE_RESOURCE_ALIAS = "https://securitycenter.onmicrosoft.com/windowsatpservice"
XDR_RESOURCE = "https://api.security.microsoft.com"
MDE_SCOPE = f"{MDE_RESOURCE}/.default"
XDR_SCOPE = f"{XDR_RESOURCE}/.default"
MDE_ROLES = ("Machine.Read.All", "Alert.Read.All", "Vulnerability.Read.All", "Software.Read.All")
XDR_ROLES = ("Incident.Read.All",)

LIMITED_CLIENT = {
    "clientId": "5d8e3c2a-7b1f-4c6e-9a0d-1f2e3d4c5b6a",
    "clientSecret": "sim-limited-client-secret-not-real",
}
"""An app registration that was granted only ``Machine.Read.All`` on WindowsDefenderATP."""

NO_CONSENT_CLIENT = {
    "clientId": "9c4b2a1d-3e5f-4a6b-8c7d-0e1f2a3b4c5d",
    "clientSecret": "sim-no-consent-client-secret-not-real",
}
"""An app registration whose permissions were never admin-consented: its tokens carry no roles."""

DEFAULT_RATE_LIMITS: dict[str, tuple[tuple[int, float], ...]] = {
    "machines": ((100, 60.0), (1500, 3600.0)),
    "alerts": ((100, 60.0), (1500, 3600.0)),
    "incidents": ((50, 60.0), (1500, 3600.0)),
    # Not documented for machinesVulnerabilities; the machines quota is the closest published one.
    "machine_vulnerabilities": ((100, 60.0), (1500, 3600.0)),
    "vulnerability_export": ((30, 60.0), (1000, 3600.0)),
    "vulnerability_changes": ((30, 60.0), (1000, 3600.0)),
}
"""Sliding windows ``(requests, seconds)`` per endpoint group; ``rate_limits={group: (...)}`` overrides."""

DELTA_MAX_AGE = dt.timedelta(days=14)
DELTA_WINDOW = dt.timedelta(hours=6)
_METADATA = f"{MDE_RESOURCE}/api/$metadata"
_XDR_METADATA = f"{XDR_RESOURCE}/api/$metadata"
_ENTRA_ERROR_URI = "https://login.microsoftonline.com/error?code={code}"


class DefenderEstate(Protocol):
    """What the simulator reads from the shared estate (see ``aria_sync.simulators.estate.Estate``)."""

    generation: int
    now: dt.datetime
    credentials: dict[str, dict[str, str]]

    def defender_machines(self) -> list[Row]: ...
    def defender_alerts(self) -> list[Row]: ...
    def defender_incidents(self) -> list[Row]: ...
    def defender_vulnerabilities(self) -> Iterator[Row]: ...
    def defender_vulnerability_changes(self, since: dt.datetime) -> list[Row]: ...


# ----------------------------------------------------------------------------------------------------------
# Errors and responses


class ApiError(Exception):
    """An MDE API error: ``{"error": {"code", "message", "target"}}`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self) -> SimResponse:
        body = {"error": {"code": self.code, "message": self.message, "target": str(uuid.uuid4())}}
        return raw_json_response(orjson.dumps(body), self.status, self.headers)


class EntraError(Exception):
    """An Entra ID token/discovery error, answered in the body shape msal hands back to its caller."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.code = code
        self.description = description

    def response(self) -> SimResponse:
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        body = {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.code}: {self.description}\r\nTrace ID: {trace_id}\r\n"
                f"Correlation ID: {correlation_id}\r\nTimestamp: {stamp}"
            ),
            "error_codes": [self.code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": _ENTRA_ERROR_URI.format(code=self.code),
        }
        return raw_json_response(orjson.dumps(body), self.status)


def error_fault(
    status: int, code: str, *, path: str = r"^/api/", times: int = 1, retry_after: int | None = None
) -> Fault:
    """A :class:`Fault` answering ``status`` with an MDE-shaped error body, e.g. 500 ``InternalServerError``.

    Add it with ``server.faults.add(error_fault(503, "ServiceUnavailable", path="/api/alerts"))``.
    """
    body = {"error": {"code": code, "message": "", "target": str(uuid.uuid4())}}
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return Fault(
        kind="status", path=path, status=status, headers=headers, body=orjson.dumps(body), times=times
    )


def _odata_error(message: str) -> ApiError:
    return ApiError(400, "ODataError", message)


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> SimResponse:
    return raw_json_response(orjson.dumps(obj), status, headers)


# ----------------------------------------------------------------------------------------------------------
# OData $filter subset

_STRING, _DATETIME, _NUMBER, _COLLECTION = "string", "datetime", "number", "collection"

MACHINE_FILTERS = {
    "computerDnsName": _STRING,
    "id": _STRING,
    "version": _STRING,
    "deviceValue": _STRING,
    "aadDeviceId": _STRING,
    "machineTags": _COLLECTION,
    "lastSeen": _DATETIME,
    "exposureLevel": _STRING,
    "onboardingStatus": _STRING,
    "lastIpAddress": _STRING,
    "healthStatus": _STRING,
    "osPlatform": _STRING,
    "riskScore": _STRING,
    "rbacGroupId": _NUMBER,
}
ALERT_FILTERS = {
    "alertCreationTime": _DATETIME,
    "lastUpdateTime": _DATETIME,
    "incidentId": _NUMBER,
    "investigationId": _NUMBER,
    "id": _STRING,
    "assignedTo": _STRING,
    "detectionSource": _STRING,
    "lastEventTime": _DATETIME,
    "status": _STRING,
    "severity": _STRING,
    "category": _STRING,
}
INCIDENT_FILTERS = {
    "lastUpdateTime": _DATETIME,
    "createdTime": _DATETIME,
    "status": _STRING,
    "assignedTo": _STRING,
}
MACHINE_VULNERABILITY_FILTERS = {
    name: _STRING
    for name in (
        "id",
        "cveId",
        "machineId",
        "fixingKbId",
        "productName",
        "productVersion",
        "severity",
        "productVendor",
    )
}

_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*')
      | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<punct>[(),:])
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}
Predicate = Callable[[Row], bool]


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


@functools.lru_cache(maxsize=1 << 18)
def _parse_timestamp(value: str) -> dt.datetime | None:
    """Parse an ISO timestamp as the API writes it (7 fractional digits, Z); cached, values repeat a lot."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace(" ", "T", 1))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN_RE.match(text, position)
        if match is None or match.end() == position:
            raise _odata_error(f"Syntax error at position {position} in $filter.")
        kind = match.lastgroup or ""
        tokens.append(_Token(kind, match.group(kind)))
        position = match.end()
    return tokens


class _FilterParser:
    """Recursive descent over ``cmp (and|or cmp)*`` with parentheses and ``tags/any(t: t eq 'x')``."""

    def __init__(self, text: str, properties: Mapping[str, str]) -> None:
        self.tokens = _tokenize(text)
        self.position = 0
        self.properties = properties

    def parse(self) -> Predicate:
        if not self.tokens:
            raise _odata_error("The $filter expression is empty.")
        predicate = self._or()
        if self.position != len(self.tokens):
            raise _odata_error(f"Syntax error: unexpected '{self.tokens[self.position].text}' in $filter.")
        return predicate

    def _peek(self) -> _Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _next(self) -> _Token:
        token = self._peek()
        if token is None:
            raise _odata_error("Syntax error: the $filter expression ends unexpectedly.")
        self.position += 1
        return token

    def _expect(self, text: str) -> None:
        token = self._next()
        if token.text != text:
            raise _odata_error(f"Syntax error: expected '{text}' but found '{token.text}' in $filter.")

    def _keyword(self, word: str) -> bool:
        token = self._peek()
        if token is not None and token.kind == "name" and token.text == word:
            self.position += 1
            return True
        return False

    def _or(self) -> Predicate:
        terms = [self._and()]
        while self._keyword("or"):
            terms.append(self._and())
        if len(terms) == 1:
            return terms[0]
        return lambda row: any(term(row) for term in terms)

    def _and(self) -> Predicate:
        terms = [self._term()]
        while self._keyword("and"):
            terms.append(self._term())
        if len(terms) == 1:
            return terms[0]
        return lambda row: all(term(row) for term in terms)

    def _term(self) -> Predicate:
        token = self._peek()
        if token is not None and token.text == "(":
            self.position += 1
            inner = self._or()
            self._expect(")")
            return inner
        return self._comparison()

    def _comparison(self) -> Predicate:
        token = self._next()
        if token.kind != "name":
            raise _odata_error(f"Syntax error: expected a property name but found '{token.text}' in $filter.")
        if token.text.endswith("/any"):
            return self._any(token.text[: -len("/any")])
        kind = self._property(token.text)
        if kind == _COLLECTION:
            raise _odata_error(
                f"Property '{token.text}' is a collection; use {token.text}/any(t: t eq '...')."
            )
        operator = self._operator()
        literal_kind, literal = self._literal()
        return _compare(token.text, kind, operator, literal_kind, literal)

    def _any(self, name: str) -> Predicate:
        if self._property(name) != _COLLECTION:
            raise _odata_error(f"any() is only supported on collection properties, not '{name}'.")
        self._expect("(")
        variable = self._next()
        self._expect(":")
        self._expect(variable.text)
        operator = self._operator()
        literal_kind, literal = self._literal()
        self._expect(")")
        if literal_kind != _STRING:
            raise _odata_error(f"Elements of '{name}' are strings; compare them with a quoted string.")
        compare = _COMPARISONS[operator]
        return lambda row: any(
            isinstance(item, str) and compare(item, literal) for item in (row.get(name) or ())
        )

    def _property(self, name: str) -> str:
        kind = self.properties.get(name)
        if kind is None:
            allowed = ", ".join(self.properties)
            raise _odata_error(
                f"Invalid filter property '{name}'. Filtering is supported on these properties: {allowed}."
            )
        return kind

    def _operator(self) -> str:
        token = self._next()
        if token.kind != "name" or token.text not in _COMPARISONS:
            raise _odata_error(f"Unsupported operator '{token.text}' in $filter.")
        return token.text

    def _literal(self) -> tuple[str, Any]:
        token = self._next()
        if token.kind == "string":
            return _STRING, token.text[1:-1].replace("''", "'")
        if token.kind == "datetime":
            parsed = _parse_timestamp(token.text)
            if parsed is None:
                raise _odata_error(f"'{token.text}' is not a valid DateTimeOffset literal.")
            return _DATETIME, parsed
        if token.kind == "number":
            return _NUMBER, float(token.text)
        if token.kind == "name" and token.text == "null":
            return "null", None
        if token.kind == "name" and token.text in ("true", "false"):
            return "bool", token.text == "true"
        raise _odata_error(f"Syntax error: '{token.text}' is not a literal.")


def _compare(name: str, kind: str, operator: str, literal_kind: str, literal: Any) -> Predicate:
    if literal_kind == "null":
        if operator not in ("eq", "ne"):
            raise _odata_error(f"The operator '{operator}' cannot be applied to null.")
        wants_null = operator == "eq"
        return lambda row: (row.get(name) is None) == wants_null
    if literal_kind != kind:
        raise _odata_error(
            f"The operator '{operator}' is not defined for property '{name}' ({kind}) "
            f"and a {literal_kind} literal."
        )
    compare = _COMPARISONS[operator]
    if kind == _DATETIME:

        def datetime_predicate(row: Row) -> bool:
            value = row.get(name)
            parsed = _parse_timestamp(value) if isinstance(value, str) else None
            return parsed is not None and compare(parsed, literal)

        return datetime_predicate
    if kind == _NUMBER:

        def number_predicate(row: Row) -> bool:
            value = row.get(name)
            return isinstance(value, int | float) and not isinstance(value, bool) and compare(value, literal)

        return number_predicate

    def string_predicate(row: Row) -> bool:
        value = row.get(name)
        return isinstance(value, str) and compare(value, literal)

    return string_predicate


def parse_filter(text: str, properties: Mapping[str, str]) -> Predicate:
    """Compile an OData ``$filter`` over the given filterable properties; ``ApiError`` 400 if invalid."""
    return _FilterParser(text, properties).parse()


# ----------------------------------------------------------------------------------------------------------
# Rate limiting, tokens, paging helpers


class SlidingWindowLimiter:
    """Per-group sliding windows; a request that is refused does not use a slot."""

    def __init__(
        self,
        limits: Mapping[str, Sequence[tuple[int, float]]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = {group: tuple(windows) for group, windows in limits.items()}
        self._calls: dict[tuple[str, int], deque[float]] = {}
        self._clock = clock
        self._lock = threading.Lock()

    def acquire(self, group: str) -> tuple[int, float, int] | None:
        """Take a slot, or return ``(limit, window seconds, retry-after seconds)`` of the full window."""
        windows = self._limits.get(group, ())
        with self._lock:
            now = self._clock()
            refusal: tuple[int, float, int] | None = None
            for index, (limit, seconds) in enumerate(windows):
                calls = self._calls.setdefault((group, index), deque())
                while calls and calls[0] <= now - seconds:
                    calls.popleft()
                if len(calls) >= limit:
                    # The slot frees when the call that is `limit` places back leaves the window.
                    frees_at = calls[len(calls) - limit] + seconds if limit > 0 else now + seconds
                    wait = max(1, math.ceil(frees_at - now))
                    if refusal is None or wait > refusal[2]:
                        refusal = (limit, seconds, wait)
            if refusal is not None:
                return refusal
            for index in range(len(windows)):
                self._calls[(group, index)].append(now)
            return None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class _RowStream:
    """A lazy row iterator that knows its position and can tell whether rows remain."""

    def __init__(self, rows: Iterator[Row]) -> None:
        self._rows = rows
        self._pending: list[Row] = []

    def skip(self, count: int) -> None:
        from_pending = min(count, len(self._pending))
        del self._pending[:from_pending]
        if count > from_pending:
            deque(itertools.islice(self._rows, count - from_pending), maxlen=0)

    def take(self, count: int) -> list[Row]:
        rows = self._pending[:count]
        del self._pending[:count]
        rows.extend(itertools.islice(self._rows, count - len(rows)))
        return rows

    def has_more(self) -> bool:
        if self._pending:
            return True
        for row in self._rows:
            self._pending.append(row)
            return True
        return False


class _PageCursors:
    """Serves pages of a lazily generated row sequence without re-reading it from the start.

    A sequential walk parks the live iterator at the offset where each page ended, so page ``k`` costs
    O(page) instead of O(k * page); the last pages are kept too, so a retried request (after a reset or
    truncated body) is answered from memory. Anything else falls back to skipping from the start.
    """

    def __init__(self, max_streams: int = 8, max_pages: int = 2) -> None:
        self._streams: OrderedDict[tuple[Any, ...], _RowStream] = OrderedDict()
        self._pages: OrderedDict[tuple[Any, ...], tuple[list[Row], bool]] = OrderedDict()
        self._max_streams = max_streams
        self._max_pages = max_pages
        self._lock = threading.Lock()

    def page(
        self, key: tuple[Any, ...], offset: int, size: int, open_rows: Callable[[], Iterator[Row]]
    ) -> tuple[list[Row], bool]:
        page_key = (key, offset, size)
        with self._lock:
            cached = self._pages.get(page_key)
            if cached is not None:
                self._pages.move_to_end(page_key)
                return cached
            stream = self._streams.pop((key, offset), None)
        if stream is None:
            stream = _RowStream(open_rows())
            stream.skip(offset)
        rows = stream.take(size)
        more = stream.has_more()
        with self._lock:
            self._pages[page_key] = (rows, more)
            while len(self._pages) > self._max_pages:
                self._pages.popitem(last=False)
            if more:
                self._streams[(key, offset + len(rows))] = stream
                while len(self._streams) > self._max_streams:
                    self._streams.popitem(last=False)
        return rows, more


@dataclass
class _Client:
    secret: str
    roles: dict[str, tuple[str, ...]]  # resource -> granted application roles


@dataclass
class _Snapshot:
    """The estate's Defender records of one generation, sorted and indexed once."""

    generation: int
    machines: list[Row]
    machines_by_id: dict[str, Row]
    machines_by_name: dict[str, Row]
    alerts: list[Row]
    alerts_with_evidence: list[Row]
    incidents: list[Row]
    changes: dict[dt.datetime, list[Row]] = field(default_factory=dict)


def _machine_preference(machine: Row) -> tuple[bool, str]:
    # A re-imaged device leaves an Inactive twin under the same name; a lookup by name means the live one.
    return (machine.get("healthStatus") == "Active", str(machine.get("lastSeen") or ""))


def _to_machine_vulnerability(row: Row) -> Row | None:
    cve = row.get("cveId")
    if not cve:
        return None
    machine_id = row.get("deviceId") or row.get("machineId")
    vendor, product, version = row.get("softwareVendor"), row.get("softwareName"), row.get("softwareVersion")
    fixing_kb = row.get("recommendedSecurityUpdateId")
    if isinstance(fixing_kb, str):
        fixing_kb = fixing_kb.removeprefix("KB") or None
    return {
        "id": f"{machine_id}-_-{cve}-_-{vendor}-_-{product}-_-{version}-_-{fixing_kb or ''}",
        "cveId": cve,
        "machineId": machine_id,
        "fixingKbId": fixing_kb,
        "productName": product,
        "productVendor": vendor,
        "productVersion": version,
        "severity": row.get("vulnerabilitySeverityLevel"),
    }


def _int_param(request: SimRequest, name: str, *, minimum: int = 0) -> int | None:
    raw = request.arg(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise _odata_error(f"The value '{raw}' of query option '{name}' is not a valid integer.") from None
    if value < minimum:
        raise _odata_error(f"The value of query option '{name}' must be at least {minimum}.")
    return value


def _query_string(params: Sequence[tuple[str, str]]) -> str:
    return "&".join(f"{quote(key, safe='$')}={quote(value, safe=':')}" for key, value in params)


# ----------------------------------------------------------------------------------------------------------
# The simulator


class MsDefenderSimulator(VendorApp):
    """Defender for Endpoint (and the Entra ID authority in front of it) serving one estate.

    Options: ``token_lifetime`` (seconds, ``expires_in`` of new tokens), ``max_top_machines``,
    ``max_top_alerts``, ``max_top_incidents``, ``max_top_machine_vulnerabilities`` (``$top`` caps, larger
    values are clamped; also the page size when ``$top`` is absent), ``export_page_size`` /
    ``export_max_page_size`` (``pageSize`` default and cap of the JSON exports), ``rate_limits`` (groups of
    :data:`DEFAULT_RATE_LIMITS` to override; an empty tuple disables a group), ``clock`` (wall clock for
    token expiry) and ``public_base_url`` (host written into ``@odata.nextLink`` and the discovery
    document; derived from the ``Host`` header when unset).
    """

    name = "ms-defender"

    def __init__(
        self,
        estate: DefenderEstate,
        *,
        token_lifetime: int = 3599,
        max_top_machines: int = 10_000,
        max_top_alerts: int = 10_000,
        max_top_incidents: int = 100,
        max_top_machine_vulnerabilities: int = 10_000,
        export_page_size: int = 50_000,
        export_max_page_size: int = 200_000,
        rate_limits: Mapping[str, Sequence[tuple[int, float]]] | None = None,
        clock: Callable[[], float] = time.time,
        public_base_url: str | None = None,
    ) -> None:
        super().__init__()
        self.estate = estate
        self.token_lifetime = token_lifetime
        self.max_top = {
            "machines": max_top_machines,
            "alerts": max_top_alerts,
            "incidents": max_top_incidents,
            "machine_vulnerabilities": max_top_machine_vulnerabilities,
        }
        self.export_page_size = export_page_size
        self.export_max_page_size = export_max_page_size
        self.clock = clock
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.scheme = "https"
        self.limiter = SlidingWindowLimiter({**DEFAULT_RATE_LIMITS, **(rate_limits or {})})
        self._signing_key = secrets.token_bytes(32)
        self._snapshot: _Snapshot | None = None
        self._cursors = _PageCursors()
        demo = estate.credentials["ms-defender"]
        self.tenant_id = demo["tenantId"]
        self.clients: dict[str, _Client] = {
            demo["clientId"]: _Client(
                demo["clientSecret"], {MDE_RESOURCE: MDE_ROLES, XDR_RESOURCE: XDR_ROLES}
            ),
            LIMITED_CLIENT["clientId"]: _Client(
                LIMITED_CLIENT["clientSecret"], {MDE_RESOURCE: ("Machine.Read.All",)}
            ),
            NO_CONSENT_CLIENT["clientId"]: _Client(NO_CONSENT_CLIENT["clientSecret"], {}),
        }
        self._register_routes()

    def _register_routes(self) -> None:
        tenant = r"/(?P<tenant>[^/]+)"
        self.route("GET", tenant + r"/v2\.0/\.well-known/openid-configuration", self._discovery_v2)
        self.route("GET", tenant + r"/\.well-known/openid-configuration", self._discovery_v1)
        self.route("GET", tenant + r"/discovery(?:/v2\.0)?/keys", self._keys)
        self.route("POST", tenant + r"/oauth2/v2\.0/token", self._token_v2)
        self.route("POST", tenant + r"/oauth2/token", self._token_v1)
        api = (
            (
                "/api/machines/SoftwareVulnerabilitiesByMachine",
                "vulnerability_export",
                self._vulnerability_export,
            ),
            (
                "/api/machines/SoftwareVulnerabilityChangesByMachine",
                "vulnerability_changes",
                self._vulnerability_changes,
            ),
            ("/api/machines", "machines", self._machines),
            ("/api/machines/(?P<machine>[^/]+)", "machines", self._machine),
            ("/api/alerts", "alerts", self._alerts),
            ("/api/incidents", "incidents", self._incidents),
            (
                "/api/vulnerabilities/machinesVulnerabilities",
                "machine_vulnerabilities",
                self._machine_vulnerabilities,
            ),
        )
        for pattern, group, handler in api:
            # MDE resolves API paths case-insensitively (the docs mix /api/machines and /api/Machines).
            self.route("GET", "(?i)" + pattern, self._api(group, handler))

    # -- plumbing -------------------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Demo credentials and the config keys of the ``ms-defender`` integration."""
        demo = self.estate.credentials["ms-defender"]
        described: dict[str, Any] = {
            "tenantId": demo["tenantId"],
            "clientId": demo["clientId"],
            "clientSecret": demo["clientSecret"],
            "scopes": [MDE_SCOPE, XDR_SCOPE],
        }
        if self.public_base_url:
            described["apiBaseUrl"] = self.public_base_url
            described["authorityHost"] = self.public_base_url
        return described

    def not_found(self, request: SimRequest) -> SimResponse:
        """404 in the MDE error shape for ``/api`` paths, Entra-like elsewhere."""
        if request.path.startswith("/api/"):
            return ApiError(404, "ResourceNotFound", f"Resource '{request.path}' does not exist.").response()
        return _json({"error": "not_found", "error_description": f"No such endpoint: {request.path}"}, 404)

    def _base_url(self, request: SimRequest) -> str:
        if self.public_base_url:
            return self.public_base_url
        return f"{self.scheme}://{request.header('host', 'localhost')}"

    def snapshot(self) -> _Snapshot:
        """The estate's Defender records for its current generation (rebuilt once per generation)."""
        generation = self.estate.generation
        with self.lock:
            if self._snapshot is not None and self._snapshot.generation == generation:
                return self._snapshot
            machines = sorted(self.estate.defender_machines(), key=lambda m: str(m.get("id")))
            by_name: dict[str, Row] = {}
            for machine in machines:
                name = str(machine.get("computerDnsName") or "").lower()
                if name and (
                    name not in by_name or _machine_preference(machine) > _machine_preference(by_name[name])
                ):
                    by_name[name] = machine
            alerts = sorted(self.estate.defender_alerts(), key=lambda a: str(a.get("id")))
            incidents = sorted(
                self.estate.defender_incidents(),
                key=lambda i: (str(i.get("createdTime") or ""), int(i.get("incidentId") or 0)),
                reverse=True,
            )
            self._snapshot = _Snapshot(
                generation=generation,
                machines=machines,
                machines_by_id={str(m.get("id")).lower(): m for m in machines},
                machines_by_name=by_name,
                alerts=[{**alert, "evidence": []} for alert in alerts],
                alerts_with_evidence=alerts,
                incidents=incidents,
            )
            return self._snapshot

    # -- authority ------------------------------------------------------------------------------------------

    def _check_tenant(self, tenant: str, *, discovery: bool) -> None:
        if tenant.lower() != self.tenant_id.lower():
            raise EntraError(
                400,
                "invalid_tenant" if discovery else "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
                "signing into the correct cloud. Check with your subscription administrator, this may happen "
                "if there are no active subscriptions for the tenant.",
            )

    def _discovery_v2(self, request: SimRequest, match: re.Match[str]) -> SimResponse:
        return self._discovery(request, match["tenant"], v2=True)

    def _discovery_v1(self, request: SimRequest, match: re.Match[str]) -> SimResponse:
        return self._discovery(request, match["tenant"], v2=False)

    def _discovery(self, request: SimRequest, tenant: str, *, v2: bool) -> SimResponse:
        try:
            self._check_tenant(tenant, discovery=True)
        except EntraError as error:
            return error.response()
        base = f"{self._base_url(request)}/{self.tenant_id}"
        version = "/v2.0" if v2 else ""
        document = {
            "token_endpoint": f"{base}/oauth2{version}/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery{version}/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0" if v2 else f"https://sts.windows.net/{self.tenant_id}/",
            "request_uri_parameter_supported": False,
            "authorization_endpoint": f"{base}/oauth2{version}/authorize",
            "device_authorization_endpoint": f"{base}/oauth2{version}/devicecode",
            "end_session_endpoint": f"{base}/oauth2{version}/logout",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        }
        return _json(document)

    def _keys(self, request: SimRequest, match: re.Match[str]) -> SimResponse:
        try:
            self._check_tenant(match["tenant"], discovery=True)
        except EntraError as error:
            return error.response()
        # Tokens are signed with a symmetric key that never leaves the simulator; there is nothing to publish.
        return _json({"keys": []})

    def _token_v2(self, request: SimRequest, match: re.Match[str]) -> SimResponse:
        return self._token(request, match["tenant"], v2=True)

    def _token_v1(self, request: SimRequest, match: re.Match[str]) -> SimResponse:
        return self._token(request, match["tenant"], v2=False)

    def _token(self, request: SimRequest, tenant: str, *, v2: bool) -> SimResponse:
        try:
            self._check_tenant(tenant, discovery=False)
            form = {
                key: values[0] for key, values in parse_qs(request.body.decode("utf-8", "replace")).items()
            }
            grant_type = self._required(form, "grant_type")
            if grant_type != "client_credentials":
                raise EntraError(
                    400,
                    "unsupported_grant_type",
                    70003,
                    f"The app requested an unsupported grant type '{grant_type}'.",
                )
            resource = self._resource(form) if v2 else self._required(form, "resource").rstrip("/")
            client_id = self._required(form, "client_id")
            client = self.clients.get(client_id)
            if client is None:
                raise EntraError(
                    400,
                    "unauthorized_client",
                    700016,
                    f"Application with identifier '{client_id}' was not found in the directory "
                    f"'{self.tenant_id}'. This can happen if the application has not been installed by the "
                    "administrator of the tenant or consented to by any user in the tenant. You may have "
                    "sent "
                    "your authentication request to the wrong tenant.",
                )
            secret = form.get("client_secret")
            if not secret:
                raise EntraError(
                    401,
                    "invalid_client",
                    7000218,
                    "The request body must contain the following parameter: 'client_assertion' or "
                    "'client_secret'.",
                )
            if not hmac.compare_digest(secret.encode(), client.secret.encode()):
                raise EntraError(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the "
                    "client "
                    f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
                )
        except EntraError as error:
            return error.response()
        canonical = MDE_RESOURCE if resource == MDE_RESOURCE_ALIAS else resource
        issued = int(self.clock())
        # Rounded up so a token is never shorter-lived than announced.
        expires = math.ceil(self.clock() + self.token_lifetime)
        claims: dict[str, Any] = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": issued,
            "nbf": issued,
            "exp": expires,
            "appid": client_id,
            "appidacr": "1",
            "idp": f"https://sts.windows.net/{self.tenant_id}/",
            "idtyp": "app",
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{client_id}")),
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{client_id}")),
            "tid": self.tenant_id,
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": "1.0",
        }
        roles = client.roles.get(canonical, ())
        if roles:
            # Entra leaves the claim out entirely when nothing was consented.
            claims["roles"] = list(roles)
        lifetime = self.token_lifetime
        body: dict[str, Any] = {
            "token_type": "Bearer",  # nosec B105 # a token type, not a secret
            "expires_in": lifetime if v2 else str(lifetime),
            "ext_expires_in": lifetime if v2 else str(lifetime),
            "access_token": self._sign(claims),
        }
        if not v2:
            body.update({"expires_on": str(expires), "not_before": str(issued), "resource": resource})
        return _json(body, headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    @staticmethod
    def _required(form: Mapping[str, str], name: str) -> str:
        value = form.get(name)
        if not value:
            raise EntraError(
                400,
                "invalid_request",
                900144,
                f"The request body must contain the following parameter: '{name}'.",
            )
        return value

    def _resource(self, form: Mapping[str, str]) -> str:
        scope_text = self._required(form, "scope")
        # msal may add OIDC scopes on some flows; they do not name a resource.
        scopes = [s for s in scope_text.split() if s not in ("openid", "profile", "offline_access", "email")]
        if len(scopes) != 1:
            raise EntraError(
                400,
                "invalid_scope",
                70011,
                f"The provided value for the input parameter 'scope' is not valid. The scope {scope_text} is "
                "not valid.",
            )
        scope = scopes[0]
        if not scope.endswith("/.default"):
            raise EntraError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have a "
                "scope "
                "value with /.default suffixed to the resource identifier (application ID URI).",
            )
        resource = scope[: -len("/.default")].rstrip("/")
        if resource not in (MDE_RESOURCE, MDE_RESOURCE_ALIAS, XDR_RESOURCE):
            raise EntraError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{self.tenant_id}. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant. You might have sent "
                "your authentication request to "
                "the wrong tenant.",
            )
        return resource

    def _sign(self, claims: Mapping[str, Any]) -> str:
        header = _b64url(orjson.dumps({"typ": "JWT", "alg": "HS256", "kid": "aria-sim"}))
        payload = _b64url(orjson.dumps(claims))
        signature = hmac.new(self._signing_key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64url(signature)}"

    def _verify(self, token: str) -> dict[str, Any] | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        expected = hmac.new(self._signing_key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(_b64url_decode(parts[2]), expected):
                return None
            claims = orjson.loads(_b64url_decode(parts[1]))
        except (binascii.Error, ValueError):
            return None
        return claims if isinstance(claims, dict) else None

    # -- API plumbing ---------------------------------------------------------------------------------------

    def _api(
        self, group: str, handler: Callable[[SimRequest, re.Match[str]], SimResponse]
    ) -> Callable[[SimRequest, re.Match[str]], SimResponse]:
        def guarded(request: SimRequest, match: re.Match[str]) -> SimResponse:
            try:
                self._authorize(request, group)
                refusal = self.limiter.acquire(group)
                if refusal is not None:
                    limit, seconds, wait = refusal
                    raise ApiError(
                        429,
                        "TooManyRequests",
                        f"API calls quota exceeded! Maximum admitted {limit} per {seconds:g} seconds. "
                        f"Try again in {wait} seconds.",
                        {"Retry-After": str(wait)},
                    )
                return handler(request, match)
            except ApiError as error:
                return error.response()

        return guarded

    def _authorize(self, request: SimRequest, group: str) -> None:
        authorization = request.header("authorization") or ""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "Unauthorized", "Authorization header is missing or is not a bearer token.")
        claims = self._verify(token.strip())
        if claims is None or claims.get("tid") != self.tenant_id:
            raise ApiError(401, "Unauthorized", "The access token is not valid.")
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= self.clock():
            raise ApiError(401, "Unauthorized", "The access token has expired.")
        resource, needed = (XDR_RESOURCE, "Incident") if group == "incidents" else (MDE_RESOURCE, "")
        audience = MDE_RESOURCE if claims.get("aud") == MDE_RESOURCE_ALIAS else claims.get("aud")
        if audience != resource:
            raise ApiError(
                401,
                "Unauthorized",
                f"The access token audience is not valid for this API; expected {resource}.",
            )
        needed = needed or {"machines": "Machine", "alerts": "Alert"}.get(group, "Vulnerability")
        accepted = (f"{needed}.Read.All", f"{needed}.ReadWrite.All")
        roles = claims.get("roles") or []
        if not any(role in roles for role in accepted):
            raise ApiError(
                403,
                "Forbidden",
                f"The application does not have any of the required application permissions "
                f"({', '.join(reversed(accepted))}) to access the resource.",
            )

    def _collection(
        self,
        request: SimRequest,
        rows: list[Row],
        *,
        group: str,
        context: str,
        properties: Mapping[str, str],
    ) -> SimResponse:
        """``$filter``, ``$skip`` and a clamped ``$top`` over a materialised, sorted collection."""
        top = _int_param(request, "$top")
        skip = _int_param(request, "$skip") or 0
        filter_text = request.arg("$filter")
        if filter_text is not None:
            predicate = parse_filter(filter_text, properties)
            rows = [row for row in rows if predicate(row)]
        cap = self.max_top[group]
        size = cap if top is None else min(top, cap)
        page = rows[skip : skip + size]
        body: dict[str, Any] = {"@odata.context": context, "value": page}
        # With $top the client pages itself; without it, a full page links to the next one.
        if top is None and skip + size < len(rows):
            body["@odata.nextLink"] = self._next_link(request, {"$skip": str(skip + size)})
        return _json(body)

    def _next_link(self, request: SimRequest, replace: Mapping[str, str]) -> str:
        params = [
            (key, value) for key, values in request.query.items() for value in values if key not in replace
        ]
        params.extend(replace.items())
        return f"{self._base_url(request)}{request.path}?{_query_string(params)}"

    # -- API endpoints --------------------------------------------------------------------------------------

    def _machines(self, request: SimRequest, match: re.Match[str]) -> SimResponse:
        snapshot = self.snapshot()
        if not snapshot.machines:
            raise ApiError(404, "NotFound", "No machines were found for this tenant.")
        return self._collection(
            request,
            snapshot.machines,
            group="machines",
            context=f"{_METADATA}#Machines",
            properties=MACHINE_FILTERS,
        )

    def _machine(self, request: SimRequest, match: re.Match[str]) -> SimResponse:
        snapshot = self.snapshot()
        key = match["machine"].lower()
        machine = snapshot.machines_by_id.get(key) or snapshot.machines_by_name.get(key)
        if machine is None:
            raise ApiError(404, "ResourceNotFound", f"Machine {match['machine']} was not found.")
        return _json({"@odata.context": f"{_METADATA}#Machines/$entity", **machine})

    def _alerts(self, request: SimRequest, match: re.Match[str]) -> SimResponse:
        snapshot = self.snapshot()
        expand = {part.strip() for part in (request.arg("$expand") or "").split(",") if part.strip()}
        if expand - {"evidence"}:
            raise _odata_error(f"Unsupported $expand value(s): {', '.join(sorted(expand - {'evidence'}))}.")
        rows = snapshot.alerts_with_evidence if expand else snapshot.alerts
        return self._collection(
            request, rows, group="alerts", context=f"{_METADATA}#Alerts", properties=ALERT_FILTERS
        )

    def _incidents(self, request: SimRequest, match: re.Match[str]) -> SimResponse:
        return self._collection(
            request,
            self.snapshot().incidents,
            group="incidents",
            context=f"{_XDR_METADATA}#Incidents",
            properties=INCIDENT_FILTERS,
        )

    def _machine_vulnerabilities(self, request: SimRequest, match: re.Match[str]) -> SimResponse:
        top = _int_param(request, "$top")
        skip = _int_param(request, "$skip") or 0
        filter_text = request.arg("$filter")
        predicate = (
            parse_filter(filter_text, MACHINE_VULNERABILITY_FILTERS) if filter_text is not None else None
        )
        cap = self.max_top["machine_vulnerabilities"]
        size = cap if top is None else min(top, cap)
        generation = self.estate.generation

        def open_rows() -> Iterator[Row]:
            for source in self.estate.defender_vulnerabilities():
                row = _to_machine_vulnerability(source)
                if row is not None and (predicate is None or predicate(row)):
                    yield row

        page, more = self._cursors.page(
            ("machinesVulnerabilities", generation, filter_text), skip, size, open_rows
        )
        body: dict[str, Any] = {"@odata.context": f"{_METADATA}#MachineVulnerabilities", "value": page}
        if top is None and more:
            body["@odata.nextLink"] = self._next_link(request, {"$skip": str(skip + size)})
        return _json(body)

    def _export_paging(self, request: SimRequest) -> tuple[int, int, bool, int]:
        """``(offset, page size, $top given, generation)``; a skiptoken pins the generation it began in."""
        if request.arg("$filter") is not None:
            raise _odata_error("This API does not support OData $filter.")
        top = _int_param(request, "$top", minimum=1)
        page_size = _int_param(request, "pageSize", minimum=1)
        size = min(top or page_size or self.export_page_size, self.export_max_page_size)
        generation = self.estate.generation
        token = request.arg("$skiptoken")
        if token is None:
            return 0, size, top is not None, generation
        try:
            token_generation, _, token_offset = _b64url_decode(token).decode().partition(":")
            started_in, offset = int(token_generation), int(token_offset)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ApiError(400, "InvalidInput", "The $skiptoken is not valid.") from None
        if started_in != generation or offset < 0:
            # The export snapshot this walk started on has been replaced; a mixed walk would be inconsistent.
            raise ApiError(400, "InvalidInput", "The $skiptoken has expired; start the export again.")
        return offset, size, top is not None, generation

    def _export_response(
        self, request: SimRequest, context: str, page: list[Row], more: bool, offset: int, generation: int
    ) -> SimResponse:
        body: dict[str, Any] = {"@odata.context": context, "value": page}
        if more:
            token = _b64url(f"{generation}:{offset + len(page)}".encode())
            body["@odata.nextLink"] = self._next_link(request, {"$skiptoken": token})
        return _json(body)

    def _vulnerability_export(self, request: SimRequest, match: re.Match[str]) -> SimResponse:
        offset, size, top_given, generation = self._export_paging(request)
        page, more = self._cursors.page(
            ("SoftwareVulnerabilitiesByMachine", generation),
            offset,
            size,
            self.estate.defender_vulnerabilities,
        )
        context = f"{_METADATA}#Collection(microsoft.windowsDefenderATP.api.AssetVulnerability)"
        return self._export_response(request, context, page, more and not top_given, offset, generation)

    def _vulnerability_changes(self, request: SimRequest, match: re.Match[str]) -> SimResponse:
        raw_since = request.arg("sinceTime")
        if not raw_since:
            raise ApiError(400, "MissingRequiredParameter", "The query parameter 'sinceTime' is required.")
        since = _parse_timestamp(raw_since)
        if since is None:
            raise ApiError(400, "InvalidInput", f"'{raw_since}' is not a valid ISO-8601 'sinceTime'.")
        now = self.estate.now
        if since < now - DELTA_MAX_AGE:
            raise ApiError(400, "InvalidInput", "'sinceTime' must be within the last 14 days.")
        offset, size, top_given, generation = self._export_paging(request)
        # The delta data is produced in 6-hour batches; the whole batch containing sinceTime is returned.
        midnight = since.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        window_start = midnight + DELTA_WINDOW * ((since - midnight) // DELTA_WINDOW)
        snapshot = self.snapshot()
        with self.lock:
            changes = snapshot.changes.get(window_start)
            if changes is None:
                changes = list(self.estate.defender_vulnerability_changes(window_start))
                snapshot.changes[window_start] = changes
        page = changes[offset : offset + size]
        more = offset + len(page) < len(changes) and not top_given
        context = f"{_METADATA}#Collection(microsoft.windowsDefenderATP.api.DeltaAssetVulnerability)"
        return self._export_response(request, context, page, more, offset, generation)


def start_ms_defender(
    estate: DefenderEstate, *, port: int = 0, cert_dir: Path | None = None, **options: Any
) -> SimulatorServer:
    """Start a :class:`MsDefenderSimulator` over HTTPS on loopback; trust it through ``server.ca_file``.

    The returned server's ``base_url`` is both the ``authorityHost`` and the ``apiBaseUrl`` of the
    ``ms-defender`` integration (the authority is ``f"{base_url}/{tenantId}"``).
    """
    app = MsDefenderSimulator(estate, **options)
    server = SimulatorServer(app, tls=True, port=port, cert_dir=cert_dir)
    if app.public_base_url is None:
        app.public_base_url = server.base_url
    return server.start()
