"""The risk register on hand-built findings, detections and assets in a real DuckDB file."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import duckdb

from aria_sync.risk import refresh_risks
from aria_sync.store import Database

ORG = "acme"
NOW = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)


def _insert(conn: duckdb.DuckDBPyConnection, table: str, row: dict[str, Any]) -> None:
    columns = ", ".join(row)
    conn.execute(
        f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' for _ in row)})", list(row.values())
    )


def _finding(finding_id: str, asset_id: str | None, **fields: Any) -> dict[str, Any]:
    row = {
        "finding_id": finding_id, "org_id": ORG, "asset_id": asset_id, "installation_id": "inst-tenable",
        "integration_key": "tenable", "source_id": finding_id, "source_asset_id": f"src-{asset_id}",
        "cve_ids": ["CVE-2024-1234"], "vendor_vuln_id": "190001", "title": "OpenSSL overflow",
        "severity": "high", "cvss_score": 7.5, "exploit_score": 5.0, "exploit_available": False, "port": 443,
        "state": "open",
    }  # fmt: skip
    row.update(fields)
    return row


def _asset(conn: duckdb.DuckDBPyConnection, asset_id: str, service_id: str | None = None) -> None:
    _insert(conn, "assets", {"asset_id": asset_id, "org_id": ORG, "name": asset_id, "service_id": service_id})


def _risks(db: Database) -> dict[str, dict[str, Any]]:
    with db.read() as conn:
        cursor = conn.execute("SELECT * FROM risks WHERE org_id = ?", [ORG])
        names = [d[0] for d in cursor.description or []]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def _linked(db: Database, risk_id: str) -> list[str]:
    with db.read() as conn:
        rows = conn.execute(
            "SELECT asset_id FROM risk_assets WHERE org_id = ? AND risk_id = ? ORDER BY 1", [ORG, risk_id]
        ).fetchall()
    return [r[0] for r in rows]


def test_one_risk_per_cve_links_every_affected_asset_once(db: Database) -> None:
    with db.write() as conn:
        for index in range(5):
            _asset(conn, f"a{index}")
            _insert(conn, "vulnerabilities", _finding(f"f{index}", f"a{index}"))
        # Same asset and CVE seen by a second source and on a second port: still one affected asset.
        _insert(conn, "vulnerabilities", _finding("dup-port", "a0", port=8443))
        _insert(conn, "vulnerabilities", _finding("dup-src", "a0", integration_key="ms-defender",
                                                  installation_id="inst-defender", vendor_vuln_id=None))  # fmt: skip
        _insert(conn, "vulnerabilities", _finding("plugin-only", "a1", cve_ids=[], vendor_vuln_id="55555"))
        refresh_risks(conn, ORG, NOW)
    risks = _risks(db)
    assert set(risks) == {"vuln:CVE-2024-1234", "vuln:tenable:55555"}
    cve = risks["vuln:CVE-2024-1234"]
    assert cve["affected_assets"] == 5
    assert cve["source"] == "ms-defender,tenable"
    assert _linked(db, "vuln:CVE-2024-1234") == ["a0", "a1", "a2", "a3", "a4"]
    assert _linked(db, "vuln:tenable:55555") == ["a1"]


def test_score_breakdown_hand_computed(db: Database) -> None:
    with db.write() as conn:
        _insert(conn, "services", {"service_id": "svc-bank", "org_id": ORG, "installation_id": "inst-sn",
                                   "source_id": "s1", "name": "Online Banking", "criticality": "1 - most critical"})  # fmt: skip
        _asset(conn, "a1", "svc-bank")
        _asset(conn, "a2")
        _insert(
            conn,
            "vulnerabilities",
            _finding("f1", "a1", severity="critical", cvss_score=9.8, exploit_score=9.1),
        )
        _insert(conn, "vulnerabilities", _finding("f2", "a2", severity="medium"))
        _insert(conn, "detections", {"detection_id": "d1", "org_id": ORG, "installation_id": "inst-defender",
                                     "integration_key": "ms-defender", "source_id": "alert-1", "asset_id": "a2",
                                     "title": "Mimikatz", "category": "CredentialAccess", "severity": "high",
                                     "status": "new"})  # fmt: skip
        refresh_risks(conn, ORG, NOW)
    risk = _risks(db)["vuln:CVE-2024-1234"]
    breakdown = json.loads(risk["score_breakdown"])
    # likelihood: critical (5) + exploit (VPR 9.1 >= 7: +1) + active alert on a2 (+1) -> capped at 5
    assert breakdown["likelihood"]["severity_points"] == 5
    assert breakdown["likelihood"]["exploit_points"] == 1
    assert breakdown["likelihood"]["active_alert_points"] == 1
    assert risk["likelihood"] == 5
    # impact: Online Banking is "1 - most critical" (5), 2 assets add nothing -> 5
    assert breakdown["impact"]["criticality"] == "critical"
    assert breakdown["impact"]["criticality_points"] == 5
    assert breakdown["impact"]["affected_assets"] == 2
    assert breakdown["impact"]["asset_count_points"] == 0
    assert risk["impact"] == 5
    assert risk["score"] == 100.0 and risk["level"] == "critical" and risk["status"] == "open"
    alert = _risks(db)["detection:ms-defender:alert-1"]
    # high (4), no other open alert on a2; a2 has no known criticality -> default impact 2: 4 x 2 x 4 = 32
    assert (alert["likelihood"], alert["impact"], alert["score"], alert["level"]) == (4, 2, 32.0, "medium")
    assert alert["category"] == "threat detection"
    assert _linked(db, "detection:ms-defender:alert-1") == ["a2"]


def test_status_follows_findings_and_created_at_is_kept(db: Database) -> None:
    with db.write() as conn:
        _asset(conn, "a1")
        _insert(conn, "vulnerabilities", _finding("f1", "a1"))
        refresh_risks(conn, ORG, NOW)
    first = _risks(db)["vuln:CVE-2024-1234"]
    with db.write() as conn:
        conn.execute(
            "UPDATE vulnerabilities SET state = 'fixed', fixed_at = ? WHERE finding_id = 'f1'", [NOW]
        )
        refresh_risks(conn, ORG, NOW + dt.timedelta(hours=6))
    fixed = _risks(db)["vuln:CVE-2024-1234"]
    assert fixed["status"] == "mitigated"
    assert fixed["created_at"] == first["created_at"]
    assert _linked(db, "vuln:CVE-2024-1234") == ["a1"]  # history keeps the asset
    with db.write() as conn:
        conn.execute("UPDATE vulnerabilities SET state = 'reopened' WHERE finding_id = 'f1'")
        refresh_risks(conn, ORG, NOW + dt.timedelta(hours=12))
    assert _risks(db)["vuln:CVE-2024-1234"]["status"] == "open"


def test_info_findings_make_no_risk_by_default(db: Database) -> None:
    with db.write() as conn:
        _asset(conn, "a1")
        _insert(
            conn, "vulnerabilities", _finding("f1", "a1", cve_ids=[], vendor_vuln_id="11936", severity="info")
        )
        refresh_risks(conn, ORG, NOW)
    assert _risks(db) == {}
