"""Three identical syncs of the three core vendors leave identical table contents.

The content hash covers every table of the database, landing and ARIA alike, except what a run is
expected to change: timestamps of when something was synced or seen, and which job did it. The
job and audit records themselves grow with each run and are left out.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from aria_sync.simulators.estate import Estate
from aria_sync.store import Database
from aria_sync.sync import SyncRunner

from .killing import RecordFigure
from .vendors import ORG, Rig, defender_rig, servicenow_rig, tenable_rig

# Rows that record runs, not content.
RUN_TABLES = frozenset({"integration_sync_jobs", "integration_activity_logs", "audit_log"})
RUN_COLUMNS = frozenset({"job_id", "last_job_id", "run_id", "last_sync_status", "last_sync_job_id"})
TIME_TYPES = ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "DATE", "TIME")


def content_hashes(db: Database) -> dict[str, str]:
    """Table -> sha256 over its rows in a fixed order, without run timestamps and job ids."""
    hashes: dict[str, str] = {}
    with db.read() as conn:
        columns: dict[str, list[str]] = {}
        for table, column, data_type in conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
        ).fetchall():
            if table in RUN_TABLES or column in RUN_COLUMNS or data_type in TIME_TYPES:
                continue
            columns.setdefault(table, []).append(column)
        for table, names in columns.items():
            listed = ", ".join(f'"{name}"' for name in names)
            rows = conn.execute(f"SELECT {listed} FROM {table} ORDER BY ALL").fetchall()
            hashes[table] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return hashes


def sync_all(db: Database, rigs: list[Rig]) -> None:
    for rig in rigs:
        result = SyncRunner(db, ORG, sleep=time.sleep).sync(rig.name)
        assert result.status == "succeeded", (rig.key, result.error, result.streams)


def test_three_identical_syncs_of_every_vendor_leave_identical_content(
    db: Database, tmp_path: Path, proof_figure: RecordFigure
) -> None:
    estate = Estate.generate("small")
    rigs = [
        tenable_rig(db, estate, options={"asset_export_chunk_size": 100, "vuln_export_num_assets": 50}),
        defender_rig(db, estate, tmp_path / "tls"),
        servicenow_rig(db, estate),
    ]
    try:
        runs = []
        for _ in range(3):
            sync_all(db, rigs)
            runs.append(content_hashes(db))
    finally:
        for rig in rigs:
            rig.stop()

    changed = sorted(table for table in runs[0] if not runs[0][table] == runs[1][table] == runs[2][table])
    with db.read() as conn:
        rows = sum(int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]) for table in runs[0])  # type: ignore[index]
    proof_figure(
        "idempotence",
        f"three identical syncs of Tenable, Defender and ServiceNow: {len(runs[0]) - len(changed)} of "
        f"{len(runs[0])} tables ({rows:,} rows) hash the same after each run",
    )
    assert changed == []
    assert len(runs[0]) >= 20
