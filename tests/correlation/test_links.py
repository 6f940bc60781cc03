"""Manual link and unlink: persisted, audited, reversible, and kept by later correlation runs."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pytest

from aria_sync.audit import Actor
from aria_sync.correlation import correlate, link_record, revoke_override, unlink_record
from aria_sync.errors import NotFoundError, PermissionDeniedError
from aria_sync.store import Database

ORG = "acme"
NOW = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)


def _links(db: Database) -> dict[str, tuple[str, str]]:
    with db.read() as conn:
        rows = conn.execute("SELECT source_id, asset_id, matched_on FROM asset_sources").fetchall()
    return {source_id: (asset_id, matched_on) for source_id, asset_id, matched_on in rows}


@pytest.fixture
def estate(db: Database, helpers: SimpleNamespace) -> None:
    with db.write() as conn:
        helpers.insert_rows(conn, "asset_identities", [
            helpers.identity("servicenow", "servicenow_cmdb_items", "c1", fqdn="app1.corp.example.com"),
            helpers.identity("tenable", "tenable_assets", "t1", fqdn="app1.corp.example.com"),
            helpers.identity("ms-defender", "ms_defender_assets", "d9", fqdn="laptop-x.corp.example.com"),
        ])  # fmt: skip
        correlate(conn, ORG, NOW)


@pytest.mark.usefixtures("estate")
def test_manual_link_and_unlink_survive_a_second_correlate(db: Database, admin: Actor) -> None:
    before = _links(db)
    target = before["c1"][0]
    link_id = link_record(
        db, ORG, admin, "ms_defender_assets", "inst-defender", "d9", target, "same laptop, renamed"
    )
    unlink_id = unlink_record(
        db, ORG, admin, "tenable_assets", "inst-tenable", "t1", "scanner mixed two hosts"
    )
    with db.write() as conn:
        correlate(conn, ORG, NOW + dt.timedelta(hours=6))
    after = _links(db)
    assert after["d9"] == (target, "manual")
    assert after["t1"][1] == "manual" and after["t1"][0] != target
    assert after["c1"] == (target, "created")
    with db.read() as conn:
        actions = [
            (r[0], json.loads(r[1])["override_id"])
            for r in conn.execute(
                "SELECT action, details FROM integration_activity_logs WHERE org_id = ? ORDER BY seq", [ORG]
            ).fetchall()
        ]
    assert actions == [("asset.link", link_id), ("asset.unlink", unlink_id)]

    revoke_override(db, ORG, admin, unlink_id, "checked again")
    revoke_override(db, ORG, admin, link_id)
    assert _links(db) == before


@pytest.mark.usefixtures("estate")
def test_link_refuses_unknown_records_and_viewers(db: Database, admin: Actor) -> None:
    with pytest.raises(NotFoundError):
        link_record(db, ORG, admin, "tenable_assets", "inst-tenable", "nope", "x", "typo")
    with pytest.raises(PermissionDeniedError):
        unlink_record(db, ORG, Actor("v", "viewer"), "tenable_assets", "inst-tenable", "t1", "no")
