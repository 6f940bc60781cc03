"""Incidents, sync operations, the activity log, quarantined records and landing-row browsing."""

from __future__ import annotations

import dataclasses

import pytest

import aria_sync as aria
from aria_sync.connectors.example.connector import ExampleConnector
from aria_sync.errors import NotFoundError, UnknownIntegrationError
from aria_sync.store import Database

from .conftest import ORG_A, ORG_B


def test_incidents_newest_first_with_the_service_they_affect(estate: Database) -> None:
    frame = aria.incidents(db=estate, org=ORG_A)
    assert list(frame["incident_id"]) == ["acme-i1", "acme-i3", "acme-i4", "acme-i2"]
    # i2 names its CMDB service only by the vendor's id; it still lands on the ARIA service.
    assert frame.set_index("incident_id").loc["acme-i2", "service_id"] == "acme-svc-pay"
    assert list(frame["is_open"]) == [True, True, True, False]


def test_incident_filters(estate: Database) -> None:
    assert list(aria.incidents(service_id="acme-svc-pay", db=estate, org=ORG_A)["incident_id"]) == [
        "acme-i1",
        "acme-i2",
    ]
    assert list(aria.incidents(status="closed", db=estate, org=ORG_A)["incident_id"]) == ["acme-i2"]
    assert aria.count_incidents(open_only=True, db=estate, org=ORG_A) == 3
    assert list(aria.incidents(db=estate, org=ORG_A, limit=1, offset=3)["incident_id"]) == ["acme-i2"]


def test_incidents_by_service(estate: Database) -> None:
    frame = aria.incidents_by_service(db=estate, org=ORG_A)
    assert frame[["service_name", "incidents", "open_incidents", "critical", "high"]].values.tolist() == [
        ["Payments", 2, 1, 1, 1],
        ["(no service)", 1, 1, 0, 0],
        ["HR Portal", 1, 1, 1, 0],
    ]


def test_sync_health_is_one_row_per_installation(estate: Database) -> None:
    frame = aria.sync_health(db=estate, org=ORG_A).set_index("name")
    assert frame.loc["Tenable", "health"] == "healthy"
    assert frame.loc["Tenable", "success_rate"] == 1.0
    assert frame.loc["SNOW prod", "health"] == "failing"
    assert frame.loc["Defender", "health"] == "never synced"
    assert list(aria.sync_health(db=estate, org="nobody").columns)[:4] == [
        "installation_id",
        "name",
        "integration_key",
        "health",
    ]


def test_sync_jobs_newest_first_with_totals(estate: Database) -> None:
    frame = aria.sync_jobs(db=estate, org=ORG_A)
    assert list(frame["job_id"]) == ["acme-j3", "acme-j2", "acme-j4", "acme-j1"]
    j2 = frame.set_index("job_id").loc["acme-j2"]
    assert (j2["fetched"], j2["inserted"], j2["updated"], j2["removed"], j2["rejected"]) == (60, 6, 5, 1, 2)
    assert list(aria.sync_jobs(2, db=estate, org=ORG_A)["job_id"]) == ["acme-j3", "acme-j2"]
    assert list(aria.sync_jobs(installation="SNOW prod", db=estate, org=ORG_A)["job_id"]) == ["acme-j4"]
    assert list(aria.sync_jobs(status="succeeded", offset=1, db=estate, org=ORG_A)["job_id"]) == ["acme-j1"]
    with pytest.raises(NotFoundError):
        aria.sync_jobs(installation="no such thing", db=estate, org=ORG_A)


def test_changes_since_previous_sync_come_from_the_last_finished_job(estate: Database) -> None:
    frame = aria.changes_since_previous_sync(db=estate, org=ORG_A)
    assert frame[["job_id", "stream", "inserted", "updated", "removed"]].values.tolist() == [
        ["acme-j4", "cmdb", 0, 0, 0],
        ["acme-j2", "assets", 1, 2, 1],  # j3 is still running, j1 is older
        ["acme-j2", "vulnerabilities", 5, 3, 0],
    ]
    one = aria.changes_since_previous_sync("acme-inst-ten", db=estate, org=ORG_A)
    assert list(one["stream"]) == ["assets", "vulnerabilities"]
    assert aria.changes_since_previous_sync(db=estate, org="nobody").empty


def test_activity_log_and_its_hash_chain(estate: Database) -> None:
    log = aria.activity_log(db=estate, org=ORG_A)
    assert list(log["seq"]) == [3, 2, 1]
    assert list(aria.activity_log(1, action="installation.test", db=estate, org=ORG_A)["seq"]) == [2]
    assert aria.count_activity_log(db=estate, org=ORG_A) == 3
    check = aria.verify_activity_log(db=estate, org=ORG_A)
    assert (check.ok, check.checked) == (True, 3)

    with estate.write() as conn:
        conn.execute(
            "UPDATE integration_activity_logs SET details = '{\"edited\": true}' WHERE org_id = ? AND seq = 2",
            [ORG_A],
        )
    broken = aria.verify_activity_log(db=estate, org=ORG_A)
    assert (broken.ok, broken.first_broken_seq) == (False, 2)
    assert aria.verify_activity_log(db=estate, org=ORG_B).ok


def test_rejected_records_and_data_quality_findings(estate: Database) -> None:
    rejected = aria.rejected_records(db=estate, org=ORG_A)
    assert list(rejected["source_id"]) == ["acme-bad-0", "acme-bad-1"]
    assert list(rejected["installation_name"]) == ["Tenable", "Tenable"]
    assert list(aria.rejected_records(1, offset=1, db=estate, org=ORG_A)["source_id"]) == ["acme-bad-1"]
    assert aria.count_rejected_records(stream="assets", db=estate, org=ORG_A) == 0
    findings = aria.data_quality_findings(db=estate, org=ORG_A)
    assert list(findings["kind"]) == ["duplicate_serial", "placeholder_mac"]
    assert list(
        aria.data_quality_findings(integration="ms-defender", db=estate, org=ORG_A)["record_count"]
    ) == [2]


def test_source_records_without_declared_columns_show_the_raw_record(estate: Database) -> None:
    frame = aria.source_records("example", "devices", db=estate, org=ORG_A)
    assert list(frame.columns) == [
        "source_id", "raw", "installation_id", "is_deleted", "first_seen_at", "last_seen_at",
    ]  # fmt: skip
    assert list(frame["source_id"]) == ["acme-dev-0", "acme-dev-1", "acme-dev-2"]
    assert list(frame["is_deleted"]) == [False, False, True]


def test_source_records_extract_the_declared_columns(
    estate: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    devices, events = ExampleConnector.streams
    declared = dataclasses.replace(
        devices, columns=(("Name", "raw->>'$.name'"), ("Operating system", "raw->>'$.os'"))
    )
    monkeypatch.setattr(ExampleConnector, "streams", (declared, events))
    frame = aria.source_records("example", "devices", limit=2, offset=1, db=estate, org=ORG_A)
    assert frame[["source_id", "Name", "Operating system"]].values.tolist() == [
        ["acme-dev-1", "acme-device_1", "Linux"],
        ["acme-dev-2", "acme-device_2", "Linux"],
    ]
    searched = aria.source_records("example", "devices", search="device_2", db=estate, org=ORG_A)
    assert list(searched["source_id"]) == ["acme-dev-2"]
    assert aria.count_source_records("example", "devices", search="acme", db=estate, org=ORG_A) == 3
    assert aria.count_source_records("example", "devices", installation="Example", db=estate, org=ORG_A) == 3


def test_source_records_of_unknown_streams(estate: Database) -> None:
    with pytest.raises(NotFoundError, match="devices"):
        aria.source_records("example", "nope", db=estate, org=ORG_A)
    with pytest.raises(UnknownIntegrationError):
        aria.source_records("nope", "devices", db=estate, org=ORG_A)
