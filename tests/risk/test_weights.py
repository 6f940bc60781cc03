"""Risk weights: validation, the override file beside the database, and the audited change."""

from __future__ import annotations

import json

import pytest

from aria_sync.audit import Actor
from aria_sync.errors import ConfigurationError, PermissionDeniedError
from aria_sync.risk import DEFAULT_WEIGHTS, load_weights, set_weights, validate_weights
from aria_sync.store import Database


def test_bad_weights_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="severity_likelihood.high"):
        validate_weights({"severity_likelihood": {"high": 9}})
    with pytest.raises(ConfigurationError, match="unknown risk weight"):
        validate_weights({"surprise": 1})
    with pytest.raises(ConfigurationError, match="fall from critical"):
        validate_weights({"level_thresholds": {"critical": 10, "high": 50}})


def test_set_weights_writes_file_audits_and_rescores(db: Database, admin: Actor) -> None:
    db.ensure_schema()
    merged = set_weights(db, "acme", admin, {"exploit_bonus": 2, "criticality_impact": {"low": 1}})
    assert merged["exploit_bonus"] == 2 and merged["criticality_impact"]["high"] == 4
    stored = json.loads((db.path.parent / "risk-weights.json").read_text())
    assert stored["exploit_bonus"] == 2
    assert load_weights(db.path)["criticality_impact"]["low"] == 1
    with db.read() as conn:
        action, details = conn.execute(
            "SELECT action, details FROM integration_activity_logs WHERE org_id = 'acme' ORDER BY seq DESC LIMIT 1"
        ).fetchone()  # type: ignore[misc]
    assert action == "risk.weights_changed"
    change = json.loads(details)
    assert change["before"]["exploit_bonus"] == DEFAULT_WEIGHTS["exploit_bonus"]
    assert change["after"]["exploit_bonus"] == 2


def test_only_admins_change_weights(db: Database) -> None:
    with pytest.raises(PermissionDeniedError):
        set_weights(db, "acme", Actor("viewer", "viewer"), {"exploit_bonus": 2})
    assert not (db.path.parent / "risk-weights.json").exists()
