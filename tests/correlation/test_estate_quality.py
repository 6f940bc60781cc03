"""Correlation of the small demo estate against its ground truth."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

from aria_sync.correlation import correlate, pairwise_scores
from aria_sync.simulators.estate import Estate
from aria_sync.store import Database

ORG = "acme"

NOW = dt.datetime(2026, 12, 7, 6, tzinfo=dt.UTC)
MATCHED_ON_VALUES = {
    "created", "servicenow_sysid", "bios_uuid", "serial", "edr_id", "cloud_id", "fqdn (unique both sides)",
    "hostname (unique both sides)", "mac (unique both sides)", "hostname (re-imaged EDR device)", "manual",
}  # fmt: skip


def _load(db: Database, estate: Estate, h: SimpleNamespace) -> None:
    with db.write() as conn:
        h.insert_rows(conn, "asset_identities", h.estate_identities(estate))
        h.load_estate_services(conn, estate)
        correlate(conn, ORG, NOW)


def _mapping(db: Database) -> dict[tuple[str, str], Any]:
    with db.read() as conn:
        rows = conn.execute("SELECT integration_key, source_id, asset_id FROM asset_sources").fetchall()
    return {(key, source_id): asset_id for key, source_id, asset_id in rows}


def test_small_estate_meets_the_quality_bar(
    db: Database, small_estate: Estate, helpers: SimpleNamespace
) -> None:
    _load(db, small_estate, helpers)
    predicted = _mapping(db)
    truth = small_estate.truth()
    assert set(predicted) == set(truth)  # every record became, or joined, exactly one asset
    scores = pairwise_scores(predicted, truth)
    assert scores.precision >= 0.995
    assert scores.recall >= 0.98
    with db.read() as conn:
        assets = conn.execute("SELECT count(*) FROM assets").fetchone()[0]  # type: ignore[index]
        with_service = conn.execute("SELECT count(*) FROM assets WHERE service_id IS NOT NULL").fetchone()[0]  # type: ignore[index]
        reasons = {r[0] for r in conn.execute("SELECT DISTINCT matched_on FROM asset_sources").fetchall()}
        founders = conn.execute("SELECT count(*) FROM asset_sources WHERE matched_on = 'created'").fetchone()[
            0
        ]  # type: ignore[index]
    assert assets == founders == len(set(predicted.values()))
    assert with_service > 0
    assert reasons <= MATCHED_ON_VALUES
    assert {"created", "servicenow_sysid", "fqdn (unique both sides)", "cloud_id"} <= reasons


def test_two_runs_give_the_same_ids(db: Database, small_estate: Estate, helpers: SimpleNamespace) -> None:
    _load(db, small_estate, helpers)
    first = _mapping(db)
    with db.write() as conn:
        correlate(conn, ORG, NOW + dt.timedelta(hours=6))
    assert _mapping(db) == first


def test_ids_do_not_depend_on_insertion_order(
    tmp_path: Any, small_estate: Estate, helpers: SimpleNamespace
) -> None:
    forward, backward = Database(tmp_path / "a" / "f.duckdb"), Database(tmp_path / "b" / "b.duckdb")
    rows = helpers.estate_identities(small_estate)
    for db, ordered in ((forward, rows), (backward, list(reversed(rows)))):
        with db.write() as conn:
            helpers.insert_rows(conn, "asset_identities", ordered)
            correlate(conn, ORG, NOW)
    assert _mapping(forward) == _mapping(backward)


def test_junk_placeholders_and_shared_values_are_reported(
    db: Database, small_estate: Estate, helpers: SimpleNamespace
) -> None:
    _load(db, small_estate, helpers)
    with db.read() as conn:
        findings = conn.execute(
            "SELECT kind, identifier, value, source_table, record_count FROM data_quality_findings"
        ).fetchall()
    shared = {
        (identifier, value, table)
        for kind, identifier, value, table, _ in findings
        if kind == "shared_identifier"
    }
    assert ("serial", "TO BE FILLED BY O.E.M.", "servicenow_cmdb_items") in shared
    assert ("mac", "02004c4f4f50", "ms_defender_assets") in shared


def test_asset_existing_id_survives_a_new_source(
    db: Database, small_estate: Estate, helpers: SimpleNamespace
) -> None:
    rows = helpers.estate_identities(small_estate)
    without_cmdb = [r for r in rows if r["integration_key"] != "servicenow"]
    with db.write() as conn:
        helpers.insert_rows(conn, "asset_identities", without_cmdb)
        correlate(conn, ORG, NOW)
    before = _mapping(db)
    with db.write() as conn:
        helpers.insert_rows(
            conn, "asset_identities", [r for r in rows if r["integration_key"] == "servicenow"]
        )
        correlate(conn, ORG, NOW)
    after = _mapping(db)
    kept = sum(1 for key, asset_id in before.items() if after[key] == asset_id)
    assert kept == len(before)


def test_ids_survive_estate_changes(db: Database, helpers: SimpleNamespace) -> None:
    estate = Estate.generate("small", seed=11, anchor=NOW)
    tables = {
        "tenable": "tenable_assets",
        "ms-defender": "ms_defender_assets",
        "servicenow": "servicenow_cmdb_items",
    }

    def sync(rows: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
        with db.write() as conn:
            conn.execute("DELETE FROM asset_identities")
            helpers.insert_rows(conn, "asset_identities", rows)
            correlate(conn, ORG, NOW)
        return _mapping(db)

    first_rows = helpers.estate_identities(estate)
    first = sync(first_rows)
    for _ in range(3):
        estate.advance()
    rows = helpers.estate_identities(estate)
    present = {(r["integration_key"], r["source_id"]) for r in rows}
    # Records gone from the vendor stay as deleted identities, as the connectors keep them.
    rows += [
        {**old, "is_deleted": True}
        for old in first_rows
        if (old["integration_key"], old["source_id"]) not in present
        and old["source_table"] == tables[old["integration_key"]]
    ]
    second = sync(rows)
    assert {key: second[key] for key in first} == first
    scores = pairwise_scores(second, estate.truth())
    assert scores.precision >= 0.995 and scores.recall >= 0.98
