"""Tenable Vulnerability Management (tenable.io) simulator: exports, asset lists, scans.

Serves the synthetic estate the way cloud.tenable.com does, including the behaviour connectors get
wrong against the real service:

* ``X-ApiKeys`` authentication (with or without a space after ``;``), 401 for bad keys and 403 on the
  export endpoints for a key pair without the export privilege (:data:`RESTRICTED_KEYS`).
* Asynchronous vulnerability and asset (v1) exports whose job state advances one step per status
  poll: ``QUEUED`` -> ``PROCESSING`` (a few chunks become available per poll, out of order, with
  gaps where chunks are empty or failed) -> ``FINISHED``; injectable ``ERROR``, stuck jobs, failed,
  garbage and once-truncated chunks, chunk expiry (404), duplicate-export 409, the concurrent-export
  limit and the per-minute limiter, both answering 429 with ``retry-after`` and an nginx HTML body.
* The export filter rules: the silent 30-day window, default states ``OPEN``+``REOPENED``, ``since``
  exclusivity, ``state`` required with ``first_found``/``last_found``/``last_fixed``, ``num_assets``
  clamping and the asset ``chunk_size`` range check.
* ``GET /assets``, ``/workbenches/assets`` and ``/workbenches/vulnerabilities`` capped at 5 000 rows,
  ``GET /scans`` with folders, scans and timestamp.

Export results are snapshotted when the job is created, like the real service; chunk bodies are
serialised once and kept in memory up to a budget, then spilled to a private temporary directory.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import hmac
import math
import random
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from aria_sync.simulators.framework import (
    Fault,
    SimRequest,
    SimResponse,
    SimulatorServer,
    VendorApp,
    json_response,
    raw_json_response,
)

RESTRICTED_KEYS = {"accessKey": "restricted-access-key", "secretKey": "restricted-secret-key"}
"""A key pair that authenticates but lacks the export privilege (403 on every export endpoint)."""

LIST_CAP = 5000
"""``/assets`` and the workbench endpoints return at most this many rows; bulk data needs exports."""

ACTIVE_STATUSES = frozenset({"QUEUED", "PROCESSING"})
VULN_STATES = ("OPEN", "REOPENED", "FIXED")
SEVERITIES = ("info", "low", "medium", "high", "critical")
SEVERITY_IDS = {name: index for index, name in enumerate(SEVERITIES)}
DEFAULT_WINDOW = dt.timedelta(days=30)
LISTED_FINISHED_FOR_SECONDS = 3 * 86400
MAX_LISTED_EXPORTS = 1000

# Filters that bound findings in time; without any of them Tenable silently applies a 30-day window.
TIME_FILTERS = (
    "since",
    "first_found",
    "first_seen",
    "last_found",
    "last_seen",
    "last_fixed",
    "indexed_at",
    "resurfaced_date",
)
SINCE_EXCLUSIVE = ("first_found", "first_seen", "last_found", "last_seen", "last_fixed")
STATE_REQUIRED_WITH = ("first_found", "first_seen", "last_found", "last_seen", "last_fixed")
# filter name -> record field compared "on or after"
VULN_TIME_FIELDS = {
    "first_found": "first_found",
    "first_seen": "first_found",
    "last_found": "last_found",
    "last_seen": "last_found",
    "last_fixed": "last_fixed",
    "indexed_at": "indexed",
    "resurfaced_date": "resurfaced_date",
}
# asset export date filter -> record field compared "later than"
ASSET_TIME_FIELDS = {
    "created_at": "created_at",
    "updated_at": "updated_at",
    "deleted_at": "deleted_at",
    "terminated_at": "terminated_at",
    "first_scan_time": "first_scan_time",
    "last_authenticated_scan_time": "last_authenticated_scan_date",
    "last_assessed": "last_scan_time",
}
ASSET_CHUNK_SIZE_RANGE = (100, 10_000)
VULN_NUM_ASSETS_RANGE = (50, 5000)

NGINX_429_BODY = (
    b"<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n"
    b"<center><h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
INTERNAL_ERROR_BODY = {
    "statusCode": 500,
    "error": "Internal Server Error",
    "message": "An internal server error occurred. Please wait a moment and try your request again.",
}
SCAN_FOLDERS = [
    {"id": 2, "name": "Trash", "type": "trash", "default_tag": 0, "custom": 0, "unread_count": 0},
    {"id": 3, "name": "My Scans", "type": "main", "default_tag": 1, "custom": 0, "unread_count": 0},
]


class TenableEstate(Protocol):
    """The part of the synthetic estate this simulator reads."""

    seed: int
    generation: int
    now: dt.datetime
    credentials: dict[str, dict[str, str]]

    def tenable_assets(self) -> list[dict[str, Any]]: ...
    def tenable_findings(self) -> Iterator[dict[str, Any]]: ...
    def tenable_finding_count(self) -> int: ...
    def tenable_scans(self) -> list[dict[str, Any]]: ...


class FilterError(ValueError):
    """An export request the real API answers with 400."""


# ---------------------------------------------------------------------------------------------
# Timestamps: records carry ISO-8601 with milliseconds and Z, which sorts lexically; filters are
# epoch seconds. Everything is compared as that canonical string to avoid parsing 2M timestamps.


def iso_ms(moment: dt.datetime) -> str:
    """``2024-05-20T03:07:02.456Z`` for a tz-aware datetime."""
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def epoch_key(seconds: float) -> str:
    return iso_ms(dt.datetime.fromtimestamp(seconds, dt.UTC))


def timestamp_key(value: Any) -> str | None:
    """A record timestamp (ISO string in any precision, or epoch seconds) as the canonical string."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, str):
        if len(value) == 24 and value[19] == "." and value[23] == "Z":
            return value
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return iso_ms(parsed)
    if isinstance(value, int | float):
        # epoch milliseconds show up in some Tenable fields; seconds elsewhere
        return epoch_key(value / 1000 if value > 10**11 else value)
    return None


# ---------------------------------------------------------------------------------------------
# Record shaping


def _compact(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        out = {}
        for key, item in value.items():
            item_kind = type(item)
            if item_kind is dict or item_kind is list:
                item = _compact(item)
                if not item:
                    continue
            elif item is None or (item_kind is str and not item):
                continue
            out[key] = item
        return out
    if kind is list:
        items = []
        for item in value:
            item_kind = type(item)
            if item_kind is dict or item_kind is list:
                item = _compact(item)
                if not item:
                    continue
            elif item is None or (item_kind is str and not item):
                continue
            items.append(item)
        return items
    return value


def compact_record(record: dict[str, Any], memo: dict[tuple[str, Any], tuple[Any, Any]]) -> dict[str, Any]:
    """The record without empty attributes (null, "", [], {}), as Tenable writes export chunks.

    Findings of one asset repeat the same ``asset``, ``plugin`` and ``scan`` sub-objects. Their
    compacted form is memoised under (field, id) and reused only when the new sub-object is equal to
    the one it was made from: a dict comparison runs in C, the compaction in Python.
    """
    out: dict[str, Any] = {}
    for key, value in record.items():
        kind = type(value)
        if kind is dict:
            identity = value.get("uuid") or value.get("id")
            if identity is None:
                value = _compact(value)
            else:
                cached = memo.get((key, identity))
                if cached is None or cached[0] != value:
                    cached = (value, _compact(value))
                    memo[(key, identity)] = cached
                value = cached[1]
            if not value:
                continue
        elif kind is list:
            value = _compact(value)
            if not value:
                continue
        elif value is None or (kind is str and not value):
            continue
        out[key] = value
    return out


def list_view_asset(record: dict[str, Any]) -> dict[str, Any]:
    """An asset-export record reshaped as ``GET /assets`` returns it (singular names holding arrays)."""
    out: dict[str, Any] = {"id": record.get("id"), "has_agent": bool(record.get("has_agent", False))}
    for key in ("last_seen", "last_scan_target"):
        if record.get(key):
            out[key] = record[key]
    out["sources"] = [s.get("name") for s in record.get("sources") or [] if isinstance(s, dict)]
    for export_name, list_name in (
        ("ipv4s", "ipv4"),
        ("ipv6s", "ipv6"),
        ("fqdns", "fqdn"),
        ("mac_addresses", "mac_address"),
        ("netbios_names", "netbios_name"),
        ("operating_systems", "operating_system"),
        ("hostnames", "hostname"),
        ("agent_names", "agent_name"),
        ("aws_ec2_name", "aws_ec2_name"),
    ):
        out[list_name] = list(record.get(export_name) or [])
    for key in ("acr_score", "exposure_score"):
        raw = record.get(key)
        if raw not in (None, ""):
            with contextlib.suppress(TypeError, ValueError):
                out[key] = int(float(raw))
    return out


# ---------------------------------------------------------------------------------------------
# Filters


def _epoch_filter(filters: dict[str, Any], name: str) -> int | None:
    if name not in filters:
        return None
    value = filters[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FilterError(f"filters.{name} must be a non-negative integer (epoch seconds)")
    return value


def _string_list(filters: dict[str, Any], name: str) -> list[str] | None:
    if name not in filters:
        return None
    value = filters[name]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise FilterError(f"filters.{name} must be an array of strings")
    return value


def _bool_filter(filters: dict[str, Any], name: str) -> bool | None:
    if name not in filters:
        return None
    value = filters[name]
    if not isinstance(value, bool):
        raise FilterError(f"filters.{name} must be a boolean")
    return value


@dataclass
class VulnFilter:
    """The effective meaning of a vulnerability export's ``filters``."""

    states: frozenset[str]
    since_key: str | None = None
    window_key: str | None = None  # the implicit 30-day window when no time filter was sent
    on_or_after: dict[str, str] = field(default_factory=dict)  # record field -> canonical timestamp
    severities: frozenset[str] | None = None
    plugin_ids: frozenset[int] | None = None
    plugin_families: frozenset[str] | None = None
    cve_ids: frozenset[str] | None = None
    sources: frozenset[str] | None = None
    modification_types: frozenset[str] | None = None

    @classmethod
    def parse(cls, filters: dict[str, Any], now: dt.datetime) -> tuple[VulnFilter, dict[str, Any]]:
        """Validates like the real endpoint; returns the filter and the normalised filters to echo."""
        echoed = dict(filters)
        present_time = [name for name in TIME_FILTERS if name in filters]
        since = _epoch_filter(filters, "since")
        if since is not None and any(name in filters for name in SINCE_EXCLUSIVE):
            raise FilterError(
                "The 'since' filter cannot be combined with first_found, first_seen, last_found, "
                "last_seen or last_fixed"
            )
        raw_states = _string_list(filters, "state")
        if raw_states is None and any(name in filters for name in STATE_REQUIRED_WITH):
            raise FilterError("filters.state is required when first_found, last_found or last_fixed is used")
        if raw_states is not None:
            states = [state.upper() for state in raw_states]
            unknown = sorted(set(states) - set(VULN_STATES))
            if unknown or not states:
                raise FilterError(f"filters.state must be a non-empty subset of {list(VULN_STATES)}")
            echoed["state"] = states
            effective_states = frozenset(states)
        elif since is not None:
            # without `state`, `since` returns OPEN/REOPENED seen since and FIXED fixed since
            effective_states = frozenset(VULN_STATES)
        else:
            effective_states = frozenset({"OPEN", "REOPENED"})
        result = cls(states=effective_states)
        if since is not None:
            result.since_key = epoch_key(since)
        for name, record_field in VULN_TIME_FIELDS.items():
            value = _epoch_filter(filters, name)
            if value is not None:
                key = epoch_key(value)
                previous = result.on_or_after.get(record_field)
                result.on_or_after[record_field] = max(key, previous) if previous else key
        if not present_time:
            result.window_key = iso_ms(now - DEFAULT_WINDOW)
        severities = _string_list(filters, "severity")
        if severities is not None:
            lowered = [severity.lower() for severity in severities]
            if set(lowered) - set(SEVERITIES):
                raise FilterError(f"filters.severity must be a subset of {list(SEVERITIES)}")
            echoed["severity"] = lowered
            result.severities = frozenset(lowered)
        if "plugin_id" in filters:
            plugin_ids = filters["plugin_id"]
            if not isinstance(plugin_ids, list) or not all(
                isinstance(item, int) and not isinstance(item, bool) for item in plugin_ids
            ):
                raise FilterError("filters.plugin_id must be an array of integers")
            result.plugin_ids = frozenset(plugin_ids)
        families = _string_list(filters, "plugin_family")
        result.plugin_families = frozenset(families) if families is not None else None
        cves = _string_list(filters, "cve_id")
        if cves is not None:
            if len(cves) > 200:
                raise FilterError("filters.cve_id accepts at most 200 values")
            result.cve_ids = frozenset(cve.upper() for cve in cves)
        sources = _string_list(filters, "source")
        result.sources = frozenset(s.upper() for s in sources) if sources is not None else None
        modifications = _string_list(filters, "severity_modification_type")
        if modifications is not None:
            result.modification_types = frozenset(m.upper() for m in modifications)
        return result, echoed

    def matches(self, finding: dict[str, Any]) -> bool:
        state = str(finding.get("state") or "OPEN").upper()
        if state not in self.states:
            return False
        last_found = timestamp_key(finding.get("last_found"))
        last_fixed = timestamp_key(finding.get("last_fixed"))
        if self.window_key is not None and not (
            (last_found is not None and last_found >= self.window_key)
            or (last_fixed is not None and last_fixed >= self.window_key)
        ):
            return False
        if self.since_key is not None:
            moment = last_fixed if state == "FIXED" else last_found
            if moment is None or moment < self.since_key:
                return False
        for record_field, bound in self.on_or_after.items():
            if record_field == "last_found":
                moment = last_found
            elif record_field == "last_fixed":
                moment = last_fixed
            else:
                moment = timestamp_key(finding.get(record_field))
            if moment is None or moment < bound:
                return False
        if self.severities is not None and str(finding.get("severity", "")).lower() not in self.severities:
            return False
        plugin = finding.get("plugin") or {}
        if self.plugin_ids is not None and plugin.get("id") not in self.plugin_ids:
            return False
        if self.plugin_families is not None and plugin.get("family") not in self.plugin_families:
            return False
        if self.cve_ids is not None and not self.cve_ids.intersection(plugin.get("cve") or ()):
            return False
        if self.sources is not None and str(finding.get("source", "")).upper() not in self.sources:
            return False
        return not (
            self.modification_types is not None
            and str(finding.get("severity_modification_type", "NONE")).upper() not in self.modification_types
        )


@dataclass
class AssetFilter:
    """The effective meaning of a v1 asset export's ``filters`` (dates mean "later than")."""

    later_than: dict[str, str] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=dict)
    sources: frozenset[str] | None = None
    network_id: str | None = None
    has_servicenow_sysid: bool | None = None

    @classmethod
    def parse(cls, filters: dict[str, Any]) -> AssetFilter:
        result = cls()
        for name, record_field in ASSET_TIME_FIELDS.items():
            value = _epoch_filter(filters, name)
            if value is not None:
                result.later_than[record_field] = epoch_key(value)
        for name in ("is_deleted", "is_terminated", "is_licensed", "has_plugin_results"):
            flag = _bool_filter(filters, name)
            if flag is not None:
                result.flags[name] = flag
        sources = _string_list(filters, "sources")
        result.sources = frozenset(s.upper() for s in sources) if sources is not None else None
        if "network_id" in filters:
            if not isinstance(filters["network_id"], str):
                raise FilterError("filters.network_id must be a string")
            result.network_id = filters["network_id"]
        result.has_servicenow_sysid = _bool_filter(filters, "servicenow_sysid")
        return result

    def matches(self, asset: dict[str, Any]) -> bool:
        for record_field, bound in self.later_than.items():
            moment = timestamp_key(asset.get(record_field))
            if moment is None or moment <= bound:
                return False
        for name, wanted in self.flags.items():
            if name == "is_deleted":
                actual = bool(asset.get("deleted_at"))
            elif name == "is_terminated":
                actual = bool(asset.get("terminated_at"))
            elif name == "is_licensed":
                actual = bool(asset.get("is_licensed", True))
            else:
                actual = bool(asset.get("has_plugin_results", False))
            if actual != wanted:
                return False
        if self.sources is not None:
            names = {
                str(s.get("name", "")).upper() for s in asset.get("sources") or [] if isinstance(s, dict)
            }
            if not names & self.sources:
                return False
        if self.network_id is not None and asset.get("network_id") != self.network_id:
            return False
        return self.has_servicenow_sysid is None or bool(asset.get("servicenow_sysid")) == (
            self.has_servicenow_sysid
        )


# ---------------------------------------------------------------------------------------------
# Chunk storage


class ChunkStore:
    """Serialised chunk bodies: in memory up to ``memory_limit_bytes``, then in a temporary directory."""

    def __init__(self, memory_limit_bytes: int) -> None:
        self.memory_limit_bytes = memory_limit_bytes
        self._memory: dict[tuple[str, int], bytes] = {}
        self._files: dict[tuple[str, int], Path] = {}
        self._memory_bytes = 0
        self._directory: Path | None = None
        self._lock = threading.Lock()

    def put(self, job_uuid: str, chunk_id: int, body: bytes) -> None:
        with self._lock:
            if self._memory_bytes + len(body) <= self.memory_limit_bytes:
                self._memory[(job_uuid, chunk_id)] = body
                self._memory_bytes += len(body)
                return
            if self._directory is None:
                self._directory = Path(tempfile.mkdtemp(prefix="aria-sim-tenable-"))
                atexit.register(shutil.rmtree, self._directory, True)
            path = self._directory / f"{job_uuid}-{chunk_id}.json"
        path.write_bytes(body)
        with self._lock:
            self._files[(job_uuid, chunk_id)] = path

    def get(self, job_uuid: str, chunk_id: int) -> bytes | None:
        with self._lock:
            body = self._memory.get((job_uuid, chunk_id))
            path = self._files.get((job_uuid, chunk_id))
        if body is not None:
            return body
        return path.read_bytes() if path is not None else None

    def spilled_files(self) -> int:
        """How many chunk bodies currently live on disk."""
        with self._lock:
            return len(self._files)

    def discard(self, job_uuid: str, chunk_id: int) -> None:
        with self._lock:
            body = self._memory.pop((job_uuid, chunk_id), None)
            if body is not None:
                self._memory_bytes -= len(body)
            path = self._files.pop((job_uuid, chunk_id), None)
        if path is not None:
            path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Export jobs


@dataclass
class ExportJob:
    """One export job as the simulator tracks it (``sim.exports[uuid]``)."""

    uuid: str
    kind: str  # "vulns" | "assets"
    filters: dict[str, Any]  # as echoed in status (state upper-cased, ...)
    request: dict[str, Any]  # the request body as received
    created_ms: int
    created_clock: float
    chunk_size: int  # num_assets_per_chunk for vulns, chunk_size for assets
    status: str = "QUEUED"
    reason: str | None = None
    polls: int = 0
    chunk_ids: list[int] = field(default_factory=list)  # every non-empty chunk, in id order
    record_counts: dict[int, int] = field(default_factory=dict)
    empty_chunk_ids: list[int] = field(default_factory=list)
    available: list[int] = field(default_factory=list)
    available_at: dict[int, float] = field(default_factory=dict)
    failed: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    downloads: Counter[int] = field(default_factory=Counter)
    build_done: bool = False
    purged: bool = False  # chunk bodies dropped to bound memory/disk (downloads answer 404)
    finished_clock: float | None = None
    duplicate_key: str = ""
    total_records: int = 0

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


def _tenable_error(status: int, error: str, message: str) -> SimResponse:
    return json_response({"statusCode": status, "error": error, "message": message}, status)


def bad_request(message: str) -> SimResponse:
    return _tenable_error(400, "Bad Request", message)


def not_found(message: str = "The requested resource was not found.") -> SimResponse:
    return _tenable_error(404, "Not Found", message)


def internal_error_fault(path: str = ".*", times: int = 1, skip: int = 0) -> Fault:
    """A :class:`Fault` answering Tenable's documented 500 JSON body."""
    return Fault(
        kind="status",
        path=path,
        status=500,
        headers={"Content-Type": "application/json; charset=utf-8"},
        body=orjson.dumps(INTERNAL_ERROR_BODY),
        times=times,
        skip=skip,
    )


def too_many_requests(retry_after: int) -> SimResponse:
    return SimResponse(
        429, NGINX_429_BODY, {"Content-Type": "text/html", "retry-after": str(max(1, retry_after))}
    )


class TenableSimulator(VendorApp):
    """The tenable.io API subset aria_sync uses, served from a synthetic estate.

    Options (keyword arguments):
        polls_per_stage: status polls per state-machine step (QUEUED lasts this many polls, each
            PROCESSING step releases ``chunks_per_poll`` chunks).
        chunks_per_poll: chunks that become available per PROCESSING step.
        fail_chunks: chunk ids that fail (listed in ``chunks_failed``; the job still FINISHES, with a reason).
        truncate_chunks_once: chunk ids whose first download is cut short (not valid JSON).
        garbage_chunks: chunk ids whose body is never valid JSON.
        stuck: jobs stay PROCESSING forever.
        error_jobs: jobs end in ERROR after the QUEUED stage.
        chunk_expiry_seconds: a chunk answers 404 this long after it became available.
        max_concurrent_exports: QUEUED/PROCESSING jobs (vulns and assets together) before 429.
        requests_per_minute: per access key; ``None`` means unlimited; over it -> 429 with retry-after.
        concurrency_retry_after: retry-after seconds sent with a concurrency 429.
        background_build_threshold: exports of estates with more findings than this are built in a
            background thread so ``POST`` answers at once; smaller ones are built synchronously.
        chunk_memory_limit_bytes: chunk bodies beyond this are spilled to a temporary directory.
        keep_finished_exports: chunk bodies of older finished, cancelled or failed jobs are dropped
            (their downloads answer 404, as expired chunks do) so long benchmark runs stay bounded.
        clock: monotonic seconds; tests inject a fake one for expiry and rate limits.
    """

    name = "tenable"

    def __init__(
        self,
        estate: TenableEstate,
        *,
        polls_per_stage: int = 1,
        chunks_per_poll: int = 3,
        fail_chunks: Iterable[int] = (),
        truncate_chunks_once: Iterable[int] = (),
        garbage_chunks: Iterable[int] = (),
        stuck: bool = False,
        error_jobs: bool = False,
        chunk_expiry_seconds: float = 86400.0,
        max_concurrent_exports: int = 10,
        requests_per_minute: int | None = None,
        concurrency_retry_after: int = 30,
        background_build_threshold: int = 200_000,
        chunk_memory_limit_bytes: int = 512 * 1024 * 1024,
        keep_finished_exports: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.estate = estate
        self.polls_per_stage = max(1, polls_per_stage)
        self.chunks_per_poll = max(1, chunks_per_poll)
        self.fail_chunks = set(fail_chunks)
        self.truncate_chunks_once = set(truncate_chunks_once)
        self.garbage_chunks = set(garbage_chunks)
        self.stuck = stuck
        self.error_jobs = error_jobs
        self.chunk_expiry_seconds = chunk_expiry_seconds
        self.max_concurrent_exports = max_concurrent_exports
        self.requests_per_minute = requests_per_minute
        self.concurrency_retry_after = concurrency_retry_after
        self.background_build_threshold = background_build_threshold
        self.clock = clock
        self.keep_finished_exports = keep_finished_exports
        self.exports: dict[str, ExportJob] = {}
        self.counters: Counter[str] = Counter()
        self.chunks = ChunkStore(chunk_memory_limit_bytes)
        self._request_times: dict[str, deque[float]] = {}
        self._export_sequence = 0
        self._asset_cache: tuple[int, list[dict[str, Any]], list[dict[str, Any]]] | None = None
        self._workbench_cache: dict[tuple[int, int], bytes] = {}

        self.route("POST", r"/vulns/export", self._create_vuln_export)
        self.route("GET", r"/vulns/export/status", self._list_vuln_exports)
        self.route("GET", r"/vulns/export/(?P<uuid>[0-9a-fA-F-]+)/status", self._job_status)
        self.route("GET", r"/vulns/export/(?P<uuid>[0-9a-fA-F-]+)/chunks/(?P<chunk>\d+)", self._download)
        self.route("POST", r"/vulns/export/(?P<uuid>[0-9a-fA-F-]+)/cancel", self._cancel)
        self.route("POST", r"/assets/export", self._create_asset_export)
        self.route("GET", r"/assets/export/status", self._list_asset_exports)
        self.route("GET", r"/assets/export/(?P<uuid>[0-9a-fA-F-]+)/status", self._job_status)
        self.route("GET", r"/assets/export/(?P<uuid>[0-9a-fA-F-]+)/chunks/(?P<chunk>\d+)", self._download)
        self.route("POST", r"/assets/export/(?P<uuid>[0-9a-fA-F-]+)/cancel", self._cancel)
        self.route("GET", r"/assets", self._list_assets)
        self.route("GET", r"/assets/(?P<uuid>[0-9a-fA-F-]+)", self._asset_detail)
        self.route("GET", r"/workbenches/assets", self._workbench_assets)
        self.route("GET", r"/workbenches/vulnerabilities", self._workbench_vulnerabilities)
        self.route("GET", r"/scans", self._list_scans)
        self.route("GET", r"/scans/(?P<scan>[^/]+)/latest-status", self._scan_latest_status)

    # -- protocol plumbing ---------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        keys = self.estate.credentials["tenable"]
        return {"accessKey": keys["accessKey"], "secretKey": keys["secretKey"]}

    def handle(self, request: SimRequest) -> SimResponse:
        self._count("requests")
        keys = parse_api_keys(request.header("x-apikeys"))
        limited = self._rate_limited(keys[0] if keys else "")
        if limited is not None:
            return limited
        role = self._role(keys)
        if role is None:
            self._count("unauthorized")
            return _tenable_error(401, "Unauthorized", "Invalid credentials.")
        if role == "restricted" and "/export" in request.path:
            self._count("forbidden")
            return _tenable_error(403, "Forbidden", "You do not have permission to perform this action.")
        return super().handle(request)

    def not_found(self, request: SimRequest) -> SimResponse:
        return not_found()

    def _count(self, name: str) -> None:
        with self.lock:
            self.counters[name] += 1

    def _role(self, keys: tuple[str, str] | None) -> str | None:
        if keys is None:
            return None
        full = self.estate.credentials["tenable"]
        if _same(keys, (full["accessKey"], full["secretKey"])):
            return "full"
        if _same(keys, (RESTRICTED_KEYS["accessKey"], RESTRICTED_KEYS["secretKey"])):
            return "restricted"
        return None

    def _rate_limited(self, access_key: str) -> SimResponse | None:
        if self.requests_per_minute is None:
            return None
        now = self.clock()
        with self.lock:
            window = self._request_times.setdefault(access_key, deque())
            while window and window[0] <= now - 60.0:
                window.popleft()
            if len(window) >= self.requests_per_minute:
                self._count("rate_limited")
                return too_many_requests(math.ceil(window[0] + 60.0 - now))
            window.append(now)
        return None

    def _next_uuid(self) -> str:
        self._export_sequence += 1
        rng = random.Random(f"tenable-export-{self.estate.seed}-{self._export_sequence}")
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    # -- export creation -----------------------------------------------------------------------

    def _request_body(self, request: SimRequest) -> dict[str, Any]:
        try:
            body = orjson.loads(request.body) if request.body else {}
        except orjson.JSONDecodeError as exc:
            raise FilterError("Request body is not valid JSON") from exc
        if not isinstance(body, dict):
            raise FilterError("Request body must be a JSON object")
        filters = body.get("filters", {})
        if filters is None:
            filters = {}
        if not isinstance(filters, dict):
            raise FilterError("filters must be an object")
        body["filters"] = filters
        return body

    def _create_vuln_export(self, request: SimRequest, _match: Any) -> SimResponse:
        try:
            body = self._request_body(request)
            vuln_filter, echoed = VulnFilter.parse(body["filters"], self.estate.now)
            num_assets = body.get("num_assets", VULN_NUM_ASSETS_RANGE[0])
            if isinstance(num_assets, bool) or not isinstance(num_assets, int):
                raise FilterError("num_assets must be an integer")
        except FilterError as exc:
            self._count("bad_requests")
            return bad_request(str(exc))
        low, high = VULN_NUM_ASSETS_RANGE
        num_assets = min(max(num_assets, low), high)
        duplicate_key = orjson.dumps(
            {
                "filters": echoed,
                "num_assets": num_assets,
                "include_unlicensed": bool(body.get("include_unlicensed", False)),
            },
            option=orjson.OPT_SORT_KEYS,
        ).decode()
        with self.lock:
            for job in self.exports.values():
                if job.kind == "vulns" and job.active and job.duplicate_key == duplicate_key:
                    self._count("conflicts")
                    return json_response(
                        {
                            "active_job_id": job.uuid,
                            "failure_reason": "Duplicate export not allowed. An export with the same "
                            "filters is already in progress.",
                        },
                        409,
                    )
            limited = self._concurrency_limited()
            if limited is not None:
                return limited
            job = self._new_job("vulns", echoed, body, num_assets, duplicate_key)
        background = self.estate.tenable_finding_count() > self.background_build_threshold
        self._start_build(job, lambda: self._build_vuln_chunks(job, vuln_filter), background)
        return json_response({"export_uuid": job.uuid})

    def _create_asset_export(self, request: SimRequest, _match: Any) -> SimResponse:
        try:
            body = self._request_body(request)
            chunk_size = body.get("chunk_size", 1000)
            low, high = ASSET_CHUNK_SIZE_RANGE
            if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
                raise FilterError("chunk_size must be an integer")
            if not low <= chunk_size <= high:
                raise FilterError(f"chunk_size must be between {low} and {high}")
            asset_filter = AssetFilter.parse(body["filters"])
        except FilterError as exc:
            self._count("bad_requests")
            return bad_request(str(exc))
        duplicate_key = orjson.dumps(
            {"filters": body["filters"], "chunk_size": chunk_size}, option=orjson.OPT_SORT_KEYS
        ).decode()
        with self.lock:
            # an identical running asset export is cancelled and replaced (documented behaviour)
            for job in self.exports.values():
                if job.kind == "assets" and job.active and job.duplicate_key == duplicate_key:
                    self._cancel_job(job)
                    self._count("replaced")
            limited = self._concurrency_limited()
            if limited is not None:
                return limited
            job = self._new_job("assets", dict(body["filters"]), body, chunk_size, duplicate_key)
        self._start_build(job, lambda: self._build_asset_chunks(job, asset_filter), False)
        return json_response({"export_uuid": job.uuid})

    def _concurrency_limited(self) -> SimResponse | None:
        active = sum(1 for job in self.exports.values() if job.active)
        if active >= self.max_concurrent_exports:
            self._count("concurrency_limited")
            return too_many_requests(self.concurrency_retry_after)
        return None

    def _purge_old_chunks(self) -> None:
        done = [job for job in self.exports.values() if not job.active and job.build_done and not job.purged]
        done.sort(key=lambda job: job.created_clock, reverse=True)
        for job in done[self.keep_finished_exports :]:
            for chunk_id in job.chunk_ids:
                self.chunks.discard(job.uuid, chunk_id)
            job.purged = True

    def _new_job(
        self, kind: str, filters: dict[str, Any], body: dict[str, Any], chunk_size: int, duplicate_key: str
    ) -> ExportJob:
        job = ExportJob(
            uuid=self._next_uuid(),
            kind=kind,
            filters=filters,
            request=body,
            created_ms=int(time.time() * 1000),
            created_clock=self.clock(),
            chunk_size=chunk_size,
            duplicate_key=duplicate_key,
        )
        self.exports[job.uuid] = job
        self._purge_old_chunks()
        self._count(f"{kind}_exports_created")
        return job

    def _start_build(
        self, job: ExportJob, build: Callable[[], Iterator[tuple[int, bytes | None]]], background: bool
    ) -> None:
        def run() -> None:
            try:
                for chunk_id, body in build():
                    if job.status == "CANCELLED":
                        break  # nobody will download the rest
                    if body is None:
                        with self.lock:
                            job.empty_chunk_ids.append(chunk_id)
                        continue
                    self.chunks.put(job.uuid, chunk_id, body)
                    with self.lock:
                        job.chunk_ids.append(chunk_id)
            except Exception as exc:  # a broken estate shows up as an ERROR job, as a real outage would
                with self.lock:
                    job.status = "ERROR"
                    job.reason = f"Export could not be completed: {type(exc).__name__}"
            finally:
                with self.lock:
                    job.build_done = True

        if background:
            threading.Thread(target=run, name=f"tenable-export-{job.uuid}", daemon=True).start()
        else:
            run()

    def _build_vuln_chunks(
        self, job: ExportJob, vuln_filter: VulnFilter
    ) -> Iterator[tuple[int, bytes | None]]:
        """Chunks of ``num_assets`` assets' findings each, in estate asset order.

        A batch of assets without a matching finding is an empty chunk: it keeps its id but is never
        listed, so available ids have gaps as on the real service.
        """
        chunk_id = 0
        batch: list[dict[str, Any]] = []
        assets_in_batch = 0
        current_asset: Any = object()
        memo: dict[tuple[str, Any], tuple[Any, Any]] = {}
        for finding in self.estate.tenable_findings():
            asset = finding.get("asset") or {}
            asset_id = asset.get("uuid")
            if asset_id != current_asset:
                current_asset = asset_id
                if assets_in_batch == job.chunk_size:
                    chunk_id += 1
                    yield chunk_id, self._serialise(job, batch)
                    batch, assets_in_batch, memo = [], 0, {}
                assets_in_batch += 1
            if vuln_filter.matches(finding):
                batch.append(compact_record(finding, memo))
        if assets_in_batch:
            chunk_id += 1
            yield chunk_id, self._serialise(job, batch)

    def _build_asset_chunks(
        self, job: ExportJob, asset_filter: AssetFilter
    ) -> Iterator[tuple[int, bytes | None]]:
        compacted, _ = self._assets()
        selected = [asset for asset in compacted if asset_filter.matches(asset)]
        for index in range(0, len(selected), job.chunk_size):
            yield index // job.chunk_size + 1, self._serialise(job, selected[index : index + job.chunk_size])

    def _serialise(self, job: ExportJob, records: list[dict[str, Any]]) -> bytes | None:
        if not records:
            return None
        job.total_records += len(records)
        return orjson.dumps(records)

    def _assets(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Compacted export records and ``/assets`` records, cached per estate generation."""
        generation = self.estate.generation
        with self.lock:
            cache = self._asset_cache
        if cache is not None and cache[0] == generation:
            return cache[1], cache[2]
        raw = self.estate.tenable_assets()
        compacted = [_compact(asset) for asset in raw]
        live = [
            list_view_asset(asset)
            for asset in raw
            if not asset.get("deleted_at") and not asset.get("terminated_at")
        ]
        with self.lock:
            self._asset_cache = (generation, compacted, live)
        return compacted, live

    # -- job progress ---------------------------------------------------------------------------

    def _advance(self, job: ExportJob) -> None:
        """One status poll's worth of progress."""
        if not job.active:
            return
        job.polls += 1
        if job.polls <= self.polls_per_stage:
            return  # still QUEUED
        if self.error_jobs:
            job.status = "ERROR"
            job.reason = "Export request timed out."
            job.finished_clock = self.clock()
            return
        job.status = "PROCESSING"
        if (job.polls - self.polls_per_stage - 1) % self.polls_per_stage != 0:
            return
        # chunks are processed in parallel upstream: release a few of the ready ones in a shuffled order
        processed = set(job.available) | set(job.failed)
        ready = [chunk_id for chunk_id in job.chunk_ids if chunk_id not in processed]
        random.Random(f"{job.uuid}-{job.polls}").shuffle(ready)
        now = self.clock()
        for chunk_id in ready[: self.chunks_per_poll]:
            if chunk_id in self.fail_chunks:
                job.failed.append(chunk_id)
                self.chunks.discard(job.uuid, chunk_id)
            else:
                job.available.append(chunk_id)
                job.available_at[chunk_id] = now
        if not job.build_done or len(ready) > self.chunks_per_poll or self.stuck:
            return
        job.status = "FINISHED"
        job.finished_clock = now
        if job.failed:
            total = len(job.chunk_ids)
            job.reason = f"{len(job.failed)} of {total} chunks failed to process. Please retry the export."

    def _status_payload(self, job: ExportJob) -> dict[str, Any]:
        total_chunks = len(job.chunk_ids) if job.status != "QUEUED" else 0
        available = sorted(job.available)
        if job.kind == "assets":
            asset_payload: dict[str, Any] = {"status": job.status, "chunks_available": available}
            if job.failed:
                asset_payload["chunks_failed"] = sorted(job.failed)
            if job.cancelled:
                asset_payload["chunks_cancelled"] = sorted(job.cancelled)
            if job.reason:
                asset_payload["reason"] = job.reason
            return asset_payload
        payload: dict[str, Any] = {"uuid": job.uuid, "status": job.status}
        if job.reason:
            payload["reason"] = job.reason
        payload.update(
            {
                "chunks_available": available,
                "chunks_failed": sorted(job.failed),
                "chunks_cancelled": sorted(job.cancelled),
                "total_chunks": total_chunks,
                "chunks_available_count": len(available),
                "empty_chunks_count": len(job.empty_chunk_ids) if job.status != "QUEUED" else 0,
                "finished_chunks": len(available) + len(job.failed),
                "filters": job.filters,
                "num_assets_per_chunk": job.chunk_size,
                "created": job.created_ms,
            }
        )
        return payload

    def _job(self, request: SimRequest, match: Any) -> ExportJob | None:
        job = self.exports.get(match["uuid"])
        kind = "vulns" if request.path.startswith("/vulns/") else "assets"
        return job if job is not None and job.kind == kind else None

    def _job_status(self, request: SimRequest, match: Any) -> SimResponse:
        with self.lock:
            job = self._job(request, match)
            if job is None:
                return not_found("Export not found.")
            self._count("status_polls")
            self._advance(job)
            return json_response(self._status_payload(job))

    def _cancel(self, request: SimRequest, match: Any) -> SimResponse:
        with self.lock:
            job = self._job(request, match)
            if job is None:
                return not_found("Export not found.")
            self._cancel_job(job)
            return json_response({"status": job.status})

    def _cancel_job(self, job: ExportJob) -> None:
        if not job.active:
            return
        job.status = "CANCELLED"
        job.finished_clock = self.clock()
        job.cancelled = [cid for cid in job.chunk_ids if cid not in job.available and cid not in job.failed]
        self._count("cancelled")

    def _download(self, request: SimRequest, match: Any) -> SimResponse:
        chunk_id = int(match["chunk"])
        with self.lock:
            job = self._job(request, match)
            if job is None:
                return not_found("Export not found.")
            if chunk_id not in job.available:
                if job.active and chunk_id not in job.failed:
                    self._count("chunks_not_ready")
                    return bad_request(f"Chunk {chunk_id} is not ready yet.")
                return not_found(f"Chunk {chunk_id} not found.")
            if job.purged or self.clock() - job.available_at[chunk_id] > self.chunk_expiry_seconds:
                self._count("chunks_expired")
                self.chunks.discard(job.uuid, chunk_id)
                return not_found(f"Chunk {chunk_id} has expired.")
            job.downloads[chunk_id] += 1
            first_download = job.downloads[chunk_id] == 1
            self._count("chunk_downloads")
        body = self.chunks.get(job.uuid, chunk_id)
        if body is None:
            return not_found(f"Chunk {chunk_id} has expired.")
        if chunk_id in self.garbage_chunks:
            body = b'[{"finding_id": <<garbage>>' + body[: len(body) // 3]
        elif chunk_id in self.truncate_chunks_once and first_download:
            body = body[: max(1, len(body) // 2)]
        return SimResponse(200, body, {"Content-Type": "application/octet-stream"})

    def _list_exports(self, kind: str) -> SimResponse:
        now = self.clock()
        with self.lock:
            jobs = [
                job
                for job in self.exports.values()
                if job.kind == kind
                and (job.finished_clock is None or now - job.finished_clock <= LISTED_FINISHED_FOR_SECONDS)
            ]
            jobs.sort(key=lambda job: job.created_clock, reverse=True)
            entries = []
            for job in jobs[:MAX_LISTED_EXPORTS]:
                entry = {
                    "uuid": job.uuid,
                    "status": job.status,
                    "total_chunks": len(job.chunk_ids) if job.status != "QUEUED" else 0,
                    "chunks_available": sorted(job.available),
                    "chunks_failed": sorted(job.failed),
                    "chunks_cancelled": sorted(job.cancelled),
                    "filters": job.filters,
                    "created": job.created_ms,
                }
                entry["num_assets_per_chunk" if kind == "vulns" else "chunk_size"] = job.chunk_size
                entries.append(entry)
        return json_response({"exports": entries})

    def _list_vuln_exports(self, _request: SimRequest, _match: Any) -> SimResponse:
        return self._list_exports("vulns")

    def _list_asset_exports(self, _request: SimRequest, _match: Any) -> SimResponse:
        return self._list_exports("assets")

    # -- lists ---------------------------------------------------------------------------------

    def _list_assets(self, _request: SimRequest, _match: Any) -> SimResponse:
        _, live = self._assets()
        return json_response({"assets": live[:LIST_CAP], "total": len(live)})

    def _asset_detail(self, _request: SimRequest, match: Any) -> SimResponse:
        _, live = self._assets()
        for asset in live:
            if asset.get("id") == match["uuid"]:
                return json_response(asset)
        return not_found("Asset not found.")

    def _workbench_assets(self, request: SimRequest, _match: Any) -> SimResponse:
        _, live = self._assets()
        days = _int_arg(request, "date_range", 0)
        if days > 0:
            cutoff = iso_ms(self.estate.now - dt.timedelta(days=days))
            live = [a for a in live if (timestamp_key(a.get("last_seen")) or "") >= cutoff]
        return json_response({"assets": live[:LIST_CAP], "total": len(live)})

    def _workbench_vulnerabilities(self, request: SimRequest, _match: Any) -> SimResponse:
        days = min(max(_int_arg(request, "date_range", 30), 1), 450)
        key = (self.estate.generation, days)
        with self.lock:
            cached = self._workbench_cache.get(key)
        if cached is None:
            cached = self._aggregate_vulnerabilities(days)
            with self.lock:
                self._workbench_cache[key] = cached
        return raw_json_response(cached)

    def _aggregate_vulnerabilities(self, days: int) -> bytes:
        cutoff = iso_ms(self.estate.now - dt.timedelta(days=days))
        rows: dict[int, dict[str, Any]] = {}
        assets: set[Any] = set()
        total = 0
        for finding in self.estate.tenable_findings():
            state = str(finding.get("state", "OPEN")).upper()
            if state == "FIXED" or (timestamp_key(finding.get("last_found")) or "") < cutoff:
                continue
            plugin = finding.get("plugin") or {}
            plugin_id = int(plugin.get("id", 0))
            severity = int(finding.get("severity_id", SEVERITY_IDS.get(str(finding.get("severity")), 0)))
            row = rows.get(plugin_id)
            if row is None:
                row = rows[plugin_id] = {
                    "count": 0,
                    "plugin_family": plugin.get("family"),
                    "plugin_id": plugin_id,
                    "plugin_name": plugin.get("name"),
                    "vulnerability_state": "Active",
                    "vpr_score": (plugin.get("vpr") or {}).get("score"),
                    "severity": severity,
                    "accepted_count": 0,
                    "recasted_count": 0,
                    "counts_by_severity": Counter(),
                    "cvss_base_score": plugin.get("cvss_base_score"),
                    "cvss3_base_score": plugin.get("cvss3_base_score"),
                }
            row["count"] += 1
            row["counts_by_severity"][severity] += 1
            modification = str(finding.get("severity_modification_type", "NONE")).upper()
            row["accepted_count"] += modification == "ACCEPTED"
            row["recasted_count"] += modification == "RECASTED"
            if state == "REOPENED":
                row["vulnerability_state"] = "Resurfaced"
            assets.add((finding.get("asset") or {}).get("uuid"))
            total += 1
        ordered = sorted(rows.values(), key=lambda r: (-r["severity"], -r["count"], r["plugin_id"]))[
            :LIST_CAP
        ]
        for row in ordered:
            row["counts_by_severity"] = [
                {"count": count, "value": value} for value, count in sorted(row["counts_by_severity"].items())
            ]
        return orjson.dumps(
            {"vulnerabilities": ordered, "total_vulnerability_count": total, "total_asset_count": len(assets)}
        )

    def _list_scans(self, request: SimRequest, _match: Any) -> SimResponse:
        scans = list(self.estate.tenable_scans())
        folder_id = request.arg("folder_id")
        if folder_id:
            scans = [scan for scan in scans if str(scan.get("folder_id", "3")) == folder_id]
        modified_after = _int_arg(request, "last_modification_date", 0)
        if modified_after:
            scans = [scan for scan in scans if int(scan.get("last_modification_date") or 0) > modified_after]
        return json_response(
            {"folders": SCAN_FOLDERS, "scans": scans, "timestamp": int(self.estate.now.timestamp())}
        )

    def _scan_latest_status(self, _request: SimRequest, match: Any) -> SimResponse:
        for scan in self.estate.tenable_scans():
            if str(scan.get("id")) == match["scan"] or scan.get("uuid") == match["scan"]:
                return json_response({"status": scan.get("status", "completed")})
        return not_found("Scan not found.")


def parse_api_keys(header: str | None) -> tuple[str, str] | None:
    """``accessKey=<a>;secretKey=<s>`` (a space after ``;`` is allowed) as ``(access, secret)``."""
    if not header:
        return None
    parts: dict[str, str] = {}
    for piece in header.split(";"):
        name, sep, value = piece.strip().partition("=")
        if sep:
            parts[name.strip()] = value.strip()
    access, secret = parts.get("accessKey"), parts.get("secretKey")
    if not access or not secret:
        return None
    return access, secret


def _same(given: tuple[str, str], expected: tuple[str, str]) -> bool:
    access_ok = hmac.compare_digest(given[0].encode(), expected[0].encode())
    secret_ok = hmac.compare_digest(given[1].encode(), expected[1].encode())
    return access_ok and secret_ok


def _int_arg(request: SimRequest, name: str, default: int) -> int:
    raw = request.arg(name)
    try:
        return int(raw) if raw not in (None, "") else default
    except ValueError:
        return default


def start_tenable(estate: TenableEstate, **options: Any) -> SimulatorServer:
    """Starts a :class:`TenableSimulator` on loopback over plain HTTP and returns the running server."""
    return SimulatorServer(TenableSimulator(estate, **options)).start()
