"""Cross-source questions: which assets lack a control, and where the tools disagree about an asset.

A source's role comes from its catalogue category (CMDB, EDR, vulnerability scanner), so a new
EDR or scanner integration takes part without changes here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from aria_sync.analysis._context import (
    CMDB_CATEGORY,
    EDR_CATEGORY,
    RETIRED_STATUSES,
    SCANNER_CATEGORY,
    DbArg,
    OneOrMany,
    Query,
    as_of_or_now,
    scoped_read,
)
from aria_sync.errors import UsageError

GAP_NO_EDR = "in CMDB, no EDR"
GAP_NOT_IN_CMDB = "EDR/scanner asset missing from CMDB"
CONTRADICTION_RETIRED = "retired in CMDB, seen by EDR recently"
CONTRADICTION_OS = "OS differs between sources"

_RETIRED_SQL = "(" + ", ".join(f"'{s}'" for s in RETIRED_STATUSES) + ")"
_CATEGORIES = "(SELECT key, any_value(category) AS category FROM integration_catalog GROUP BY key)"
_CRITICALITY_RANK = (
    "CASE lower(criticality) WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 "
    "WHEN 'low' THEN 3 ELSE 4 END"
)


def not_scanned_label(scan_days: int) -> str:
    return f"not scanned in {scan_days} days"


def _gaps_source(alias: str = "gaps") -> str:
    return f"""(
    WITH roles AS (
        SELECT s.asset_id,
               coalesce(bool_or(c.category = '{CMDB_CATEGORY}' AND NOT s.is_deleted), false) AS in_cmdb,
               coalesce(bool_or(c.category = '{EDR_CATEGORY}' AND NOT s.is_deleted), false) AS in_edr,
               coalesce(bool_or(c.category = '{SCANNER_CATEGORY}' AND NOT s.is_deleted), false) AS in_scanner,
               max(s.last_seen) FILTER (WHERE c.category = '{SCANNER_CATEGORY}' AND NOT s.is_deleted)
                   AS last_scanned,
               list_sort(list(DISTINCT s.integration_key) FILTER (WHERE NOT s.is_deleted)) AS live_sources
        FROM asset_sources s LEFT JOIN {_CATEGORIES} c ON c.key = s.integration_key
        GROUP BY s.asset_id),
    active AS (
        SELECT a.asset_id, a.name, a.hostname, a.os, a.asset_type, a.owner, a.criticality, a.status,
               a.last_seen, r.in_cmdb, r.in_edr, r.in_scanner, r.last_scanned, r.live_sources AS sources
        FROM assets a JOIN roles r ON r.asset_id = a.asset_id
        WHERE lower(coalesce(a.status, '')) NOT IN {_RETIRED_SQL})
    SELECT 1 AS gap_order, '{GAP_NO_EDR}' AS gap, *, 'no live EDR record' AS detail
    FROM active WHERE in_cmdb AND NOT in_edr
    UNION ALL
    SELECT 2, $scan_label, *,
           CASE WHEN last_scanned IS NULL THEN 'never scanned'
                ELSE 'last scanned ' || strftime(last_scanned, '%Y-%m-%d') END
    FROM active WHERE last_scanned IS NULL OR last_scanned < $as_of::TIMESTAMPTZ - to_days($scan_days)
    UNION ALL
    SELECT 3, '{GAP_NOT_IN_CMDB}', *,
           'seen by ' || array_to_string(sources, ', ') || ', no live CMDB record'
    FROM active WHERE (in_edr OR in_scanner) AND NOT in_cmdb
) {alias}"""


def _gaps_query(scan_days: int, as_of: dt.datetime | None, gap: OneOrMany) -> Query:
    if not isinstance(scan_days, int) or scan_days < 0:
        raise UsageError(f"scan_days must be a non-negative integer, not {scan_days!r}")
    params: dict[str, Any] = {
        "scan_days": scan_days,
        "scan_label": not_scanned_label(scan_days),
        "as_of": as_of_or_now(as_of),
    }
    query = Query(
        "gap, asset_id, name, hostname, os, asset_type, owner, criticality, status, sources, last_seen, "
        "last_scanned, detail",
        _gaps_source(),
        params=params,
        order_by=f"gap_order, {_CRITICALITY_RANK}, lower(name) NULLS LAST, asset_id",
    )
    query.equals("gap", "gap", gap)
    return query


def coverage_gaps(
    scan_days: int = 30,
    *,
    gap: OneOrMany = None,
    as_of: dt.datetime | None = None,
    limit: int | None = None,
    offset: int = 0,
    db: DbArg = None,
    org: str | None = None,
) -> pd.DataFrame:
    """Assets missing a control, one row per (gap, asset), most critical assets first.

    ``gap`` is one of "in CMDB, no EDR", "not scanned in N days" (no live scanner record seen
    within ``scan_days``, including never scanned) and "EDR/scanner asset missing from CMDB".
    Retired and deleted assets are left out. An asset can appear under several gaps.

    Example::

        >>> gaps = aria.coverage_gaps(scan_days=14)
        >>> gaps[gaps.gap == "in CMDB, no EDR"].head()  # doctest: +SKIP
    """
    query = _gaps_query(scan_days, as_of, gap)
    with scoped_read(db, org) as conn:
        return query.frame(conn, limit, offset)


def count_coverage_gaps(
    scan_days: int = 30,
    *,
    gap: OneOrMany = None,
    as_of: dt.datetime | None = None,
    db: DbArg = None,
    org: str | None = None,
) -> int:
    """How many rows :func:`coverage_gaps` returns with the same arguments.

    Example::

        >>> aria.count_coverage_gaps(gap="in CMDB, no EDR")  # doctest: +SKIP
    """
    query = _gaps_query(scan_days, as_of, gap)
    with scoped_read(db, org) as conn:
        return query.count(conn)


def coverage_summary(
    scan_days: int = 30,
    *,
    as_of: dt.datetime | None = None,
    db: DbArg = None,
    org: str | None = None,
) -> pd.DataFrame:
    """Assets per coverage gap (every gap listed, zero included), for a dashboard's headline numbers.

    Example::

        >>> aria.coverage_summary()  # doctest: +SKIP
                                         gap  assets
        0                     in CMDB, no EDR      12
    """
    query = _gaps_query(scan_days, as_of, None)
    sql = f"""WITH labels AS (SELECT * FROM (VALUES (1, '{GAP_NO_EDR}'), (2, $scan_label),
                                                   (3, '{GAP_NOT_IN_CMDB}')) t(gap_order, gap))
              SELECT l.gap, count(g.asset_id)::BIGINT AS assets
              FROM labels l LEFT JOIN {_gaps_source("g")} ON g.gap_order = l.gap_order
              GROUP BY l.gap_order, l.gap ORDER BY l.gap_order"""
    with scoped_read(db, org) as conn:
        return conn.df(sql, query.params)


# OS families from the lower-cased OS text ``los``: versions and spellings of one family agree.
_OS_FAMILY = """CASE
    WHEN los IS NULL OR los = '' THEN NULL
    WHEN contains(los, 'windows') THEN 'windows'
    WHEN regexp_matches(los, 'mac|darwin|os x') THEN 'macos'
    WHEN regexp_matches(los, 'linux|ubuntu|debian|red hat|rhel|centos|suse|fedora|rocky|alma') THEN 'linux'
    WHEN regexp_matches(los, 'android|iphone|ipad|^ios') THEN 'mobile'
    ELSE los END"""


def contradictions(
    recent_days: int = 7,
    *,
    as_of: dt.datetime | None = None,
    limit: int | None = None,
    offset: int = 0,
    db: DbArg = None,
    org: str | None = None,
) -> pd.DataFrame:
    """Assets the sources disagree about, one row per (kind, asset).

    ``kind`` is "retired in CMDB, seen by EDR recently" (a CMDB record says retired while an EDR
    reported the machine within ``recent_days``) or "OS differs between sources" (live records
    name different OS families, e.g. Windows and Linux; versions of one family do not count).

    Example::

        >>> aria.contradictions(recent_days=3)[["kind", "name", "detail"]]  # doctest: +SKIP
    """
    if not isinstance(recent_days, int) or recent_days < 0:
        raise UsageError(f"recent_days must be a non-negative integer, not {recent_days!r}")
    source = f"""(
    WITH ident AS (
        SELECT s.asset_id, i.integration_key, i.status, i.os, i.last_seen, i.is_deleted, c.category,
               lower(trim(i.os)) AS los
        FROM asset_identities i
        JOIN asset_sources s ON s.installation_id = i.installation_id AND s.source_table = i.source_table
                            AND s.source_id = i.source_id
        LEFT JOIN {_CATEGORIES} c ON c.key = i.integration_key),
    families AS (SELECT *, CASE WHEN is_deleted THEN NULL ELSE {_OS_FAMILY} END AS os_family FROM ident),
    per_asset AS (
        SELECT asset_id,
               coalesce(bool_or(category = '{CMDB_CATEGORY}' AND lower(coalesce(status, '')) IN {_RETIRED_SQL}),
                        false) AS cmdb_retired,
               any_value(integration_key || ' status ' || status)
                   FILTER (WHERE category = '{CMDB_CATEGORY}' AND lower(coalesce(status, '')) IN {_RETIRED_SQL})
                   AS cmdb_detail,
               max(last_seen) FILTER (WHERE category = '{EDR_CATEGORY}' AND NOT is_deleted) AS edr_last_seen,
               -- min <> max over the families is a cheap "more than one distinct value".
               min(os_family) <> max(os_family) AS os_differs,
               max(last_seen) FILTER (WHERE NOT is_deleted) AS last_seen
        FROM families GROUP BY asset_id),
    os_detail AS (
        SELECT asset_id,
               string_agg(DISTINCT integration_key || ': ' || os, '; ' ORDER BY integration_key || ': ' || os)
                   AS detail
        FROM families
        WHERE os_family IS NOT NULL AND asset_id IN (SELECT asset_id FROM per_asset WHERE os_differs)
        GROUP BY asset_id)
    SELECT 1 AS kind_order, '{CONTRADICTION_RETIRED}' AS kind, p.asset_id, a.name, a.hostname,
           p.cmdb_detail || '; EDR last seen ' || strftime(p.edr_last_seen, '%Y-%m-%d %H:%M') AS detail,
           p.edr_last_seen AS observed_at
    FROM per_asset p LEFT JOIN assets a ON a.asset_id = p.asset_id
    WHERE p.cmdb_retired AND p.edr_last_seen >= $as_of::TIMESTAMPTZ - to_days($recent_days)
    UNION ALL
    SELECT 2, '{CONTRADICTION_OS}', p.asset_id, a.name, a.hostname, d.detail, p.last_seen
    FROM per_asset p JOIN os_detail d ON d.asset_id = p.asset_id LEFT JOIN assets a ON a.asset_id = p.asset_id
    WHERE p.os_differs
) found"""
    query = Query(
        "kind, asset_id, name, hostname, detail, observed_at",
        source,
        params={"as_of": as_of_or_now(as_of), "recent_days": recent_days},
        order_by="kind_order, lower(name) NULLS LAST, asset_id",
    )
    with scoped_read(db, org) as conn:
        return query.frame(conn, limit, offset)
