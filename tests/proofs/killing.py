"""Kill a real sync process at seeded points, restart it, and check nothing was lost or duplicated."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aria_sync.simulators.framework import SimulatorServer
from aria_sync.store import Database, OrgScope


@dataclass
class KillReport:
    kills: int = 0
    finished_before_kill: int = 0
    lost: int = 0
    duplicated: int = 0
    cursor_ahead: int = 0
    not_interrupted: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"{self.kills} kills, {self.lost} lost, {self.duplicated} duplicated"


def sync_process(db_path: Path, org: str, name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "aria_sync", "--db", str(db_path), "--org", org, "--json", "sync", name],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ),
    )


def kill_and_restart(
    db_path: Path,
    org: str,
    name: str,
    server: SimulatorServer,
    *,
    kills: int,
    seed: int,
    max_requests: int,
    between: Callable[[int], None] | None = None,
) -> KillReport:
    """SIGKILL ``kills`` sync processes, each after a seeded number of vendor requests (page boundaries)
    or a seeded delay (anywhere, including inside a commit)."""
    rng = random.Random(seed)
    report = KillReport()
    for n in range(kills):
        if between:
            between(n)
        before = len(server.request_log)
        proc = sync_process(db_path, org, name)
        if rng.random() < 0.5:
            target = before + rng.randint(1, max_requests)
            deadline = time.monotonic() + 60
            while len(server.request_log) < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
        else:
            time.sleep(rng.uniform(0.3, 3.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            report.kills += 1
        else:
            report.finished_before_kill += 1
        proc.wait()
    return report


def check_landing(db: Database, org: str, table: str, expected_ids: set[str], report: KillReport) -> None:
    with OrgScope(db, org).read() as conn:
        rows = conn.rows(f"SELECT source_id, count(*) AS n FROM {table} WHERE NOT is_deleted GROUP BY source_id")
        all_rows = conn.scalar(f"SELECT count(*) FROM {table}")
        distinct = conn.scalar(f"SELECT count(DISTINCT (installation_id, source_id)) FROM {table}")
    present = {r["source_id"] for r in rows}
    report.lost += len(expected_ids - present)
    report.duplicated += int(all_rows) - int(distinct)
    extra = present - expected_ids
    if extra:
        report.notes.append(f"{table}: {len(extra)} rows not upstream")


def check_cursors(db: Database, org: str, table: str, stream: str, kind: str, report: KillReport) -> None:
    cast = "TRY_CAST({} AS TIMESTAMPTZ)" if kind == "timestamp" else "TRY_CAST({} AS DOUBLE)"
    with OrgScope(db, org).read() as conn:
        row = conn.rows(
            f"SELECT {cast.format('s.cursor')} AS saved, (SELECT max({cast.format('cursor_value')}) FROM {table}) AS top "
            "FROM integration_sync_state s WHERE s.stream = ?",
            [stream],
        )
    if row and row[0]["saved"] is not None and row[0]["top"] is not None and row[0]["saved"] > row[0]["top"]:
        report.cursor_ahead += 1


def check_jobs(db: Database, org: str, report: KillReport) -> None:
    with OrgScope(db, org).read() as conn:
        statuses = [r["status"] for r in conn.rows("SELECT status FROM integration_sync_jobs")]
    report.not_interrupted += sum(1 for s in statuses if s in ("running", "queued"))
