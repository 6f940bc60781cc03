"""A hand-built two-organisation estate in a real DuckDB file, and the expectations derived from it.

Organisation ``acme`` (A) has a small cross-source estate; ``globex`` (B) has one asset of its own.
Every identifier of A contains "acme" so a leak into B's results is visible in any column.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aria_sync.audit import Actor, record
from aria_sync.store import Database
from aria_sync.store.schema import org_tables

ORG_A = "acme"
ORG_B = "globex"
AS_OF = dt.datetime.now(dt.UTC).replace(microsecond=0)


def ago(days: float = 0, hours: float = 0) -> dt.datetime:
    return AS_OF - dt.timedelta(days=days, hours=hours)


def _insert(conn: Any, table: str, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(row.values()))


def _installation(org: str, inst: str, key: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "org_id": org,
        "installation_id": inst,
        "integration_key": key,
        "name": name,
        "config": "{}",
        "enabled": True,
        "status": "active",
        "created_at": ago(days=60),
        **extra,
    }


def _source(
    org: str, asset: str, inst: str, key: str, table: str, source_id: str, *, last_seen: dt.datetime,
    os: str | None = None, status: str = "active", deleted: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """An identity record and its link to an asset."""
    identity = {
        "org_id": org, "installation_id": inst, "integration_key": key, "source_table": table,
        "source_id": source_id, "name": source_id, "os": os, "status": status, "last_seen": last_seen,
        "is_deleted": deleted,
    }  # fmt: skip
    link = {
        "org_id": org, "asset_id": asset, "installation_id": inst, "integration_key": key,
        "source_table": table, "source_id": source_id, "matched_on": "hostname", "last_seen": last_seen,
        "is_deleted": deleted,
    }  # fmt: skip
    return identity, link


def _asset(org: str, asset_id: str, name: str, sources: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "org_id": org, "asset_id": asset_id, "name": name, "hostname": name.lower(), "status": "active",
        "sources": sources, "ip_addresses": extra.pop("ips", []), "mac_addresses": [], **extra,
    }  # fmt: skip


def seed_org_a(conn: Any) -> None:
    org = ORG_A
    _insert(
        conn,
        "integration_installations",
        [
            _installation(org, "acme-inst-snow", "servicenow", "SNOW prod", last_sync_at=ago(hours=3),
                          last_sync_status="failed", last_error="acme snow login failed"),
            _installation(org, "acme-inst-mde", "ms-defender", "Defender"),
            _installation(org, "acme-inst-ten", "tenable", "Tenable", last_sync_at=ago(hours=2),
                          last_sync_status="succeeded", last_success_at=ago(hours=2)),
            _installation(org, "acme-inst-ex", "example", "Example"),
        ],
    )  # fmt: skip
    snow, mde, ten = (
        ("acme-inst-snow", "servicenow", "servicenow_cmdb_items"),
        ("acme-inst-mde", "ms-defender", "ms_defender_assets"),
        ("acme-inst-ten", "tenable", "tenable_assets"),
    )
    pairs = [
        _source(org, "acme-a1", *snow, "acme-cmdb-a1", last_seen=ago(1), os="Windows Server 2019"),
        _source(org, "acme-a1", *mde, "acme-mde-a1", last_seen=ago(1), os="WindowsServer2019"),
        _source(org, "acme-a1", *ten, "acme-ten-a1", last_seen=ago(5), os="Microsoft Windows Server 2019"),
        _source(org, "acme-a2", *snow, "acme-cmdb-a2", last_seen=ago(1), os="Red Hat Enterprise Linux 8"),
        _source(org, "acme-a2", *ten, "acme-ten-a2", last_seen=ago(45), os="Linux Kernel 4.18"),
        _source(org, "acme-a3", *mde, "acme-mde-a3", last_seen=ago(1), os="Windows11"),
        _source(org, "acme-a3", *ten, "acme-ten-a3", last_seen=ago(2), os="Ubuntu 22.04"),
        _source(org, "acme-a4", *snow, "acme-cmdb-a4", last_seen=ago(200), status="retired"),
        _source(org, "acme-a4", *mde, "acme-mde-a4", last_seen=ago(2), os="WindowsServer2012R2"),
        _source(org, "acme-a5", *snow, "acme-cmdb-a5", last_seen=ago(3)),
        _source(org, "acme-a6", *snow, "acme-cmdb-a6", last_seen=ago(90), deleted=True),
    ]
    _insert(conn, "asset_identities", [p[0] for p in pairs])
    _insert(conn, "asset_sources", [p[1] for p in pairs])
    _insert(
        conn,
        "assets",
        [
            _asset(org, "acme-a1", "web-01", ["servicenow", "ms-defender", "tenable"], criticality="high",
                   os="Windows Server 2019", ips=["10.1.0.11"], serial_number="ACME-SN-1"),
            _asset(org, "acme-a2", "db-01", ["servicenow", "tenable"], criticality="critical",
                   os="Red Hat Enterprise Linux 8", ips=["10.1.0.12"]),
            _asset(org, "acme-a3", "laptop-07", ["ms-defender", "tenable"], criticality="medium",
                   os="Windows11", owner="j.doe_acme"),
            _asset(org, "acme-a4", "old-srv", ["servicenow", "ms-defender"], status="retired"),
            _asset(org, "acme-a5", "printer-3", ["servicenow"], criticality="low", asset_type="printer"),
            _asset(org, "acme-a6", "gone-01", ["servicenow"], status="deleted"),
        ],
    )  # fmt: skip
    vuln = {"org_id": org, "installation_id": "acme-inst-ten", "integration_key": "tenable"}
    _insert(
        conn,
        "vulnerabilities",
        [
            {**vuln, "finding_id": "acme-v1", "source_id": "acme-v1", "asset_id": "acme-a1", "severity": "critical",
             "cvss_score": 9.8, "state": "open", "first_found": ago(20), "title": "acme OpenSSL",
             "cve_ids": ["CVE-2024-0001"]},
            {**vuln, "finding_id": "acme-v2", "source_id": "acme-v2", "asset_id": "acme-a1", "severity": "high",
             "cvss_score": 7.5, "state": "open", "first_found": ago(10), "title": "acme IIS"},
            {**vuln, "finding_id": "acme-v3", "source_id": "acme-v3", "asset_id": "acme-a2", "severity": "critical",
             "cvss_score": 9.1, "state": "fixed", "first_found": ago(50), "fixed_at": ago(5), "title": "acme glibc"},
            {**vuln, "finding_id": "acme-v4", "source_id": "acme-v4", "asset_id": "acme-a2", "severity": "medium",
             "cvss_score": 5.0, "state": "reopened", "first_found": ago(100), "title": "acme sudo"},
            {**vuln, "finding_id": "acme-v5", "source_id": "acme-v5", "asset_id": "acme-a3", "severity": "low",
             "cvss_score": 3.1, "state": "open", "first_found": ago(30, hours=12), "title": "acme banner"},
            {**vuln, "finding_id": "acme-v6", "source_id": "acme-v6", "asset_id": "acme-a3", "severity": "info",
             "state": "open", "first_found": ago(400), "title": "acme os detect"},
            {**vuln, "finding_id": "acme-v7", "source_id": "acme-v7", "asset_id": "acme-a1", "severity": "high",
             "cvss_score": 8.0, "state": "open", "first_found": ago(60), "is_deleted": True, "title": "acme gone"},
        ],
    )  # fmt: skip
    _insert(
        conn,
        "risks",
        [
            {"org_id": org, "risk_id": "acme-r1", "title": "acme OpenSSL", "score": 20.0, "level": "critical",
             "status": "open", "affected_assets": 2,
             "score_breakdown": json.dumps({"likelihood": 4, "impact": 5, "factors": {"exploit": 1.5}})},
            {"org_id": org, "risk_id": "acme-r2", "title": "acme IIS", "score": 12.0, "level": "high",
             "status": "open", "affected_assets": 1, "score_breakdown": json.dumps({"likelihood": 3, "impact": 4})},
            {"org_id": org, "risk_id": "acme-r3", "title": "acme glibc", "score": 25.0, "level": "critical",
             "status": "closed", "affected_assets": 1, "score_breakdown": json.dumps({"likelihood": 5})},
            {"org_id": org, "risk_id": "acme-r4", "title": "acme banner", "score": 5.0, "level": "low",
             "status": "open", "affected_assets": 1},
        ],
    )  # fmt: skip
    svc = {"org_id": org, "installation_id": "acme-inst-snow", "integration_key": "servicenow"}
    _insert(
        conn,
        "services",
        [
            {**svc, "service_id": "acme-svc-pay", "source_id": "acme-s-pay", "name": "Payments", "criticality": "high"},
            {**svc, "service_id": "acme-svc-hr", "source_id": "acme-s-hr", "name": "HR Portal", "criticality": "low"},
        ],
    )  # fmt: skip
    _insert(
        conn,
        "service_assets",
        [
            {"org_id": org, "installation_id": "acme-inst-snow", "service_source_id": "acme-s-pay",
             "asset_source_id": "acme-cmdb-a1"},
            {"org_id": org, "installation_id": "acme-inst-snow", "service_source_id": "acme-s-pay",
             "asset_source_id": "acme-cmdb-a2"},
            {"org_id": org, "installation_id": "acme-inst-snow", "service_source_id": "acme-s-hr",
             "asset_source_id": "acme-cmdb-a5"},
        ],
    )  # fmt: skip
    _insert(
        conn,
        "incidents",
        [
            {**svc, "incident_id": "acme-i1", "source_id": "acme-i1", "title": "acme pay down", "severity": "high",
             "status": "New", "opened_at": ago(1), "service_id": "acme-svc-pay"},
            {**svc, "incident_id": "acme-i2", "source_id": "acme-i2", "title": "acme pay slow", "severity": "critical",
             "status": "Closed", "opened_at": ago(10), "resolved_at": ago(9), "source_service_id": "acme-s-pay"},
            {**svc, "incident_id": "acme-i3", "source_id": "acme-i3", "title": "acme hr login", "severity": "critical",
             "status": "In Progress", "opened_at": ago(2), "service_id": "acme-svc-hr"},
            {"org_id": org, "installation_id": "acme-inst-mde", "integration_key": "ms-defender",
             "incident_id": "acme-i4", "source_id": "acme-i4", "title": "acme malware", "severity": "medium",
             "status": "Active", "opened_at": ago(3), "asset_id": "acme-a3"},
        ],
    )  # fmt: skip
    job = {"org_id": org, "integration_key": "tenable", "trigger": "manual", "full_refresh": False}
    counts = {"fetched": 10, "inserted": 1, "updated": 2, "unchanged": 7, "removed": 1, "rejected": 0}
    _insert(
        conn,
        "integration_sync_jobs",
        [
            {**job, "job_id": "acme-j1", "installation_id": "acme-inst-ten", "installation_name": "Tenable",
             "status": "succeeded", "created_at": ago(2), "started_at": ago(2), "finished_at": ago(2),
             "streams": json.dumps({"assets": {**counts, "inserted": 10, "unchanged": 0, "status": "succeeded"}})},
            {**job, "job_id": "acme-j2", "installation_id": "acme-inst-ten", "installation_name": "Tenable",
             "status": "succeeded", "created_at": ago(hours=2), "started_at": ago(hours=2),
             "finished_at": ago(hours=2),
             "streams": json.dumps({"assets": {**counts, "status": "succeeded"},
                                    "vulnerabilities": {"fetched": 50, "inserted": 5, "updated": 3, "unchanged": 40,
                                                        "removed": 0, "rejected": 2, "status": "succeeded"}})},
            {**job, "job_id": "acme-j3", "installation_id": "acme-inst-ten", "installation_name": "Tenable",
             "status": "running", "created_at": ago(hours=0.1), "started_at": ago(hours=0.1),
             "streams": json.dumps({})},
            {**job, "job_id": "acme-j4", "installation_id": "acme-inst-snow", "installation_name": "SNOW prod",
             "integration_key": "servicenow", "status": "failed", "created_at": ago(hours=3),
             "started_at": ago(hours=3), "finished_at": ago(hours=3), "error": "acme snow login failed",
             "streams": json.dumps({"cmdb": {"fetched": 0, "status": "failed"}})},
        ],
    )  # fmt: skip
    _insert(
        conn,
        "integration_rejected_records",
        [
            {"org_id": org, "installation_id": "acme-inst-ten", "job_id": "acme-j2", "stream": "vulnerabilities",
             "source_table": "tenable_vulnerabilities", "source_id": f"acme-bad-{n}", "reason": "no asset id",
             "raw": json.dumps({"id": n}), "rejected_at": ago(hours=2, days=n)}
            for n in range(2)
        ],
    )  # fmt: skip
    _insert(
        conn,
        "data_quality_findings",
        [
            {"org_id": org, "integration_key": "tenable", "kind": "duplicate_serial", "identifier": "serial_number",
             "value": "acme-0000", "record_count": 3, "detected_at": ago(1)},
            {"org_id": org, "integration_key": "ms-defender", "kind": "placeholder_mac", "identifier": "mac",
             "value": "acme-000000000000", "record_count": 2, "detected_at": ago(1)},
        ],
    )  # fmt: skip
    _insert(
        conn,
        "example_devices",
        [
            {"org_id": org, "installation_id": "acme-inst-ex", "source_id": f"acme-dev-{n}",
             "raw": json.dumps({"id": f"acme-dev-{n}", "name": f"acme-device_{n}", "os": "Linux"}),
             "last_seen_at": ago(hours=n), "is_deleted": n == 2}
            for n in range(3)
        ],
    )  # fmt: skip
    actor = Actor("acme-admin", "admin")
    for action in ("installation.install", "installation.test", "sync.run"):
        record(conn, org, actor, action, target_type="installation", target_id="acme-inst-ten")


def seed_org_b(conn: Any) -> None:
    org = ORG_B
    _insert(
        conn,
        "integration_installations",
        [_installation(org, "globex-inst-ten", "tenable", "Tenable", last_sync_at=ago(hours=1),
                       last_sync_status="succeeded", last_success_at=ago(hours=1))],
    )  # fmt: skip
    identity, link = _source(
        org, "globex-b1", "globex-inst-ten", "tenable", "tenable_assets", "globex-ten-b1", last_seen=ago(1),
        os="Ubuntu 20.04",
    )  # fmt: skip
    _insert(conn, "asset_identities", [identity])
    _insert(conn, "asset_sources", [link])
    _insert(conn, "assets", [_asset(org, "globex-b1", "b-host", ["tenable"], criticality="high")])
    _insert(
        conn,
        "vulnerabilities",
        [{"org_id": org, "installation_id": "globex-inst-ten", "integration_key": "tenable",
          "finding_id": "globex-v1", "source_id": "globex-v1", "asset_id": "globex-b1", "severity": "critical",
          "cvss_score": 9.0, "state": "open", "first_found": ago(1), "title": "globex log4j"}],
    )  # fmt: skip
    _insert(
        conn,
        "risks",
        [{"org_id": org, "risk_id": "globex-r1", "title": "globex log4j", "score": 9.0, "level": "medium",
          "status": "open", "affected_assets": 1, "score_breakdown": json.dumps({"likelihood": 3})}],
    )  # fmt: skip
    _insert(
        conn,
        "services",
        [{"org_id": org, "installation_id": "globex-inst-ten", "integration_key": "tenable",
          "service_id": "globex-svc", "source_id": "globex-s", "name": "Globex Web"}],
    )  # fmt: skip
    _insert(
        conn,
        "incidents",
        [{"org_id": org, "installation_id": "globex-inst-ten", "integration_key": "tenable",
          "incident_id": "globex-i1", "source_id": "globex-i1", "title": "globex outage", "status": "New",
          "severity": "low", "opened_at": ago(1), "service_id": "globex-svc"}],
    )  # fmt: skip
    _insert(
        conn,
        "integration_sync_jobs",
        [{"org_id": org, "job_id": "globex-j1", "installation_id": "globex-inst-ten", "installation_name": "Tenable",
          "integration_key": "tenable", "status": "succeeded", "created_at": ago(hours=1),
          "started_at": ago(hours=1), "finished_at": ago(hours=1),
          "streams": json.dumps({"assets": {"fetched": 1, "inserted": 1, "status": "succeeded"}})}],
    )  # fmt: skip
    _insert(
        conn,
        "integration_rejected_records",
        [{"org_id": org, "installation_id": "globex-inst-ten", "stream": "assets", "source_id": "globex-bad",
          "reason": "no id", "rejected_at": ago(1)}],
    )  # fmt: skip
    _insert(
        conn,
        "data_quality_findings",
        [{"org_id": org, "kind": "duplicate_serial", "value": "globex-1", "record_count": 2, "detected_at": ago(1)}],
    )  # fmt: skip
    _insert(
        conn,
        "example_devices",
        [{"org_id": org, "installation_id": "globex-inst-ten", "source_id": "globex-dev",
          "raw": json.dumps({"id": "globex-dev", "name": "globex device"}), "last_seen_at": ago(1)}],
    )  # fmt: skip
    record(conn, org, Actor("globex-admin", "admin"), "installation.install", target_id="globex-inst-ten")


def build(path: Path, seeders: tuple[Callable[[Any], None], ...]) -> Database:
    database = Database(path)
    with database.write() as conn:
        for seed in seeders:
            seed(conn)
    return database


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    # Built once per session with the same connector set every test uses, then copied per test.
    folder = tmp_path_factory.mktemp("analysis-templates")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARIA_SYNC_EXTRA_CONNECTORS", "aria_sync.connectors.example")
        both = build(folder / "both.duckdb", (seed_org_a, seed_org_b))
        # B alone is the same file with A's rows deleted, so both hold byte-identical B rows.
        only_b = Database(folder / "only_b.duckdb")
        shutil.copyfile(both.path, only_b.path)
        with only_b.write() as conn:
            for table in org_tables():
                conn.execute(f"DELETE FROM {table} WHERE org_id = ?", [ORG_A])
    yield {"both": both.path, "only_b": only_b.path}


@pytest.fixture
def estate(db: Database, _templates: dict[str, Path]) -> Database:
    """Both organisations' data in the test's own database file."""
    db.path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_templates["both"], db.path)
    return db


@pytest.fixture
def estate_b_only(tmp_path: Path, _templates: dict[str, Path]) -> Database:
    """Organisation B's data alone: what B must see through every function of the shared file."""
    path = tmp_path / "only_b" / "aria.duckdb"
    path.parent.mkdir(parents=True)
    shutil.copyfile(_templates["only_b"], path)
    return Database(path)
