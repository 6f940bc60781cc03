"""Correlation rules on hand-built identity rows: junk, weak names, re-images, precedence, deletions."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace
from typing import Any

import pytest

from aria_sync.correlation import correlate
from aria_sync.correlation.identifiers import PLACEHOLDER_SERIALS, is_junk_mac, is_junk_serial, normalise_mac
from aria_sync.store import Database

ORG = "acme"
NOW = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
T, D, C = (
    ("tenable", "tenable_assets"),
    ("ms-defender", "ms_defender_assets"),
    ("servicenow", "servicenow_cmdb_items"),
)


def _run(db: Database, helpers: SimpleNamespace, rows: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    with db.write() as conn:
        helpers.insert_rows(conn, "asset_identities", rows)
        correlate(conn, ORG, NOW)
    with db.read() as conn:
        found = conn.execute("SELECT source_id, asset_id, matched_on FROM asset_sources").fetchall()
    return {source_id: (asset_id, matched_on) for source_id, asset_id, matched_on in found}


def _asset(db: Database, asset_id: str) -> dict[str, Any]:
    with db.read() as conn:
        cursor = conn.execute("SELECT * FROM assets WHERE asset_id = ?", [asset_id])
        names = [d[0] for d in cursor.description or []]
        row = cursor.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


@pytest.mark.parametrize(
    "serial", ["To be filled by O.E.M.", "Default string", "0", "System Serial Number", "None", "N/A",
               "Not Specified", "INVALID", "123456789", "   ", "", "XXXXXXXX", "00000000"],
)  # fmt: skip
def test_placeholder_serials_never_link(db: Database, helpers: SimpleNamespace, serial: str) -> None:
    links = _run(db, helpers, [
        helpers.identity(*T, "t1", hostname="alpha", serial_number=serial),
        helpers.identity(*C, "c1", hostname="beta", serial_number=serial),
    ])  # fmt: skip
    assert links["t1"][0] != links["c1"][0]
    assert is_junk_serial(serial)


@pytest.mark.parametrize(
    "mac",
    ["00:00:00:00:00:00", "FF:FF:FF:FF:FF:FF", "01:00:5e:00:00:fb", "02:00:4c:4f:4f:50", "02:42:ac:11:00:02"],
)
def test_junk_macs_never_link(db: Database, helpers: SimpleNamespace, mac: str) -> None:
    links = _run(db, helpers, [
        helpers.identity(*T, "t1", hostname="alpha", mac_addresses=[mac]),
        helpers.identity(*D, "d1", hostname="beta", mac_addresses=[mac.replace(":", "").upper()]),
    ])  # fmt: skip
    assert links["t1"][0] != links["d1"][0]
    normalised = normalise_mac(mac)
    assert normalised is not None and is_junk_mac(normalised)


def test_value_shared_within_one_source_is_junk_and_reported(db: Database, helpers: SimpleNamespace) -> None:
    cmdb = [helpers.identity(*C, f"c{i}", hostname=f"host{i}", serial_number="ABC123XYZ") for i in range(4)]
    links = _run(
        db, helpers, [*cmdb, helpers.identity(*T, "t1", hostname="other", serial_number="ABC123XYZ")]
    )
    assert len({asset for asset, _ in links.values()}) == 5
    with db.read() as conn:
        finding = conn.execute(
            "SELECT kind, identifier, value, record_count, source_table FROM data_quality_findings"
        ).fetchall()
    assert finding == [("shared_identifier", "serial", "ABC123XYZ", 4, "servicenow_cmdb_items")]


def test_reused_ip_never_links(db: Database, helpers: SimpleNamespace) -> None:
    links = _run(db, helpers, [
        helpers.identity(*T, "t1", hostname="alpha", ip_addresses=["10.0.0.7"]),
        helpers.identity(*D, "d1", hostname="beta", ip_addresses=["10.0.0.7"]),
    ])  # fmt: skip
    assert links["t1"][0] != links["d1"][0]


def test_same_short_name_in_two_domains_stays_apart(db: Database, helpers: SimpleNamespace) -> None:
    links = _run(db, helpers, [
        helpers.identity(*T, "t-corp", hostname="web01", fqdn="web01.corp.example.com"),
        helpers.identity(*T, "t-lab", hostname="web01", fqdn="web01.lab.example.net"),
        helpers.identity(*D, "d-corp", hostname="web01", fqdn="web01.corp.example.com"),
        helpers.identity(*D, "d-lab", hostname="web01"),  # short name only
        helpers.identity(*C, "c-lab", hostname="web01", fqdn="web01.lab.example.net"),
    ])  # fmt: skip
    assert links["t-corp"][0] == links["d-corp"][0]
    assert links["t-lab"][0] == links["c-lab"][0]
    assert links["t-corp"][0] != links["t-lab"][0]
    assert links["d-lab"][0] not in (links["t-corp"][0], links["t-lab"][0])  # ambiguous: stays alone
    assert links["d-corp"][1] == "fqdn (unique both sides)"


def test_hostname_link_refused_when_domains_differ(db: Database, helpers: SimpleNamespace) -> None:
    links = _run(db, helpers, [
        helpers.identity(*T, "t1", hostname="db07", fqdn="db07.corp.example.com"),
        helpers.identity(*C, "c1", hostname="db07", fqdn="db07.lab.example.net"),
    ])  # fmt: skip
    assert links["t1"][0] != links["c1"][0]


def test_reimaged_edr_machine_joins_one_asset(db: Database, helpers: SimpleNamespace) -> None:
    links = _run(db, helpers, [
        helpers.identity(*D, "old", edr_id="old", fqdn="fin-lt-0001.corp.example.com", status="inactive",
                         first_seen=NOW - dt.timedelta(days=300), last_seen=NOW - dt.timedelta(days=20)),
        helpers.identity(*D, "new", edr_id="new", fqdn="fin-lt-0001.corp.example.com", status="active",
                         first_seen=NOW - dt.timedelta(days=19), last_seen=NOW),
        helpers.identity(*T, "t1", hostname="fin-lt-0001", fqdn="fin-lt-0001.corp.example.com"),
    ])  # fmt: skip
    assert links["old"][0] == links["new"][0] == links["t1"][0]
    assert {links["old"][1], links["new"][1]} == {
        "hostname (re-imaged EDR device)",
        "fqdn (unique both sides)",
    }
    assert links["t1"][1] == "created"


def test_two_live_records_of_one_source_never_merge_on_names(db: Database, helpers: SimpleNamespace) -> None:
    links = _run(db, helpers, [
        helpers.identity(*T, "t1", hostname="app01", mac_addresses=["d4:81:d7:00:00:01"]),
        helpers.identity(*T, "t2", hostname="app02", mac_addresses=["d4:81:d7:00:00:01"]),
        helpers.identity(*C, "c1", hostname="app03", mac_addresses=["D4:81:D7:00:00:01"]),
    ])  # fmt: skip
    assert len({asset for asset, _ in links.values()}) == 3


def test_strong_identifiers_and_their_matched_on(db: Database, helpers: SimpleNamespace) -> None:
    links = _run(db, helpers, [
        helpers.identity(*C, "sys1", servicenow_sysid="sys1", hostname="a"),
        helpers.identity(*T, "t1", servicenow_sysid="SYS1", hostname="a-scan"),
        helpers.identity(*C, "sys2", servicenow_sysid="sys2", serial_number="5CG1234XYZ", hostname="b"),
        helpers.identity(*T, "t2", serial_number="5cg1234xyz ", hostname="b-scan"),
        helpers.identity(*T, "t3", bios_uuid="4C4C4544-0042-3510-8055-B7C04F4E3232", cloud_id="VM-1", hostname="c"),
        helpers.identity(*D, "d3", cloud_id="vm-1", hostname="c-edr"),
        helpers.identity(*C, "sys4", servicenow_sysid="sys4", hostname="d", mac_addresses=["8C:EC:4B:89:7E:73"]),
        helpers.identity(*D, "d4", mac_addresses=["8CEC4B897E73"], ip_addresses=["10.1.1.1"]),
    ])  # fmt: skip
    assert links["t1"] == (links["sys1"][0], "servicenow_sysid")
    assert links["t2"] == (links["sys2"][0], "serial")
    assert links["d3"] == (links["t3"][0], "cloud_id")
    assert links["d4"] == (links["sys4"][0], "mac (unique both sides)")


def test_conflicting_serials_block_a_name_link(db: Database, helpers: SimpleNamespace) -> None:
    links = _run(db, helpers, [
        helpers.identity(*C, "c1", hostname="srv9", fqdn="srv9.corp.example.com", serial_number="AAA111"),
        helpers.identity(*T, "t1", hostname="srv9", fqdn="srv9.corp.example.com", serial_number="BBB222"),
    ])  # fmt: skip
    assert links["c1"][0] != links["t1"][0]


def test_policy_precedence_and_aggregates(db: Database, helpers: SimpleNamespace) -> None:
    seen = NOW - dt.timedelta(days=1)
    links = _run(db, helpers, [
        helpers.identity(*T, "t1", name="SRV1-scan", fqdn="srv1.corp.example.com", owner="scanner-owner",
                         os="Linux Kernel 5.15", ip_addresses=["10.0.0.1"], last_seen=seen),
        helpers.identity(*D, "d1", fqdn="srv1.corp.example.com", os="Linux 22.04", ip_addresses=["10.0.0.2"],
                         last_seen=NOW, owner="edr-owner"),
        helpers.identity(*C, "c1", name="SRV1", fqdn="srv1.corp.example.com", owner="jane.doe",
                         os="Ubuntu 20.04", asset_type="cmdb_ci_linux_server", ip_addresses=["10.0.0.1"],
                         last_seen=seen - dt.timedelta(days=3)),
    ])  # fmt: skip
    asset = _asset(db, links["t1"][0])
    assert links["c1"][0] == links["d1"][0] == links["t1"][0]
    assert asset["owner"] == "jane.doe" and asset["name"] == "SRV1" and asset["os"] == "Linux 22.04"
    assert asset["last_seen"] == NOW
    assert asset["ip_addresses"] == ["10.0.0.1", "10.0.0.2"]
    assert asset["sources"] == ["ms-defender", "servicenow", "tenable"]
    sources = json.loads(asset["field_sources"])
    assert (
        sources["owner"] == "servicenow"
        and sources["os"] == "ms-defender"
        and sources["last_seen"] == "ms-defender"
    )


def test_deleted_records_keep_their_link_and_all_deleted_means_deleted(
    db: Database, helpers: SimpleNamespace
) -> None:
    links = _run(db, helpers, [
        helpers.identity(*T, "t1", fqdn="gone.corp.example.com"),
        helpers.identity(*C, "c1", fqdn="gone.corp.example.com", status="retired"),
    ])  # fmt: skip
    assert links["t1"][0] == links["c1"][0]
    with db.write() as conn:
        conn.execute(
            "UPDATE asset_identities SET is_deleted = true, status = 'deleted' WHERE source_id = 't1'"
        )
        correlate(conn, ORG, NOW)
    with db.read() as conn:
        kept = conn.execute(
            "SELECT asset_id, is_deleted FROM asset_sources WHERE source_id = 't1'"
        ).fetchone()
    assert kept == (links["c1"][0], True)
    assert _asset(db, links["c1"][0])["status"] == "retired"
    with db.write() as conn:
        conn.execute("UPDATE asset_identities SET is_deleted = true")
        correlate(conn, ORG, NOW)
    with db.read() as conn:
        rows = conn.execute("SELECT source_id, asset_id, is_deleted FROM asset_sources ORDER BY 1").fetchall()
    assert rows == [("c1", links["c1"][0], True), ("t1", links["c1"][0], True)]
    assert _asset(db, links["c1"][0])["status"] == "deleted"


def test_findings_detections_and_incidents_get_their_asset(db: Database, helpers: SimpleNamespace) -> None:
    with db.write() as conn:
        conn.execute(
            """INSERT INTO vulnerabilities (finding_id, org_id, installation_id, source_id, source_asset_id)
               VALUES ('f1', 'acme', 'inst-tenable', 'f1', 't1')"""
        )
        conn.execute(
            """INSERT INTO detections (detection_id, org_id, installation_id, source_id, source_asset_id)
               VALUES ('a1', 'acme', 'inst-defender', 'a1', 'd1')"""
        )
        conn.execute(
            """INSERT INTO incidents (incident_id, org_id, installation_id, source_id, source_asset_id)
               VALUES ('i1', 'acme', 'inst-servicenow', 'i1', 'c1')"""
        )
    links = _run(db, helpers, [
        helpers.identity(*T, "t1", fqdn="x.corp.example.com"),
        helpers.identity(*D, "d1", fqdn="x.corp.example.com"),
        helpers.identity(*C, "c1", fqdn="x.corp.example.com"),
    ])  # fmt: skip
    with db.read() as conn:
        linked = {
            row[0]
            for table in ("vulnerabilities", "detections", "incidents")
            for row in conn.execute(f"SELECT asset_id FROM {table}").fetchall()
        }
    assert linked == {links["t1"][0]}


def test_placeholder_list_is_upper_case() -> None:
    assert all(value == value.upper() for value in PLACEHOLDER_SERIALS)
