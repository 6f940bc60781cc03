"""Correlation of asset identities into ARIA assets (first version: one asset per identity)."""

from __future__ import annotations

import datetime as dt

import duckdb


def correlate(conn: duckdb.DuckDBPyConnection, org: str, now: dt.datetime) -> None:
    conn.execute("DELETE FROM asset_sources WHERE org_id = ?", [org])
    conn.execute("DELETE FROM assets WHERE org_id = ?", [org])
    conn.execute(
        """INSERT INTO asset_sources SELECT org_id, md5(source_table || ':' || installation_id || ':' || source_id),
           installation_id, integration_key, source_table, source_id, 'new', last_seen, is_deleted, ?
           FROM asset_identities WHERE org_id = ?""",
        [now, org],
    )
    conn.execute(
        """INSERT INTO assets SELECT s.asset_id, i.org_id, i.name, i.hostname, i.fqdn, i.ip_addresses,
           i.mac_addresses, i.serial_number, i.os, i.asset_type, i.owner, i.service_id, i.criticality,
           CASE WHEN i.is_deleted THEN 'deleted' ELSE i.status END, i.first_seen, i.last_seen,
           [i.integration_key], '{}', ?
           FROM asset_identities i JOIN asset_sources s ON s.org_id = i.org_id AND s.source_table = i.source_table
             AND s.installation_id = i.installation_id AND s.source_id = i.source_id
           WHERE i.org_id = ?""",
        [now, org],
    )
