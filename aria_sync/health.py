"""Installation health: last sync, success rate, freshness and the last error in plain words."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aria_sync.store import Database, OrgScope, utcnow

STALE_AFTER = dt.timedelta(hours=24)


def installation_health(db: Database, org: str, *, window: int = 20) -> list[dict[str, Any]]:
    """One dict per installation, with ``health`` one of healthy, degraded, failing, stale, never synced."""
    with OrgScope(db, org).read() as conn:
        rows = conn.rows(
            """WITH recent AS (
                   SELECT installation_id, status,
                          row_number() OVER (PARTITION BY installation_id ORDER BY started_at DESC) AS n
                   FROM integration_sync_jobs WHERE status IN ('succeeded','partial','failed','interrupted'))
               SELECT i.installation_id, i.name, i.integration_key, i.status, i.enabled,
                      i.schedule_expr AS schedule, i.next_run_at, i.last_sync_at, i.last_sync_status,
                      i.last_success_at, i.last_error, i.consecutive_failures,
                      count(r.status) AS recent_jobs,
                      count(r.status) FILTER (WHERE r.status IN ('succeeded', 'partial')) AS recent_ok
               FROM integration_installations i
               LEFT JOIN recent r ON r.installation_id = i.installation_id AND r.n <= ?
               GROUP BY ALL ORDER BY i.name""",
            [window],
        )
    now = utcnow()
    for row in rows:
        jobs, ok = int(row["recent_jobs"]), int(row["recent_ok"])
        row["success_rate"] = round(ok / jobs, 3) if jobs else None
        last_success = row["last_success_at"]
        row["freshness_hours"] = (
            round((now - last_success).total_seconds() / 3600, 1) if last_success else None
        )
        row["health"] = _health(row, now)
    return rows


def _health(row: dict[str, Any], now: dt.datetime) -> str:
    if row["last_sync_at"] is None:
        return "never synced"
    if row["status"] == "credentials_invalid":
        return "credentials invalid"
    if row["last_sync_status"] in ("failed", "interrupted"):
        return "failing"
    if row["last_success_at"] is not None and now - row["last_success_at"] > STALE_AFTER:
        return "stale"
    if row["last_sync_status"] == "partial":
        return "degraded"
    return "healthy"
