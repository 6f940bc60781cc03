"""The transparent risk score as SQL: likelihood (1-5) x impact (1-5) x 4 = 0-100, and its level.

Every expression here reads the weights as query parameters, so a reviewer can recompute any
risk from its ``score_breakdown`` by hand (docs/risk-scoring.md shows one).
"""

from __future__ import annotations

from typing import Any

SCORE_SCALE = 4  # 5 x 5 x 4 = 100


def criticality_label_sql(column: str) -> str:
    """Map CMDB criticality text ('1 - most critical', 'High', ...) to critical|high|medium|low or NULL."""
    text = f"lower(trim({column}))"
    return f"""CASE
        WHEN {text} LIKE '1%' OR {text} LIKE '%most critical%' OR {text} = 'critical' THEN 'critical'
        WHEN {text} LIKE '2%' OR {text} LIKE '%somewhat critical%' OR {text} = 'high' THEN 'high'
        WHEN {text} LIKE '3%' OR {text} LIKE '%less critical%' OR {text} = 'medium' THEN 'medium'
        WHEN {text} LIKE '4%' OR {text} LIKE '%not critical%' OR {text} = 'low' THEN 'low'
    END"""


def weight_params(weights: dict[str, Any]) -> dict[str, Any]:
    """Named parameters for the scoring SQL."""
    severity = weights["severity_likelihood"]
    impact = weights["criticality_impact"]
    levels = weights["level_thresholds"]
    return {
        "sev_names": list(severity),
        "sev_values": [float(severity[n]) for n in severity],
        "cvss_thresholds": [float(t) for t, _ in weights["cvss_bands"]],
        "cvss_values": [float(v) for _, v in weights["cvss_bands"]],
        "exploit_threshold": float(weights["exploit_threshold"]),
        "exploit_bonus": float(weights["exploit_bonus"]),
        "alert_bonus": float(weights["active_alert_bonus"]),
        "crit_names": list(impact),
        "crit_values": [float(impact[n]) for n in impact],
        "default_impact": float(weights["default_impact"]),
        "count_thresholds": [float(t) for t, _ in weights["asset_count_bonus"]],
        "count_values": [float(v) for _, v in weights["asset_count_bonus"]],
        "lvl_critical": float(levels["critical"]),
        "lvl_high": float(levels["high"]),
        "lvl_medium": float(levels["medium"]),
        "lvl_low": float(levels["low"]),
    }


def severity_points_sql(severity: str) -> str:
    return f"$sev_values[list_position($sev_names, {severity})]"


def band_sql(value: str, thresholds: str, values: str) -> str:
    """The value of the first band whose threshold ``value`` reaches (bands are largest first), else 0."""
    return f"coalesce({values}[list_position(list_transform({thresholds}, t -> {value} >= t), true)], 0)"


def criticality_points_sql(label: str) -> str:
    return f"coalesce($crit_values[list_position($crit_names, {label})], $default_impact)"


def level_sql(score: str) -> str:
    return f"""CASE WHEN {score} >= $lvl_critical THEN 'critical' WHEN {score} >= $lvl_high THEN 'high'
                    WHEN {score} >= $lvl_medium THEN 'medium' WHEN {score} >= $lvl_low THEN 'low' ELSE 'info' END"""
