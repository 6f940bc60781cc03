"""Operations: installation health, sync-job history, what the last sync changed, the activity log."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pandas as pd

from aria_sync.analysis._context import DbArg, OneOrMany, Query, installation_filter, scope_for, scoped_read

if TYPE_CHECKING:
    from aria_sync.audit import ChainCheck

COUNT_FIELDS = ("fetched", "inserted", "updated", "unchanged", "removed", "rejected")
_HEALTH_COLUMNS = (
    "installation_id", "name", "integration_key", "health", "status", "enabled", "schedule", "next_run_at",
    "last_sync_at", "last_sync_status", "last_success_at", "freshness_hours", "success_rate", "recent_jobs",
    "consecutive_failures", "last_error",
)  # fmt: skip
_FINISHED_STATUSES = ("succeeded", "partial", "failed", "cancelled", "interrupted")


def sync_health(*, db: DbArg = None, org: str | None = None) -> pd.DataFrame:
    """One row per installation: health (healthy, degraded, failing, stale, never synced, credentials
    invalid), freshness, recent success rate and the last error.

    Example::

        >>> aria.sync_health()[["name", "health", "freshness_hours"]]  # doctest: +SKIP
    """
    from aria_sync.health import installation_health

    scope = scope_for(db, org)
    rows = installation_health(scope.db, scope.org)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=list(_HEALTH_COLUMNS))
    ordered = [c for c in _HEALTH_COLUMNS if c in frame.columns]
    return frame[ordered + [c for c in frame.columns if c not in ordered]]


def _stream_counts(streams: Any) -> dict[str, dict[str, Any]]:
    if isinstance(streams, str) and streams:
        try:
            parsed = json.loads(streams)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return streams if isinstance(streams, dict) else {}


def sync_jobs(
    limit: int | None = 50,
    *,
    offset: int = 0,
    installation: str | None = None,
    status: OneOrMany = None,
    db: DbArg = None,
    org: str | None = None,
) -> pd.DataFrame:
    """Sync jobs, newest first, with per-job totals of the stream counts (fetched, inserted, ...).

    ``installation`` is an installation id or name. The per-stream counts stay in ``streams`` (JSON).

    Example::

        >>> aria.sync_jobs(10, status="failed")[["installation_name", "started_at", "error"]]  # doctest: +SKIP
    """
    query = Query(
        "job_id, installation_id, installation_name, integration_key, trigger, status, full_refresh, "
        "requested_by, created_at, started_at, finished_at, duration_seconds, error, streams",
        "integration_sync_jobs",
        order_by="coalesce(started_at, created_at) DESC NULLS LAST, job_id",
    )
    query.equals("status", "status", status)
    with scoped_read(db, org) as conn:
        installation_id = installation_filter(conn, installation)
        if installation_id is not None:
            query.add("installation_id = $installation_id", installation_id=installation_id)
        frame = query.frame(conn, limit, offset)
    parsed = [_stream_counts(value) for value in frame["streams"]]
    for name in COUNT_FIELDS:
        frame[name] = pd.Series(
            [sum(int(c.get(name) or 0) for c in streams.values()) for streams in parsed],
            index=frame.index,
            dtype="int64",
        )
    return frame


def changes_since_previous_sync(
    installation: str | None = None, *, db: DbArg = None, org: str | None = None
) -> pd.DataFrame:
    """What the latest finished sync of each installation (or of one) changed, one row per stream.

    Columns: installation_id, installation_name, integration_key, job_id, job_status, finished_at,
    stream, stream_status, fetched, inserted, updated, unchanged, removed, rejected.

    Example::

        >>> aria.changes_since_previous_sync("Tenable prod")  # doctest: +SKIP
    """
    statuses = ", ".join(f"'{s}'" for s in _FINISHED_STATUSES)
    query = Query(
        "installation_id, installation_name, integration_key, job_id, status, finished_at, streams",
        "integration_sync_jobs",
        where=[f"status IN ({statuses})"],
        qualify="row_number() OVER (PARTITION BY installation_id "
        "ORDER BY coalesce(finished_at, started_at, created_at) DESC, job_id DESC) = 1",
        order_by="installation_name, installation_id",
    )
    with scoped_read(db, org) as conn:
        installation_id = installation_filter(conn, installation)
        if installation_id is not None:
            query.add("installation_id = $installation_id", installation_id=installation_id)
        sql, params = query.page_sql(None, 0)
        jobs = conn.rows(sql, params)
    records = []
    for job in jobs:
        for stream, counts in sorted(_stream_counts(job["streams"]).items()):
            record: dict[str, Any] = {
                "installation_id": job["installation_id"],
                "installation_name": job["installation_name"],
                "integration_key": job["integration_key"],
                "job_id": job["job_id"],
                "job_status": job["status"],
                "finished_at": job["finished_at"],
                "stream": stream,
                "stream_status": counts.get("status"),
            }
            record.update({name: int(counts.get(name) or 0) for name in COUNT_FIELDS})
            records.append(record)
    columns = [
        "installation_id", "installation_name", "integration_key", "job_id", "job_status", "finished_at",
        "stream", "stream_status", *COUNT_FIELDS,
    ]  # fmt: skip
    return pd.DataFrame.from_records(records, columns=columns)


def activity_log(
    limit: int | None = 100,
    *,
    offset: int = 0,
    action: OneOrMany = None,
    actor: str | None = None,
    db: DbArg = None,
    org: str | None = None,
) -> pd.DataFrame:
    """The activity (audit) log, newest first: who did what to which target, with which outcome.

    Example::

        >>> aria.activity_log(20, action="installation.install")  # doctest: +SKIP
    """
    query = Query(
        "seq, occurred_at, actor, actor_role, action, target_type, target_id, outcome, details",
        "integration_activity_logs",
        order_by="seq DESC",
    )
    query.equals("action", "action", action)
    if actor is not None:
        query.add("actor = $actor", actor=actor)
    with scoped_read(db, org) as conn:
        return query.frame(conn, limit, offset)


def count_activity_log(
    *, action: OneOrMany = None, actor: str | None = None, db: DbArg = None, org: str | None = None
) -> int:
    """How many entries :func:`activity_log` can page through with the same filters.

    Example::

        >>> aria.count_activity_log()  # doctest: +SKIP
    """
    query = Query("1", "integration_activity_logs")
    query.equals("action", "action", action)
    if actor is not None:
        query.add("actor = $actor", actor=actor)
    with scoped_read(db, org) as conn:
        return query.count(conn)


def verify_activity_log(*, db: DbArg = None, org: str | None = None) -> ChainCheck:
    """Check the activity log's hash chain: ``ok``, entries ``checked``, ``first_broken_seq``, ``reason``.

    Example::

        >>> check = aria.verify_activity_log()
        >>> check.ok  # doctest: +SKIP
        True
    """
    from aria_sync.audit import verify_rows

    with scoped_read(db, org) as conn:
        rows = conn.rows(
            "SELECT seq, log_id, occurred_at, actor, actor_role, action, target_type, target_id, outcome, "
            "details, prev_hash, hash FROM integration_activity_logs ORDER BY seq"
        )
        org_id = conn.org
    return verify_rows(org_id, rows)


def _rejected_query(stream: OneOrMany) -> Query:
    query = Query(
        "r.rejected_at, r.installation_id, i.name AS installation_name, i.integration_key, r.job_id, r.stream, "
        "r.source_table, r.source_id, r.reason, r.raw",
        "integration_rejected_records r "
        "LEFT JOIN integration_installations i ON i.installation_id = r.installation_id",
        order_by="r.rejected_at DESC NULLS LAST, r.source_id",
    )
    query.equals("r.stream", "stream", stream)
    return query


def rejected_records(
    limit: int | None = 100,
    *,
    offset: int = 0,
    installation: str | None = None,
    stream: OneOrMany = None,
    db: DbArg = None,
    org: str | None = None,
) -> pd.DataFrame:
    """Quarantined vendor records, newest first, with the reason each was refused and its raw JSON.

    Example::

        >>> aria.rejected_records(installation="ServiceNow prod")[["stream", "reason"]]  # doctest: +SKIP
    """
    query = _rejected_query(stream)
    with scoped_read(db, org) as conn:
        installation_id = installation_filter(conn, installation)
        if installation_id is not None:
            query.add("r.installation_id = $installation_id", installation_id=installation_id)
        return query.frame(conn, limit, offset)


def count_rejected_records(
    *, installation: str | None = None, stream: OneOrMany = None, db: DbArg = None, org: str | None = None
) -> int:
    """How many quarantined records :func:`rejected_records` can page through.

    Example::

        >>> aria.count_rejected_records()  # doctest: +SKIP
    """
    query = _rejected_query(stream)
    with scoped_read(db, org) as conn:
        installation_id = installation_filter(conn, installation)
        if installation_id is not None:
            query.add("r.installation_id = $installation_id", installation_id=installation_id)
        return query.count(conn)


def data_quality_findings(
    *,
    kind: OneOrMany = None,
    integration: OneOrMany = None,
    limit: int | None = None,
    offset: int = 0,
    db: DbArg = None,
    org: str | None = None,
) -> pd.DataFrame:
    """Identifier problems correlation found (shared serials, placeholder MACs, ...), largest first.

    Example::

        >>> aria.data_quality_findings(kind="duplicate_serial")  # doctest: +SKIP
    """
    query = Query(
        "kind, integration_key, installation_id, source_table, identifier, value, record_count, detail, "
        "detected_at",
        "data_quality_findings",
        order_by="record_count DESC NULLS LAST, kind, identifier, value",
    )
    query.equals("kind", "kind", kind)
    query.equals("integration_key", "integration", integration)
    with scoped_read(db, org) as conn:
        return query.frame(conn, limit, offset)
