"""The ServiceNow connector end to end: real HTTP to the simulated instance, a real DuckDB file."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from aria_sync.audit import Actor
from aria_sync.errors import ConfigurationError
from aria_sync.marketplace import Marketplace
from aria_sync.simulators.estate import Estate
from aria_sync.simulators.framework import SimulatorServer
from aria_sync.simulators.servicenow import ITIL_ONLY_USER, start_servicenow
from aria_sync.store import Database, OrgScope
from aria_sync.sync import SyncRunner

ORG = "acme"
NAME = "servicenow"
PAGE = 100
CMDB_CLASSES = ("cmdb_ci_computer", "cmdb_ci_server", "cmdb_ci_win_server", "cmdb_ci_linux_server")
SERVICE_CLASSES = ("cmdb_ci_service",)


def no_sleep(seconds: float) -> None:
    pass


@pytest.fixture
def estate() -> Estate:
    return Estate.generate("small")


@pytest.fixture
def server(estate: Estate) -> Iterator[SimulatorServer]:
    srv = start_servicenow(estate)
    yield srv
    srv.stop()


@dataclass
class Synced:
    """One installation synced once (and, for ``advanced``, again after ``estate.advance()``)."""

    db: Database
    server: SimulatorServer
    estate: Estate
    first: dict[str, Any]
    before: dict[str, dict[str, Any]]
    cursor: str | None = None
    second: dict[str, Any] | None = None


@contextlib.contextmanager
def _synced(tmp: Path, *, advance: bool) -> Iterator[Synced]:
    # Module scope: the environment the autouse fixture gives each test, set once for the whole module.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARIA_SYNC_VAULT", "file")
        patch.setenv("ARIA_SYNC_MASTER_KEY", Fernet.generate_key().decode())
        patch.setenv("ARIA_SYNC_ALLOWED_HOSTS", "127.0.0.1,localhost")
        patch.setenv("ARIA_SYNC_EXTRA_CONNECTORS", "aria_sync.connectors.example")
        estate = Estate.generate("small")
        server = start_servicenow(estate)
        try:
            db = Database(tmp / "data" / "aria.duckdb")
            install(db, server, estate)
            synced = Synced(db, server, estate, sync(db), {r["sys_id"]: dict(r) for r in _cmdb(estate)})
            if advance:
                synced.cursor = scalar(
                    db, "SELECT cursor FROM integration_sync_state WHERE stream = 'cmdb_items'"
                )
                estate.advance()
                synced.second = sync(db)
            yield synced
        finally:
            server.stop()


@pytest.fixture(scope="module")
def first_sync(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synced]:
    with _synced(tmp_path_factory.mktemp("first"), advance=False) as synced:
        yield synced


@pytest.fixture(scope="module")
def advanced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synced]:
    with _synced(tmp_path_factory.mktemp("advanced"), advance=True) as synced:
        yield synced


def _cmdb(estate: Estate) -> list[dict[str, Any]]:
    return estate.servicenow_records("cmdb_ci_computer")


def install(db: Database, server: SimulatorServer, estate: Estate, **overrides: Any) -> None:
    config = {
        "instanceUrl": server.base_url,
        **estate.credentials["servicenow"],
        "pageSize": PAGE,
        **overrides,
    }
    Marketplace(db, ORG, Actor("t", "admin")).install("servicenow", NAME, config)


def sync(db: Database, *, full: bool = False, sleep: Any = no_sleep) -> dict[str, Any]:
    result = SyncRunner(db, ORG, sleep=sleep).sync(NAME, full=full)
    return result.as_json()


def rows(db: Database, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    with OrgScope(db, ORG).read() as conn:
        return conn.rows(sql, params or [])


def scalar(db: Database, sql: str) -> Any:
    with OrgScope(db, ORG).read() as conn:
        return conn.scalar(sql)


def service_relations(estate: Estate) -> list[dict[str, Any]]:
    services = {row["sys_id"] for row in estate.servicenow_records("cmdb_ci_service")}
    return [row for row in estate.servicenow_records("cmdb_rel_ci") if row["parent"] in services]


def audited(estate: Estate) -> list[dict[str, Any]]:
    synced = {*CMDB_CLASSES, *SERVICE_CLASSES, "cmdb_rel_ci", "incident"}
    return [row for row in estate.servicenow_records("sys_audit_delete") if row["tablename"] in synced]


def table_requests(server: SimulatorServer, table: str) -> list[Any]:
    return [r for r in server.requests(f"/api/now/table/{table}$") if "sysparm_query" in r.query]


def test_full_sync_lands_exact_counts_and_aria_rows(first_sync: Synced) -> None:
    db, server, estate, result = first_sync.db, first_sync.server, first_sync.estate, first_sync.first
    assert result["status"] == "succeeded", result["error"]
    cmdb = estate.servicenow_records("cmdb_ci_computer")
    expected = {
        "cmdb_items": len(cmdb),
        "services": len(estate.servicenow_records("cmdb_ci_service")),
        "service_relations": len(service_relations(estate)),
        "catalog_items": len(estate.servicenow_records("sc_cat_item")),
        "incidents": len(estate.servicenow_records("incident")),
        "deletions": len(audited(estate)),
    }
    for stream, count in expected.items():
        assert result["streams"][stream] == {
            "fetched": count, "inserted": count, "updated": 0, "unchanged": 0, "removed": 0, "rejected": 0,
        }, stream  # fmt: skip

    identities = {r["source_id"]: r for r in rows(db, "SELECT * FROM asset_identities")}
    assert len(identities) == len(cmdb)
    statuses = Counter(r["status"] for r in identities.values())
    retired = sum(1 for row in cmdb if row["install_status"] == "7")
    assert retired and statuses == {"retired": retired, "active": len(cmdb) - retired}
    for ci in cmdb:
        identity = identities[ci["sys_id"]]
        assert identity["servicenow_sysid"] == ci["sys_id"]
        assert identity["source_table"] == "servicenow_cmdb_items"
        assert identity["name"] == ci["name"] and identity["hostname"] == ci["host_name"].lower()
        assert identity["mac_addresses"] == [ci["mac_address"].replace(":", "").lower()]
        assert identity["ip_addresses"] == [ci["ip_address"]]
        assert identity["fqdn"] == (ci["fqdn"].lower() or None)
        assert identity["owner"] == (ci["assigned_to"] or ci["owned_by"] or None)
        assert identity["asset_type"] == ("server" if "server" in ci["sys_class_name"] else "computer")
        assert identity["last_seen"].utcoffset().total_seconds() == 0

    services = {r["source_id"]: r for r in rows(db, "SELECT * FROM services")}
    assert len(services) == expected["services"]
    levels = {"1": "critical", "2": "high", "3": "medium", "4": "low"}
    for service in estate.servicenow_records("cmdb_ci_service"):
        assert services[service["sys_id"]]["criticality"] == levels[service["busines_criticality"][0]]
        assert services[service["sys_id"]]["owner"] == service["owned_by"]
    pairs = {(r["parent"], r["child"]) for r in service_relations(estate)}
    landed_pairs = rows(db, "SELECT service_source_id, asset_source_id FROM service_assets")
    assert {(r["service_source_id"], r["asset_source_id"]) for r in landed_pairs} == pairs

    incidents = {r["source_id"]: r for r in rows(db, "SELECT * FROM incidents")}
    severity = {"1": "critical", "2": "high", "3": "medium", "4": "low", "5": "info"}
    state = {
        "1": "open",
        "2": "in_progress",
        "3": "on_hold",
        "6": "resolved",
        "7": "closed",
        "8": "cancelled",
    }
    for incident in estate.servicenow_records("incident"):
        landed = incidents[incident["sys_id"]]
        assert landed["severity"] == severity[incident["priority"]]
        assert landed["status"] == state[incident["state"]]
        assert landed["source_asset_id"] == (incident["cmdb_ci"] or None)
        assert landed["source_service_id"] == (incident["business_service"] or None)
        assert landed["opened_at"].strftime("%Y-%m-%d %H:%M:%S") == incident["opened_at"]
        assert landed["opened_at"].utcoffset().total_seconds() == 0

    # Raw values only, no reference links, a fixed page size, the deterministic order.
    for entry in server.requests("/api/now/table/"):
        if "sysparm_query" not in entry.query:
            continue
        assert entry.query["sysparm_display_value"] == ["false"]
        assert entry.query["sysparm_exclude_reference_link"] == ["true"]
        assert entry.query["sysparm_limit"] == [str(PAGE)]
    assert table_requests(server, "cmdb_ci_computer")[0].query["sysparm_query"] == [
        "ORDERBYsys_updated_on^ORDERBYsys_id"
    ]


def test_ties_over_pages_all_land_once(first_sync: Synced) -> None:
    db, server, estate, result = first_sync.db, first_sync.server, first_sync.estate, first_sync.first
    cmdb = estate.servicenow_records("cmdb_ci_computer")
    ties = Counter(row["sys_updated_on"] for row in cmdb).most_common(1)[0][1]
    assert ties >= 250 > PAGE  # one discovery second spans at least three pages
    assert result["streams"]["cmdb_items"]["fetched"] == len(cmdb)
    landed = rows(db, "SELECT source_id FROM servicenow_cmdb_items")
    assert sorted(r["source_id"] for r in landed) == sorted(row["sys_id"] for row in cmdb)
    offsets = [int(r.query["sysparm_offset"][0]) for r in table_requests(server, "cmdb_ci_computer")]
    assert offsets == list(range(0, len(cmdb), PAGE))  # stopped at X-Total-Count, no empty extra page


def test_incremental_sync_after_advance_reads_from_the_cursor(advanced: Synced) -> None:
    db, server, estate, before, cursor = (
        advanced.db,
        advanced.server,
        advanced.estate,
        advanced.before,
        advanced.cursor,
    )
    result = advanced.second
    assert result is not None and cursor is not None
    assert cursor == max(row["sys_updated_on"] for row in before.values())
    assert result["status"] == "succeeded", result["error"]

    last_query = table_requests(server, "cmdb_ci_computer")[-1].query["sysparm_query"][0]
    assert last_query == f"sys_updated_on>={cursor}^ORDERBYsys_updated_on^ORDERBYsys_id"
    after = estate.servicenow_records("cmdb_ci_computer")
    changed = [row for row in after if row["sys_updated_on"] >= cursor]
    counts = result["streams"]["cmdb_items"]
    assert counts["fetched"] == len(changed) and counts["inserted"] == 0
    assert counts["updated"] == sum(1 for row in changed if row != before[row["sys_id"]])
    landed = {
        r["source_id"]: r["raw"]
        for r in rows(db, "SELECT source_id, raw::VARCHAR AS raw FROM servicenow_cmdb_items")
    }
    for row in changed:
        assert row["sys_updated_on"] in landed[row["sys_id"]]
    # The CI retired during advance() is a retired asset, not a deleted one.
    newly_retired = [
        r for r in after if r["install_status"] == "7" and before[r["sys_id"]]["install_status"] != "7"
    ]
    assert newly_retired
    status = rows(
        db,
        "SELECT status, is_deleted FROM asset_identities WHERE source_id = ?",
        [newly_retired[0]["sys_id"]],
    )
    assert status == [{"status": "retired", "is_deleted": False}]
    incident_query = table_requests(server, "incident")[-1].query["sysparm_query"][0]
    assert incident_query.startswith("sys_updated_on>=")


def test_hard_delete_found_through_sys_audit_delete(advanced: Synced) -> None:
    db, server, estate, result = advanced.db, advanced.server, advanced.estate, advanced.second
    before = set(advanced.before)
    gone = before - {row["sys_id"] for row in estate.servicenow_records("cmdb_ci_computer")}
    assert gone and result is not None
    assert result["status"] == "succeeded", result["error"]
    audit_query = server.requests("/api/now/table/sys_audit_delete$")[-1].query["sysparm_query"][0]
    assert audit_query.startswith("tablenameINcmdb_ci_computer,") and "^sys_created_on>=" in audit_query

    deleted = rows(db, "SELECT source_id, raw->>'$.name' AS name FROM servicenow_cmdb_items WHERE is_deleted")
    assert {r["source_id"] for r in deleted} == gone
    assert all(r["name"] for r in deleted)  # the last known record is kept
    identities = rows(
        db,
        "SELECT source_id, status, is_deleted, name FROM asset_identities WHERE source_id IN ?",
        [list(gone)],
    )
    assert {(r["source_id"], r["status"], r["is_deleted"]) for r in identities} == {
        (sys_id, "deleted", True) for sys_id in gone
    }
    # Its service relations were deleted with it (the instance cascades and audits them).
    linked = rows(db, "SELECT asset_source_id FROM service_assets WHERE asset_source_id IN ?", [list(gone)])
    assert linked == []
    assert scalar(db, "SELECT count(*) FROM servicenow_service_relations WHERE NOT is_deleted") == len(
        service_relations(estate)
    )
    # Landing rows of everything still present are untouched.
    assert scalar(db, "SELECT count(*) FROM servicenow_cmdb_items WHERE NOT is_deleted") == len(before - gone)


def test_without_sys_audit_delete_a_full_sync_reconciles_sys_ids(
    db: Database, server: SimulatorServer, estate: Estate
) -> None:
    username = estate.credentials["servicenow"]["username"]
    server.app.denied_tables[username] = frozenset({"sys_audit_delete"})  # type: ignore[attr-defined]
    report = Marketplace(db, ORG, Actor("t", "admin")).test_config(
        "servicenow", {"instanceUrl": server.base_url, **estate.credentials["servicenow"]}
    )
    deletions = next(r for r in report.results if r.capability == "deletions")
    assert report.ok and "sys_audit_delete" in deletions.message and "--full" in deletions.message
    install(db, server, estate)
    sync(db)
    before = {row["sys_id"] for row in estate.servicenow_records("cmdb_ci_computer")}
    estate.advance()
    gone = before - {row["sys_id"] for row in estate.servicenow_records("cmdb_ci_computer")}

    full = sync(db, full=True)
    assert full["status"] == "succeeded", full["error"]
    id_lists = [r for r in server.requests("/api/now/table/cmdb_ci_computer$") if "sysparm_fields" in r.query]
    assert id_lists and id_lists[-1].query["sysparm_fields"] == ["sys_id"]
    deleted = rows(db, "SELECT source_id FROM servicenow_cmdb_items WHERE is_deleted")
    assert {r["source_id"] for r in deleted} == gone
    flagged = rows(db, "SELECT source_id FROM asset_identities WHERE is_deleted")
    assert {r["source_id"] for r in flagged} == gone


def test_hourly_rate_limit_is_waited_out(db: Database, estate: Estate) -> None:
    srv = start_servicenow(estate, hourly_limit=4, rate_limit_window_seconds=1.0)
    try:
        install(db, srv, estate, pageSize=1000)
        started = time.monotonic()
        result = sync(db, sleep=time.sleep)
        elapsed = time.monotonic() - started
        assert result["status"] == "succeeded", result["error"]
        assert result["streams"]["cmdb_items"]["fetched"] == len(
            estate.servicenow_records("cmdb_ci_computer")
        )
        refused = [r for r in srv.request_log if r.status == 429]
        assert refused
        assert elapsed >= 1.0  # it waited for the window the instance named instead of failing
    finally:
        srv.stop()


def test_itil_only_user_is_told_which_table_and_role(
    db: Database, server: SimulatorServer, estate: Estate
) -> None:
    config = {"instanceUrl": server.base_url, **ITIL_ONLY_USER}
    report = Marketplace(db, ORG, Actor("t", "admin")).test_config("servicenow", config)
    by_name = {r.capability: r for r in report.results}
    assert not by_name["cmdb"].ok
    assert "cmdb_ci_computer" in by_name["cmdb"].message and "cmdb_read" in by_name["cmdb"].message
    assert by_name["services"].ok and by_name["catalog"].ok and by_name["incidents"].ok
    assert "sys_audit_delete" in by_name["deletions"].message
    with pytest.raises(ConfigurationError, match="cmdb_ci_computer"):
        Marketplace(db, ORG, Actor("t", "admin")).install("servicenow", NAME, config)


def test_wrong_password_says_the_credentials_were_rejected(
    db: Database, server: SimulatorServer, estate: Estate
) -> None:
    config = {"instanceUrl": server.base_url, "username": "aria.demo", "password": "not-the-password-123"}
    report = Marketplace(db, ORG, Actor("t", "admin")).test_config("servicenow", config)
    assert not report.ok and report.error is not None
    assert "ServiceNow rejected the credentials (401)" in report.error
    assert "not-the-password-123" not in report.error
    with pytest.raises(ConfigurationError, match=r"ServiceNow rejected the credentials \(401\)"):
        Marketplace(db, ORG, Actor("t", "admin")).install("servicenow", NAME, config)


def test_password_changed_after_install_fails_the_sync_with_the_same_message(
    db: Database, server: SimulatorServer, estate: Estate
) -> None:
    install(db, server, estate)
    username = estate.credentials["servicenow"]["username"]
    server.app.users[username] = "rotated-elsewhere"  # type: ignore[attr-defined]
    result = sync(db)
    assert result["status"] == "failed"
    assert "ServiceNow rejected the credentials (401)" in result["error"]
    assert rows(db, "SELECT status FROM integration_installations") == [{"status": "credentials_invalid"}]
