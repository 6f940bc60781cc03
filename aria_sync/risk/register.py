"""Risk register refresh (first version: links vulnerabilities and detections to assets only)."""

from __future__ import annotations

import datetime as dt

import duckdb


def refresh_risks(conn: duckdb.DuckDBPyConnection, org: str, now: dt.datetime) -> None:
    for table in ("vulnerabilities", "detections", "incidents"):
        conn.execute(
            f"""UPDATE {table} AS t SET asset_id = s.asset_id FROM asset_sources s
                WHERE t.org_id = ? AND s.org_id = t.org_id AND s.installation_id = t.installation_id
                  AND s.source_id = t.source_asset_id AND t.asset_id IS DISTINCT FROM s.asset_id""",
            [org],
        )
