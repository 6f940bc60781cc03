"""Findings, SLA aging, and the risk register against hand-computed values."""

from __future__ import annotations

import math
from typing import Any

import pytest

import aria_sync as aria
from aria_sync.errors import UsageError
from aria_sync.store import Database

from .conftest import AS_OF, ORG_A


def test_vulnerabilities_most_severe_first_without_deleted_findings(estate: Database) -> None:
    frame = aria.vulnerabilities(db=estate, org=ORG_A)
    assert list(frame["finding_id"]) == ["acme-v1", "acme-v3", "acme-v2", "acme-v4", "acme-v5", "acme-v6"]
    assert list(frame["asset_name"]) == ["web-01", "db-01", "web-01", "db-01", "laptop-07", "laptop-07"]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"severity": "critical"}, ["acme-v1", "acme-v3"]),
        ({"severity": ["HIGH", "low"]}, ["acme-v2", "acme-v5"]),
        ({"state": "open"}, ["acme-v1", "acme-v2", "acme-v5", "acme-v6"]),
        ({"state": ["reopened", "fixed"]}, ["acme-v3", "acme-v4"]),
        ({"integration": "ms-defender"}, []),
        ({"asset_id": "acme-a1"}, ["acme-v1", "acme-v2"]),
        ({"asset_id": "acme-a1", "severity": "high"}, ["acme-v2"]),
    ],
)
def test_vulnerability_filters(estate: Database, kwargs: dict[str, Any], expected: list[str]) -> None:
    assert list(aria.vulnerabilities(db=estate, org=ORG_A, **kwargs)["finding_id"]) == expected
    assert aria.count_vulnerabilities(db=estate, org=ORG_A, **kwargs) == len(expected)


def test_aging_of_open_findings_against_the_default_sla(estate: Database) -> None:
    frame = aria.vulnerability_aging(db=estate, org=ORG_A, as_of=AS_OF)
    rows = {r.finding_id: r for r in frame.itertuples()}
    assert list(frame["finding_id"]) == ["acme-v4", "acme-v1", "acme-v2", "acme-v5", "acme-v6"]
    assert (rows["acme-v4"].age_days, rows["acme-v4"].sla_days, rows["acme-v4"].days_left) == (100, 90, -10)
    assert (rows["acme-v1"].age_days, rows["acme-v1"].sla_days, rows["acme-v1"].breached) == (20, 15, True)
    assert (rows["acme-v2"].age_days, rows["acme-v2"].breached) == (10, False)
    assert rows["acme-v5"].age_days == 30  # 30.5 days old: whole days only
    assert rows["acme-v6"].age_days == 400 and not rows["acme-v6"].breached  # info has no SLA
    assert "acme-v3" not in rows  # fixed


def test_aging_with_a_custom_sla_and_filters(estate: Database) -> None:
    strict = {"critical": 30, "high": 5, "medium": 90, "low": 10, "info": 365}
    frame = aria.vulnerability_aging(strict, breached_only=True, db=estate, org=ORG_A, as_of=AS_OF)
    assert list(frame["finding_id"]) == ["acme-v6", "acme-v5", "acme-v4", "acme-v2"]  # -35, -20, -10, -5 days
    high = aria.vulnerability_aging(strict, severity="high", db=estate, org=ORG_A, as_of=AS_OF)
    assert list(high["finding_id"]) == ["acme-v2"]
    with pytest.raises(UsageError):
        aria.vulnerability_aging({"critical": -1}, db=estate, org=ORG_A)


def test_sla_summary_by_severity(estate: Database) -> None:
    frame = aria.sla_summary(db=estate, org=ORG_A, as_of=AS_OF)
    assert list(frame["severity"]) == ["critical", "high", "medium", "low", "info"]
    assert list(frame["open_findings"]) == [1, 1, 1, 1, 1]
    assert list(frame["breached"]) == [1, 0, 1, 0, 0]
    assert list(frame["breach_rate"]) == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert list(frame["max_age_days"]) == [20, 10, 100, 30, 400]
    assert list(frame["sla_days"][:4]) == [15, 30, 90, 180]


def test_risks_by_score_with_filters(estate: Database) -> None:
    assert list(aria.risks(db=estate, org=ORG_A)["risk_id"]) == ["acme-r3", "acme-r1", "acme-r2", "acme-r4"]
    assert list(aria.risks(level="critical", status="open", db=estate, org=ORG_A)["risk_id"]) == ["acme-r1"]
    assert aria.count_risks(status="open", db=estate, org=ORG_A) == 3


def test_top_risks_expand_the_score_breakdown(estate: Database) -> None:
    frame = aria.top_risks(2, db=estate, org=ORG_A)
    assert list(frame["risk_id"]) == ["acme-r1", "acme-r2"]  # the closed r3 scores higher but is closed
    assert list(frame["breakdown_likelihood"]) == [4, 3]
    assert list(frame["breakdown_impact"]) == [5, 4]
    assert frame["breakdown_factors_exploit"][0] == 1.5 and math.isnan(frame["breakdown_factors_exploit"][1])
    assert "score_breakdown" not in frame.columns
    with_closed = aria.top_risks(1, include_closed=True, db=estate, org=ORG_A)
    assert list(with_closed["risk_id"]) == ["acme-r3"]
    assert list(aria.top_risks(10, db=estate, org=ORG_A)["risk_id"]) == ["acme-r1", "acme-r2", "acme-r4"]
