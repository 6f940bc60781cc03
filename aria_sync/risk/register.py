"""The risk register: one risk per vulnerability definition (CVE, else vendor plugin id) and per EDR alert.

``refresh_risks`` rebuilds the organisation's risks in SQL inside the caller's transaction, so it
stays fast on millions of findings. Each risk carries a ``score_breakdown`` naming every input
and what it contributed (see :mod:`aria_sync.risk.scoring` and docs/risk-scoring.md).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb

from aria_sync.risk.scoring import (
    SCORE_SCALE,
    band_sql,
    criticality_label_sql,
    criticality_points_sql,
    level_sql,
    severity_points_sql,
    weight_params,
)
from aria_sync.risk.weights import load_weights

VULNERABILITY = "vulnerability"
THREAT_DETECTION = "threat detection"
CLOSED_ALERT_STATUSES = ("resolved", "closed", "dismissed", "mitigated")
_TEMP = ("_risk_asset_crit", "_risk_alerts", "_risk_vf", "_risk_va", "_risk_new")


def _database_path(conn: duckdb.DuckDBPyConnection) -> Path | None:
    row = conn.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return Path(row[0]) if row and row[0] else None


def refresh_risks(
    conn: duckdb.DuckDBPyConnection, org: str, now: dt.datetime, weights: dict[str, Any] | None = None
) -> None:
    """Recompute this organisation's risk register and risk_assets from findings and detections."""
    weights = weights if weights is not None else load_weights(_database_path(conn))
    params = weight_params(weights)
    _asset_context(conn, org, params)
    _vulnerability_risks(conn, org, now, params, bool(weights["include_info_findings"]))
    _detection_risks(conn, org, now, params)
    conn.execute(
        """UPDATE _risk_new AS n SET created_at = r.created_at FROM risks r
           WHERE r.org_id = ? AND r.risk_id = n.risk_id AND r.created_at IS NOT NULL""",
        [org],
    )
    conn.execute("DELETE FROM risk_assets WHERE org_id = ?", [org])
    conn.execute(
        "DELETE FROM risks WHERE org_id = ? AND category IN (?, ?)", [org, VULNERABILITY, THREAT_DETECTION]
    )
    conn.execute(
        """INSERT INTO risks (risk_id, org_id, title, category, source, source_ref, likelihood, impact, score, level,
                              status, score_breakdown, affected_assets, created_at, updated_at)
           SELECT risk_id, ?, title, category, source, source_ref, likelihood, impact, score, level, status,
                  score_breakdown, affected_assets, created_at, ? FROM _risk_new ORDER BY risk_id""",
        [org, now],
    )
    conn.execute(
        """INSERT INTO risk_assets (org_id, risk_id, asset_id)
           SELECT DISTINCT ?, risk_id, asset_id FROM _risk_va WHERE asset_id IS NOT NULL AND considered
           UNION SELECT ?, 'detection:' || integration_key || ':' || source_id, asset_id FROM detections
           WHERE org_id = ? AND asset_id IS NOT NULL AND NOT coalesce(is_deleted, false)""",
        [org, org, org],
    )
    for table in _TEMP:
        conn.execute(f"DROP TABLE IF EXISTS {table}")


def _asset_context(conn: duckdb.DuckDBPyConnection, org: str, params: dict[str, Any]) -> None:
    """Per asset: the most critical business service (or own criticality) and its open EDR alerts."""
    service_label = criticality_label_sql("sv.criticality")
    conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE _risk_asset_crit AS
        WITH candidates AS (
            SELECT a.asset_id, {service_label} AS label, 'service:' || sv.service_id AS origin
            FROM assets a JOIN services sv ON sv.org_id = a.org_id AND sv.service_id = a.service_id
            WHERE a.org_id = $org
            UNION ALL
            SELECT s.asset_id, {service_label}, 'service:' || sv.service_id
            FROM service_assets sa
            JOIN asset_sources s ON s.org_id = sa.org_id AND s.installation_id = sa.installation_id
             AND s.source_id = sa.asset_source_id
            JOIN services sv ON sv.org_id = sa.org_id AND sv.installation_id = sa.installation_id
             AND sv.source_id = sa.service_source_id
            WHERE sa.org_id = $org
            UNION ALL
            SELECT asset_id, {criticality_label_sql("criticality")}, 'asset' FROM assets WHERE org_id = $org
        )
        SELECT asset_id, arg_max(label, {{'p': {criticality_points_sql("label")}, 'o': origin}}) AS label,
               arg_max(origin, {{'p': {criticality_points_sql("label")}, 'o': origin}}) AS origin,
               max({criticality_points_sql("label")}) AS points
        FROM candidates WHERE label IS NOT NULL GROUP BY asset_id""",
        {"org": org, "crit_names": params["crit_names"], "crit_values": params["crit_values"],
         "default_impact": params["default_impact"]},
    )  # fmt: skip
    conn.execute(
        """CREATE OR REPLACE TEMP TABLE _risk_alerts AS
           SELECT asset_id, count(*) AS active_alerts FROM detections
           WHERE org_id = ? AND asset_id IS NOT NULL AND NOT coalesce(is_deleted, false)
             AND NOT list_contains(?, lower(coalesce(status, '')))
           GROUP BY asset_id""",
        [org, list(CLOSED_ALERT_STATUSES)],
    )


def _vulnerability_risks(
    conn: duckdb.DuckDBPyConnection, org: str, now: dt.datetime, params: dict[str, Any], include_info: bool
) -> None:
    severity_points = (
        f"coalesce({severity_points_sql('lower(severity)')}, "
        f"nullif({band_sql('cvss_score', '$cvss_thresholds', '$cvss_values')}, 0), 1)"
    )
    conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE _risk_vf AS
        SELECT CASE WHEN cve IS NOT NULL THEN 'vuln:' || cve ELSE 'vuln:' || integration_key || ':' || vendor_vuln_id
               END AS risk_id,
               coalesce(cve, vendor_vuln_id) AS source_ref,
               integration_key, asset_id,
               coalesce(asset_id, 'unlinked:' || installation_id || ':' || coalesce(source_asset_id, finding_id))
                   AS asset_key,
               lower(coalesce(state, 'open')) IN ('open', 'reopened') AS is_open,
               lower(severity) AS severity, {severity_points} AS severity_points,
               cvss_score, exploit_score, coalesce(exploit_available, false) AS exploit_available, title
        FROM (SELECT *, unnest(CASE WHEN len(coalesce(cve_ids, [])) > 0
                                    THEN list_transform(cve_ids, c -> upper(trim(c))) ELSE [NULL] END) AS cve
              FROM vulnerabilities WHERE org_id = $org AND NOT coalesce(is_deleted, false))
        WHERE (cve IS NOT NULL OR vendor_vuln_id IS NOT NULL)
          AND ($include_info OR coalesce(lower(severity), '') <> 'info')""",
        {"org": org, "include_info": include_info, "sev_names": params["sev_names"],
         "sev_values": params["sev_values"], "cvss_thresholds": params["cvss_thresholds"],
         "cvss_values": params["cvss_values"]},
    )  # fmt: skip
    # One row per risk and affected asset: two findings of one asset (two sources, two ports) count once.
    conn.execute(
        """CREATE OR REPLACE TEMP TABLE _risk_va AS
           WITH per_asset AS (
               SELECT risk_id, asset_key, min(asset_id) AS asset_id, bool_or(is_open) AS is_open
               FROM _risk_vf GROUP BY risk_id, asset_key
           )
           SELECT *, is_open OR NOT bool_or(is_open) OVER (PARTITION BY risk_id) AS considered FROM per_asset"""
    )
    likelihood = "least(5, greatest(1, f.severity_points + f.exploit_points + f.alert_points))::INTEGER"
    impact = "least(5, greatest(1, a.criticality_points + a.count_points))::INTEGER"
    conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE _risk_new AS
        WITH per_risk AS (
            SELECT risk_id, min(source_ref) AS source_ref,
                   bool_or(is_open) AS any_open,
                   arg_max(title, (severity_points, title)) FILTER (WHERE title IS NOT NULL) AS title,
                   list_sort(list_distinct(list(integration_key))) AS sources,
                   count(*) FILTER (WHERE is_open) AS open_findings,
                   count(*) FILTER (WHERE NOT is_open) AS fixed_findings,
                   coalesce(max(severity_points) FILTER (WHERE is_open), max(severity_points)) AS severity_points,
                   coalesce(arg_max(severity, severity_points) FILTER (WHERE is_open),
                            arg_max(severity, severity_points)) AS severity,
                   coalesce(max(cvss_score) FILTER (WHERE is_open), max(cvss_score)) AS cvss_max,
                   coalesce(max(exploit_score) FILTER (WHERE is_open), max(exploit_score)) AS exploit_max,
                   coalesce(bool_or(exploit_available) FILTER (WHERE is_open), bool_or(exploit_available))
                       AS exploit_available
            FROM _risk_vf GROUP BY risk_id
        ), per_asset AS (
            SELECT va.risk_id, count(*) AS affected_assets,
                   count(*) FILTER (WHERE coalesce(al.active_alerts, 0) > 0) AS alert_assets,
                   max(coalesce(c.points, $default_impact)) AS criticality_points,
                   arg_max(c.label, (c.points, c.origin)) FILTER (WHERE c.points IS NOT NULL) AS criticality,
                   arg_max(c.origin, (c.points, c.origin)) FILTER (WHERE c.points IS NOT NULL)
                       AS criticality_origin
            FROM _risk_va va
            LEFT JOIN _risk_asset_crit c ON c.asset_id = va.asset_id
            LEFT JOIN _risk_alerts al ON al.asset_id = va.asset_id
            WHERE va.considered GROUP BY va.risk_id
        ), scored_inputs AS (
            SELECT r.*, a.affected_assets, a.alert_assets, a.criticality, a.criticality_origin,
                   a.criticality_points,
                   {band_sql("a.affected_assets", "$count_thresholds", "$count_values")} AS count_points,
                   CASE WHEN coalesce(r.exploit_max, 0) >= $exploit_threshold OR r.exploit_available
                        THEN $exploit_bonus ELSE 0 END AS exploit_points,
                   CASE WHEN a.alert_assets > 0 THEN $alert_bonus ELSE 0 END AS alert_points
            FROM per_risk r JOIN per_asset a USING (risk_id)
        ), scored AS (
            SELECT f.*, {likelihood} AS likelihood, {impact.replace("a.", "f.")} AS impact FROM scored_inputs f
        )
        SELECT risk_id, coalesce(source_ref || ': ' || title, source_ref) AS title, '{VULNERABILITY}' AS category,
               array_to_string(sources, ',') AS source, source_ref, likelihood, impact,
               (likelihood * impact * {SCORE_SCALE})::DOUBLE AS score,
               {level_sql(f"likelihood * impact * {SCORE_SCALE}")} AS level,
               CASE WHEN any_open THEN 'open' ELSE 'mitigated' END AS status,
               json_object(
                   'formula', 'score = likelihood x impact x {SCORE_SCALE}',
                   'likelihood', json_object(
                       'severity', severity, 'severity_points', severity_points, 'cvss_max', cvss_max,
                       'exploit_score_max', exploit_max, 'exploit_available', exploit_available,
                       'exploit_threshold', $exploit_threshold, 'exploit_points', exploit_points,
                       'assets_with_active_alerts', alert_assets, 'active_alert_points', alert_points,
                       'value', likelihood),
                   'impact', json_object(
                       'criticality', criticality, 'criticality_source', criticality_origin,
                       'criticality_points', criticality_points, 'affected_assets', affected_assets,
                       'asset_count_points', count_points, 'value', impact),
                   'findings', json_object('open', open_findings, 'fixed', fixed_findings),
                   'score', likelihood * impact * {SCORE_SCALE},
                   'level', {level_sql(f"likelihood * impact * {SCORE_SCALE}")}
               ) AS score_breakdown,
               affected_assets::INTEGER AS affected_assets, $now AS created_at
        FROM scored""",
        {
            **{
                key: params[key]
                for key in (
                    "default_impact",
                    "count_thresholds",
                    "count_values",
                    "exploit_threshold",
                    "exploit_bonus",
                    "alert_bonus",
                    "lvl_critical",
                    "lvl_high",
                    "lvl_medium",
                    "lvl_low",
                )
            },
            "now": now,
        },
    )


def _detection_risks(
    conn: duckdb.DuckDBPyConnection, org: str, now: dt.datetime, params: dict[str, Any]
) -> None:
    conn.execute(
        f"""INSERT INTO _risk_new
        WITH inputs AS (
            SELECT d.*, NOT list_contains($closed, lower(coalesce(d.status, ''))) AS is_open,
                   coalesce({severity_points_sql("lower(d.severity)")}, 1) AS severity_points,
                   coalesce(al.active_alerts, 0)
                     - CASE WHEN NOT list_contains($closed, lower(coalesce(d.status, ''))) THEN 1 ELSE 0 END
                     AS other_active_alerts,
                   coalesce(c.points, $default_impact) AS criticality_points, c.label AS criticality,
                   c.origin AS criticality_origin
            FROM detections d
            LEFT JOIN _risk_alerts al ON al.asset_id = d.asset_id
            LEFT JOIN _risk_asset_crit c ON c.asset_id = d.asset_id
            WHERE d.org_id = $org AND NOT coalesce(d.is_deleted, false)
        ), scored AS (
            SELECT *, CASE WHEN other_active_alerts > 0 THEN $alert_bonus ELSE 0 END AS alert_points,
                   least(5, greatest(1, severity_points
                         + CASE WHEN other_active_alerts > 0 THEN $alert_bonus ELSE 0 END))::INTEGER AS likelihood,
                   least(5, greatest(1, criticality_points))::INTEGER AS impact
            FROM inputs
        )
        SELECT 'detection:' || integration_key || ':' || source_id, coalesce(title, 'EDR alert ' || source_id),
               '{THREAT_DETECTION}', integration_key, source_id, likelihood, impact,
               (likelihood * impact * {SCORE_SCALE})::DOUBLE,
               {level_sql(f"likelihood * impact * {SCORE_SCALE}")},
               CASE WHEN is_open THEN 'open' ELSE 'closed' END,
               json_object(
                   'formula', 'score = likelihood x impact x {SCORE_SCALE}',
                   'likelihood', json_object('severity', lower(severity), 'severity_points', severity_points,
                                             'other_active_alerts_on_asset', other_active_alerts,
                                             'active_alert_points', alert_points, 'value', likelihood),
                   'impact', json_object('criticality', criticality, 'criticality_source', criticality_origin,
                                         'criticality_points', criticality_points,
                                         'affected_assets', CASE WHEN asset_id IS NULL THEN 0 ELSE 1 END,
                                         'value', impact),
                   'detection_category', category,
                   'score', likelihood * impact * {SCORE_SCALE},
                   'level', {level_sql(f"likelihood * impact * {SCORE_SCALE}")}
               ),
               CASE WHEN asset_id IS NULL THEN 0 ELSE 1 END, coalesce(created_at, $now)
        FROM scored""",
        {
            "org": org,
            "closed": list(CLOSED_ALERT_STATUSES),
            "sev_names": params["sev_names"],
            "sev_values": params["sev_values"],
            "alert_bonus": params["alert_bonus"],
            "default_impact": params["default_impact"],
            "lvl_critical": params["lvl_critical"],
            "lvl_high": params["lvl_high"],
            "lvl_medium": params["lvl_medium"],
            "lvl_low": params["lvl_low"],
            "now": now,
        },
    )
