"""Incidents from ITSM and EDR tools, and how they fall on business services."""

from __future__ import annotations

import pandas as pd

from aria_sync.analysis._context import DbArg, OneOrMany, Query, scoped_read

# Statuses that mean an incident needs no more work, across ServiceNow and Defender vocabularies.
CLOSED_INCIDENT_STATUSES = ("resolved", "closed", "canceled", "cancelled", "redirected")


def open_incident_sql(prefix: str = "") -> str:
    """SQL true for an open incident; ``prefix`` is a table alias with its dot."""
    closed = ", ".join(f"'{s}'" for s in CLOSED_INCIDENT_STATUSES)
    return f"{prefix}resolved_at IS NULL AND lower(coalesce({prefix}status, '')) NOT IN ({closed})"


OPEN_INCIDENT_SQL = open_incident_sql()
# Incidents with the ARIA service they belong to: the linked service id, else the CMDB record
# the vendor named (same installation), so an incident counts before correlation has linked it.
RESOLVED_INCIDENTS_CTE = """WITH resolved AS (
    SELECT i.*, coalesce(i.service_id, sv.service_id) AS effective_service_id
    FROM incidents i
    LEFT JOIN services sv ON sv.installation_id = i.installation_id AND sv.source_id = i.source_service_id
    WHERE NOT i.is_deleted)
"""

_INCIDENT_COLUMNS = (
    "incident_id, number, title, severity, status, assigned_to, opened_at, resolved_at, "
    f"({OPEN_INCIDENT_SQL}) AS is_open, asset_id, effective_service_id AS service_id, integration_key, "
    "installation_id, source_id"
)


def _incidents_query(status: OneOrMany, service_id: str | None, open_only: bool) -> Query:
    query = Query(
        _INCIDENT_COLUMNS,
        f"({RESOLVED_INCIDENTS_CTE} SELECT * FROM resolved)",
        order_by="opened_at DESC NULLS LAST, incident_id",
    )
    query.equals("status", "status", status)
    if service_id is not None:
        query.add("effective_service_id = $service_id", service_id=service_id)
    if open_only:
        query.add(OPEN_INCIDENT_SQL)
    return query


def incidents(
    status: OneOrMany = None,
    service_id: str | None = None,
    *,
    open_only: bool = False,
    limit: int | None = None,
    offset: int = 0,
    db: DbArg = None,
    org: str | None = None,
) -> pd.DataFrame:
    """Incidents, newest first, with ``is_open`` and the ARIA ``service_id`` they affect.

    Example::

        >>> aria.incidents(status=["New", "In Progress"], limit=50)  # doctest: +SKIP
    """
    query = _incidents_query(status, service_id, open_only)
    with scoped_read(db, org) as conn:
        return query.frame(conn, limit, offset)


def count_incidents(
    status: OneOrMany = None,
    service_id: str | None = None,
    *,
    open_only: bool = False,
    db: DbArg = None,
    org: str | None = None,
) -> int:
    """How many incidents :func:`incidents` returns with the same filters.

    Example::

        >>> aria.count_incidents(open_only=True)  # doctest: +SKIP
    """
    query = _incidents_query(status, service_id, open_only)
    with scoped_read(db, org) as conn:
        return query.count(conn)


def incidents_by_service(*, db: DbArg = None, org: str | None = None) -> pd.DataFrame:
    """Incident counts per business service, the busiest first; incidents with no service form one row.

    Columns: service_id, service_name, criticality, incidents, open_incidents, critical, high,
    last_opened_at.

    Example::

        >>> aria.incidents_by_service().head(10)  # doctest: +SKIP
    """
    sql = f"""{RESOLVED_INCIDENTS_CTE}
        SELECT r.effective_service_id AS service_id,
               coalesce(s.name, CASE WHEN r.effective_service_id IS NULL THEN '(no service)'
                                     ELSE r.effective_service_id END) AS service_name,
               s.criticality,
               count(*)::BIGINT AS incidents,
               count(*) FILTER (WHERE {open_incident_sql("r.")})::BIGINT AS open_incidents,
               count(*) FILTER (WHERE lower(r.severity) = 'critical')::BIGINT AS critical,
               count(*) FILTER (WHERE lower(r.severity) = 'high')::BIGINT AS high,
               max(r.opened_at) AS last_opened_at
        FROM resolved r LEFT JOIN services s ON s.service_id = r.effective_service_id
        GROUP BY ALL
        ORDER BY open_incidents DESC, incidents DESC, service_name"""
    with scoped_read(db, org) as conn:
        return conn.df(sql)
