"""Risk scoring weights: defaults here, an override file beside the database, changes audited.

The override lives at ``<database folder>/risk-weights.json`` and holds any subset of
:data:`DEFAULT_WEIGHTS`; missing keys keep their defaults. ``set_weights`` validates a full or
partial document, writes the file and records the before/after in the activity log.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from aria_sync.audit import Actor, record
from aria_sync.errors import ConfigurationError
from aria_sync.store import Database

WEIGHTS_FILE = "risk-weights.json"
SEVERITIES = ("critical", "high", "medium", "low", "info")
CRITICALITIES = ("critical", "high", "medium", "low")
LEVELS = ("critical", "high", "medium", "low")

DEFAULT_WEIGHTS: dict[str, Any] = {
    # Likelihood (1-5): the worst severity (or CVSS band) of the open findings, plus bonuses.
    "severity_likelihood": {"critical": 5, "high": 4, "medium": 3, "low": 2, "info": 1},
    "cvss_bands": [[9.0, 5], [7.0, 4], [4.0, 3], [0.1, 2]],  # used when a finding has no severity
    "exploit_threshold": 7.0,  # VPR / exploitability score (0-10) from which an exploit is likely
    "exploit_bonus": 1,
    "active_alert_bonus": 1,  # an affected asset also has an open EDR alert
    # Impact (1-5): the most critical business service (or asset criticality) affected, plus breadth.
    "criticality_impact": {"critical": 5, "high": 4, "medium": 3, "low": 2},
    "default_impact": 2,  # no CMDB criticality known
    "asset_count_bonus": [[100, 2], [10, 1]],  # [minimum affected assets, bonus], largest first
    # score = likelihood x impact x 4 (0-100); level = first threshold the score reaches.
    "level_thresholds": {"critical": 80, "high": 48, "medium": 24, "low": 8},
    "include_info_findings": False,  # informational plugins (OS identification ...) create no risk
}


def weights_path(database_path: Path) -> Path:
    return database_path.parent / WEIGHTS_FILE


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _number(value: Any, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigurationError(f"risk weight {where} must be a number between {low:g} and {high:g}")
    return float(value)


def validate_weights(weights: dict[str, Any]) -> dict[str, Any]:
    """The full weights document (defaults filled in); ConfigurationError naming the first bad entry."""
    if not isinstance(weights, dict):
        raise ConfigurationError("risk weights must be a JSON object")
    unknown = sorted(set(weights) - set(DEFAULT_WEIGHTS))
    if unknown:
        raise ConfigurationError(f"unknown risk weight {unknown[0]!r}")
    merged = _merge(DEFAULT_WEIGHTS, weights)
    for name in SEVERITIES:
        _number(merged["severity_likelihood"].get(name), f"severity_likelihood.{name}", 1, 5)
    for name in CRITICALITIES:
        _number(merged["criticality_impact"].get(name), f"criticality_impact.{name}", 1, 5)
    for key in ("severity_likelihood", "criticality_impact", "level_thresholds"):
        extra = sorted(set(merged[key]) - set(DEFAULT_WEIGHTS[key]))
        if extra:
            raise ConfigurationError(f"unknown risk weight {key}.{extra[0]}")
    _number(merged["default_impact"], "default_impact", 1, 5)
    _number(merged["exploit_threshold"], "exploit_threshold", 0, 10)
    _number(merged["exploit_bonus"], "exploit_bonus", 0, 4)
    _number(merged["active_alert_bonus"], "active_alert_bonus", 0, 4)
    for key, upper in (("cvss_bands", 10.0), ("asset_count_bonus", 1e9)):
        bands = merged[key]
        if not isinstance(bands, list) or not all(isinstance(b, list) and len(b) == 2 for b in bands):
            raise ConfigurationError(f"risk weight {key} must be a list of [threshold, value] pairs")
        for position, (threshold, value) in enumerate(bands):
            _number(threshold, f"{key}[{position}] threshold", 0, upper)
            _number(value, f"{key}[{position}] value", 0, 5)
    thresholds = [_number(merged["level_thresholds"].get(n), f"level_thresholds.{n}", 0, 100) for n in LEVELS]
    if thresholds != sorted(thresholds, reverse=True):
        raise ConfigurationError("level_thresholds must fall from critical to low")
    if not isinstance(merged["include_info_findings"], bool):
        raise ConfigurationError("risk weight include_info_findings must be true or false")
    return merged


def load_weights(database_path: Path | None) -> dict[str, Any]:
    """Defaults, overridden by the weights file beside the database when there is one."""
    if database_path is None:
        return copy.deepcopy(DEFAULT_WEIGHTS)
    path = weights_path(database_path)
    if not path.exists():
        return copy.deepcopy(DEFAULT_WEIGHTS)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from None
    return validate_weights(document)


def set_weights(db: Database, org: str, actor: Actor, weights: dict[str, Any]) -> dict[str, Any]:
    """Validate and save new weights (admin only), audit before/after, and rescore the register."""
    from aria_sync.marketplace import require_role
    from aria_sync.risk.register import refresh_risks
    from aria_sync.store import utcnow

    require_role(actor, "admin", "change risk scoring weights")
    merged = validate_weights(weights)
    path = weights_path(db.path)
    before = load_weights(db.path)
    with db.write() as conn:
        record(
            conn, org, actor, "risk.weights_changed", target_type="risk_weights", target_id=str(path.name),
            details={"before": before, "after": merged},
        )  # fmt: skip
        refresh_risks(conn, org, utcnow(), weights=merged)
        # Written last, so a failed rescore leaves neither the file nor the audit entry behind.
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        temporary.replace(path)
    return merged
