"""Vulnerability findings, their age against remediation SLAs, and the SLA summary by severity."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pandas as pd

from aria_sync.analysis._context import DbArg, OneOrMany, Query, as_of_or_now, scoped_read
from aria_sync.errors import UsageError

DEFAULT_SLA_DAYS: Mapping[str, int] = {"critical": 15, "high": 30, "medium": 90, "low": 180}
OPEN_STATES = ("open", "reopened")


def severity_rank_sql(column: str) -> str:
    """Sort key putting critical first and unknown severities last."""
    return (
        f"CASE lower({column}) WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 "
        "WHEN 'low' THEN 3 WHEN 'info' THEN 4 ELSE 5 END"
    )


_FINDING_COLUMNS = (
    "finding_id, asset_id, title, severity, cvss_score, exploit_score, exploit_available, cve_ids, "
    "vendor_vuln_id, state, port, protocol, first_found, last_found, fixed_at, integration_key, "
    "installation_id, source_id, source_asset_id"
)
_FINDING_ORDER = "{rank}, {p}cvss_score DESC NULLS LAST, {p}last_found DESC NULLS LAST, {p}finding_id"


def _order(prefix: str = "") -> str:
    return _FINDING_ORDER.format(rank=severity_rank_sql(f"{prefix}severity"), p=prefix)


def _vulnerabilities_query(
    severity: OneOrMany, state: OneOrMany, integration: OneOrMany, asset_id: str | None
) -> Query:
    query = Query(_FINDING_COLUMNS, "vulnerabilities", where=["NOT is_deleted"], order_by=_order())
    query.equals("severity", "severity", severity)
    query.equals("state", "state", state)
    query.equals("integration_key", "integration", integration)
    if asset_id is not None:
        query.add("asset_id = $asset_id", asset_id=asset_id)
    return query


def _with_asset_names(page_sql: str, order: str) -> str:
    # Names are joined onto the page only, so a page of a 2M-row table never joins the whole table.
    return (
        f"SELECT p.*, a.name AS asset_name FROM ({page_sql}) p "
        f"LEFT JOIN assets a ON a.asset_id = p.asset_id ORDER BY {order}"
    )


def vulnerabilities(
    severity: OneOrMany = None,
    state: OneOrMany = None,
    integration: OneOrMany = None,
    asset_id: str | None = None,
    *,
    limit: int | None = None,
    offset: int = 0,
    db: DbArg = None,
    org: str | None = None,
) -> pd.DataFrame:
    """Vulnerability findings, most severe first, with the affected asset's name.

    Each filter takes one value or a list: ``severity="critical"``, ``state=["open", "reopened"]``,
    ``integration="tenable"``.

    Example::

        >>> aria.vulnerabilities(severity=["critical", "high"], state="open", limit=100)  # doctest: +SKIP
    """
    query = _vulnerabilities_query(severity, state, integration, asset_id)
    sql, params = query.page_sql(limit, offset)
    with scoped_read(db, org) as conn:
        return conn.df(_with_asset_names(sql, _order("p.")), params)


def count_vulnerabilities(
    severity: OneOrMany = None,
    state: OneOrMany = None,
    integration: OneOrMany = None,
    asset_id: str | None = None,
    *,
    db: DbArg = None,
    org: str | None = None,
) -> int:
    """How many findings :func:`vulnerabilities` returns with the same filters.

    Example::

        >>> aria.count_vulnerabilities(severity="critical", state="open")  # doctest: +SKIP
    """
    query = _vulnerabilities_query(severity, state, integration, asset_id)
    with scoped_read(db, org) as conn:
        return query.count(conn)


def _sla_params(sla_days: Mapping[str, int]) -> dict[str, Any]:
    keys, values = [], []
    for severity, days in sla_days.items():
        if not isinstance(days, int) or isinstance(days, bool) or days < 0:
            raise UsageError(f"SLA for {severity!r} must be a non-negative number of days, not {days!r}")
        keys.append(str(severity).lower())
        values.append(days)
    return {"sla_keys": keys, "sla_values": values}


_AGING_CTE = """WITH sla AS (
        SELECT unnest($sla_keys::VARCHAR[]) AS severity, unnest($sla_values::INTEGER[]) AS sla_days),
    aged AS (
        SELECT v.*, floor((epoch($as_of::TIMESTAMPTZ) - epoch(v.first_found)) / 86400)::INTEGER AS age_days,
               sla.sla_days
        FROM vulnerabilities v LEFT JOIN sla ON sla.severity = lower(v.severity)
        WHERE NOT v.is_deleted AND lower(v.state) IN ('open', 'reopened'))
"""


def vulnerability_aging(
    sla_days: Mapping[str, int] = DEFAULT_SLA_DAYS,
    *,
    severity: OneOrMany = None,
    breached_only: bool = False,
    as_of: dt.datetime | None = None,
    limit: int | None = None,
    offset: int = 0,
    db: DbArg = None,
    org: str | None = None,
) -> pd.DataFrame:
    """Open findings with ``age_days`` (whole days since first found), ``sla_days``, ``days_left`` and
    ``breached``, the most overdue first. A severity without an SLA (``info``) is never breached.

    Example::

        >>> aria.vulnerability_aging({"critical": 7, "high": 30}, breached_only=True)  # doctest: +SKIP
    """
    query = Query(
        "finding_id, asset_id, title, severity, cvss_score, cve_ids, vendor_vuln_id, state, first_found, "
        "last_found, age_days, sla_days, (sla_days - age_days) AS days_left, "
        "coalesce(age_days > sla_days, false) AS breached, integration_key, installation_id",
        "aged",
        params={**_sla_params(sla_days), "as_of": as_of_or_now(as_of)},
        order_by="breached DESC, days_left ASC NULLS LAST, age_days DESC NULLS LAST, finding_id",
    )
    query.equals("severity", "severity", severity)
    if breached_only:
        query.add("age_days > sla_days")
    sql, params = query.page_sql(limit, offset)
    with scoped_read(db, org) as conn:
        return conn.df(_AGING_CTE + sql, params)


def sla_summary(
    sla_days: Mapping[str, int] = DEFAULT_SLA_DAYS,
    *,
    as_of: dt.datetime | None = None,
    db: DbArg = None,
    org: str | None = None,
) -> pd.DataFrame:
    """Open findings per severity against the SLA: open, breached, breach_rate, mean and max age.

    Example::

        >>> aria.sla_summary()  # doctest: +SKIP
           severity  sla_days  open_findings  breached  breach_rate  mean_age_days  max_age_days
        0  critical        15             12         4        0.333           11.2            40
    """
    sql = (
        _AGING_CTE
        + f"""SELECT lower(severity) AS severity, any_value(sla_days) AS sla_days,
                  count(*)::BIGINT AS open_findings,
                  count(*) FILTER (WHERE age_days > sla_days)::BIGINT AS breached,
                  round(count(*) FILTER (WHERE age_days > sla_days) / count(*), 3) AS breach_rate,
                  round(avg(age_days), 1) AS mean_age_days, max(age_days) AS max_age_days
           FROM aged GROUP BY lower(severity) ORDER BY {severity_rank_sql("lower(severity)")}"""
    )
    params = {**_sla_params(sla_days), "as_of": as_of_or_now(as_of)}
    with scoped_read(db, org) as conn:
        return conn.df(sql, params)
